"""Cost over many images: exact totals, a budget that stops before it is passed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import reka_nb
from reka_nb import InvalidRequestError, describe_many
from reka_nb.protocol.costs import Budget
from reka_nb.testing import OfflineServer

CAT = str(Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg")
FLASH_IN, FLASH_OUT = Decimal("0.0000008"), Decimal("0.000002")
ONE_ANSWER = 71 * FLASH_IN + 34 * FLASH_OUT  # the cat, the default prompt, on reka-flash


@pytest.fixture(autouse=True)
def lookup(env: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # the prices come from GET /models
    monkeypatch.setenv("REKA_NB_CACHE", str(tmp_path / "cache"))


def test_totals_are_exact_and_the_cache_costs_nothing(env: OfflineServer) -> None:
    reka_nb.answer.SESSION_USAGE.clear()
    results = describe_many([CAT] * 3, show=False)
    assert Decimal("0.0001248") == ONE_ANSWER
    assert [r.description.cost for r in results] == [ONE_ANSWER] * 3
    assert results.usage == reka_nb.Usage(213, 102)
    assert results.cost == 213 * FLASH_IN + 102 * FLASH_OUT == 3 * ONE_ANSWER
    assert results.summary() == "3 of 3 answered · 0 failed · 213 tokens in, 102 out · $0.00037"
    assert reka_nb.usage().cost == 3 * ONE_ANSWER
    again = describe_many([CAT] * 3, show=False)
    assert again.cached_count == 3 and again.cost == Decimal(0)
    assert reka_nb.usage().requests == 3  # answers from the cache are not counted again
    reka_nb.answer.SESSION_USAGE.clear()


@pytest.mark.parametrize("concurrency", [1, 4])
def test_the_budget_stops_the_run_before_it_passes(env: OfflineServer, concurrency) -> None:
    results = describe_many(
        [CAT] * 12, max_cost=0.001, max_tokens=50, concurrency=concurrency, cache=False,
        show=False,
    )  # fmt: skip
    # the first question is estimated at 1008 × $0.0000008 + 50 × $0.000002 = $0.0009064;
    # after it, each at the $0.0001248 an answer cost: 8 fit in $0.001, a 9th would not
    assert len(results) == 8 and not results.complete and results.total == 12
    assert results.cost == 8 * ONE_ANSWER == Decimal("0.0009984") <= Decimal("0.001")
    assert len(env.chat_requests()) == 8
    assert results.stopped == (
        "stopped before max_cost $0.001: $0.0009984 spent, and the next answer may cost "
        "about $0.00012"
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
    first = budget.start(Decimal("0.6"))
    assert first == Decimal("0.6") and budget.start(Decimal("0.6")) is None
    assert budget.stopped is None  # one is in flight: its true cost may leave room
    budget.finish(first, Decimal("0.2"), True)
    assert budget.start(Decimal("0.6")) == Decimal("0.2")  # now the dearest answer so far
    failed = budget.start(Decimal("0.6"))
    budget.finish(failed, None, False)  # a failed request spent nothing
    assert budget.spent == Decimal("0.2") and budget.in_flight == 1
