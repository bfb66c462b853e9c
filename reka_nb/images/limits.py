"""Limits checked while images are prepared: how many, how large all together, and how much
of an open file is read. Each raises ``ImageError`` saying which limit and how to change it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .._exceptions import ImageError


class Media(Protocol):
    """What the limits read of a prepared image or video (``inputs.Media``)."""

    @property
    def kind(self) -> str: ...

    @property
    def data(self) -> bytes | None: ...

    @property
    def url(self) -> str | None: ...


__all__ = ["check_count", "check_total", "read_limited", "sent_size"]

_READ_STEP = 1024 * 1024


def check_count(count: int, limit: int | None) -> None:
    """Images in one message, checked before any is read."""
    if limit is not None and count > limit:
        raise ImageError(
            f"{count} images in one message, over the limit of {limit}: send fewer "
            "(the limit is the max_images client option, or REKA_NB_MAX_IMAGES)"
        )


def check_total(prepared: Sequence[Media], limit: int | None, count: int) -> None:
    """ImageError as soon as the images prepared so far come to more than ``limit`` as sent
    (a video is held to its own limit instead, see ``video``)."""
    if limit is None:
        return
    total = sum(sent_size(p) for p in prepared if p.kind == "image")  # videos: own limit
    if total > limit:
        upto = f"the first {len(prepared)} of {count} images" if count > 1 else "the image"
        raise ImageError(
            f"{upto} come to {total:,} bytes as sent, over the limit of {limit:,} bytes for one "
            "request: send fewer or smaller images (the limit is the max_request_bytes client "
            "option, or REKA_NB_MAX_REQUEST_BYTES)"
        )


def sent_size(image: Media) -> int:
    """Bytes the image takes in the request: its base64, or its URL."""
    if image.data is None:
        return len(image.url or "")
    return (len(image.data) + 2) // 3 * 4


def read_limited(file: Any, label: str, limit: int) -> object:
    """What ``file.read()`` gives, read in 1 MB steps and refused past ``limit`` bytes: an
    open ``/dev/zero`` (or a pipe that never ends) is never read to exhaustion."""
    out = bytearray()
    while True:
        try:
            chunk = file.read(_READ_STEP)
        except TypeError:  # a read() without a size: one call, as before
            return file.read() if not out else bytes(out)
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            return chunk if not out else bytes(out)
        if not chunk:
            return bytes(out)
        out += chunk
        if len(out) > limit:
            raise ImageError(
                f"{label} holds more than the {limit:,} bytes an image file may have "
                "(is it a device such as /dev/zero?)"
            )
