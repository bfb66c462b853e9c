"""The offline server's account limits: a requests-per-minute bucket, credits, and what
each request asked about (its prompt and images' hashes), so tests can count questions.

The bucket refills at ``requests_per_minute / 60`` a second and holds at most one second's
worth (at least 2), like a service that tolerates a little jitter but not a burst. Every chat
answer carries ``x-ratelimit-limit``, ``x-ratelimit-remaining`` and ``x-ratelimit-reset``
(seconds until the next request is allowed, 0 when one is); a request over the limit gets
429 with ``Retry-After`` (whole seconds, rounded up). An account out of credits gets 429
with Reka's wording, "insufficient balance", which waiting does not cure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["INSUFFICIENT_BALANCE", "RateBucket", "image_digest", "question_of"]

INSUFFICIENT_BALANCE = "Insufficient balance: top up the account to continue"
"""The message of an out-of-credits 429 (Reka says "insufficient balance")."""


class RateBucket:
    """A token bucket at ``requests_per_minute``; thread-safe."""

    def __init__(self, requests_per_minute: float, clock: Callable[[], float] = time.monotonic):
        if not requests_per_minute > 0:
            raise ValueError(f"requests_per_minute must be above 0, not {requests_per_minute!r}")
        self.rpm = float(requests_per_minute)
        self.capacity = max(2.0, self.rpm / 60.0)
        self._rate = self.rpm / 60.0
        self._tokens = self.capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, dict[str, str]]:
        """(allowed, the x-ratelimit-* headers to send); takes a token when allowed."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            allowed = self._tokens >= 1.0
            if allowed:
                self._tokens -= 1.0
            remaining = math.floor(self._tokens)
            wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate
        headers = {
            "x-ratelimit-limit": f"{self.rpm:g}",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": f"{wait:.3f}",
        }
        if not allowed:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        return allowed, headers


def question_of(body: Any) -> tuple[str | None, tuple[str, ...]]:
    """(the last user message's text, sha256 hex of each of its images) from a chat body.

    A remote image counts by its URL. Anything unexpected gives (None, ()).
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None, ()
    for message in reversed(body["messages"]):
        if isinstance(message, dict) and message.get("role") == "user":
            break
    else:
        return None, ()
    content = message.get("content")
    if isinstance(content, str):
        return content, ()
    if not isinstance(content, list):
        return None, ()
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif part.get("type") == "image_url":
            url = part.get("image_url")
            if isinstance(url, dict):
                url = url.get("url")
            if isinstance(url, str):
                images.append(_image_digest(url))
    return " ".join(texts), tuple(images)


def image_digest(data: bytes) -> str:
    """The digest ``question_of`` gives an image with these bytes."""
    return hashlib.sha256(data).hexdigest()


def _image_digest(url: str) -> str:
    if not url.startswith("data:"):
        return url
    _, _, payload = url.partition(",")
    try:
        return image_digest(base64.b64decode(payload, validate=False))
    except (binascii.Error, ValueError):
        return "invalid"
