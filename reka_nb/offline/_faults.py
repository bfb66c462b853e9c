"""Scripted misbehaviour for the offline server: one `Fault` per request, queued in order.

A fault is an immutable value. ``OfflineServer.queue(...)`` lines faults up; each following
request, whatever its endpoint, takes the next one.

"Events" are the ``data:`` messages of a streamed answer that carry words: each carries one
more word, so ``n`` events means the first n words on both endpoints. The OpenAI-compatible
endpoint's opening role chunk (``delta: {"role": "assistant", "content": ""}``) always goes out
first and is not counted; after the words come its final chunk and ``[DONE]`` (events n+1 and
n+2 of an n-word answer). On the native endpoint the last word's snapshot carries the finish.

On a non-streaming request: ``break_after`` sends the headers and half the body, then drops
the connection; ``stall`` pauses between the headers and the body; ``malformed`` sends a body
that is not JSON; ``end_without_finish(n)`` answers the first n words with a null finish reason.
Status faults, ``reset`` and ``slow_first_byte`` apply to any request. The structured faults
(``invalid_json``, ``missing_field``, ``wrong_type``, ``refusal``) spoil the next answer asked
for with a JSON Schema (see ``_structured``) and change nothing on other requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

__all__ = ["Fault", "error_envelope", "error_type_for"]

_ERROR_TYPES = {
    400: "validation_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "method_not_allowed",
    413: "request_too_large",
    422: "validation_error",
    429: "rate_limit_error",
}


def error_type_for(code: int) -> str:
    """The documented ``error.type`` for an HTTP status (``server_error`` for any 5xx)."""
    if code >= 500:
        return "server_error"
    return _ERROR_TYPES.get(code, "api_error")


def error_envelope(code: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The documented error body: ``{"error": {"type", "message", "param", "details"}}``."""
    return {
        "error": {"type": error_type_for(code), "message": message, "param": param, "details": None}
    }


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return f"HTTP {code}"


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def _seconds(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"seconds must be a number >= 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Fault:
    """What the server does to one request instead of (or on top of) answering normally.

    Build faults with the classmethods (``Fault.status(503)``, ``Fault.break_after(3)``...);
    ``kind`` names the fault and is what ``RecordedRequest.fault`` shows.
    """

    kind: str
    events: int = 0
    seconds: float = 0.0
    code: int = 0
    body: bytes = b""
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def ok(cls) -> Fault:
        """A placeholder: this request is answered normally."""
        return cls("ok")

    @classmethod
    def status(
        cls,
        code: int,
        body: Mapping[str, Any] | str | None = None,
        *,
        retry_after: float | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer with status ``code`` whatever the request says.

        ``body`` None sends the documented envelope for the code; a mapping is sent as JSON,
        a string as ``text/plain``. ``retry_after`` sets the ``Retry-After`` header.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 200 <= code <= 599:
            raise ValueError(f"code must be an HTTP status from 200 to 599, got {code!r}")
        if body is None:
            payload = error_envelope(code, _phrase(code)) if code >= 400 else {}
            data, ctype = json.dumps(payload).encode(), "application/json"
        elif isinstance(body, str):
            data, ctype = body.encode("utf-8"), "text/plain; charset=utf-8"
        elif isinstance(body, Mapping):
            data, ctype = json.dumps(dict(body)).encode(), "application/json"
        else:
            raise TypeError(f"body must be a dict, a str or None, not {type(body).__name__}")
        extra = [(str(k), str(v)) for k, v in (headers or {}).items()]
        if retry_after is not None:
            if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
                extra.append(("Retry-After", f"{retry_after:g}"))
            else:
                extra.append(("Retry-After", str(retry_after)))
        return cls("status", code=code, body=data, content_type=ctype, headers=tuple(extra))

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection before sending any byte of a response."""
        return cls("reset")

    @classmethod
    def break_after(cls, events: int) -> Fault:
        """Send 200, the headers and ``events`` events, then drop the connection mid-body."""
        return cls("break_after", events=_count("events", events))

    @classmethod
    def stall(cls, after_events: int, seconds: float) -> Fault:
        """After ``after_events`` events, go quiet for ``seconds``, then finish normally."""
        return cls("stall", events=_count("after_events", after_events), seconds=_seconds(seconds))

    @classmethod
    def malformed(cls, after_events: int) -> Fault:
        """After ``after_events`` events, send one event that is not valid JSON, then end."""
        return cls("malformed", events=_count("after_events", after_events))

    @classmethod
    def slow_first_byte(cls, seconds: float) -> Fault:
        """Wait ``seconds`` before the status line, then answer normally."""
        return cls("slow_first_byte", seconds=_seconds(seconds))

    @classmethod
    def end_without_finish(cls, after_events: int) -> Fault:
        """Send ``after_events`` events, then end the body cleanly: no finish, no ``[DONE]``."""
        return cls("end_without_finish", events=_count("after_events", after_events))

    @classmethod
    def invalid_json(cls) -> Fault:
        """A structured answer whose JSON never closes (the repair turn then answers well)."""
        return cls("invalid_json")

    @classmethod
    def missing_field(cls) -> Fault:
        """A structured answer without its first required field."""
        return cls("missing_field")

    @classmethod
    def wrong_type(cls) -> Fault:
        """A structured answer whose first field has a value of the wrong type."""
        return cls("wrong_type")

    @classmethod
    def refusal(cls) -> Fault:
        """A structured answer that is a refusal in prose, with no JSON."""
        return cls("refusal")

    def __repr__(self) -> str:
        if self.kind == "status":
            return f"Fault.status({self.code})"
        if self.kind in ("ok", "reset", "invalid_json", "missing_field", "wrong_type", "refusal"):
            return f"Fault.{self.kind}()"
        if self.kind == "slow_first_byte":
            return f"Fault.slow_first_byte({self.seconds:g})"
        if self.kind == "stall":
            return f"Fault.stall({self.events}, {self.seconds:g})"
        return f"Fault.{self.kind}({self.events})"
