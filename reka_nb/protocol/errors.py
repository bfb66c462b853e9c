"""Error replies turned into exceptions, and when to retry (no I/O).

Reka answers errors in three shapes: the documented envelope
``{"error": {"type", "message", ...}}``, FastAPI's ``{"detail": [{"loc", "msg"}]}`` (422 on
the native endpoint) and plain text. All three become one typed ``APIError``.
"""

from __future__ import annotations

import copy
import email.utils
import json
import math
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
    "REDACTED",
    "error_from_response",
    "is_retryable",
    "not_sent",
    "parse_reset",
    "rate_limit_pause",
    "redact",
    "refuses_key",
    "refuses_model",
    "retry_delay",
    "sent_key",
    "server_value",
    "stops_run",
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
REDACTED = "[secure]"
MIN_SECRET_PART = 8


def redact(text: str, secret: str | None) -> str:
    """``text`` with the secret, and every part of it of 8 or more characters, replaced.

    A server that echoes the key back ("Incorrect API key provided: reka-ab…") may quote all
    of it or a piece; either way no 8 characters in a row of the key remain. Linear in
    ``len(text)``: each 8-character window is looked up in the set of the key's windows.
    """
    if not secret or not text:
        return text
    n = MIN_SECRET_PART
    if len(secret) < n:
        return text.replace(secret, REDACTED) if len(secret) >= 4 else text
    windows = {secret[i : i + n] for i in range(len(secret) - n + 1)}
    runs: list[list[int]] = []
    for i in range(len(text) - n + 1):
        if text[i : i + n] in windows:
            if runs and i <= runs[-1][1]:
                runs[-1][1] = i + n
            else:
                runs.append([i, i + n])
    if not runs:
        return text
    out, last = [], 0
    for start, end in runs:
        out += [text[last:start], REDACTED]
        last = end
    out.append(text[last:])
    return "".join(out)


MAX_HEADER_VALUE = 200
"""Characters of a server's header value kept to show or store (a request id is ~40)."""


def sent_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carried (``Authorization: Bearer`` or ``X-Api-Key``): what to redact
    from the reply to it."""
    scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (headers.get("x-api-key") or "").strip() or None


def server_value(value: str | None, secret: str | None) -> str | None:
    """A header value from the server, fit to show or store: the key (or any 8 characters of
    it) redacted, control characters dropped, at most ``MAX_HEADER_VALUE`` characters."""
    if value is None:
        return None
    text = "".join(ch for ch in redact(value, secret) if ch.isprintable())
    return _clip(text, MAX_HEADER_VALUE)


def parse_error_body(body: bytes | str) -> tuple[str | None, list[str], str | None]:
    """(error type, messages, param) from any of the three shapes."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            message = _string(error.get("message")) or _string(error.get("type")) or "no message"
            param = _string(error.get("param"))
            return _string(error.get("type")), [message], param
        if isinstance(error, str):
            return None, [_clip(error)], None
        detail = data.get("detail")
        if isinstance(detail, list):
            texts = [_detail_text(d) for d in detail[:20]]
            return "validation_error", texts or ["invalid body"], None
        if isinstance(detail, str):
            return None, [_clip(detail)], None
        plain = data.get("message")
        if isinstance(plain, str):
            return None, [_clip(plain)], None
    text = " ".join(text[:2000].split())
    return None, [_clip(text)] if text else [], None


def _string(value: object) -> str | None:
    """A non-empty string field, clipped; None for any other JSON value."""
    return _clip(value) if isinstance(value, str) and value else None


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _detail_text(item: object) -> str:
    if isinstance(item, str):
        return _clip(item)
    if not isinstance(item, Mapping):
        return "invalid"
    loc = item.get("loc")
    parts = loc if isinstance(loc, list) else []
    where = ".".join(str(p) for p in parts if isinstance(p, (str, int)) and p != "body")
    msg = _string(item.get("msg")) or _string(item.get("type")) or "invalid"
    return f"{_clip(where, 100)}: {msg}" if where else msg


def error_from_response(
    status: int,
    body: bytes | str,
    *,
    request_id: str | None,
    retry_after: str | None = None,
    reset: str | None = None,
    model: str | None = None,
    available_models: Sequence[str] = (),
    secret: str | None = None,
    too_large: bool = False,
) -> APIError:
    """The typed exception for an error reply (a 429's wait: ``Retry-After``, else
    ``x-ratelimit-reset``); ``secret`` (the key) is redacted from what the server said, and
    ``too_large`` says the body was cut at the size limit."""
    error_type, messages, param = parse_error_body(body)
    if too_large:
        messages = ["(the error body was too large to read)"]
    messages = [redact(m, secret) for m in messages]
    error_type = redact(error_type, secret) if error_type else None
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


def refuses_key(error: BaseException) -> bool:
    """A 401: the key is missing or wrong, and stays so until another key is given."""
    return isinstance(error, AuthenticationError) and error.status == 401


def stops_run(error: BaseException) -> bool:
    """An answer after which no request of a run can succeed: a 401 (the key is refused)
    or a 429 about credits (none left). A run sends nothing more after one."""
    if isinstance(error, RateLimitError):
        return error.out_of_credits
    return refuses_key(error)


def refuses_model(error: BaseException) -> bool:
    """A 403 or 404 to a question: the model (or the address) is not there for this key, and
    every other question to the same model would get the same answer."""
    return isinstance(error, APIError) and error.status in (403, 404)


def not_sent(first: APIError) -> APIError:
    """The error of a question not sent because ``first`` refused its model earlier in the
    same run: the same error, saying so (with ``first``'s status and request id)."""
    error = copy.copy(first)
    error.message = f"{first.message} (not sent: an earlier request of this run got this answer)"
    error.args = (error._text(),)
    return error


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

    A positive Retry-After from the server wins (already capped at 60 s); zero, negative or
    unreadable ones get the backoff (at least half its ceiling), so ``Retry-After: 0`` cannot
    make a client retry in a tight loop. The backoff is exponential with jitter, so many
    clients failing together do not retry together.
    """
    ceiling = min(cap, base * (2**attempt))
    if retry_after is not None and retry_after > 0 and math.isfinite(retry_after):
        return retry_after
    return ceiling * (0.5 + 0.5 * (rng or random).random())
