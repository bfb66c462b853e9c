"""Properties of the SSE decoder and the answer accumulator, over random inputs (Hypothesis).

Whatever bytes arrive, split anywhere, in whatever order and JSON shape: the decoded answer
is the right text, or a RekaError says why not. Never another exception, and time stays
linear in the input.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reka_nb import RekaError
from reka_nb.client.replies import StreamState
from reka_nb.client.settings import Settings
from reka_nb.protocol.sse import SSEDecoder

SETTINGS = Settings("http://127.0.0.1:1/v1", "reka-flash", "k", "openai", False)
NATIVE = Settings("http://127.0.0.1:1/v1", "reka-flash", "k", "native", False)

text_piece = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text_piece,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "choices",
                    "delta",
                    "content",
                    "text",
                    "usage",
                    "model",
                    "error",
                    "finish_reason",
                    "responses",
                    "chunk",
                    "message",
                    "x",
                ]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)

# Events of the right outline whose every field may hold any JSON value (parts of the wrong
# type, a model that is a number, usage that is true...), and events of any shape at all.
shaped_events = st.one_of(
    st.fixed_dictionaries(
        {
            "choices": st.lists(
                st.fixed_dictionaries(
                    {
                        "delta": st.fixed_dictionaries(
                            {
                                "content": json_values
                                | st.lists(
                                    st.fixed_dictionaries(
                                        {"type": st.just("text"), "text": json_values}
                                    )
                                )
                            }
                        ),
                        "finish_reason": json_values,
                    }
                ),
                max_size=2,
            )
        },
        optional={
            "model": json_values,
            "usage": st.fixed_dictionaries(
                {"prompt_tokens": json_values, "completion_tokens": json_values}
            ),
            "error": json_values,
        },
    ),
    st.fixed_dictionaries(
        {
            "responses": st.lists(
                st.fixed_dictionaries(
                    {
                        "chunk": st.fixed_dictionaries({"content": json_values}),
                        "finish_reason": json_values,
                    }
                ),
                max_size=2,
            )
        },
        optional={"model": json_values, "usage": json_values},
    ),
    json_values,
)


def state(settings: Settings = SETTINGS) -> StreamState:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"})
    return StreamState(settings, response, read_timeout=120)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def read(stream: StreamState, chunks: list[bytes]) -> str:
    out = []
    for chunk in chunks:
        out += stream.feed(chunk)
        if stream.acc.finished:
            break
    else:
        out += stream.end()
    return "".join(out)


def increments(deltas: list[str], line_end: str = "\n") -> bytes:
    events = [
        json.dumps({"choices": [{"delta": {"content": d}, "finish_reason": None}]}) for d in deltas
    ]
    events.append(json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}))
    events.append("[DONE]")
    blank = line_end * 2
    return "".join(f"data: {e}{blank}" for e in events).encode()


@given(
    deltas=st.lists(text_piece.filter(bool), min_size=1, max_size=30),
    cuts=st.lists(st.integers(min_value=0), max_size=40),
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
)
@settings(max_examples=150, deadline=None)
def test_increments_split_anywhere_give_the_text(
    deltas: list[str], cuts: list[int], line_end: str
) -> None:
    body = increments(deltas, line_end)
    text = read(state(), split(body, cuts))
    # Every increment in order; or, when the events could be snapshots (each extends the one
    # before), possibly what they say read as snapshots: the guess is a guess.
    assert text in ("".join(deltas), as_snapshots(deltas))


def as_snapshots(contents: list[str]) -> str:
    """The text of events read as snapshots: each one's tail past the text so far."""
    text = ""
    for content in contents:
        if len(content) > len(text):
            text += content[len(text) :]
    return text


@given(
    words=st.lists(text_piece.filter(bool), min_size=1, max_size=20),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
@settings(max_examples=100, deadline=None)
def test_native_snapshots_split_anywhere_give_the_text(words: list[str], cuts: list[int]) -> None:
    snapshots = ["".join(words[: i + 1]) for i in range(len(words))]
    events = [
        json.dumps(
            {
                "responses": [
                    {
                        "chunk": {"content": s},
                        "finish_reason": "stop" if i == len(words) - 1 else None,
                    }
                ]
            }
        )
        for i, s in enumerate(snapshots)
    ]
    body = "".join(f"data: {e}\n\n" for e in events).encode()
    assert read(state(NATIVE), split(body, cuts)) == snapshots[-1]


@given(
    events=st.lists(shaped_events, max_size=12),
    raw=st.lists(st.binary(max_size=30), max_size=4),
    order=st.randoms(use_true_random=False),
    cuts=st.lists(st.integers(min_value=0), max_size=20),
)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_json_shape_in_any_order_is_text_or_a_reka_error(
    events: list[Any], raw: list[bytes], order: Any, cuts: list[int]
) -> None:
    lines = [f"data: {json.dumps(e)}\n\n".encode() for e in events]
    lines += [b"data: " + r + b"\n\n" for r in raw] + [b"data: [DONE]\n\n", b": ping\n\n"]
    order.shuffle(lines)
    for settings_ in (SETTINGS, NATIVE):
        stream = state(settings_)
        try:
            text = read(stream, split(b"".join(lines), cuts))
        except RekaError:
            continue
        assert isinstance(text, str) and text == stream.acc.text


def test_time_is_linear_in_one_event_and_in_many() -> None:
    def decode(body: bytes) -> float:
        best = float("inf")
        # The best of five, in this process's CPU time: other processes on a shared machine
        # neither add to it nor take turns out of it.
        for _ in range(5):
            decoder = SSEDecoder(max_event_size=len(body) + 1)
            started = time.process_time()
            for i in range(0, len(body), 65536):
                decoder.feed(body[i : i + 65536])
            best = min(best, time.process_time() - started)
        return best

    one = [decode(b"data: " + b"x" * (n << 20) + b"\n\n") for n in (1, 8)]
    many = [decode(increments(["w "] * n)) for n in (5_000, 40_000)]
    for small, large in (one, many):
        assert large < 20 * small  # 8x the input: linear is 8x the time, quadratic 64x
