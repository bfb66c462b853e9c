"""What a run costs per image besides the request: thread hops, settings resolved, thumbnails
and the prepared bytes, counted exactly against the offline server."""

from __future__ import annotations

import asyncio
import gc
import io
import itertools
import os
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import reka_nb
from reka_nb import describe_many
from reka_nb.batch import engine
from reka_nb.client import base as client_base
from reka_nb.images import LIGHT_BYTES, codec, light
from reka_nb.testing import OfflineServer


def png(width: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, 8), (20, 120, 220)).save(out, "PNG")
    return out.getvalue()


def write_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, images: list[bytes]
) -> list[str]:
    """The images as the files ``<name>0.png``, ``<name>1.png``...; the cache beside them."""
    monkeypatch.setenv("REKA_NB_CACHE", str(tmp_path / "cache"))
    out = []
    for i, data in enumerate(images):
        path = tmp_path / f"{name}{i}.png"
        path.write_bytes(data)
        out.append(str(path))
    return out


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return write_images(tmp_path, monkeypatch, "img", [png(10 + i) for i in range(6)])


URLS = [f"https://example.com/photo{i}.jpg" for i in range(4)]


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of each function a run sends to a worker thread (``asyncio.to_thread``)."""
    names: list[str] = []
    real = asyncio.to_thread

    async def counted(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        names.append(func.__name__)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return names


def noisy_png(width: int, height: int) -> bytes:
    """A PNG that compresses badly: its size grows with its pixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def big_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Four files over ``LIGHT_BYTES``: each prepared in a worker thread."""
    out = write_images(tmp_path, monkeypatch, "big", [noisy_png(160 + i, 160) for i in range(4)])
    assert all(os.path.getsize(path) > LIGHT_BYTES for path in out)
    return out


def test_small_files_take_no_thread_hop_without_a_cache(
    env: OfflineServer, paths: list[str], hops: list[str]
) -> None:
    results = describe_many(paths, "What?", cache=False, show=False, concurrency=3)
    assert [r.ok for r in results] == [True] * 6
    assert hops == []  # read, checked and sent from the loop: a hop would cost more


def test_small_files_meet_the_cache_on_the_loop(
    env: OfflineServer, paths: list[str], hops: list[str]
) -> None:
    results = describe_many(paths, "What?", show=False, concurrency=6)
    assert [r.ok for r in results] == [True] * 6
    assert hops == ["_work"]  # only the first use of the file, which creates it, in a thread
    hops.clear()
    again = describe_many(paths, "What?", show=False, concurrency=6)
    assert again.cached_count == 6 and [r.text for r in again] == [r.text for r in results]
    assert hops == []
    assert len(env.requests) == 6


def test_a_large_file_takes_one_hop_that_also_looks_it_up(
    env: OfflineServer, big_paths: list[str], hops: list[str]
) -> None:
    results = describe_many(big_paths, "What?", show=False, concurrency=4)
    assert [r.ok for r in results] == [True] * 4
    assert hops.count("_prepare") == 4 and set(hops) <= {"_prepare", "_work"}
    hops.clear()
    again = describe_many(big_paths, "What?", show=False, concurrency=4)
    assert again.cached_count == 4
    assert hops == ["_prepare"] * 4  # each found in the cache by the hop that prepared it


def test_urls_take_no_thread_hop(env: OfflineServer, hops: list[str]) -> None:
    results = describe_many(URLS, "What?", cache=False, show=False)
    assert [r.ok for r in results] == [True] * 4
    assert hops == []
    assert [r.thumbnail for r in results] == [None] * 4  # a remote image has none


def test_what_is_light(tmp_path: Path) -> None:
    small, big = tmp_path / "small.png", tmp_path / "big.png"
    small.write_bytes(png(4))
    big.write_bytes(noisy_png(160, 160))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"tiny")
    assert light(str(small)) and light(small) and light(png(4)) and light(bytearray(png(4)))
    assert light([str(small), URLS[0]]) and light(URLS[0]) and light(" HTTPS://a.b/c ")
    assert not light(str(big)) and not light(big.read_bytes()) and not light([small, big])
    assert not light(str(video))  # a clip is decoded by its own reader
    assert not light(str(tmp_path / "missing.png")) and not light(str(tmp_path))
    assert not light("http://example.com/a.jpg")  # refused later, in a thread
    assert not light("data:image/png;base64,AAAA")
    assert not light([]) and not light(Image.new("RGB", (4, 4))) and not light(io.BytesIO())


def test_a_locked_cache_file_is_waited_for_in_a_thread_not_on_the_loop(
    env: OfflineServer, paths: list[str], hops: list[str], tmp_path: Path
) -> None:
    """Another process writing to the cache file never blocks the event loop: the stores
    wait for its lock in a worker thread, and are written once it lets go."""
    import sqlite3
    import threading
    import time

    describe_many(paths[:1], "Warm?", show=False)  # the file exists, opened by this process
    hops.clear()
    other = sqlite3.connect(
        tmp_path / "cache" / "answers.sqlite3", isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")  # the write lock, as another process's write holds it
    release = threading.Timer(1.5, other.execute, ("COMMIT",))

    async def run() -> tuple[Any, list[float]]:
        ticks: list[float] = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        release.start()
        results = await reka_nb.adescribe_many(paths, "What?", show=False, concurrency=2)
        ticker.cancel()
        return results, ticks

    try:
        started = time.monotonic()
        results, ticks = asyncio.run(run())
        took = time.monotonic() - started
    finally:
        release.join()
    assert [r.ok for r in results] == [True] * 6
    assert took >= 1.4  # the stores waited for the lock...
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.5  # ...not the loop
    assert "_work" in hops  # in a worker thread
    assert describe_many(paths, "What?", show=False).cached_count == 6
    other.close()


def test_settings_are_resolved_once_per_run_whatever_its_size(
    env: OfflineServer, paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []
    real = client_base.resolve

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs.get("model"))
        return real(**kwargs)

    monkeypatch.setattr(client_base, "resolve", counted)
    monkeypatch.setattr("reka_nb.batch.api.resolve", counted)
    describe_many(paths[:2], "What?", cache=False, show=False)
    assert len(calls) == 1
    calls.clear()
    describe_many(paths, "What?", cache=False, show=False)
    assert len(calls) == 1
    calls.clear()
    reka_nb.describe(paths[0], "What?", show=False)
    assert len(calls) == 1  # one question, one resolution


def test_settings_are_resolved_once_per_question_with_model_info_on(
    env: OfflineServer, paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    calls: list[str | None] = []
    real = client_base.resolve

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs.get("model"))
        return real(**kwargs)

    monkeypatch.setattr(client_base, "resolve", counted)
    with reka_nb.RekaClient() as client:
        answer = client.describe(paths[0], "What?", show=False)
        assert answer.cost is not None  # the model list was looked up, and used
        assert calls == [None]  # the lookup, model_info and the request shared them
        client.describe(paths[1], "What?", model="reka-core", show=False)
    assert calls == [None, "reka-core"]
    assert [r.path for r in env.requests] == ["/v1/models"] + ["/v1/chat/completions"] * 2


def test_no_thumbnail_is_made_until_a_table_is_shown(
    env: OfflineServer, paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    real = codec.thumbnail

    def counted(data: bytes, label: str, *args: Any) -> Any:
        made.append(label)
        return real(data, label, *args)

    monkeypatch.setattr("reka_nb.images.inputs.thumbnail", counted)
    results = describe_many(paths, "What?", cache=False, show=False)
    assert [r.ok for r in results] == [True] * 6
    assert results.records()[0]["text"] and made == []  # records and counts make none
    html = results._repr_html_()
    assert len(made) == 6 and html.count("<img ") == 6
    results._repr_html_()
    assert len(made) == 6  # made once, then kept


def test_a_row_keeps_no_prepared_image(
    env: OfflineServer, paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prepared images (their bytes) are gone once a run ends: a row keeps its input,
    its answer and a way to make its thumbnail, nothing of what was sent."""
    from reka_nb.images import inputs

    prepared: list[weakref.ref[Any]] = []
    real = inputs._prepare_one

    def tracked(*args: Any) -> Any:
        out = real(*args)
        prepared.append(weakref.ref(out))
        return out

    monkeypatch.setattr(inputs, "_prepare_one", tracked)
    results = describe_many(paths, "What?", cache=False, show=False)
    gc.collect()
    assert len(prepared) == 6 and len(results) == 6
    assert [ref() for ref in prepared] == [None] * 6
    assert all(r.description is not None and r.description.images == () for r in results)


def test_the_engine_keeps_its_steps_apart() -> None:
    """run_items is a plan and named steps, each small enough to read at once."""
    import inspect

    steps = ["run", "worker", "row", "prepare", "lookup", "ask", "answered", "keep", "report"]
    for name in steps:
        method = getattr(engine._Run, name)
        assert method.__doc__, name
        assert len(inspect.getsource(method).splitlines()) <= 60, name
    assert len(inspect.getsource(engine.run_items).splitlines()) <= 50


def test_a_cache_batch_that_fails_unexpectedly_fails_its_rows_instead_of_hanging(
    env: OfflineServer, paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Any, batch: Any, wait: bool) -> list[Any]:
        raise RuntimeError("the batch broke")

    monkeypatch.setattr(engine._Desk, "_work", broken)

    async def run() -> Any:
        return await asyncio.wait_for(reka_nb.adescribe_many(paths, "What?", show=False), 10)

    with pytest.raises(RuntimeError, match="the batch broke"):
        asyncio.run(run())
    assert env.chat_requests() == []  # the lookups failed: nothing was asked
