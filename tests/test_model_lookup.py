"""The model list costs the user nothing: kept on disk, looked up once, never waited for long,
and hostile prices are left out instead of breaking answers, totals or tables."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

import reka_nb
from reka_nb import (
    AsyncRekaClient,
    InvalidRequestError,
    ModelInfoWarning,
    ModelList,
    RekaClient,
    describe_many,
)
from reka_nb.client.model_lists import DISK_TTL, list_folder, load_list
from reka_nb.offline._catalog import model_entry
from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[1]
CAT = str(ROOT / "docs" / "images" / "cat.jpeg")
FLASH_IN, FLASH_OUT = Decimal("0.0000008"), Decimal("0.000002")
ONE_ANSWER = 71 * FLASH_IN + 34 * FLASH_OUT  # the cat, the default prompt, on reka-flash


@pytest.fixture(autouse=True)
def lookup_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")


@pytest.fixture(autouse=True)
def fresh_default_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """describe() here uses a client of this test's own, as a fresh process would."""
    client = RekaClient()
    monkeypatch.setattr("reka_nb.client.describe._default_client", client)
    yield
    client.close()


@pytest.fixture
def own() -> Iterator[OfflineServer]:
    """A server of this test's own: a held response must not hold the shared one."""
    with OfflineServer() as server:
        yield server


def client_for(server: OfflineServer, **kw) -> RekaClient:
    return RekaClient(base_url=server.base_url, api_key=server.api_key, **kw)


def paths(server: OfflineServer) -> list[str]:
    return [r.path for r in server.requests]


# -- a deadline on the whole lookup -----------------------------------------------------------


@pytest.mark.parametrize(
    "fault", [Fault.trickle(20, 0.25), Fault.slow_first_byte(20)], ids=["trickle", "held"]
)
def test_describe_answers_while_models_is_held_open(own: OfflineServer, fault: Fault) -> None:
    own.queue(fault)
    started = time.monotonic()
    with client_for(own) as client:
        answer = client.describe(CAT, show=False)
        took = time.monotonic() - started
        assert took < 3.0, f"describe() took {took:.1f} s"
        assert answer.startswith("This is reka_nb's offline server")
        assert answer.cost is None  # the question went on without the metadata
        assert paths(own) == ["/v1/models", "/v1/chat/completions"]
        client.describe(CAT, show=False)  # a failed lookup is not retried at once
    assert paths(own) == ["/v1/models"] + ["/v1/chat/completions"] * 2


def test_adescribe_answers_while_models_trickles(own: OfflineServer) -> None:
    own.queue(Fault.trickle(20, 0.25))

    async def run() -> tuple[float, reka_nb.Description]:
        started = time.monotonic()
        async with AsyncRekaClient(base_url=own.base_url, api_key=own.api_key) as client:
            answer = await client.describe(CAT, show=False)
        return time.monotonic() - started, answer

    took, answer = asyncio.run(run())
    assert took < 3.0, f"adescribe() took {took:.1f} s"
    assert answer.startswith("This is reka_nb's offline server") and answer.cost is None
    assert paths(own) == ["/v1/models", "/v1/chat/completions"]


def test_a_list_that_comes_within_the_deadline_is_waited_for(own: OfflineServer) -> None:
    own.models_latency = 0.6
    with client_for(own) as client:
        assert client.describe(CAT, show=False).cost == ONE_ANSWER
    models, chat = own.requests
    assert models.path == "/v1/models" and chat.path == "/v1/chat/completions"
    assert chat.received - models.received >= 0.6  # the question waited for the list


# -- on disk, beside the answer cache ---------------------------------------------------------

_FRESH_PROCESS = """
import sys, reka_nb
client = reka_nb.RekaClient(base_url=sys.argv[1], api_key=sys.argv[2])
answer = client.describe(sys.argv[3], show=False)
print(answer.cost)
"""


def _fresh_process(server: OfflineServer, cache: Path) -> str:
    env = {
        **os.environ,
        "REKA_NB_CACHE": str(cache),
        "REKA_NB_MODEL_INFO": "on",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, server.base_url, server.api_key, CAT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


def test_a_fresh_process_with_the_list_on_disk_sends_no_get_models(
    server: OfflineServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    assert _fresh_process(server, cache) == str(ONE_ANSWER)
    assert paths(server) == ["/v1/models", "/v1/chat/completions"]
    server.reset()
    assert _fresh_process(server, cache) == str(ONE_ANSWER)  # the prices came from disk
    assert paths(server) == ["/v1/chat/completions"]
    (kept,) = (cache / "model-lists").iterdir()
    text = kept.read_text()
    assert server.api_key not in text
    assert json.loads(text)["base_url"] == server.base_url
    assert (kept.stat().st_mode & 0o777) == 0o600


def test_a_list_older_than_a_day_is_asked_again(env: OfflineServer) -> None:
    with RekaClient() as client:
        client.describe(CAT, show=False)
        settings = client.settings()
    (kept,) = list_folder().iterdir()  # type: ignore[union-attr]
    data = json.loads(kept.read_text())
    assert load_list(settings, now=data["stored"] + DISK_TTL - 60) is not None
    assert load_list(settings, now=data["stored"] + DISK_TTL + 60) is None
    data["stored"] -= DISK_TTL + 60
    kept.write_text(json.dumps(data))
    env.reset()
    with RekaClient() as client:
        assert client.describe(CAT, show=False).cost == ONE_ANSWER
    assert paths(env) == ["/v1/models", "/v1/chat/completions"]


def test_a_list_that_echoes_the_key_is_not_written(own: OfflineServer) -> None:
    own.model_list = [model_entry("reka-flash", 0) | {"description": f"for {own.api_key}"}]
    with client_for(own) as client:
        assert client.describe(CAT, show=False).cost == ONE_ANSWER  # used, not kept
    assert not list_folder().exists()  # type: ignore[union-attr]


def test_the_offline_servers_list_is_not_kept_on_disk() -> None:
    reka_nb.use_offline_server()
    try:
        with RekaClient() as client:
            client.describe(CAT, show=False)
            assert client.model_info() is not None
    finally:
        reka_nb.stop_offline_server()
    assert not list_folder().exists()  # type: ignore[union-attr]


def test_with_the_cache_off_the_list_is_asked_by_each_process(
    server: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_CACHE", "off")
    for _ in range(2):
        with client_for(server) as client:
            client.describe(CAT, show=False)
    assert paths(server) == ["/v1/models", "/v1/chat/completions"] * 2


# -- one lookup for concurrent first questions ------------------------------------------------


def test_sixteen_threads_send_one_get_models(own: OfflineServer) -> None:
    own.models_latency = 0.3
    gate = threading.Barrier(16)
    answers: list[reka_nb.Description] = []

    def ask(client: RekaClient) -> None:
        gate.wait()
        answers.append(client.describe(CAT, show=False))

    with client_for(own) as client:
        threads = [threading.Thread(target=ask, args=(client,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert paths(own).count("/v1/models") == 1
    assert paths(own).count("/v1/chat/completions") == 16
    assert [a.cost for a in answers] == [ONE_ANSWER] * 16  # every one had the prices


def test_sixteen_threads_first_describe_sends_one_get_models(
    own: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reka_nb.describe() itself, 16 threads at once in a fresh process's first questions."""
    monkeypatch.setenv("REKA_BASE_URL", own.base_url)
    monkeypatch.setenv("REKA_API_KEY", own.api_key)
    own.models_latency = 0.3
    gate = threading.Barrier(16)
    answers: list[reka_nb.Description] = []

    def ask() -> None:
        gate.wait()
        answers.append(reka_nb.describe(CAT, show=False))

    threads = [threading.Thread(target=ask) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert paths(own) == ["/v1/models"] + ["/v1/chat/completions"] * 16
    assert [a.cost for a in answers] == [ONE_ANSWER] * 16


def test_sixteen_tasks_send_one_get_models(own: OfflineServer) -> None:
    own.models_latency = 0.3

    async def run() -> list[reka_nb.Description]:
        async with AsyncRekaClient(base_url=own.base_url, api_key=own.api_key) as client:
            return await asyncio.gather(*(client.describe(CAT, show=False) for _ in range(16)))

    answers = asyncio.run(run())
    assert paths(own).count("/v1/models") == 1
    assert [a.cost for a in answers] == [ONE_ANSWER] * 16


# -- hostile prices ---------------------------------------------------------------------------

HOSTILE = {
    "1e30": "its 'prompt' price of 1.000E+30 is out of range",
    "9e999999": "its 'prompt' price of 9.000E+999999 is out of range",
    "NaN": "its 'prompt' price is not a finite number",
    "-1": "its 'prompt' price of -1 is out of range",
    "abc": "its 'prompt' price is not a number",
}


def hostile_list(price: str) -> list[dict]:
    flash = model_entry("reka-flash", 0)
    flash["pricing"] = {"prompt": price, "completion": "0.000002"}
    return [flash, model_entry("reka-edge", 0)]


@pytest.mark.parametrize("price", list(HOSTILE))
def test_hostile_prices_are_left_out_and_nothing_breaks(env: OfflineServer, price: str) -> None:
    env.model_list = hostile_list(price)
    reka_nb.answer.SESSION_USAGE.clear()
    warning = (
        f"model 'reka-flash': {HOSTILE[price]} (US dollars per token, from 0 to 1); "
        "it is left out, so costs of this model may be unknown"
    )
    with pytest.warns(ModelInfoWarning) as caught:
        answer = reka_nb.describe(CAT, show=False)
        results = describe_many([CAT, CAT, CAT], show=False, cache=False)
        table = reka_nb.models().table()
        with pytest.raises(InvalidRequestError, match="max_cost needs the prices of 'reka-fl"):
            describe_many([CAT], show=False, cache=False, max_cost=1)
    assert {str(w.message) for w in caught} == {warning}
    assert answer.startswith("This is reka_nb's offline server") and answer.cost is None
    assert answer.footer().startswith("reka-flash · 71 tokens in, 34 out · ")
    assert "$" not in answer.footer()
    assert [r.ok for r in results] == [True] * 3 and results.cost is None
    assert repr(results).startswith("<Results 3 of 3 answered")
    assert repr(reka_nb.usage()) == "<UsageTotals 4 answers, 284 tokens in, 136 out, ?>"
    assert "reka-flash  Reka Flash" in table and "?        $2.00" in table
    reka_nb.answer.SESSION_USAGE.clear()


def test_a_price_that_is_absurd_but_bounded_never_raises(env: OfflineServer) -> None:
    """The dearest price kept ($1 a token) with the longest token counts still makes a cost
    that prints, adds up and stays in a budget."""
    flash = model_entry("reka-flash", 0)
    flash["pricing"] = {"prompt": "1", "completion": "1"}
    env.model_list = [flash]
    reka_nb.answer.SESSION_USAGE.clear()
    answer = reka_nb.describe(CAT, show=False)
    assert answer.cost == Decimal(105) and "$105.00" in answer.footer()
    results = describe_many([CAT] * 3, show=False, cache=False, max_cost=2500)
    assert results.cost == Decimal(315) and results.stopped is None
    assert repr(reka_nb.usage()).endswith("$420.00>")
    reka_nb.answer.SESSION_USAGE.clear()


# -- a huge list is indexed once --------------------------------------------------------------


def test_a_huge_list_is_read_once_not_per_question(
    server: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = [{"id": f"m{i}"} for i in range(200_000)] + [model_entry("reka-flash", 0)]
    reads = 0
    iterate = list.__iter__

    def counted(self: list) -> Iterator:
        nonlocal reads
        reads += 1
        return iterate(self)

    with client_for(server) as client:
        server.model_list = big
        models = client.models()  # the list, fetched once
        assert len(models) == 200_001
        monkeypatch.setattr(ModelList, "__iter__", counted)
        costs = [client.describe(CAT, show=False).cost for _ in range(20)]
    assert costs == [ONE_ANSWER] * 20
    assert reads == 1  # the index, made at the first question
