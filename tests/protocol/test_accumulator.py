"""Increments and snapshots give the same text; finish, usage and bad events."""

from __future__ import annotations

import json

import pytest

from reka_nb.protocol.models import parse_models
from reka_nb.protocol.stream import (
    Accumulator,
    MalformedEvent,
    StreamError,
    parse_completion,
)

WORDS = ["cat ", "cat ", "cat ", "sat ", "on ", "the ", "cat ", "mat", "."]
TEXT = "".join(WORDS)


def openai_event(content: str | None, finish: str | None = None, usage: dict | None = None) -> str:
    delta = {} if content is None else {"content": content}
    event: dict = {"model": "reka-flash", "choices": [{"delta": delta, "finish_reason": finish}]}
    if usage:
        event["usage"] = usage
    return json.dumps(event)


def native_event(content: str, finish: str | None = None) -> str:
    return json.dumps(
        {
            "model": "reka-core",
            "responses": [
                {"chunk": {"role": "assistant", "content": content}, "finish_reason": finish}
            ],
            "usage": {"input_tokens": 12, "output_tokens": 3},
        }
    )


def run(acc: Accumulator, events: list[str]) -> str:
    return "".join(acc.feed(e) for e in events)


def test_incremental_keeps_repeated_words() -> None:
    acc = Accumulator("openai")
    events = [openai_event(w) for w in WORDS]
    events += [openai_event(None, "stop", {"prompt_tokens": 5, "completion_tokens": 9}), "[DONE]"]
    assert run(acc, events) == TEXT
    assert acc.text == TEXT
    assert acc.finish_reason == "stop" and acc.done
    assert (acc.usage.input_tokens, acc.usage.output_tokens) == (5, 9)


@pytest.mark.parametrize("api", ["openai", "native"])
def test_snapshots_give_the_same_text(api: str) -> None:
    acc = Accumulator(api)  # type: ignore[arg-type]
    snaps = ["".join(WORDS[: i + 1]) for i in range(len(WORDS))]
    make = native_event if api == "native" else openai_event
    deltas = [acc.feed(make(s)) for s in snaps]
    assert deltas == WORDS
    acc.feed(make(TEXT, "stop"))  # the final event repeats the whole text
    assert acc.text == TEXT
    assert acc.finish_reason == "stop"


def test_replace_approach_would_lose_words_ours_does_not() -> None:
    acc = Accumulator("native")
    out = [acc.feed(native_event(s)) for s in ["cat ", "cat cat ", "cat cat cat "]]
    assert out == ["cat ", "cat ", "cat "]
    assert "cat cat ".replace("cat ", "") == ""  # what the old tool did


def test_incremental_that_starts_like_the_text_is_not_a_snapshot() -> None:
    acc = Accumulator("openai")
    assert run(acc, [openai_event("ab"), openai_event("ab"), openai_event("abab")]) == "abababab"


def test_native_usage_and_model() -> None:
    acc = Accumulator("native")
    acc.feed(native_event("Hello", "stop"))
    assert acc.model == "reka-core"
    assert acc.usage.total_tokens == 15


def test_linear_time_on_long_incremental_stream() -> None:
    acc = Accumulator("openai")
    events = [openai_event("word ") for _ in range(20000)]
    assert len(run(acc, events)) == 100000


def test_malformed_and_error_events() -> None:
    acc = Accumulator()
    with pytest.raises(MalformedEvent, match="not valid JSON"):
        acc.feed('{"choices": [')
    with pytest.raises(MalformedEvent, match="not a JSON object"):
        acc.feed("[1, 2]")
    with pytest.raises(MalformedEvent, match="content was not a string"):
        acc.feed('{"choices": [{"delta": {"content": 5}}]}')
    with pytest.raises(StreamError, match="overloaded"):
        acc.feed('{"error": {"type": "server_error", "message": "overloaded"}}')


def test_finished_needs_done_or_finish_reason() -> None:
    acc = Accumulator()
    acc.feed(openai_event("hi"))
    assert not acc.finished
    acc.feed("[DONE]")
    assert acc.finished


def test_parse_completion_both_shapes() -> None:
    openai = {
        "model": "reka-flash",
        "choices": [
            {"message": {"role": "assistant", "content": "A cat."}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    native = {
        "id": "x",
        "model": "reka-core",
        "responses": [
            {"finish_reason": "length", "message": {"role": "assistant", "content": "A"}}
        ],
        "usage": {"input_tokens": 4, "output_tokens": 1},
    }
    a = parse_completion(openai, "req_1")
    assert (a.text, a.model, a.finish_reason, a.request_id) == (
        "A cat.",
        "reka-flash",
        "stop",
        "req_1",
    )
    assert a.usage.total_tokens == 5
    b = parse_completion(native, None)
    assert (b.text, b.finish_reason, b.usage.output_tokens) == ("A", "length", 1)


def test_parse_models_shapes() -> None:
    assert parse_models(b'{"object": "list", "data": [{"id": "reka-flash"}]}') == ["reka-flash"]
    assert parse_models(b'[{"id": "reka-core"}, {"id": "reka-edge"}]') == ["reka-core", "reka-edge"]
    with pytest.raises(MalformedEvent):
        parse_models(b'{"nope": 1}')


@pytest.mark.parametrize(
    "deltas",
    [
        ["\n", "\n\n", "A", " tabby", " cat", " sleeps", " on", " a", " red", " sofa", "."],
        ["1", "10", " apples"],
        [" ", "  ", "   ", "x"],
        ["ab", "abc", "abcd", "x"],
    ],
)
def test_increments_that_look_like_snapshots_keep_every_character(deltas: list[str]) -> None:
    acc = Accumulator("openai")
    out = [acc.feed(openai_event(d)) for d in deltas]
    out.append(acc.feed(openai_event(None, "stop")))
    assert "".join(out) == acc.text == "".join(deltas)


def test_undecided_stream_releases_only_agreed_text_then_settles_as_snapshots() -> None:
    acc = Accumulator("openai")
    assert acc.feed(openai_event("Hello")) == "Hello"
    assert acc.feed(openai_event("Hello there")) == ""  # "HelloHello there" or "Hello there"?
    assert acc.text == "Hello"  # what a cut here would keep: true under either reading
    assert acc.feed(openai_event(None, "stop")) == " there"
    assert acc.text == "Hello there"


def test_openai_snapshot_stream_is_recognised() -> None:
    acc = Accumulator("openai")
    snaps = ["The ", "The cat ", "The cat sat ", "The cat sat on ", "The cat sat on the mat."]
    out = "".join(acc.feed(openai_event(s)) for s in snaps)
    assert out == acc.text == "The cat sat on the mat."


@pytest.mark.parametrize(
    ("deltas", "text"),
    [
        (["1", "10"], "110"),  # one repeated character is no evidence of snapshots
        (["ab", "abc"], "ababc"),
        (["Hello", "Hello there"], "Hello there"),  # five repeated characters are
        ([" ", "  ", "   "], "      "),
    ],
)
def test_a_stream_ending_undecided_needs_evidence_to_read_as_snapshots(
    deltas: list[str], text: str
) -> None:
    acc = Accumulator("openai")
    out = [acc.feed(openai_event(d)) for d in deltas]
    out.append(acc.feed(openai_event(None, "stop")))
    assert "".join(out) == acc.text == text


def test_wrong_typed_fields_are_ignored() -> None:
    acc = Accumulator("openai")
    event = {
        "model": 123,
        "choices": [{"delta": {"content": [{"text": 5}, {"text": None}, {"text": "ok"}]}}],
        "usage": {"prompt_tokens": True, "completion_tokens": -1},
    }
    assert acc.feed(json.dumps(event)) == "ok"
    assert acc.model is None and acc.usage is not None
    assert (acc.usage.input_tokens, acc.usage.output_tokens) == (None, None)
    with pytest.raises(MalformedEvent, match="not valid JSON"):
        acc.feed("[" * 100_000)
    with pytest.raises(StreamError, match=r"^overloaded$"):
        parse_completion({"error": {"message": "overloaded"}}, None)
