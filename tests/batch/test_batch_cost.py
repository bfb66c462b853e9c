"""Cost over many images: exact totals, a budget that stops before it is passed."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from _env import child_environment
from _hostile import HostileServer, Reply

import reka_nb
from reka_nb import InvalidRequestError, describe_many
from reka_nb.protocol.costs import Budget
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = str(ROOT / "docs" / "images" / "cat.jpeg")
FLASH_IN, FLASH_OUT = Decimal("0.0000008"), Decimal("0.000002")
ONE_ANSWER = 71 * FLASH_IN + 34 * FLASH_OUT  # the cat, the default prompt, on reka-flash


@pytest.fixture(autouse=True)
def lookup(env: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # the prices come from GET /models
    monkeypatch.setenv("REKA_NB_CACHE", str(tmp_path / "cache"))


def test_totals_are_exact_and_the_cache_costs_nothing(env: OfflineServer) -> None:
    reka_nb.answer.SESSION_USAGE.clear()
    results = describe_many([CAT] * 3, show=False, cache=False)  # asked three times
    assert Decimal("0.0001248") == ONE_ANSWER
    assert [r.description.cost for r in results] == [ONE_ANSWER] * 3
    assert results.usage == reka_nb.Usage(213, 102)
    assert results.cost == 213 * FLASH_IN + 102 * FLASH_OUT == 3 * ONE_ANSWER
    assert results.summary() == "3 of 3 answered · 0 failed · 213 tokens in, 102 out · $0.00037"
    assert reka_nb.usage().cost == 3 * ONE_ANSWER
    once = describe_many([CAT] * 3, show=False)  # asked once: the other two wait for it
    assert once.cached_count == 2 and once.cost == ONE_ANSWER
    again = describe_many([CAT] * 3, show=False)
    assert again.cached_count == 3 and again.cost == Decimal(0)
    assert reka_nb.usage().requests == 4  # answers from the cache are not counted again
    reka_nb.answer.SESSION_USAGE.clear()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_budget_stops_the_run_before_it_passes(env: OfflineServer, concurrency) -> None:
    results = describe_many(
        [CAT] * 12, max_cost=0.001, max_tokens=50, concurrency=concurrency, cache=False,
        show=False,
    )  # fmt: skip
    # the first question goes alone, estimated at 1008 × $0.0000008 + 50 × $0.000002; its
    # answer (71 tokens in) shows what an image takes, so each next one holds its worst case:
    # (8 + 71) × $0.0000008 + 50 × $0.000002 = $0.0001632. 7 answers at $0.0001248 leave
    # $0.0001264: the 8th could pass the budget, so it is not asked
    assert len(results) == 7 and not results.complete and results.total == 12
    assert results.cost == 7 * ONE_ANSWER == Decimal("0.0008736") <= Decimal("0.001")
    assert len(env.chat_requests()) == 7
    assert results.stopped == (
        "stopped before max_cost $0.001: $0.0008736 spent, and the next answer may cost "
        "about $0.00016"
    )
    assert results.summary().endswith(results.stopped)


def test_a_budget_smaller_than_one_question_sends_nothing(env: OfflineServer) -> None:
    results = describe_many([CAT] * 2, max_cost="0.0001", cache=False, show=False)
    assert len(results) == 0 and env.chat_requests() == []
    assert results.stopped.startswith("stopped before max_cost $0.0001: $0 spent, and the next")


def test_a_budget_needs_prices(env: OfflineServer) -> None:
    with pytest.raises(InvalidRequestError) as info:
        describe_many([CAT], model="reka-flash-3", max_cost=1, show=False)
    assert str(info.value).startswith("max_cost needs the prices of 'reka-flash-3'")
    assert env.chat_requests() == []
    for bad in (0, -1, "lots", True, float("nan")):
        with pytest.raises(InvalidRequestError, match="max_cost must be a number of US dollars"):
            describe_many([CAT], max_cost=bad, show=False)


def test_budget_waits_for_requests_in_flight() -> None:
    budget = Budget(Decimal("1.0"))
    first = budget.start(Decimal("0.1"))
    assert first == Decimal("0.1") and budget.start(Decimal("0.1")) is None  # it goes alone
    assert budget.stopped is None  # one is in flight: its answer shows what images cost
    budget.finish(first, Decimal("0.2"), True, input_tokens=3000, images=2)
    assert budget.image_tokens == 1500  # the next questions' worst case counts images so
    assert budget.start(Decimal("0.3")) == Decimal("0.3")  # the worst case given
    assert budget.start(Decimal("0.1")) == Decimal("0.2")  # at least the dearest answer
    assert budget.start(Decimal("0.6")) is None  # 0.2 + 0.5 held + 0.6 would pass 1.0
    assert budget.stopped is None  # two in flight: their true cost may leave room
    budget.finish(Decimal("0.2"), None, False)  # a failed request spent nothing
    assert budget.spent == Decimal("0.2") and budget.in_flight == 1


BUDGET_SCRIPT = """
import reka_nb, sys
results = reka_nb.describe_many([sys.argv[1]] * 12, max_cost=0.001, max_tokens=50,
                                concurrency=1, cache=False)
print(len(results), results.total, flush=True)
rest = results.retry_failed()
print(len(rest), rest.complete, rest.stopped, flush=True)
"""


def test_a_budget_stop_says_why_in_a_terminal_and_retry_failed_goes_on(
    env: OfflineServer, tmp_path: Path
) -> None:
    child_env = child_environment()
    child_env.update(
        REKA_BASE_URL=env.base_url,
        REKA_API_KEY=env.api_key,
        REKA_NB_MODEL_INFO="on",
        REKA_NB_CACHE=str(tmp_path / "cache"),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-c", BUDGET_SCRIPT, CAT],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # the bar ends, and the line under it says why and how to finish
    assert done.stderr.splitlines()[-1] == (
        "reka: stopped before max_cost $0.001: $0.0008736 spent, and the next answer may cost "
        "about $0.00016; 5 not asked: results.retry_failed() asks them"
    )
    # retry_failed() asks the 5 never asked (on a budget of the same size), and only them
    assert done.stdout.splitlines() == ["7 12", "12 True None"]
    assert len(env.chat_requests()) == 12


def test_a_budget_is_passed_by_at_most_one_answer_when_images_cost_far_more_than_guessed(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answers of 100,000 prompt tokens an image (a long video, say), 100 times the first
    guess: 8 requests must not start on that guess. The first goes alone; then each holds
    what its images were measured to take."""
    auth = {"Authorization": f"Bearer {env.api_key}"}
    models = httpx.get(f"{env.base_url}/models", headers=auth).content  # prices included
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "reka-flash",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "A cat."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 100_000, "completion_tokens": 2, "total_tokens": 100_002},
    }

    def handler(reply: Reply) -> None:
        if reply.path.endswith("/models"):
            reply.whole(200, models)
            return
        reply.hold(0.3)  # long enough for every worker to start
        reply.whole(200, json.dumps(answer).encode())

    with HostileServer(handler) as server:
        monkeypatch.setenv("REKA_BASE_URL", server.base_url)
        results = describe_many(
            [CAT] * 20, max_cost="0.2", max_tokens=50, concurrency=8, cache=False, show=False
        )
    one = 100_000 * FLASH_IN + 2 * FLASH_OUT  # $0.080004
    assert server.errors == []
    assert len(results) == 2 and results.cost == 2 * one <= Decimal("0.2")
    assert len([r for r in server.requests if r.path.endswith("/chat/completions")]) == 2
    assert results.stopped is not None and results.stopped.startswith(
        "stopped before max_cost $0.2: $0.160008 spent"
    )
