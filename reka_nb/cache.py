"""The answer cache: one SQLite file, shared by every process of the user.

What decides an answer makes the key: the base URL, the endpoint kind, the model, the
question (its text and each image's bytes, hashed) and the generation parameters. The API key
is not part of the key and is never stored. Each row holds the answer's text, usage, model,
finish reason, request id, when it was stored and how long it took.

The file lives in the user cache folder (``platformdirs``), or in ``REKA_NB_CACHE=<folder>``;
``REKA_NB_CACHE=off`` turns it off. WAL mode lets several processes read and write at once. A
database that is corrupt or stays locked is a ``CacheWarning`` and the run goes on without it:
a cache must never be the reason an answer is lost.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._exceptions import CacheWarning
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
    "info",
]

SCHEMA_VERSION = 1
FILE_NAME = "answers.sqlite3"
_OFF = {"off", "0", "false", "no", "none"}
_BUSY_MS = 2000


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

    def __str__(self) -> str:
        if not self.enabled or self.path is None:
            return "answer cache: off (REKA_NB_CACHE=off)"
        return (
            f"answer cache: {self.path}\nanswers: {self.entries:,}\nsize: {self.size_bytes:,} bytes"
        )


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
    """``REKA_NB_CACHE`` read now: a folder, None for off, or the user cache folder."""
    value = os.environ.get("REKA_NB_CACHE", "").strip()
    if value.lower() in _OFF:
        return None
    if value:
        return Path(os.path.expanduser(value))
    import platformdirs

    return Path(platformdirs.user_cache_dir("reka_nb", appauthor=False))


class AnswerCache:
    """The SQLite answer store; safe to share between threads of one process.

    Every failure of the database turns the cache off for this object and is kept in
    ``problem`` (``warn()`` turns it into one ``CacheWarning``); ``get`` then finds nothing
    and ``put`` stores nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._warned = False
        self.problem: str | None = None  # why the cache was turned off, if it was

    def __repr__(self) -> str:
        state = "off" if self._broken else "on"
        return f"<AnswerCache {str(self.path)!r} {state}>"

    @property
    def usable(self) -> bool:
        return not self._broken

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=_BUSY_MS / 1000, check_same_thread=False, isolation_level=None
            )
            try:
                db.execute("PRAGMA journal_mode=WAL")
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise sqlite3.DatabaseError(
                        f"schema version {version}, this reka_nb writes {SCHEMA_VERSION}"
                    )
                db.execute(
                    "CREATE TABLE IF NOT EXISTS answers ("
                    " key TEXT PRIMARY KEY, text TEXT NOT NULL, model TEXT,"
                    " finish_reason TEXT, input_tokens INTEGER, output_tokens INTEGER,"
                    " request_id TEXT, seconds REAL, stored_at REAL NOT NULL)"
                )
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _fail(self, exc: BaseException) -> None:
        self._broken = True
        self.problem = f"the answer cache {self.path} cannot be used ({exc}); going on without it"
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None

    def warn(self, stacklevel: int = 2) -> None:
        """Warn (once) that the cache failed; call from the user's thread, at the end of a
        run, because failures happen in worker threads."""
        if self.problem is not None and not self._warned:
            self._warned = True
            warnings.warn(self.problem, CacheWarning, stacklevel=stacklevel + 1)

    def get(self, key: str) -> CachedAnswer | None:
        """The stored answer for a key, or None."""
        with self._lock:
            if self._broken:
                return None
            try:
                row = (
                    self._connect()
                    .execute(
                        "SELECT text, model, finish_reason, input_tokens, output_tokens,"
                        " request_id, seconds, stored_at FROM answers WHERE key = ?",
                        (key,),
                    )
                    .fetchone()
                )
            except (sqlite3.Error, OSError) as exc:
                self._fail(exc)
                return None
        return None if row is None else CachedAnswer(*row)

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store an answer (replacing an older one for the same key)."""
        with self._lock:
            if self._broken:
                return
            try:
                self._connect().execute(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    ),
                )
            except (sqlite3.Error, OSError) as exc:
                self._fail(exc)

    def count(self) -> int:
        with self._lock:
            if self._broken or not self.path.exists():
                return 0
            try:
                return int(self._connect().execute("SELECT count(*) FROM answers").fetchone()[0])
            except (sqlite3.Error, OSError) as exc:
                self._fail(exc)
                return 0

    def clear(self) -> int:
        """Delete every stored answer; return how many there were."""
        with self._lock:
            if not self.path.exists():
                return 0
            try:
                db = self._connect()
                n = int(db.execute("SELECT count(*) FROM answers").fetchone()[0])
                db.execute("DELETE FROM answers")
                db.execute("VACUUM")
                return n
            except (sqlite3.Error, OSError) as exc:
                self._fail(exc)
                return 0

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


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
    finally:
        cache.close()
    size = sum(
        p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
    )
    return CacheInfo(path, True, entries, size)


def clear() -> int:
    """Delete every stored answer; return how many there were."""
    cache = default_cache()
    if cache is None:
        return 0
    try:
        return cache.clear()
    finally:
        cache.close()
