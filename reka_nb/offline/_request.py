"""Value objects for a chat request the offline server accepted, or the reason it did not."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChatRequest", "ImageInfo", "Message", "Rejection", "VideoInfo"]


@dataclass(frozen=True)
class ImageInfo:
    """What the server measured about one image part.

    For a ``data:`` URL: the Pillow format name, pixel size and decoded byte count.
    For an ``https://`` URL (never fetched): only ``url``.
    """

    format: str = ""
    width: int = 0
    height: int = 0
    nbytes: int = 0
    url: str | None = None


@dataclass(frozen=True)
class VideoInfo:
    """What the server measured about one video part.

    For a ``data:`` URL: the container (from the first bytes), seconds and pixel size (from
    PyAV; ``measured`` is False when PyAV is not installed) and the decoded byte count.
    For an ``https://`` URL (never fetched): only ``url``.
    """

    container: str = ""
    duration: float | None = None
    width: int = 0
    height: int = 0
    nbytes: int = 0
    url: str | None = None
    measured: bool = True


@dataclass(frozen=True)
class Message:
    """One message, reduced to its role, text parts and images, in order."""

    role: str
    texts: tuple[str, ...] = ()
    images: tuple[ImageInfo, ...] = ()
    videos: tuple[VideoInfo, ...] = ()

    @property
    def text(self) -> str:
        """The text parts joined by single spaces."""
        return " ".join(self.texts)


@dataclass(frozen=True)
class ChatRequest:
    """A valid chat request: what the answer and its limits depend on."""

    model: str
    messages: tuple[Message, ...]
    stream: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejection:
    """An error answer decided by validation: HTTP ``status`` and the JSON ``body``."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)
