"""The answer cache's file: its mode, its size limit, its settings, locks held by other
processes, and several processes writing at once (real SQLite files, real processes)."""

from __future__ import annotations

import io
import os
import sqlite3
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from PIL import Image

import reka_nb
from reka_nb import CacheWarning, ConfigurationError, describe, describe_many
from reka_nb.cache import FILE_VERSION, AnswerCache, CachedAnswer
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def answer(text: str = "an answer", at: float | None = None) -> CachedAnswer:
    return CachedAnswer(text, "reka-flash", "stop", 10, 5, "req_1", 0.1, at or time.time())


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("REKA_NB_CACHE", str(path))
    return path


def child_env(server: OfflineServer, cache_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_CACHE=str(cache_dir),
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "on", "yes", "TRUE"])
def test_a_value_that_looks_like_a_switch_is_refused(
    env: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REKA_NB_CACHE", value)
    with pytest.raises(ConfigurationError) as info:
        describe_many([png(10)], "Size?", show=False)
    assert str(info.value) == (
        f"REKA_NB_CACHE={value!r} looks like a switch, but it names the cache's folder: unset "
        "it for the default folder (the cache is on), give a folder, or 'off'"
    )
    assert list(tmp_path.iterdir()) == [] and env.requests == []


@pytest.mark.parametrize("value", ["$HOME/x", "${XDG_CACHE_HOME}/reka", "%LOCALAPPDATA%\\reka"])
def test_an_unexpanded_variable_is_refused(
    env: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REKA_NB_CACHE", value)
    with pytest.raises(ConfigurationError) as info:
        describe(png(10), "Size?", show=False, cache=True)
    assert str(info.value) == (
        f"REKA_NB_CACHE={value!r} holds a variable that was not expanded: give the folder "
        "itself (a leading ~ is expanded)"
    )
    assert list(tmp_path.iterdir()) == [] and env.requests == []
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "cache", "info"],
        env=child_env(env, tmp_path, REKA_NB_CACHE=value),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "holds a variable that was not expanded" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_tilde_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("REKA_NB_CACHE", "~/answers")
    assert reka_nb.cache.info().path == tmp_path / "answers" / "answers.sqlite3"


# -- the file ------------------------------------------------------------------------------------


def test_the_file_is_made_for_its_owner_only(env: OfflineServer, cache_dir: Path) -> None:
    old = os.umask(0o022)
    try:
        describe_many([png(10), png(11)], "Size?", show=False)
    finally:
        os.umask(old)
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    files = sorted(p.name for p in cache_dir.iterdir())
    assert "answers.sqlite3" in files
    for name in files:
        assert stat.S_IMODE((cache_dir / name).stat().st_mode) == 0o600, name


def test_one_connection_per_thread_and_the_schema_written_once(
    env: OfflineServer, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    statements: list[str] = []
    real = sqlite3.connect

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        db = real(*args, **kwargs)
        opened.append(str(args[0]))
        db.set_trace_callback(statements.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", counting)
    for width in (10, 11, 10, 11, 12):
        describe(png(width), "Size?", show=False, cache=True)
    assert len(opened) == 1  # five describe() calls, one connection
    assert sum("user_version=" in s for s in statements) == 1  # written once, when made
    assert len(env.chat_requests()) == 3
    again = AnswerCache(cache_dir / "answers.sqlite3")  # a new object: the file is ready
    assert again.count() == 3
    again.close()
    assert sum("user_version=" in s for s in statements) == 1
    assert sum("CREATE TABLE" in s for s in statements) == 1


def test_an_older_file_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE answers (key TEXT PRIMARY KEY, text TEXT NOT NULL, model TEXT,"
        " finish_reason TEXT, input_tokens INTEGER, output_tokens INTEGER,"
        " request_id TEXT, seconds REAL, stored_at REAL NOT NULL)"
    )
    db.execute("INSERT INTO answers VALUES ('k', 'kept', NULL, NULL, NULL, NULL, NULL, 1, 5)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    cache = AnswerCache(path)
    hit = cache.get("k")
    cache.close()
    assert hit is not None and hit.text == "kept" and cache.problem is None
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FILE_VERSION


# -- size limit ----------------------------------------------------------------------------------


def _held(path: Path) -> int:
    """Bytes of answer text stored, and each row's share besides (as the cache counts it)."""
    with sqlite3.connect(path) as db:
        rows, text = db.execute("SELECT count(*), total(length(text)) FROM answers").fetchone()
    return int(text) + 160 * rows


def test_the_least_recently_used_answers_go_past_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "answers.sqlite3"
    limit = 256 * 1024
    cache = AnswerCache(path, max_bytes=limit)
    text = "x" * 2000
    for i in range(60):
        cache.put(f"k{i}", answer(f"{i} {text}"))
    with sqlite3.connect(path) as db:  # all stored an hour ago, and used then
        db.execute("UPDATE answers SET used_at = ?", (time.time() - 3600,))
    assert cache.get("k0") is not None  # used now: the most recent of all
    for i in range(60, 150):  # about 120 answers of 2 kB fit in 256 kB
        cache.put(f"k{i}", answer(f"{i} {text}"))
    kept = cache.count()
    assert cache.get("k0") is not None and cache.get("k1") is None
    assert cache.get("k149") is not None
    cache.close()
    assert 60 < kept < 150 and cache.problem is None
    assert _held(path) <= limit
    assert path.stat().st_size <= 2 * limit  # pages freed inside the file are reused


def test_cache_info_shows_size_limit_entries_and_age(
    env: OfflineServer, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = AnswerCache(cache_dir / "answers.sqlite3")
    cache.put("old", answer(at=time.time() - 3 * 86400))
    stored = time.time() - 30
    cache.put("new", answer(at=stored))
    cache.close()
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "cache", "info"],
        env=child_env(env, cache_dir, REKA_NB_CACHE_MAX_MB="2"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    size = sum(p.stat().st_size for p in cache_dir.iterdir())
    assert lines[0] == f"answer cache: {cache_dir / 'answers.sqlite3'}"
    assert lines[1] == "answers: 2"
    assert lines[2] == f"size: {size:,} bytes (limit 2,097,152: REKA_NB_CACHE_MAX_MB)"
    assert lines[3] == "oldest answer: 3 days ago"
    # the child's clock read lies between the two here (a busy machine may take seconds to start it)
    ages = range(30, round(time.time() - stored) + 1)
    assert lines[4] in [f"newest answer: {s} s ago" for s in ages], lines[4]
    monkeypatch.setenv("REKA_NB_CACHE_MAX_MB", "lots")
    with pytest.raises(ConfigurationError, match="REKA_NB_CACHE_MAX_MB must be a positive"):
        describe_many([png(10)], "Size?", show=False)
    assert env.requests == []


# -- locks and processes -------------------------------------------------------------------------

HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT OR REPLACE INTO answers (key, text, stored_at) VALUES ('held', 'x', 0)")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


def test_a_lock_held_for_a_while_by_another_process_loses_no_answer(
    env: OfflineServer, cache_dir: Path
) -> None:
    path = cache_dir / "answers.sqlite3"
    describe_many([png(9)], "Size?", show=False)  # makes the file
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), "2.5"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        with warnings.catch_warnings():
            warnings.simplefilter("error", CacheWarning)
            results = describe_many([png(10 + i) for i in range(30)], "Size?", show=False)
    finally:
        assert holder.wait(timeout=30) == 0
        holder.stdout.close()
    assert all(r.ok for r in results)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM answers").fetchone()[0] == 32


WRITER = """
import sys, threading, time
from pathlib import Path
from reka_nb.cache import AnswerCache, CachedAnswer
cache = AnswerCache(Path(sys.argv[1]))
name = sys.argv[2]
def write(part):
    for i in range(75):
        key = f"{name}-{part}-{i}"
        cache.put(key, CachedAnswer(key, "m", "stop", 1, 1, None, 0.0, time.time()))
        assert cache.get(key).text == key, key
threads = [threading.Thread(target=write, args=(p,)) for p in range(2)]
[t.start() for t in threads]
[t.join() for t in threads]
print(cache.problem or "ok", flush=True)
"""


def test_six_processes_of_two_threads_write_at_once(cache_dir: Path) -> None:
    path = cache_dir / "answers.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"p{n}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(6)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [(p.returncode, out) for p, (out, _) in zip(procs, outputs, strict=True)] == [
        (0, "ok\n")
    ] * 6, [err for _, err in outputs]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM answers").fetchone()[0] == 6 * 2 * 75


CLOSE_MID_READ = """
import sys, threading
from pathlib import Path
from reka_nb.cache import AnswerCache, CachedAnswer
cache = AnswerCache(Path(sys.argv[1]))
cache.put("k", CachedAnswer("kept", "reka-flash", "stop", 1, 1, "req_1", 0.1, 1.0))
inside, go_on, got = threading.Event(), threading.Event(), []

def pause():  # the read is inside SQLite when close() comes from another thread
    inside.set()
    go_on.wait()
    return 0

def read():
    cache._connect().set_progress_handler(pause, 1)
    got.append(cache.get("k"))

worker = threading.Thread(target=read)
worker.start()
inside.wait()
cache.close()  # as a stopped run does while a worker thread still reads the cache
go_on.set()
worker.join()
print(got[0].text, cache.usable, cache.get("k").text, flush=True)
"""


def test_closing_while_another_thread_reads_waits_for_that_read(tmp_path: Path) -> None:
    """A stopped run closes the cache while a worker thread may still be inside a read: the
    read ends with its answer, the connection is closed after it, the cache stays usable."""
    proc = subprocess.run(
        [sys.executable, "-c", CLOSE_MID_READ, str(tmp_path / "answers.sqlite3")],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,  # closing under the read (as before) blocks here instead
    )
    assert (proc.returncode, proc.stdout) == (0, "kept True kept\n"), proc.stderr


def test_many_answers_are_stored_and_found_together_in_order(tmp_path: Path) -> None:
    """A run stores the answers that arrived together in one transaction and looks up the
    questions that did in one query: past SQLite's 999 bound values as well."""
    cache = AnswerCache(tmp_path / "answers.sqlite3")
    entries = [(f"k{i}", answer(f"answer {i}")) for i in range(250)]  # 2,500 values
    cache.put_many(entries)
    keys = ["k7", "missing", "k249", "k7", "k0"]
    found = cache.get_many(keys)
    assert [None if f is None else f.text for f in found] == [
        "answer 7",
        None,
        "answer 249",
        "answer 7",
        "answer 0",
    ]
    assert cache.count() == 250 and cache.get("k100") == entries[100][1]
    assert cache.get_many([f"k{i}" for i in range(250)]) == [a for _, a in entries]
    cache.put_many([("k1", answer("newer"))])
    assert cache.get("k1").text == "newer" and cache.count() == 250  # replaced, not added
    cache.put_many([])
    assert cache.get_many([]) == []
    cache.close()


def test_a_call_that_may_not_wait_says_so_instead_of_waiting(tmp_path: Path) -> None:
    """``wait=False`` (the event loop's thread) never waits for a lock: a write under
    another connection's lock, or the first use of a file, raises CacheLocked at once;
    a read goes on beside a writer (WAL)."""
    from reka_nb._exceptions import CacheLocked

    path = tmp_path / "answers.sqlite3"
    cache = AnswerCache(path)
    with pytest.raises(CacheLocked):  # not opened by this process yet: that may wait
        cache.get_many(["k"], wait=False)
    cache.put("k", answer("kept"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(CacheLocked):
        cache.put_many([("k2", answer())], wait=False)
    assert time.monotonic() - started < 0.2  # SQLite's own busy wait is 1 s
    assert [a.text for a in cache.get_many(["k"], wait=False)] == ["kept"]
    other.execute("COMMIT")
    cache.put_many([("k2", answer("two"))], wait=False)
    assert cache.get("k2").text == "two" and cache.usable and cache.problem is None
    other.close()
    cache.close()
