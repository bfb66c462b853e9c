"""Structured answers over many images (describe_many, adescribe_many) against the offline
server: typed columns, labels, failed rows, the remembered refusal, the cache, the cost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas
import pytest
from pydantic import BaseModel

import reka_nb
from reka_nb import ConfigurationError, RekaClient, SchemaError, Usage, describe_many
from reka_nb.client.structured import forget_refusals
from reka_nb.protocol.costs import first_estimate
from reka_nb.testing import Fault, OfflineServer

CAT = str(Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg")
NOTE = "No model ran: reka_nb's offline server made this answer from the schema."
CAT_NOTE = f"{NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes."
REST = [
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
FLASH_IN, FLASH_OUT = Decimal("0.0000008"), Decimal("0.000002")


class Receipt(BaseModel):
    store: str
    total: float
    date: str | None = None


@pytest.fixture(autouse=True)
def _fresh(env: OfflineServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("REKA_NB_CACHE", str(tmp_path / "cache"))
    forget_refusals()
    yield
    forget_refusals()


def test_typed_columns_beside_the_table_and_a_clashing_field_renamed(env: OfflineServer) -> None:
    env.queue(Fault.wrong_type(), Fault.wrong_type())  # the first row fails, repair included
    schema = "text, people int, ratio float, outdoor bool, tags list[str]"
    results = describe_many([CAT] * 3, "Look.", schema=schema, concurrency=1, show=False)
    frame = results.to_pandas()
    fields = ["field_text", "people", "ratio", "outdoor", "tags"]
    assert list(frame.columns) == ["image", *fields, *REST]
    assert [str(frame[c].dtype) for c in fields] == [
        "string",
        "Int64",
        "float64",
        "boolean",
        "object",
    ]
    failed = results[0]
    assert isinstance(failed.error, SchemaError) and failed.description is None
    assert failed.error.raw_text.startswith('{"text": 12345, ')
    assert frame.loc[0, fields].isna().tolist() == [True] * 5
    assert frame.loc[0, "error"].startswith(
        "SchemaError: The answer does not match the schema: field 'text' should be of type"
    )
    assert frame.loc[1, "field_text"] == CAT_NOTE and frame.loc[1, "people"] == 1
    assert frame.loc[1, "ratio"] == 1.5 and bool(frame.loc[1, "outdoor"]) is True
    assert frame.loc[1, "tags"] == ["offline tags"]
    assert frame.loc[1, "text"] == results[1].description.text  # the JSON, as written
    record = results.records()[1]
    assert list(record) == list(frame.columns)
    assert record["field_text"] == CAT_NOTE and record["tags"] == ["offline tags"]
    assert results.data[1] == {
        "text": CAT_NOTE,
        "people": 1,
        "ratio": 1.5,
        "outdoor": True,
        "tags": ["offline tags"],
    }


def test_labels_are_a_categorical_column_with_exactly_those_categories(env: OfflineServer) -> None:
    labels = ["damaged", "intact", "unclear"]
    frame = describe_many([CAT] * 2, "Damaged?", labels=labels, show=False).to_pandas()
    assert list(frame.columns) == ["image", "label", *REST]
    assert isinstance(frame["label"].dtype, pandas.CategoricalDtype)
    assert list(frame["label"].cat.categories) == labels
    assert frame["label"].tolist() == ["damaged", "damaged"]
    multi = describe_many([CAT], "Tags?", labels=["cat", "dog"], multi_label=True, show=False)
    assert multi.to_pandas()["labels"].tolist() == [["cat"]]


def test_pydantic_rows_and_adescribe_many(env: OfflineServer) -> None:
    results = asyncio.run(reka_nb.adescribe_many([CAT], "Read.", schema=Receipt, show=False))
    assert results.data == [Receipt(store=CAT_NOTE, total=1.5, date="offline date")]
    frame = results.to_pandas()
    assert list(frame.columns) == ["image", "store", "total", "date", *REST]
    assert frame["total"].dtype == "float64" and frame["date"].tolist() == ["offline date"]


def test_the_refusal_is_remembered_for_the_whole_run(env: OfflineServer) -> None:
    results = describe_many(
        [CAT] * 4, "Which?", labels=["cat", "dog"], model="reka-edge-2603", cache=False,
        show=False,
    )  # fmt: skip
    assert [r.error for r in results] == [None] * 4
    sent = [(r.status, "response_format" in r.body) for r in env.chat_requests()]
    assert sent == [(400, True), (200, False), (200, False), (200, False), (200, False)]


def test_an_unusable_schema_refuses_the_run_with_nothing_sent(env: OfflineServer) -> None:
    with pytest.raises(ConfigurationError, match="people"):
        describe_many([CAT], "?", schema="people integer", show=False)
    assert env.requests == []


def test_cached_rows_keep_their_data_and_another_schema_asks_again(env: OfflineServer) -> None:
    first = describe_many([CAT] * 2, "Read.", schema=Receipt, show=False)
    again = describe_many([CAT] * 2, "Read.", schema=Receipt, show=False)
    assert again.cached_count == 2 and again.data == first.data
    other = describe_many([CAT] * 2, "Read.", schema="store", show=False)
    # asked once more: the second row, the same question, waits for the first's answer
    assert other.cached_count == 1 and other.data == [{"store": CAT_NOTE}] * 2
    assert len(env.chat_requests()) == 2


def usage_of(server: OfflineServer, body: dict[str, Any], fault: Fault | None) -> Usage:
    if fault is not None:
        server.queue(fault)
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        extra = {"response_format": body["response_format"]}
        return client.complete(body["messages"], model=body["model"], **extra).usage


def test_the_repair_turn_counts_in_usage_cost_and_session_totals(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # prices from GET /models
    reka_nb.answer.SESSION_USAGE.clear()
    env.queue(Fault.ok(), Fault.invalid_json())  # GET /models, then the answer
    results = describe_many([CAT], "Count.", schema="caption, people int", show=False)
    first, second = env.chat_requests()
    one, two = usage_of(env, first.body, Fault.invalid_json()), usage_of(env, second.body, None)
    spent = Usage(one.input_tokens + two.input_tokens, one.output_tokens + two.output_tokens)
    assert results.usage == spent
    price = spent.input_tokens * FLASH_IN + spent.output_tokens * FLASH_OUT
    assert results.cost == price and results[0].description.cost == price
    assert reka_nb.usage().cost == price
    reka_nb.answer.SESSION_USAGE.clear()


def test_a_row_that_still_fails_counts_its_cost_in_the_session(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    reka_nb.answer.SESSION_USAGE.clear()
    env.queue(Fault.ok(), Fault.wrong_type(), Fault.wrong_type())  # GET /models first
    results = describe_many([CAT], "Count.", schema="caption, people int", show=False)
    assert isinstance(results[0].error, SchemaError)
    first, second = env.chat_requests()
    one = usage_of(env, first.body, Fault.wrong_type())
    two = usage_of(env, second.body, Fault.wrong_type())
    tokens_in, tokens_out = (
        one.input_tokens + two.input_tokens,
        one.output_tokens + two.output_tokens,
    )
    price = tokens_in * FLASH_IN + tokens_out * FLASH_OUT
    assert results[0].error.cost == price
    assert reka_nb.usage().cost == price
    reka_nb.answer.SESSION_USAGE.clear()


def test_a_failed_repair_counts_in_max_cost(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    ask = {"schema": "caption, people int", "show": False, "cache": False, "concurrency": 1}
    env.queue(Fault.ok(), Fault.wrong_type(), Fault.wrong_type())  # GET /models, then row 1
    error = describe_many([CAT], "Count.", **ask)[0].error
    failed = error.cost  # both attempts
    answered = describe_many([CAT], "Count.", **ask)[0].description.cost
    with RekaClient(base_url=env.base_url, api_key=env.api_key) as client:
        info = client.model_info("reka-flash")
    first = first_estimate(info, "Count.", 1, None)
    assert 0 < answered < failed < first / 4
    env.reset()
    env.queue(Fault.wrong_type(), Fault.wrong_type())  # row 1 (the model list is kept)
    results = describe_many([CAT] * 40, "Count.", max_cost=first, **ask)
    # after the failed row, each question starts while what was spent plus the worst case of
    # one more (an image at the failed row's prompt tokens, every attempt's) stays within
    # max_cost: the failed row's cost is spent
    worst = max(first_estimate(info, "Count.", 1, None, error.usage.input_tokens), failed)
    more = int((first - failed - worst) / answered) + 1
    assert len(results) == 1 + more and results.stopped is not None
    assert isinstance(results[0].error, SchemaError) and len(results.errors) == 1


def test_unpickled_results_ask_again_with_their_schema(env: OfflineServer) -> None:
    import pickle

    env.queue(Fault.ok(), Fault.status(500))
    ask = {"schema": "caption, people int", "show": False, "cache": False, "concurrency": 1}
    results = describe_many([CAT, CAT], "Count.", retries=0, **ask)
    assert [r.ok for r in results] == [True, False]
    copy = pickle.loads(pickle.dumps(results))
    assert copy.schema.fingerprint == results.schema.fingerprint
    again = copy.retry_failed()
    assert again.data == [{"caption": CAT_NOTE, "people": 1}] * 2
    assert list(again.to_pandas().columns[:3]) == ["image", "caption", "people"]
    last = env.chat_requests()[-1]
    assert last.body["response_format"]["json_schema"]["schema"]["required"] == [
        "caption",
        "people",
    ]


class Recording:
    """A progress display that notes each call (and a schema it is told of, by its fields)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def start(self, total: int) -> None:
        self.calls.append(("start", total))

    def expect_schema(self, schema: Any) -> None:
        self.calls.append(("expect_schema", schema.field_names))

    def update(self, result: Any) -> None:
        self.calls.append(("update", result.index))

    def close(self, results: Any, error: BaseException | None = None) -> None:
        self.calls.append(("close", len(results), error))


class Plain:
    """A progress display without ``expect_schema``: a structured run shows it as before."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def start(self, total: int) -> None:
        self.calls.append("start")

    def update(self, result: Any) -> None:
        self.calls.append("update")

    def close(self, results: Any, error: BaseException | None = None) -> None:
        self.calls.append("close")


def test_a_progress_display_is_told_the_schema_after_start(env: OfflineServer) -> None:
    """describe_many (its calls relayed to the calling thread) and adescribe_many (called in
    the loop) tell a display that takes it the run's schema, right after ``start``, so its
    rows can show the fields; a display without ``expect_schema`` is shown as before."""
    expected = [
        ("start", 2),
        ("expect_schema", ("caption", "people")),
        ("update", 0),
        ("update", 1),
        ("close", 2, None),
    ]
    shown = Recording()
    describe_many([CAT, CAT], "A.", schema="caption, people int", concurrency=1, show=shown)
    assert shown.calls == expected
    shown = Recording()
    asyncio.run(
        reka_nb.adescribe_many(
            [CAT, CAT], "B.", schema="caption, people int", concurrency=1, show=shown
        )
    )
    assert shown.calls == expected
    shown = Recording()
    describe_many([CAT], "C.", concurrency=1, show=shown)  # no schema: not told of one
    assert shown.calls == [("start", 1), ("update", 0), ("close", 1, None)]
    plain = Plain()
    results = describe_many([CAT], "D.", schema="caption", show=plain)
    assert plain.calls == ["start", "update", "close"]
    assert results.data == [{"caption": CAT_NOTE}]
