"""Answers from either endpoint, streamed or whole, turned into text (no I/O).

Streamed events are either increments (OpenAI style) or snapshots of the whole answer so far
(Reka's native endpoint, and possibly some models behind the OpenAI-compatible one). The
``Accumulator`` gives the same text for both, in time linear in what it is fed: a snapshot
contributes only the tail past what was already received, so repeated words survive
(unlike ``new.replace(old, "")``, which drops every repeat of the old text).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from .messages import Api

__all__ = [
    "Accumulator",
    "Completion",
    "EmptyAnswer",
    "MalformedEvent",
    "Usage",
    "parse_completion",
]


class MalformedEvent(Exception):
    """An event that is not the JSON the endpoint promises (internal; becomes StreamInterrupted)."""


class StreamError(Exception):
    """An error object sent inside a stream (internal; becomes StreamInterrupted)."""


class EmptyAnswer(Exception):
    """A reply with neither answer text nor a refusal (internal; becomes ServerError): it is
    not an answer, so it is never shown as one nor cached."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts; either field may be None when the server does not say."""

    input_tokens: int | None = None
    output_tokens: int | None = None

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None or self.output_tokens is None:
            return None
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_json(cls, data: Any) -> Usage | None:
        """Accept ``prompt_tokens``/``completion_tokens`` and ``input_tokens``/``output_tokens``."""
        if not isinstance(data, dict):
            return None
        inp = data.get("input_tokens", data.get("prompt_tokens"))
        out = data.get("output_tokens", data.get("completion_tokens"))
        return cls(input_tokens=_count(inp), output_tokens=_count(out))


def _count(value: Any) -> int | None:
    """A token count, or None for anything else (``true``, ``-3``, ``"12"``, ``1e9``)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


@dataclass(frozen=True)
class Completion:
    """A finished answer: its text and what the server said about it."""

    text: str
    model: str | None
    usage: Usage | None
    finish_reason: str | None
    request_id: str | None


class Accumulator:
    """Feed it each event's data string; it returns the new text and tracks the finish.

    Snapshot detection on the OpenAI-compatible endpoint, where either kind may come: while
    every event extends the previous one, both readings stay possible, and only the text they
    agree on is released. An event that does not extend the previous one proves increments;
    two extensions in a row reaching ``SNAPSHOT_EVIDENCE`` characters prove snapshots. The
    mode is then fixed, so increments that repeat earlier words are never taken for
    snapshots ("\\n" then "\\n\\n" then "A" stays three lines and an A). A stream that
    ends undecided reads as snapshots only when the events repeated at least
    ``SNAPSHOT_REPEAT`` characters of earlier ones ("Hello", "Hello there"); short
    coincidences stay increments ("1", "10" is "110"). Native events are always snapshots.
    """

    SNAPSHOT_EVIDENCE = 16
    SNAPSHOT_REPEAT = 4

    def __init__(self, api: Api = "openai") -> None:
        self.api = api
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self._parts: list[str] = []
        self._length = 0
        self._snapshot: bool | None = True if api == "native" else None
        self._increments: list[str] = []  # while undecided: every content, read as increments
        self._latest = ""  # while undecided: the last content, read as a snapshot
        self._extensions = 0  # while undecided: events in a row that extended the previous
        self._repeated = 0  # while undecided: characters those events repeated

    @property
    def text(self) -> str:
        """The text so far (joined once per call; pass deltas on, not this, per token)."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def finished(self) -> bool:
        """True when the stream said it is complete ([DONE] or a finish reason)."""
        return self.done or self.finish_reason is not None

    def feed(self, data: str) -> str:
        """Take one event's data; return the text it adds (maybe empty)."""
        if getattr(data, "event", "") == "error":  # ``event: error``, whatever its data says
            raise StreamError(_error_event_text(data))
        if data == "[DONE]":
            self.done = True
            return self._settle()
        event = load_json(data, "an event")
        if not isinstance(event, dict):
            raise MalformedEvent(f"an event was not a JSON object: {_clip(data)}")
        if "error" in event:
            raise StreamError(_stream_error_text(event["error"]))
        model = event.get("model")
        if isinstance(model, str) and model:
            self.model = model
        usage = Usage.from_json(event.get("usage"))
        if usage is not None:
            self.usage = usage
        content, finish = _content_and_finish(event)
        delta = self._add(content) if content else ""
        if finish:
            self.finish_reason = finish
            delta += self._settle()
        return delta

    def _settle(self) -> str:
        """At the end, an undecided stream (every event extended the last) reads as snapshots."""
        if self._snapshot is not None or not self._latest:
            return ""
        if self._repeated < self.SNAPSHOT_REPEAT:  # too little evidence: increments
            self._snapshot = False
            target = "".join(self._increments)
        else:
            self._snapshot = True
            target = self._latest
        self._increments, self._latest = [], ""
        return self._release(target[self._length :])

    def _add(self, content: str) -> str:
        if self._snapshot is None:
            return self._release(self._undecided(content))
        if not self._snapshot:
            return self._release(content)
        if len(content) <= self._length:
            return ""  # a repeat (or a shorter revision) of what is already shown
        return self._release(content[self._length :])

    def _undecided(self, content: str) -> str:
        """The new text both readings agree on, deciding the mode when an event proves it."""
        previous = self._latest
        self._increments.append(content)
        extends = len(content) > len(previous) and content.startswith(previous)
        if previous and not extends:
            self._snapshot = False
            target = "".join(self._increments)
        else:
            self._extensions += 1 if previous else 0
            self._repeated += len(previous)
            self._latest = content
            if self._extensions >= 2 and len(content) >= self.SNAPSHOT_EVIDENCE:
                self._snapshot = True
                target = content
            else:
                target = _common_prefix("".join(self._increments), content)
        if self._snapshot is not None:
            self._increments, self._latest = [], ""
        return target[self._length :]

    def _release(self, delta: str) -> str:
        if delta:
            self._parts.append(delta)
            self._length += len(delta)
        return delta

    def take_whole(self, completion: Completion) -> str:
        """A whole (non-streamed) answer received in place of a stream; returns its text."""
        self.model = completion.model or self.model
        self.usage = completion.usage or self.usage
        self.finish_reason = completion.finish_reason or "stop"
        self.done = True
        return self._release(completion.text[self._length :])

    def completion(self, request_id: str | None) -> Completion:
        return Completion(self.text, self.model, self.usage, self.finish_reason, request_id)

    def answer(self, request_id: str | None) -> Completion:
        """The finished answer; EmptyAnswer when the stream ended without any text."""
        if not self.text:
            why = f"finish reason {self.finish_reason!r}" if self.finish_reason else "[DONE]"
            raise EmptyAnswer(f"the stream ended ({why}) without any answer text")
        return self.completion(request_id)


def _content_and_finish(event: dict) -> tuple[str | None, str | None]:
    """The content string and finish reason of an event of either endpoint."""
    items = event.get("choices")
    key = "delta"
    if items is None:
        items = event.get("responses")
        key = "chunk"
    if not isinstance(items, list) or not items:
        return None, None
    first = items[0]
    if not isinstance(first, dict):
        raise MalformedEvent("an event's choices/responses entry was not an object")
    part = first.get(key) or first.get("message") or {}
    content = part.get("content") if isinstance(part, dict) else None
    if isinstance(content, list):  # content parts: keep their text (strings only)
        texts = (p.get("text") for p in content if isinstance(p, dict))
        content = "".join(t for t in texts if isinstance(t, str))
    if content is not None and not isinstance(content, str):
        raise MalformedEvent("an event's content was not a string")
    refusal = part.get("refusal") if isinstance(part, dict) else None
    if not content and isinstance(refusal, str) and refusal:
        content = refusal  # the model declined, in words: that is its answer
    finish = first.get("finish_reason")
    return content, finish if isinstance(finish, str) and finish else None


def parse_completion(data: Any, request_id: str | None) -> Completion:
    """A non-streamed answer of either endpoint; EmptyAnswer when it holds no answer text
    (``{}``, no choices, no content, an empty string) and no refusal."""
    if not isinstance(data, dict):
        raise MalformedEvent("the answer was not a JSON object")
    if "error" in data:
        raise StreamError(_stream_error_text(data["error"]))
    content, finish = _content_and_finish(data)
    if not content:
        items = data.get("choices", data.get("responses"))
        if not isinstance(items, list) or not items:
            raise EmptyAnswer("the reply held no choices")
        why = "an empty answer" if content == "" else "no content"
        raise EmptyAnswer(f"the reply held {why} and no refusal")
    model = data.get("model")
    return Completion(
        text=content,
        model=_shared(model) if isinstance(model, str) and model else None,
        usage=Usage.from_json(data.get("usage")),
        finish_reason=None if finish is None else _shared(finish),
        request_id=request_id,
    )


def _shared(text: str) -> str:
    """A model name or finish reason, one str for all the answers that repeat it (a run of
    many answers keeps one copy, not one per answer); a long one is kept as it is."""
    return sys.intern(text) if len(text) <= 64 else text


def _stream_error_text(error: Any) -> str:
    """The message of an error object; only strings are shown (never a repr of its JSON)."""
    if isinstance(error, dict):
        for key in ("message", "type", "code"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return _clip(value, 500)
        return "no message"
    if isinstance(error, str) and error:
        return _clip(error, 500)
    return "no message"


def _error_event_text(data: str) -> str:
    """The message of an ``event: error``: its JSON error's message, or its text."""
    try:
        value = load_json(data, "an error event")
    except MalformedEvent:
        return _clip(" ".join(data.split()), 500) or "no message"
    if isinstance(value, dict):
        return _stream_error_text(value.get("error", value))
    return _stream_error_text(value)


def load_json(text: str | bytes, what: str) -> Any:
    """``json.loads`` whose failures, deep nesting included, are all ``MalformedEvent``."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        shown = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        raise MalformedEvent(f"{what} was not valid JSON: {_clip(shown)}") from None


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _common_prefix(a: str, b: str) -> str:
    """The longest common prefix, by comparing halves (C speed, not a loop per character)."""
    if b.startswith(a):
        return a
    if a.startswith(b):
        return b
    low, high = 0, min(len(a), len(b))  # a[:low] == b[:low]; the prefix is shorter than high
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return a[:low]
