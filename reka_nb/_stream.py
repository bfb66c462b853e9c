"""Answers from either endpoint, streamed or whole, turned into text (no I/O).

Streamed events are either increments (OpenAI style) or snapshots of the whole answer so far
(Reka's native endpoint, and possibly some models behind the OpenAI-compatible one). The
``Accumulator`` gives the same text for both, in time linear in what it is fed: a snapshot
contributes only the tail past what was already received, so repeated words survive
(unlike ``new.replace(old, "")``, which drops every repeat of the old text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._settings import Api

__all__ = [
    "Accumulator",
    "Completion",
    "MalformedEvent",
    "Usage",
    "parse_completion",
    "parse_models",
]


class MalformedEvent(Exception):
    """An event that is not the JSON the endpoint promises (internal; becomes StreamInterrupted)."""


class StreamError(Exception):
    """An error object sent inside a stream (internal; becomes StreamInterrupted)."""


@dataclass(frozen=True)
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
        return cls(
            input_tokens=inp if isinstance(inp, int) else None,
            output_tokens=out if isinstance(out, int) else None,
        )


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

    Snapshot detection: an event whose content is longer than the text so far and starts
    with it is a snapshot. The first event that decides it fixes the mode for the stream,
    so increments that happen to repeat earlier words are never mistaken for snapshots.
    """

    def __init__(self, api: Api = "openai") -> None:
        self.api = api
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self._parts: list[str] = []
        self._length = 0
        self._snapshot: bool | None = True if api == "native" else None
        self._last = ""  # the text so far, kept only while the mode is undecided or snapshot

    @property
    def text(self) -> str:
        return "".join(self._parts)

    @property
    def finished(self) -> bool:
        """True when the stream said it is complete ([DONE] or a finish reason)."""
        return self.done or self.finish_reason is not None

    def feed(self, data: str) -> str:
        """Take one event's data; return the text it adds (maybe empty)."""
        if data == "[DONE]":
            self.done = True
            return ""
        try:
            event = json.loads(data)
        except ValueError as exc:
            raise MalformedEvent(f"an event was not valid JSON: {_clip(data)}") from exc
        if not isinstance(event, dict):
            raise MalformedEvent(f"an event was not a JSON object: {_clip(data)}")
        if "error" in event:
            raise StreamError(_stream_error_text(event["error"]))
        self.model = event.get("model") or self.model
        usage = Usage.from_json(event.get("usage"))
        if usage is not None:
            self.usage = usage
        content, finish = _content_and_finish(event)
        if finish:
            self.finish_reason = finish
        return self._add(content) if content else ""

    def _add(self, content: str) -> str:
        if self._snapshot is None and self._length:
            # Undecided: a longer string starting with all we have is a snapshot.
            self._snapshot = len(content) > self._length and content.startswith(self._last)
            if not self._snapshot:
                self._last = ""
        if self._snapshot:
            if len(content) <= self._length:
                return ""  # a repeat (or a shorter revision) of what is already shown
            delta = content[self._length :]
            self._last = content
        else:
            delta = content
            if self._snapshot is None:
                self._last = content
        self._parts.append(delta)
        self._length += len(delta)
        return delta

    def completion(self, request_id: str | None) -> Completion:
        return Completion(self.text, self.model, self.usage, self.finish_reason, request_id)


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
    if isinstance(content, list):  # content parts: keep their text
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if content is not None and not isinstance(content, str):
        raise MalformedEvent("an event's content was not a string")
    finish = first.get("finish_reason")
    return content, finish if isinstance(finish, str) and finish else None


def parse_completion(data: Any, request_id: str | None) -> Completion:
    """A non-streamed answer of either endpoint."""
    if not isinstance(data, dict):
        raise MalformedEvent("the answer was not a JSON object")
    content, finish = _content_and_finish(data)
    return Completion(
        text=content or "",
        model=data.get("model"),
        usage=Usage.from_json(data.get("usage")),
        finish_reason=finish,
        request_id=request_id,
    )


def _stream_error_text(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)
    return str(error)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def parse_models(body: bytes | str) -> list[str]:
    """Model ids from ``GET /models``: OpenAI's ``{"data": [...]}`` or Reka's plain list."""
    try:
        data = json.loads(body)
    except ValueError:
        raise MalformedEvent("the model list was not valid JSON") from None
    if isinstance(data, dict):
        data = data.get("data", data.get("models"))
    if not isinstance(data, list):
        raise MalformedEvent("the model list was neither a list nor {'data': [...]}")
    ids = []
    for item in data:
        ident = item.get("id") if isinstance(item, dict) else item
        if isinstance(ident, str) and ident:
            ids.append(ident)
    return ids
