"""describe_many against the offline server over real sockets: order, errors, limits, stops."""

from __future__ import annotations

import asyncio
import base64
import io
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from _env import child_environment
from PIL import Image

import reka_nb
from reka_nb import (
    AsyncRekaClient,
    AuthenticationError,
    ImageError,
    InvalidRequestError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    Result,
    Results,
    adescribe_many,
    describe_many,
)
from reka_nb.batch import ProgressStats, RateLimiter, TerminalProgress, run_items
from reka_nb.batch.engine import Item
from reka_nb.batch.results import THUMBNAIL
from reka_nb.images import READ_AGAIN, deferred_thumbnail, prepare_image
from reka_nb.offline._limits import INSUFFICIENT_BALANCE
from reka_nb.protocol.stream import Usage
from reka_nb.testing import Fault, OfflineServer
from reka_nb.testing import image_digest as digest

COLUMNS = [
    "image",
    "text",
    "model",
    "input_tokens",
    "output_tokens",
    "finish_reason",
    "request_id",
    "cached",
    "seconds",
    "error",
]


def png(width: int, height: int = 8, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Five small PNGs of different widths, so each answer names its own image."""
    out = tmp_path / "photos"
    out.mkdir()
    for i in range(5):
        (out / f"img{i}.png").write_bytes(png(10 + i))
    (out / "notes.txt").write_text("not an image, and not taken from the folder")
    return out


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("REKA_NB_CACHE", str(path))
    return path


def test_results_keep_the_input_order_whatever_finishes_first(env: OfflineServer) -> None:
    images = [png(40 - i) for i in range(12)]  # later items are smaller: all finish close
    env.latency = 0.05
    results = describe_many(images, "Which size?", concurrency=6, show=False)
    assert isinstance(results, Results) and len(results) == 12 and results.complete
    for i, result in enumerate(results):
        assert isinstance(result, Result) and result.index == i and result.error is None
        assert f"PNG, {40 - i}×8 px" in result.text
    assert results.errors == []
    assert len(env.chat_requests()) == 12


def test_a_folder_gives_its_images_sorted_and_skips_other_files(
    env: OfflineServer, folder: Path
) -> None:
    results = describe_many(folder, "Size?", show=False)
    assert [Path(r.source).name for r in results] == [f"img{i}.png" for i in range(5)]
    assert all(f"PNG, {10 + i}×8 px" in r.text for i, r in enumerate(results))


def test_a_glob_and_a_list_item_with_several_images(env: OfflineServer, folder: Path) -> None:
    results = describe_many(str(folder / "img[0-1].png"), show=False)
    assert [Path(r.source).name for r in results] == ["img0.png", "img1.png"]
    pair = describe_many([[png(11), png(12)]], "Compare", show=False)
    assert "Image 1: PNG, 11×8 px" in pair[0].text and "Image 2: PNG, 12×8 px" in pair[0].text


def test_bad_items_fail_alone_and_nothing_is_sent_for_them(
    env: OfflineServer, folder: Path
) -> None:
    (folder / "img2.png").write_bytes(b"not a png at all")
    results = describe_many(folder, "Size?", show=False)
    assert [r.ok for r in results] == [True, True, False, True, True]
    assert isinstance(results[2].error, ImageError)
    assert "img2.png" in str(results[2].error)
    assert len(env.chat_requests()) == 4
    rows = results.records()
    assert list(rows[2]) == COLUMNS
    assert rows[2]["text"] is None and rows[2]["error"].startswith("ImageError: ")


def test_server_errors_are_retried_then_recorded_and_the_rest_finishes(
    env: OfflineServer,
) -> None:
    env.queue(Fault.status(503), Fault.status(503), Fault.status(503))
    results = describe_many([png(10)], "Size?", retries=2, show=False)
    assert isinstance(results[0].error, reka_nb.ServerError)
    assert len(env.chat_requests()) == 3
    env.reset()
    env.queue(Fault.status(500), Fault.break_after(2))
    results = describe_many([png(10)], "Size?", retries=2, show=False, cache=False)
    assert results[0].ok and "PNG, 10×8 px" in results[0].text
    assert len(env.chat_requests()) == 3


def test_a_400_is_not_retried(env: OfflineServer) -> None:
    env.queue(Fault.status(400))
    results = describe_many([png(10), png(11)], "Size?", concurrency=1, show=False)
    assert isinstance(results[0].error, reka_nb.BadRequestError)
    assert results[1].ok
    assert len(env.chat_requests()) == 2


def test_a_429_pauses_every_worker_for_its_retry_after(env: OfflineServer) -> None:
    env.latency = 0.05
    env.queue(Fault.status(429, retry_after=1))
    results = describe_many([png(10 + i) for i in range(8)], "Size?", concurrency=4, show=False)
    assert all(r.ok for r in results)
    chats = env.chat_requests()
    assert len(chats) == 9
    limited = next(r for r in chats if r.status == 429)
    # Requests already on their way may arrive just after the 429; no new one starts
    # until the second the server asked for has passed.
    later = [r.received - limited.received for r in chats if r.received > limited.received]
    assert all(gap < 0.1 or gap >= 0.95 for gap in later), later
    assert sum(gap >= 0.95 for gap in later) >= 5


def test_requests_per_minute_spaces_the_requests(env: OfflineServer) -> None:
    env.requests_per_minute = 600
    results = describe_many(
        [png(10 + i) for i in range(12)],
        "Size?",
        concurrency=8,
        requests_per_minute=600,
        show=False,
    )
    assert all(r.ok for r in results)
    chats = env.chat_requests()
    assert [r.status for r in chats] == [200] * 12
    times = sorted(r.received for r in chats)
    # From the second arrival on (the first also opens the connection pool): 0.1 s apart,
    # give or take a busy machine's scheduling (unlimited, the 12 arrive within milliseconds).
    assert times[-1] - times[1] >= 10 * 0.1 * 0.8


def test_the_server_limit_is_obeyed_without_a_client_rate(env: OfflineServer) -> None:
    """An unlimited client at concurrency 8 meets the server's 429s and still finishes."""
    env.requests_per_minute = 120  # 2 a second, a bucket of 2
    results = describe_many([png(10 + i) for i in range(6)], "Size?", concurrency=6, show=False)
    assert all(r.ok for r in results), results.errors
    statuses = [r.status for r in env.chat_requests()]
    assert statuses.count(200) == 6 and 429 in statuses


def test_out_of_credits_stops_the_run_and_keeps_the_finished(env: OfflineServer) -> None:
    env.credits = 3
    with pytest.raises(RateLimitError) as caught:
        describe_many([png(10 + i) for i in range(10)], "Size?", concurrency=1, show=False)
    assert caught.value.out_of_credits
    assert "insufficient balance" in str(caught.value).lower()
    kept = caught.value.results  # type: ignore[attr-defined]
    assert isinstance(kept, Results) and not kept.complete
    assert [r.index for r in kept] == [0, 1, 2] and all(r.ok for r in kept)
    assert reka_nb.last_results is not None and len(reka_nb.last_results) == 3
    assert [r.status for r in env.chat_requests()] == [200, 200, 200, 429]


def test_a_refused_key_stops_the_run_and_keeps_the_finished(env: OfflineServer) -> None:
    """A 401 says the key is refused: no later request could succeed, so nothing new is
    sent (not one refused request per image), and the answers before it are kept."""
    env.queue(Fault.ok(), Fault.ok(), Fault.status(401))
    with pytest.raises(AuthenticationError) as caught:
        describe_many([png(10 + i) for i in range(10)], "Size?", concurrency=1, show=False)
    assert str(caught.value).startswith("The API key is missing or wrong: check REKA_API_KEY")
    kept = caught.value.results  # type: ignore[attr-defined]
    assert [r.index for r in kept] == [0, 1] and all(r.ok for r in kept)
    assert [r.status for r in env.chat_requests()] == [200, 200, 401]


def test_a_wrong_key_sends_no_more_than_the_requests_in_flight(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_API_KEY", "a-wrong-key-0123456789")
    with pytest.raises(AuthenticationError) as caught:
        describe_many([png(10 + i) for i in range(40)], "Size?", concurrency=4, show=False)
    assert len(caught.value.results) == 0  # type: ignore[attr-defined]
    statuses = [r.status for r in env.chat_requests()]
    assert 1 <= len(statuses) <= 4 and set(statuses) == {401}


def test_a_key_refused_to_the_model_list_refuses_the_run_before_any_image_is_asked(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With model info on, the run's first request is ``GET /models``: its 401 ends the run
    there, with no image sent; a right key afterwards runs as usual."""
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    monkeypatch.setenv("REKA_API_KEY", "a-wrong-key-0123456789")
    images = [png(10 + i) for i in range(5)]
    with pytest.raises(AuthenticationError) as caught:
        describe_many(images, "Size?", cache=False, show=False)
    assert str(caught.value).startswith("The API key is missing or wrong: check REKA_API_KEY")
    assert [(r.path, r.status) for r in env.requests] == [("/v1/models", 401)]
    assert caught.value.request_id == env.requests[0].request_id
    monkeypatch.setenv("REKA_API_KEY", env.api_key)
    results = describe_many(images, "Size?", cache=False, show=False)
    assert all(r.ok for r in results) and len(env.chat_requests()) == 5


def test_credits_refused_to_the_model_list_do_not_refuse_the_run(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a refused key is kept from a model list lookup (credits can be topped up): after
    an out-of-credits answer to ``GET /models`` the questions are asked, on the same client
    too, and each run learns of credits from its own answers."""
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    env.queue(Fault.status(429, {"error": {"message": INSUFFICIENT_BALANCE}}))
    images = [png(10 + i) for i in range(3)]

    async def twice() -> list[Results]:
        async with AsyncRekaClient() as client:
            return [
                await adescribe_many(images, "Size?", client=client, cache=False, show=False)
                for _ in range(2)
            ]

    runs = asyncio.run(twice())
    assert [[r.ok for r in results] for results in runs] == [[True] * 3] * 2
    assert [(r.path, r.status) for r in env.requests if not r.is_chat] == [("/v1/models", 429)]
    assert len(env.chat_requests()) == 6


def test_an_unknown_model_is_asked_no_more_once_refused(env: OfflineServer) -> None:
    """A 404 for the model: its other questions fail with the same error, unsent, instead
    of 40 refused requests (each followed by a look at the model list)."""
    results = describe_many(
        [png(10 + i) for i in range(40)], "Size?", model="reka-flahs", concurrency=2, show=False
    )
    sent = env.chat_requests()
    assert 1 <= len(sent) <= 2 and {r.status for r in sent} == {404}
    assert len(results) == 40 and all(type(r.error) is NotFoundError for r in results)
    first = str(results.errors[0].error)
    assert first.startswith("Unknown model 'reka-flahs'; the models this key can use: reka-core")
    unsent = [r for r in results if "(not sent: an earlier request of this run got" in str(r.error)]
    assert len(unsent) == 40 - len(sent)
    assert {r.error.request_id for r in unsent} <= {r.request_id for r in sent}
    assert len([r for r in env.requests if r.path == "/v1/models"]) <= 1 + len(sent)


def test_out_of_credits_lets_the_requests_sent_finish_and_keeps_them(env: OfflineServer) -> None:
    """The requests already sent when credits run out are paid for: they finish, their answers
    are kept and cached, and nothing new is sent."""
    env.credits, env.latency = 6, 0.5
    images = [png(10 + i) for i in range(12)]
    with pytest.raises(RateLimitError) as caught:
        describe_many(images, "Credits?", concurrency=4, show=False)
    assert caught.value.out_of_credits
    assert env.wait_idle()
    paid = [r for r in env.chat_requests() if r.status == 200]
    assert len(paid) == 6  # 4, then 2 of the next ones while the others were refused
    refused = [r.received for r in env.chat_requests() if r.status == 429]
    assert 1 <= len(refused) <= 2  # the workers whose next request was sent before the first 429
    assert all(r.received < refused[0] + 0.1 for r in env.chat_requests())  # nothing after it
    kept = caught.value.results  # type: ignore[attr-defined]
    assert len(kept) == 6 and all(r.ok for r in kept)
    assert {r.index for r in kept} == {
        i for i, image in enumerate(images) if any(r.images[0] == digest(image) for r in paid)
    }
    env.reset()
    again = describe_many(images, "Credits?", concurrency=4, show=False)
    assert sorted(r.index for r in again if r.cached) == sorted(r.index for r in kept)
    assert len(env.chat_requests()) == 6


def test_a_missing_key_or_bad_argument_sends_nothing(server: OfflineServer) -> None:
    with pytest.raises(MissingAPIKeyError):
        describe_many([png(10)], show=False)
    with pytest.raises(InvalidRequestError, match="concurrency must be"):
        describe_many([png(10)], concurrency=0, show=False)
    with pytest.raises(InvalidRequestError, match="unknown parameter 'temprature'"):
        describe_many([png(10)], show=False, temprature=0.2)
    with pytest.raises(ImageError, match="no images given"):
        describe_many([], show=False)
    assert server.requests == []


def test_per_item_prompts_and_params(env: OfflineServer) -> None:
    results = describe_many(
        [png(10), png(11)], lambda item: f"Item of {len(item)} bytes?", show=False, max_tokens=5
    )
    assert [r.description.prompt for r in results] == [  # type: ignore[union-attr]
        f"Item of {len(png(10))} bytes?",
        f"Item of {len(png(11))} bytes?",
    ]
    assert all(r.description.finish_reason == "length" for r in results)  # type: ignore[union-attr]
    assert [r.body["max_tokens"] for r in env.chat_requests()] == [5, 5]


def test_retry_failed_asks_only_for_the_failed(env: OfflineServer) -> None:
    env.queue(Fault.ok(), Fault.status(400))
    first = describe_many([png(10), png(11), png(12)], "Size?", concurrency=1, show=False)
    assert [r.ok for r in first] == [True, False, True]
    again = first.retry_failed()
    assert [r.ok for r in again] == [True, True, True]
    assert "PNG, 11×8 px" in again[1].text
    assert len(env.chat_requests()) == 4
    assert env.times_asked(prompt="Size?", image=png(11)) == 2


def test_to_pandas_has_the_columns(env: OfflineServer) -> None:
    pandas = pytest.importorskip("pandas")
    results = describe_many([png(10), b"junk"], "Size?", show=False)
    frame = results.to_pandas()
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == COLUMNS
    assert frame["cached"].tolist() == [False, False]
    assert frame.loc[0, "model"] == "reka-flash" and frame.loc[0, "input_tokens"] > 0
    assert frame.loc[1, "error"].startswith("ImageError: ")


def test_to_pandas_token_columns_stay_whole_numbers_when_a_row_failed(env: OfflineServer) -> None:
    pandas = pytest.importorskip("pandas")
    results = describe_many([png(10), b"junk"], "Size?", show=False)
    frame = results.to_pandas()
    usage = results[0].description.usage
    assert str(frame["input_tokens"].dtype) == "Int64"
    assert str(frame["output_tokens"].dtype) == "Int64"
    assert frame["input_tokens"].tolist() == [usage.input_tokens, pandas.NA]
    assert frame["output_tokens"].tolist() == [usage.output_tokens, pandas.NA]
    shown = frame[["input_tokens", "output_tokens"]].to_string()
    assert f" {usage.input_tokens} " in shown and ".0" not in shown and "<NA>" in shown


def terminal_run(images: list[bytes]) -> str:
    """The last state of describe_many's terminal bar (tqdm on a text stream)."""
    out = io.StringIO()
    describe_many(images, "Size?", concurrency=1, show=TerminalProgress(out))
    return out.getvalue().rsplit("\r", 1)[-1].strip()


def test_terminal_progress_counts_in_words_and_cache_hits_apart(env: OfflineServer) -> None:
    first = terminal_run([png(10), b"junk"])
    assert re.fullmatch(
        r"reka: 100%\|#+\| 2/2 \[00:0\d, \d+\.\d requests?/s, 1 error, "
        r"\d+ tokens in, \d+ out\]",
        first,
    ), first
    # every answer from the cache: no requests a second, no time left, the hits said apart
    again = terminal_run([png(10), png(10)])
    assert re.fullmatch(
        r"reka: 100%\|#+\| 2/2 \[00:00, 0\.0 requests/s, 0 errors, 2 from the cache, "
        r"0 tokens in, 0 out\]",
        again,
    ), again


def test_progress_words_are_singular_for_one() -> None:
    stats = ProgressStats(3)
    description = reka_nb.Description("x", usage=Usage(input_tokens=1, output_tokens=1))
    stats.add(Result(0, None, "a", description=description))
    stats.add(Result(1, None, "b", error=ValueError("bad")))
    assert stats.counts() == ["1 error", "1 token in, 1 out"]
    stats.add(Result(2, None, "c", error=ValueError("bad")))
    assert stats.counts() == ["2 errors", "1 token in, 1 out"] and stats.eta is None
    assert Results([Result(0, None, "a", description=description)]).summary() == (
        "1 of 1 answered · 0 failed · 1 token in, 1 out"
    )


def test_html_table_has_a_thumbnail_per_answered_row(env: OfflineServer) -> None:
    results = describe_many([png(10), png(11)], "Size?", show=False)
    table = results._repr_html_()
    assert table.count("<tr>") == 3 and table.count('<img src="data:image/') == 2
    assert "2 of 2 answered" in table


def test_adescribe_many_runs_in_a_running_loop(env: OfflineServer) -> None:
    async def main() -> Results:
        async with AsyncRekaClient() as client:
            return await adescribe_many([png(10), png(11)], "Size?", client=client, show=False)

    assert [r.ok for r in asyncio.run(main())] == [True, True]


def test_run_items_takes_any_limiter(env: OfflineServer) -> None:
    class Counting:
        def __init__(self) -> None:
            self.acquired = 0
            self.paused: list[float] = []

        async def acquire(self) -> None:
            self.acquired += 1

        async def pause(self, seconds: float) -> None:
            self.paused.append(seconds)

    limiter = Counting()
    env.queue(Fault.status(429, retry_after=0.2))
    items = [Item(i, png(10 + i), f"#{i}", "Size?") for i in range(3)]

    async def main() -> Results:
        async with AsyncRekaClient() as client:
            return await run_items(items, client, limiter=limiter, concurrency=2)

    results = asyncio.run(main())
    assert [r.ok for r in results] == [True] * 3
    assert limiter.acquired == 4 and limiter.paused == [0.2]


def test_one_limiter_per_account_in_a_process() -> None:
    from reka_nb.batch import shared_limiter

    a = shared_limiter("http://127.0.0.1:1/v1", "key-one")
    assert shared_limiter("http://127.0.0.1:1/v1", "key-one") is a
    assert shared_limiter("http://127.0.0.1:1/v1", "key-two") is not a
    assert isinstance(a, RateLimiter) and "key-one" not in repr(a)


def test_the_warning_filters_are_left_as_they_were(env: OfflineServer) -> None:
    """Images are prepared in several threads at once; Pillow's quiet warnings must not leak."""
    before = list(warnings.filters)
    for _ in range(3):
        describe_many([png(10 + i) for i in range(16)], "Size?", concurrency=8, show=False)
    assert warnings.filters == before


LAZY = """
import io, sys
from PIL import Image
import reka_nb
print(sorted(m for m in ("pandas", "tqdm", "platformdirs") if m in sys.modules))
buffer = io.BytesIO()
Image.new("RGB", (9, 9)).save(buffer, "PNG")
results = reka_nb.describe_many([buffer.getvalue()], show=False)
print("pandas" in sys.modules, len(results.records()))
results.to_pandas()
print("pandas" in sys.modules)
"""


def test_pandas_is_imported_only_by_to_pandas(env: OfflineServer, tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    child = child_environment()
    child.update(
        REKA_BASE_URL=env.base_url,
        REKA_API_KEY=env.api_key,
        REKA_NB_CACHE=str(tmp_path / "cache"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", LAZY], env=child, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\nFalse 1\nTrue\n"


def test_a_rate_limit_that_says_retry_now_still_waits_the_backoff_floor(
    env: OfflineServer,
) -> None:
    """Retry-After: 0 three times: describe_many waits 0.25, 0.5 and 1 s at least (its backoff's
    floor), not a burst of requests."""
    env.queue(*[Fault.status(429, retry_after=0)] * 3)
    results = describe_many([png(12)], "Size?", show=False, cache=False)
    assert results[0].ok
    assert [r.status for r in env.requests] == [429, 429, 429, 200]
    times = [r.received for r in env.requests]
    gaps = [times[i + 1] - times[i] for i in range(3)]
    assert all(gaps[i] >= (0.25, 0.5, 1.0)[i] for i in range(3)), gaps


UNPICKLE_AND_RETRY = """
import pickle, sys
results = pickle.load(open(sys.argv[1], "rb"))
again = results.retry_failed()
print([r.ok for r in again], again[1].text.splitlines()[-1][:40])
"""


def test_results_pickle_and_retry_failed_works_in_another_process(
    env: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pickle

    monkeypatch.setenv("REKA_NB_CACHE", str(tmp_path / "cache"))
    env.queue(Fault.ok(), Fault.status(400))
    results = describe_many([png(10), png(11), png(12)], "Size?", show=False, concurrency=1)
    assert [r.ok for r in results] == [True, False, True]
    data = pickle.dumps(results)
    assert env.api_key.encode() not in data
    copy = pickle.loads(data)
    assert copy.records() == results.records() and repr(copy) == repr(results)
    saved = tmp_path / "run.pickle"
    saved.write_bytes(data)
    child = child_environment()
    child.update(
        REKA_API_KEY=env.api_key,  # the key is never pickled: the environment gives it
        REKA_BASE_URL=env.base_url,
        REKA_NB_CACHE=str(tmp_path / "cache"),
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    proc = subprocess.run(
        [sys.executable, "-c", UNPICKLE_AND_RETRY, str(saved)],
        env=child,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("[True, True, True]")
    assert len(env.chat_requests()) == 4  # the failed one, asked again from the other process
    again = copy.retry_failed()  # here too: the answer is now in the cache
    assert [r.ok for r in again] == [True, True, True] and again[1].cached


def test_results_whose_images_cannot_be_pickled_say_why_they_cannot_retry(
    env: OfflineServer, tmp_path: Path
) -> None:
    import pickle

    path = tmp_path / "a.png"
    path.write_bytes(png(13))
    env.queue(Fault.status(400))
    with open(path, "rb") as handle:
        results = describe_many([handle], "Size?", show=False, cache=False)
        copy = pickle.loads(pickle.dumps(results))
    assert copy.records() == results.records()
    with pytest.raises(RuntimeError) as info:
        copy.retry_failed()
    assert str(info.value) == (
        "these results were unpickled without the way to ask again, which could not be "
        "pickled (TypeError: cannot pickle '_io.BufferedReader' object): run describe_many "
        "again on the failed items (Results.errors lists them)"
    )


def _shown_thumbnail(table: str) -> Image.Image:
    found = re.search(r'<img src="data:image/(?:jpeg|png);base64,([^"]+)"', table)
    assert found is not None, table
    return Image.open(io.BytesIO(base64.b64decode(found.group(1))))


def test_a_deferred_thumbnail_is_made_when_the_table_is_shown(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    path.write_bytes(png(300, 100))
    thumb = deferred_thumbnail(str(path), prepare_image(str(path)), THUMBNAIL)
    assert callable(thumb)  # nothing made yet: a path reads the same again
    gone = Result(0, str(path), "wide.png", thumbnail=thumb)
    path.unlink()  # read at show time, so a file deleted since has no thumbnail
    assert '<img src="data:' not in Results([gone])._repr_html_()
    assert gone.thumbnail is None

    path.write_bytes(png(300, 100))
    row = Result(
        0,
        str(path),
        "wide.png",
        thumbnail=deferred_thumbnail(str(path), prepare_image(str(path)), THUMBNAIL),
    )
    shown = _shown_thumbnail(Results([row])._repr_html_())
    assert shown.size == (64, 21)
    assert row.thumbnail is row.thumbnail  # made once, then kept


def test_rows_of_files_share_one_marker_and_make_their_thumbnail_when_shown(
    env: OfflineServer, tmp_path: Path
) -> None:
    """A run keeps no thumbnail maker per row: each row of a file holds ``READ_AGAIN`` (one
    object, which pickles as itself) and reads its file again when its thumbnail is wanted
    (a pickled row carries it made: the file may not be there where it is unpickled)."""
    paths = []
    for width in (30, 40):
        path = tmp_path / f"w{width}.png"
        path.write_bytes(png(width, 20))
        paths.append(str(path))
    results = reka_nb.describe_many([*paths, png(50, 20)], "Size?", show=False)
    assert [vars(r)["_thumbnail"] is READ_AGAIN for r in results] == [True, True, True]
    assert pickle.loads(pickle.dumps(READ_AGAIN)) is READ_AGAIN
    assert [
        r.thumbnail == prepare_image(png(w, 20)).thumbnail(THUMBNAIL)
        for r, w in zip(results, (30, 40, 50), strict=True)
    ] == [True, True, True]
    assert vars(results[0])["_thumbnail"] == results[0].thumbnail  # made once, then kept
    assert pickle.loads(pickle.dumps(results[1]))._thumbnail == results[1].thumbnail


def test_a_deferred_thumbnail_matches_the_one_made_at_once(tmp_path: Path) -> None:
    small = png(40, 30)
    picture = Image.new("RGB", (120, 90), (10, 200, 30))
    for given in (small, picture):
        prepared = prepare_image(given)
        thumb = deferred_thumbnail(given, prepared, THUMBNAIL)
        assert callable(thumb)
        assert thumb() == prepared.thumbnail(THUMBNAIL)


def test_a_large_photo_gets_a_small_deferred_thumbnail(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    Image.effect_noise((1600, 1200), 60).convert("RGB").save(path, "JPEG")
    row = Result(
        0, path, "photo.jpg", thumbnail=deferred_thumbnail(path, prepare_image(path), THUMBNAIL)
    )
    data, mime = row.thumbnail or (b"", "")
    assert mime == "image/jpeg"
    assert Image.open(io.BytesIO(data)).size == (64, 48)


def test_an_open_file_gets_its_thumbnail_at_once_and_a_url_none(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(png(30, 20))
    with path.open("rb") as file:  # read once: it cannot be read again later
        prepared = prepare_image(file)
        thumb = deferred_thumbnail(file, prepared, THUMBNAIL)
    assert thumb == prepared.thumbnail(THUMBNAIL) and thumb is not None
    url = "https://example.com/cat.png"
    assert deferred_thumbnail(url, prepare_image(url), THUMBNAIL) is None


def test_without_pandas_the_table_says_what_to_install_and_records_still_work(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = describe_many([png(10), png(11)], "Size?", cache=False, show=False)
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(ImportError) as missing:
        results.to_pandas()
    assert str(missing.value) == (
        "Results.to_pandas() needs pandas: pip install pandas "
        "(or use Results.records(), which needs nothing)"
    )
    assert [r["input_tokens"] > 0 for r in results.records()] == [True, True]
