"""Error replies turned into exceptions, and when to retry (no I/O).

Reka answers errors in three shapes: the documented envelope
``{"error": {"type", "message", ...}}``, FastAPI's ``{"detail": [{"loc", "msg"}]}`` (422 on
the native endpoint) and plain text. All three become one typed ``APIError``.
"""

from __future__ import annotations

import email.utils
import json
import random
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .._exceptions import (
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
)

__all__ = [
    "MAX_RETRY_AFTER",
    "error_from_response",
    "is_retryable",
    "parse_reset",
    "rate_limit_pause",
    "retry_delay",
]

MAX_RETRY_AFTER = 60.0
_RETRY_STATUSES = {408, 409, 429}
_CREDIT_WORDS = (
    "credit",
    "insufficient_quota",
    "billing",
    "insufficient balance",
    "insufficient_balance",
)
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?$")
_EPOCH = 1e9  # a reset above this is a Unix time, not seconds from now


def parse_error_body(body: bytes | str) -> tuple[str | None, list[str], str | None]:
    """(error type, messages, param) from any of the three shapes."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = error.get("message") or error.get("type") or "no message"
            param = error.get("param")
            return (error.get("type"), [str(message)], param if isinstance(param, str) else None)
        if isinstance(error, str):
            return None, [error], None
        detail = data.get("detail")
        if isinstance(detail, list):
            return "validation_error", [_detail_text(d) for d in detail] or ["invalid body"], None
        if isinstance(detail, str):
            return None, [detail], None
        message = data.get("message")
        if isinstance(message, str):
            return None, [message], None
    text = " ".join(text.split())
    return None, [text[:500]] if text else [], None


def _detail_text(item: object) -> str:
    if not isinstance(item, Mapping):
        return str(item)
    loc = item.get("loc")
    where = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
    msg = str(item.get("msg") or item.get("type") or "invalid")
    return f"{where}: {msg}" if where else msg


def error_from_response(
    status: int,
    body: bytes | str,
    *,
    request_id: str | None,
    retry_after: str | None = None,
    reset: str | None = None,
    model: str | None = None,
    available_models: Sequence[str] = (),
) -> APIError:
    """The typed exception for an error reply (a 429's wait: ``Retry-After``, else
    ``x-ratelimit-reset``)."""
    error_type, messages, param = parse_error_body(body)
    joined = "; ".join(messages)
    kw: dict[str, Any] = {
        "status": status,
        "request_id": request_id,
        "error_type": error_type,
        "messages": messages,
    }
    if status in (400, 422):
        return BadRequestError(f"Reka rejected the request: {joined or 'bad request'}", **kw)
    if status in (401, 403):
        what = "missing or wrong" if status == 401 else "not allowed to do this"
        hint = f"The API key is {what}: check REKA_API_KEY (keys are made at platform.reka.ai)."
        return AuthenticationError(f"{hint} The server said: {joined or 'unauthorized'}", **kw)
    if status == 404:
        message = f"Not found: {joined or 'no such resource'}"
        if model is not None and (param == "model" or "model" in joined.lower()):
            message = f"Unknown model {model!r}"
            if available_models:
                message += f"; the models this key can use: {', '.join(available_models)}"
        return NotFoundError(message, available_models=available_models, **kw)
    if status == 429:
        credits = _about_credits(error_type, joined)
        seconds = parse_retry_after(retry_after)
        if seconds is None:
            seconds = parse_reset(reset)
        prefix = "Out of credits" if credits else "Rate limited"
        return RateLimitError(
            f"{prefix}: {joined or 'too many requests'}",
            retry_after=seconds,
            out_of_credits=credits,
            **kw,
        )
    if 300 <= status < 400:
        return ServerError(f"Unexpected redirect (not followed): {joined or status}", **kw)
    return ServerError(f"Server error: {joined or 'no details'}", **kw)


def _about_credits(error_type: str | None, message: str) -> bool:
    words = f"{error_type or ''} {message}".lower()
    return any(w in words for w in _CREDIT_WORDS)


def is_retryable(error: APIError) -> bool:
    """408, 409, 429 (unless about credits) and 5xx are worth another try."""
    if isinstance(error, RateLimitError):
        return not error.out_of_credits
    return error.status in _RETRY_STATUSES or error.status >= 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped; None if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """Seconds from an ``x-ratelimit-reset`` header, capped; None if unusable.

    Its form is *unconfirmed* for Reka, so all the common ones are read: seconds (``1.5``),
    a Unix time (``1767225600``) and a duration (``1s``, ``6m0s``, ``250ms``).
    """
    if not value:
        return None
    text = value.strip().lower()
    seconds: float | None
    try:
        seconds = float(text)
    except ValueError:
        seconds = _duration(text)
    if seconds is None or seconds != seconds:  # unreadable or NaN
        return None
    if seconds > _EPOCH:
        seconds -= time.time() if now is None else now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _duration(text: str) -> float | None:
    if text.endswith("ms") and text[:-2].replace(".", "", 1).isdigit():
        return float(text[:-2]) / 1000
    match = _DURATION.match(text)
    if match is None or not any(match.groups()):
        return None
    hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def rate_limit_pause(headers: Mapping[str, str]) -> float | None:
    """Seconds to hold every request after a successful reply that used up the limit
    (``x-ratelimit-remaining: 0``): its ``x-ratelimit-reset``; None when there is room."""
    remaining = headers.get("x-ratelimit-remaining")
    if remaining is None or remaining.strip() not in ("0", "0.0"):
        return None
    return parse_reset(headers.get("x-ratelimit-reset"))


def retry_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = 0.5,
    cap: float = 8.0,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    The server's Retry-After wins (already capped at 60 s); otherwise exponential
    backoff with jitter, so many clients failing together do not retry together.
    """
    if retry_after is not None:
        return retry_after
    ceiling = min(cap, base * (2**attempt))
    return ceiling * (0.5 + 0.5 * (rng or random).random())
