"""The answer cache: one SQLite file, shared by every process of the user.

What decides an answer makes the key: the base URL, the endpoint kind, the model, the
question (its text and each image's bytes, hashed) and the generation parameters. The API key
is not part of the key and is never stored. Each row holds the answer's text, usage, model,
finish reason, request id, when it was stored and how long it took.

The file lives in the user cache folder (``platformdirs``), or in ``REKA_NB_CACHE=<folder>``
(a leading ``~`` is expanded; a value that looks like a switch, ``1`` or ``true``, or holds an
unexpanded ``$VARIABLE`` is refused); ``REKA_NB_CACHE=off`` turns it off. It is created
readable by its owner only (0600). WAL mode lets several processes read and write at once; each
process and thread keeps one connection, and the schema is written once, when the file is
made. Answers arriving together are stored in one transaction and looked up in one query
(``put_many``, ``get_many``); a call made with ``wait=False`` (from an event loop) never waits
for a lock but raises ``CacheLocked`` at once, so that its caller waits in a worker thread.
A write that meets a lock is retried with backoff; a database that is corrupt, or stays
locked past ``LOCK_PATIENCE`` seconds, is a ``CacheWarning`` and the run goes on without it:
a cache must never be the reason an answer is lost.

The file is kept under ``REKA_NB_CACHE_MAX_MB`` megabytes (``DEFAULT_MAX_MB`` by default): past
it, the answers used least recently are deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._exceptions import CacheLocked, CacheWarning, ConfigurationError
from .answer import Description
from .protocol.stream import Usage

__all__ = [
    "SCHEMA_VERSION",
    "AnswerCache",
    "CacheInfo",
    "CachedAnswer",
    "cache_key",
    "clear",
    "default_cache",
    "describe_cache",
    "info",
]

SCHEMA_VERSION = 1
"""The version of the question's key (part of every key)."""
FILE_VERSION = 2
"""The file's layout (``PRAGMA user_version``): 2 added ``used_at``, for eviction."""
FILE_NAME = "answers.sqlite3"
DEFAULT_MAX_MB = 256.0
"""Megabytes the cache file may hold unless ``REKA_NB_CACHE_MAX_MB`` says otherwise."""
LOCK_PATIENCE = 5.0
"""Seconds one read or write waits for another process's lock before the run goes on
without the cache."""
_OFF = {"off", "0", "false", "no", "none"}
_SWITCHES = {"1", "true", "on", "yes", "y", "enable", "enabled"}
_VARIABLE = re.compile(r"\$\{?[A-Za-z_]|%[A-Za-z_][A-Za-z0-9_]*%")
_BUSY_MS = 1000  # SQLite's own wait for a lock, per attempt
_TOUCH_EVERY = 60.0  # a hit refreshes its used_at at most once a minute (a write)


@dataclass(frozen=True)
class CachedAnswer:
    """One stored answer."""

    text: str
    model: str | None
    finish_reason: str | None
    input_tokens: int | None
    output_tokens: int | None
    request_id: str | None
    seconds: float | None
    stored_at: float

    def description(self, prompt: str = "") -> Description:
        """This answer as a Description that says it came from the cache."""
        usage = None
        if self.input_tokens is not None or self.output_tokens is not None:
            usage = Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)
        return Description(
            self.text,
            model=self.model,
            usage=usage,
            finish_reason=self.finish_reason,
            request_id=self.request_id,
            elapsed=self.seconds,
            prompt=prompt,
            cached=True,
        )


@dataclass(frozen=True)
class CacheInfo:
    """Where the cache is, whether it is on, how many answers it holds and its size."""

    path: Path | None
    enabled: bool
    entries: int
    size_bytes: int
    max_bytes: int = 0
    oldest: float | None = None  # when the oldest answer was stored (Unix time)
    newest: float | None = None

    def __str__(self) -> str:
        if not self.enabled or self.path is None:
            return "answer cache: off (REKA_NB_CACHE=off)"
        lines = [
            f"answer cache: {self.path}",
            f"answers: {self.entries:,}",
            f"size: {self.size_bytes:,} bytes (limit {self.max_bytes:,}: REKA_NB_CACHE_MAX_MB)",
        ]
        if self.oldest is not None and self.newest is not None:
            now = time.time()
            lines.append(f"oldest answer: {_age(now - self.oldest)} ago")
            lines.append(f"newest answer: {_age(now - self.newest)} ago")
        return "\n".join(lines)


def _age(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h``, ``12 days``."""
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def cache_key(
    *,
    base_url: str,
    api: str,
    model: str,
    prompt: str,
    images: Sequence[tuple[bytes | None, str | None]],
    params: Mapping[str, Any],
    context: Sequence[Mapping[str, Any]] = (),
    schema: str | None = None,
) -> str:
    """The hex key of a question: never includes the API key; images by their bytes' hash.
    ``base_url`` is the server as the caller names it (``Question.key`` names the in-process
    offline server as one server whatever its port).
    ``schema`` is a structured question's schema fingerprint (key order does not change it).

    ``context`` (a system message, earlier turns) is part of the question when there is one;
    its ``data:`` URLs are hashed like the images.
    """
    hashed = [
        "sha256:" + hashlib.sha256(data).hexdigest() if data is not None else f"url:{url}"
        for data, url in images
    ]
    material = {
        "v": SCHEMA_VERSION,
        "base_url": base_url,
        "api": api,
        "model": model,
        "prompt": prompt,
        "images": hashed,
        "params": {k: params[k] for k in sorted(params) if params[k] is not None},
    }
    if schema is not None:
        material["schema"] = schema
    if context:
        material["context"] = json.loads(json.dumps(list(context)), object_hook=_hash_urls)
    text = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _hash_urls(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON object with every ``data:`` URL replaced by the hash of its text."""
    for name, value in obj.items():
        if isinstance(value, str) and value.startswith("data:"):
            obj[name] = "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return obj


def cache_folder() -> Path | None:
    """``REKA_NB_CACHE`` read now: a folder, None for off, or the user cache folder.

    ConfigurationError for a value that looks like a switch (``1``, ``true``, ``on``...) or
    holds an unexpanded variable (``$HOME/x``): either would become a folder of that name.
    """
    value = os.environ.get("REKA_NB_CACHE", "").strip()
    if value.lower() in _OFF:
        return None
    if value.lower() in _SWITCHES:
        raise ConfigurationError(
            f"REKA_NB_CACHE={value!r} looks like a switch, but it names the cache's folder: "
            "unset it for the default folder (the cache is on), give a folder, or 'off'"
        )
    if _VARIABLE.search(value):
        raise ConfigurationError(
            f"REKA_NB_CACHE={value!r} holds a variable that was not expanded: give the folder "
            "itself (a leading ~ is expanded)"
        )
    if value:
        return Path(os.path.expanduser(value))
    import platformdirs

    return Path(platformdirs.user_cache_dir("reka_nb", appauthor=False))


def max_cache_bytes() -> int:
    """The size limit now: ``REKA_NB_CACHE_MAX_MB`` megabytes, else ``DEFAULT_MAX_MB``."""
    text = os.environ.get("REKA_NB_CACHE_MAX_MB", "").strip()
    if not text:
        return int(DEFAULT_MAX_MB * 1024 * 1024)
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not megabytes > 0 or megabytes == float("inf"):
        raise ConfigurationError(
            f"REKA_NB_CACHE_MAX_MB must be a positive number of megabytes, not {text!r}"
        )
    return max(int(megabytes * 1024 * 1024), 64 * 1024)


def _locked(exc: BaseException) -> bool:
    """A lock held by another connection (worth waiting for), not damage."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


_ready: set[str] = set()  # files whose layout this process has checked (or written)
_ready_lock = threading.Lock()


def _create_private(path: Path) -> None:
    """Make the folder (0700) and an empty database file readable by its owner only (0600);
    SQLite gives its ``-wal`` and ``-shm`` files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _prepare_file(db: sqlite3.Connection) -> None:
    """WAL mode and the table, written once per file (not on every connect); an older layout
    is brought up to date; a newer one is refused."""
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        db.execute("PRAGMA journal_mode=WAL")
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version == FILE_VERSION:
        return
    if version not in (0, 1):
        raise sqlite3.DatabaseError(f"schema version {version}, this reka_nb writes {FILE_VERSION}")
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]  # another process may have
        if version == 0:
            db.execute(
                "CREATE TABLE IF NOT EXISTS answers ("
                " key TEXT PRIMARY KEY, text TEXT NOT NULL, model TEXT,"
                " finish_reason TEXT, input_tokens INTEGER, output_tokens INTEGER,"
                " request_id TEXT, seconds REAL, stored_at REAL NOT NULL, used_at REAL)"
            )
        elif version == 1:
            db.execute("ALTER TABLE answers ADD COLUMN used_at REAL")
        if version in (0, 1):
            db.execute("UPDATE answers SET used_at = stored_at WHERE used_at IS NULL")
            db.execute("CREATE INDEX IF NOT EXISTS answers_used ON answers (used_at)")
            db.execute(f"PRAGMA user_version={FILE_VERSION}")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


class AnswerCache:
    """The SQLite answer store; safe to share between threads of one process.

    Each thread that uses it has one connection of its own, kept until ``close()``. A lock
    held by another process is waited out with backoff for up to ``LOCK_PATIENCE`` seconds;
    any other failure of the database (or a lock that outlasts that) turns the cache off for
    this object and is kept in ``problem`` (``warn()`` turns it into one ``CacheWarning``);
    ``get`` then finds nothing and ``put`` stores nothing.
    """

    def __init__(self, path: Path, max_bytes: int | None = None) -> None:
        self.path = path
        self.max_bytes = max_cache_bytes() if max_bytes is None else max_bytes
        self._lock = threading.Lock()  # guards the connection list and the state
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._in_use: set[sqlite3.Connection] = set()  # a thread is running work on these
        self._close_after_use: set[sqlite3.Connection] = set()  # closed when that work ends
        self._pid = os.getpid()
        self._broken = False
        self._warned = False
        self._checked_at = 0  # the page count at the last eviction check
        self.problem: str | None = None  # why the cache was turned off, if it was

    def __repr__(self) -> str:
        state = "off" if self._broken else "on"
        return f"<AnswerCache {str(self.path)!r} {state}>"

    @property
    def usable(self) -> bool:
        return not self._broken

    def _connect(self) -> sqlite3.Connection:
        """This thread's connection, opened (and the file prepared) on first use."""
        if self._pid != os.getpid():  # a forked child: the parent's connections are not ours
            self._local, self._connections, self._pid = threading.local(), [], os.getpid()
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            return db
        key = str(self.path)
        if key in _ready and not self.path.exists():  # deleted since: made again
            _ready.discard(key)
        if key not in _ready:
            _create_private(self.path)
        db = sqlite3.connect(
            self.path, timeout=_BUSY_MS / 1000, check_same_thread=False, isolation_level=None
        )
        try:
            db.execute("PRAGMA synchronous=NORMAL")  # WAL's safe setting: no fsync per answer
            # At most 256 KiB of pages kept per connection (SQLite's default, 2 MB, fills up
            # as a run stores answers: memory that grows with the run); the system's file
            # cache keeps the file's pages anyway, so a lookup costs the same.
            db.execute("PRAGMA cache_size=-256")
            if key not in _ready:
                with _ready_lock:
                    _prepare_file(db)
                    _ready.add(key)
        except BaseException:
            db.close()
            raise
        self._local.db = db
        with self._lock:
            self._connections.append(db)
        return db

    def _run(self, work: Any, wait: bool = True) -> Any:
        """``work(connection)``, a lock held elsewhere waited out with backoff; None when the
        cache is (or just became) unusable. ``wait=False`` (the event loop's thread): nothing
        waits, not even SQLite for a lock, and ``CacheLocked`` says the work must be done
        where waiting is allowed (so does a file this process has not opened yet)."""
        if self._broken:
            return None
        if not wait and str(self.path) not in _ready:
            raise CacheLocked
        waited, pause, deadline = False, 0.05, time.monotonic() + LOCK_PATIENCE
        while True:
            try:
                db = self._connect()
                with self._lock:
                    if db not in self._connections:  # closed by close() since: open another
                        continue
                    self._in_use.add(db)
                try:
                    if wait:
                        return work(db)
                    db.execute("PRAGMA busy_timeout=0")
                    try:
                        return work(db)
                    finally:
                        db.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
                finally:
                    self._done_with(db)
            except (sqlite3.Error, OSError) as exc:
                if _locked(exc) and not wait:
                    raise CacheLocked from exc
                if _locked(exc) and time.monotonic() + pause < deadline:
                    waited = True
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                if waited and _locked(exc):
                    exc = sqlite3.OperationalError(
                        f"database is locked (waited {LOCK_PATIENCE:g} s for another process)"
                    )
                self._fail(exc)
                return None

    def _fail(self, exc: BaseException) -> None:
        self._broken = True
        self.problem = f"the answer cache {self.path} cannot be used ({exc}); going on without it"
        self._close_all()

    def _done_with(self, db: sqlite3.Connection) -> None:
        with self._lock:
            self._in_use.discard(db)
            close = db in self._close_after_use
            self._close_after_use.discard(db)
        if close:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def _close_all(self) -> None:
        """Close every connection; one that a thread is using (a stopped run's worker still
        reading or storing an answer) is closed by that thread when its work ends, because
        closing it under a running statement crashes the process."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
            idle = [db for db in connections if db not in self._in_use]
            self._close_after_use.update(db for db in connections if db in self._in_use)
        for db in idle:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def warn(self, stacklevel: int = 2) -> None:
        """Warn (once) that the cache failed; call from the user's thread, at the end of a
        run, because failures happen in worker threads."""
        if self.problem is not None and not self._warned:
            self._warned = True
            warnings.warn(self.problem, CacheWarning, stacklevel=stacklevel + 1)

    def get(self, key: str) -> CachedAnswer | None:
        """The stored answer for a key, or None; a hit counts as a use (for eviction)."""
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[str], *, wait: bool = True) -> list[CachedAnswer | None]:
        """The stored answer for each key (None where there is none), in one query per
        ``_CHUNK`` keys: a run looks up the questions that arrived together at once.
        ``wait=False``: ``CacheLocked`` rather than wait for a lock (see ``_run``)."""

        def work(db: sqlite3.Connection) -> dict[str, Any]:
            found: dict[str, Any] = {}
            for chunk in _chunks(list(dict.fromkeys(keys)), _CHUNK):
                marks = ",".join("?" * len(chunk))
                for row in db.execute(
                    "SELECT key, text, model, finish_reason, input_tokens, output_tokens,"
                    f" request_id, seconds, stored_at, used_at FROM answers WHERE key IN ({marks})",
                    chunk,
                ):
                    found[row[0]] = row
            now = time.time()
            stale = [key for key, row in found.items() if (row[9] or 0) < now - _TOUCH_EVERY]
            for chunk in _chunks(stale, _CHUNK):
                marks = ",".join("?" * len(chunk))
                with contextlib.suppress(sqlite3.OperationalError):  # a busy file: next time
                    db.execute(
                        f"UPDATE answers SET used_at = ? WHERE key IN ({marks})", (now, *chunk)
                    )
            return found

        found = self._run(work, wait) or {}
        return [
            None if (row := found.get(key)) is None else CachedAnswer(*row[1:9]) for key in keys
        ]

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store an answer (replacing an older one for the same key), then keep the file
        under its size limit."""
        self.put_many([(key, answer)])

    def put_many(self, entries: Sequence[tuple[str, CachedAnswer]], *, wait: bool = True) -> None:
        """Store answers (each replacing an older one for its key) in one transaction and as
        few statements as SQLite allows, then keep the file under its size limit once.
        ``wait=False``: ``CacheLocked`` rather than wait for a lock (see ``_run``)."""
        now = time.time()
        rows = [
            (
                key,
                answer.text,
                answer.model,
                answer.finish_reason,
                answer.input_tokens,
                answer.output_tokens,
                answer.request_id,
                answer.seconds,
                answer.stored_at,
                now,
            )
            for key, answer in entries
        ]

        def work(db: sqlite3.Connection) -> None:
            chunks = list(_chunks(rows, _CHUNK // _COLUMNS))
            several = len(chunks) > 1
            if several:
                db.execute("BEGIN IMMEDIATE")
            try:
                for chunk in chunks:
                    marks = ",".join([_ROW_MARKS] * len(chunk))
                    values = [value for row in chunk for value in row]
                    db.execute(f"INSERT OR REPLACE INTO answers VALUES {marks}", values)
                if several:
                    db.execute("COMMIT")
            except BaseException:
                if several:
                    with contextlib.suppress(sqlite3.Error):
                        db.execute("ROLLBACK")
                raise
            self._checked_at = _evict(db, self.max_bytes, self._checked_at)

        if rows:
            self._run(work, wait)

    def count(self) -> int:
        if not self.path.exists():
            return 0
        return (
            self._run(lambda db: int(db.execute("SELECT count(*) FROM answers").fetchone()[0])) or 0
        )

    def ages(self) -> tuple[float | None, float | None]:
        """When the oldest and the newest answer were stored (Unix times), or Nones."""
        if not self.path.exists():
            return None, None
        row = self._run(
            lambda db: db.execute("SELECT min(stored_at), max(stored_at) FROM answers").fetchone()
        )
        return (None, None) if row is None else (row[0], row[1])

    def clear(self) -> int:
        """Delete every stored answer; return how many there were."""
        if not self.path.exists():
            return 0

        def work(db: sqlite3.Connection) -> int:
            n = int(db.execute("SELECT count(*) FROM answers").fetchone()[0])
            db.execute("DELETE FROM answers")
            db.execute("VACUUM")
            return n

        return self._run(work) or 0

    def close(self) -> None:
        """Close every thread's connection (one in use is closed when its work ends); the
        cache opens new ones if it is used again."""
        self._close_all()


_ROW_OVERHEAD = 160  # bytes a row takes besides its text (key, numbers, index entry)
_COLUMNS = 10  # of the answers table
_ROW_MARKS = "(" + ",".join("?" * _COLUMNS) + ")"
_CHUNK = 900  # values bound in one statement (SQLite before 3.32 allows 999)


def _chunks(values: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _evict(db: sqlite3.Connection, max_bytes: int, checked_at: int) -> int:
    """Keep the answers within ``max_bytes``: when the file's pages pass the limit (and have
    grown since the last check, ``checked_at``), delete the answers used least recently until
    what the rest hold is 80% of it. Returns the page count seen, the next ``checked_at``."""
    page, pages, free = db.execute(
        "SELECT * FROM pragma_page_size(), pragma_page_count(), pragma_freelist_count()"
    ).fetchone()
    used = (pages - free) * page
    if used <= max_bytes or pages <= checked_at:
        return checked_at  # under the limit, or freed room inside the pages is being reused
    rows, held = db.execute(
        "SELECT count(*), total(length(CAST(text AS BLOB))) FROM answers"
    ).fetchone()
    held += rows * _ROW_OVERHEAD
    if rows and held > 0.8 * max_bytes:
        n = min(rows, math.ceil((held - 0.8 * max_bytes) / (held / rows)))
        db.execute(
            "DELETE FROM answers WHERE key IN (SELECT key FROM answers ORDER BY used_at LIMIT ?)",
            (n,),
        )
    return pages


def default_cache() -> AnswerCache | None:
    """The cache ``REKA_NB_CACHE`` names now, or None when it is off."""
    folder = cache_folder()
    return None if folder is None else AnswerCache(folder / FILE_NAME)


def info() -> CacheInfo:
    """Where the answer cache is and what it holds."""
    folder = cache_folder()
    if folder is None:
        return CacheInfo(None, False, 0, 0)
    path = folder / FILE_NAME
    cache = AnswerCache(path)
    try:
        entries = cache.count()
        oldest, newest = cache.ages()
    finally:
        cache.close()
    size = sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )
    return CacheInfo(path, True, entries, size, cache.max_bytes, oldest, newest)


def clear() -> int:
    """Delete every stored answer; return how many there were."""
    cache = default_cache()
    if cache is None:
        return 0
    try:
        return cache.clear()
    finally:
        cache.close()


_shared: dict[tuple[Path, int], AnswerCache] = {}
_shared_lock = threading.Lock()
_MAX_SHARED = 4  # cache files kept open for describe() (a notebook uses one)


def describe_cache() -> AnswerCache | None:
    """The cache ``describe(cache=True)`` uses: the one REKA_NB_CACHE names now (the same
    ``AnswerCache``, and so the same connections, on every call: one per thread, kept open
    between questions), or None when it is off."""
    folder = cache_folder()
    if folder is None:
        return None
    path = folder / FILE_NAME
    with _shared_lock:
        cache = _shared.get((path, max_cache_bytes()))
        if cache is None or not cache.usable:
            while len(_shared) >= _MAX_SHARED:  # the oldest file not used lately
                _shared.pop(next(iter(_shared))).close()
            cache = AnswerCache(path)
            _shared[(path, cache.max_bytes)] = cache
        return cache
