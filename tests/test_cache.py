"""The answer cache: SQLite files shared by processes, resumed runs, corruption and locks."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

import reka_nb
from reka_nb import CacheWarning, describe, describe_many
from reka_nb.testing import Fault, OfflineServer, image_digest

ROOT = Path(__file__).resolve().parents[1]


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("REKA_NB_CACHE", str(path))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "photos"
    out.mkdir()
    for i in range(6):
        (out / f"img{i}.png").write_bytes(png(10 + i))
    return out


def child_env(server: OfflineServer, cache_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_CACHE=str(cache_dir),
        PYTHONPATH=str(ROOT),
    )
    return env


def test_a_second_run_asks_nothing_and_says_cached(env: OfflineServer, cache_dir: Path) -> None:
    first = describe_many([png(10), png(11)], "Size?", show=False)
    assert [r.cached for r in first] == [False, False]
    second = describe_many([png(10), png(11)], "Size?", show=False)
    assert [r.cached for r in second] == [True, True]
    assert second.texts == first.texts
    assert second[0].description.footer().endswith("cached")  # type: ignore[union-attr]
    assert second.usage.input_tokens == 0 and first.usage.input_tokens > 0
    assert len(env.chat_requests()) == 2
    describe_many([png(10)], "Size?", show=False, temperature=0.3)  # another question
    describe_many([png(10)], "Size?", show=False, cache=False)  # asked anew
    assert len(env.chat_requests()) == 4


def test_the_cache_never_holds_the_key(env: OfflineServer, cache_dir: Path) -> None:
    describe_many([png(10), png(11)], "Size?", show=False)
    files = list(cache_dir.iterdir())
    assert {f.name for f in files} >= {"answers.sqlite3"}
    for f in files:
        assert env.api_key.encode() not in f.read_bytes()
    info = reka_nb.cache.info()
    assert info.path == cache_dir / "answers.sqlite3" and info.entries == 2 and info.enabled
    assert reka_nb.cache.clear() == 2
    assert reka_nb.cache.info().entries == 0


def test_cache_off(env: OfflineServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REKA_NB_CACHE", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    describe_many([png(10)], "Size?", show=False)
    again = describe_many([png(10)], "Size?", show=False)
    assert not again[0].cached and len(env.chat_requests()) == 2
    assert not (tmp_path / "xdg").exists()
    assert not reka_nb.cache.info().enabled


def test_the_default_folder_is_the_user_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("REKA_NB_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert reka_nb.cache.info().path == tmp_path / "xdg" / "reka_nb" / "answers.sqlite3"


def test_a_corrupt_cache_is_a_warning_and_a_run_without_it(
    env: OfflineServer, cache_dir: Path
) -> None:
    cache_dir.mkdir()
    (cache_dir / "answers.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.warns(CacheWarning, match="cannot be used .*going on without it"):
        results = describe_many([png(10), png(11)], "Size?", show=False)
    assert [r.ok for r in results] == [True, True]
    assert len(env.chat_requests()) == 2


def test_a_locked_cache_is_a_warning_and_a_run_without_it(
    env: OfflineServer, cache_dir: Path
) -> None:
    describe_many([png(10)], "Size?", show=False)  # makes the file
    holder = sqlite3.connect(cache_dir / "answers.sqlite3", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.warns(CacheWarning, match="locked"):
            results = describe_many([png(10), png(11)], "Size?", show=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert [r.ok for r in results] == [True, True]
    assert [r.cached for r in results] == [False, False]
    assert len(env.chat_requests()) == 3


def test_describe_uses_the_cache_when_asked(env: OfflineServer, cache_dir: Path) -> None:
    a = describe(png(10), "Size?", show=False, cache=True)
    b = describe(png(10), "Size?", show=False, cache=True)
    c = describe(png(10), "Size?", show=False)
    assert (a.cached, b.cached, c.cached) == (False, True, False)
    assert a.text == b.text == c.text
    assert len(env.chat_requests()) == 2


def test_the_cache_is_shared_across_processes(
    env: OfflineServer, cache_dir: Path, folder: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", "describe", "--each", str(folder), "-p", "Size?"],
        env=child_env(env, cache_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(env.chat_requests()) == 6
    results = describe_many(folder, "Size?", show=False)
    assert [r.cached for r in results] == [True] * 6
    assert len(env.chat_requests()) == 6


INTERRUPTED = """
import sys, time, reka_nb
try:
    reka_nb.describe_many(sys.argv[1], "Size?", concurrency=2, show=False)
except KeyboardInterrupt as exc:
    caught = time.monotonic()
    kept = exc.results
    print(caught, len(kept), sum(r.ok for r in kept), len(reka_nb.last_results), flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def test_an_interrupt_keeps_the_finished_and_a_rerun_asks_only_the_rest(
    env: OfflineServer, cache_dir: Path, folder: Path
) -> None:
    env.latency = 0.6
    child = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED, str(folder)],
        env=child_env(env, cache_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(env.chat_requests()) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # the first two answered, the next two in flight
    child.send_signal(signal.SIGINT)
    sent_at = time.monotonic()
    out, err = child.communicate(timeout=30)
    assert child.returncode == 130, err
    assert env.wait_idle()  # the cancelled requests end here, not in the next test
    caught, *counts = out.split()
    # The requests in flight were cancelled, not waited for (each takes 0.6 s).
    assert float(caught) - sent_at < 0.3
    kept, ok, last = (int(x) for x in counts)
    assert kept == ok == last and 2 <= kept < 6
    env.latency = 0.0
    rerun = time.monotonic()
    results = describe_many(folder, "Size?", show=False)
    assert [r.ok for r in results] == [True] * 6
    assert sum(r.cached for r in results) == kept
    asked = [r for r in env.chat_requests() if r.received >= rerun]
    missing = {image_digest(png(10 + r.index)) for r in results if not r.cached}
    assert len(asked) == 6 - kept and {r.images[0] for r in asked} == missing
    for r in results:
        if r.cached:  # asked once, in the interrupted run
            assert env.times_asked(prompt="Size?", image=png(10 + r.index)) == 1


def test_identical_questions_in_flight_are_asked_once(env: OfflineServer, cache_dir: Path) -> None:
    """50 identical images at concurrency 8: the first is asked, the others wait for it and
    are answered from the cache, instead of 8 asking at once."""
    env.latency = 0.3
    results = describe_many([png(10)] * 50, "Same?", concurrency=8, show=False)
    assert all(r.ok for r in results)
    assert len(env.chat_requests()) == 1
    assert [r.cached for r in results].count(True) == 49


def test_when_the_question_in_flight_fails_one_waiting_asks_it(
    env: OfflineServer, cache_dir: Path
) -> None:
    env.latency = 0.3
    env.queue(Fault.status(400))  # not worth retrying: the first item fails
    results = describe_many([png(10)] * 10, "Same?", concurrency=4, show=False)
    assert [r.status for r in env.chat_requests()] == [400, 200]
    assert len(results.errors) == 1
    assert [r.cached for r in results].count(True) == 8


# -- only real answers are stored ---------------------------------------------------------------

EMPTY_REPLIES = {
    "{}": {},
    "no choices": {"choices": []},
    "a null content": {"choices": [{"message": {"role": "assistant", "content": None}}]},
    "a content part of 5": {"choices": [{"message": {"content": [{"type": "text", "text": 5}]}}]},
    "an empty string": {"choices": [{"message": {"content": ""}, "finish_reason": "stop"}]},
}
WHY = {
    "{}": "the reply held no choices",
    "no choices": "the reply held no choices",
    "a null content": "the reply held no content and no refusal",
    "a content part of 5": "the reply held an empty answer and no refusal",
    "an empty string": "the reply held an empty answer and no refusal",
}


@pytest.mark.parametrize("case", list(EMPTY_REPLIES))
def test_an_empty_reply_is_a_server_error_and_never_stored(
    env: OfflineServer, cache_dir: Path, case: str
) -> None:
    from reka_nb import ServerError

    images = [png(20 + i) for i in range(3)]
    env.queue(reka_nb.testing.Fault.ok(), reka_nb.testing.Fault.status(200, EMPTY_REPLIES[case]))
    first = describe_many(images, "Size?", show=False, concurrency=1, retries=0)
    assert [r.ok for r in first] == [True, False, True]
    error = first[1].error
    assert isinstance(error, ServerError) and error.status == 200
    assert str(error) == (
        f"The server's reply held no answer: {WHY[case]} (HTTP 200, request id "
        f"{env.requests[1].request_id})"
    )
    again = describe_many(images, "Size?", show=False, concurrency=1)
    assert [r.cached for r in again] == [True, False, True]  # asked anew, not served ''
    assert "PNG, 21×8 px" in again[1].text
    assert len(env.chat_requests()) == 4


def test_a_refusal_is_an_answer_and_is_stored(env: OfflineServer, cache_dir: Path) -> None:
    refusal = {
        "choices": [
            {
                "message": {"content": None, "refusal": "I cannot help with that."},
                "finish_reason": "stop",
            }
        ]
    }
    env.queue(reka_nb.testing.Fault.status(200, refusal))
    first = describe(png(30), "Who?", show=False, stream=False, cache=True)
    again = describe(png(30), "Who?", show=False, stream=False, cache=True)
    assert first.text == again.text == "I cannot help with that."
    assert (first.cached, again.cached, len(env.chat_requests())) == (False, True, 1)


@pytest.mark.parametrize("api", ["openai", "native"])
def test_a_streamed_answer_without_text_is_a_server_error_not_stored(
    env: OfflineServer, cache_dir: Path, api: str
) -> None:
    from reka_nb import RekaClient, ServerError

    env.reply = ""  # the stream opens, finishes with "stop", and holds no word
    with RekaClient(api=api) as client:
        with pytest.raises(ServerError) as info:
            describe(png(31), "Size?", show=False, cache=True, client=client)
        assert str(info.value).startswith(
            "The server's reply held no answer: the stream ended (finish reason 'stop') "
            "without any answer text (HTTP 200"
        )
        env.reply = None
        answer = describe(png(31), "Size?", show=False, cache=True, client=client)
    assert answer.cached is False and "PNG, 31×8 px" in answer.text


def test_the_cache_syncs_at_checkpoints_not_at_every_answer(tmp_path: Path) -> None:
    from reka_nb.cache import AnswerCache, CachedAnswer

    cache = AnswerCache(tmp_path / "answers.sqlite3")
    answer = CachedAnswer("A cat.", "reka-flash", "stop", 3, 2, "req-1", 0.5, 1.0)
    cache.put("k" * 64, answer)
    db = cache._connect()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL: no fsync per store
    cache.close()
    other = AnswerCache(tmp_path / "answers.sqlite3")  # a new connection sees it at once
    assert other.get("k" * 64) == answer
    other.close()
