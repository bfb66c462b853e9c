"""The offline server's answer: honest, deterministic text and its tokens. No I/O here.

No model runs offline, so the answer says so and then reports what was measured from the
request: the model name, an optional system prompt, how many earlier messages the
conversation had, each image's format, pixel size and byte count, each video's container,
duration, pixel size and byte count, and the prompt. The same
request always gives the same text, so tests can compare exact strings.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._request import ChatRequest, ImageInfo, Message, VideoInfo

__all__ = [
    "IMAGE_PROMPT_TOKENS",
    "VIDEO_PROMPT_TOKENS",
    "Completion",
    "build_answer",
    "complete",
    "describe_image",
    "describe_video",
    "prompt_tokens",
    "split_tokens",
]

IMAGE_PROMPT_TOKENS = 64
"""Prompt tokens counted for each image (a fixed, made-up cost)."""

VIDEO_PROMPT_TOKENS = 256
"""Prompt tokens counted for each video (a fixed, made-up cost)."""

_INTRO_IMAGES = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)
_INTRO_VIDEOS = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from watching "
    "the videos."
)
_INTRO_TEXT = "This is reka_nb's offline server: no model ran, so nothing here is a real answer."
_WORD = re.compile(r"\S+\s*")


def describe_image(number: int, image: ImageInfo) -> str:
    """One sentence about an image, e.g. ``Image 1: JPEG, 451×300 px, 35,042 bytes.``."""
    if image.url is not None:
        return f"Image {number}: a URL, not fetched offline: {image.url}"
    unit = "byte" if image.nbytes == 1 else "bytes"
    return (
        f"Image {number}: {image.format}, {image.width}×{image.height} px, {image.nbytes:,} {unit}."
    )


def describe_video(number: int, video: VideoInfo) -> str:
    """One sentence about a video, e.g. ``Video 1: MP4, 2.0 s, 64×48 px, 2,469 bytes.``."""
    if video.url is not None:
        return f"Video {number}: a URL, not fetched offline: {video.url}"
    unit = "byte" if video.nbytes == 1 else "bytes"
    if not video.measured:
        return (
            f"Video {number}: {video.container}, {video.nbytes:,} {unit} (duration and pixel "
            "size not measured: PyAV is not installed)."
        )
    seconds = "unknown duration" if video.duration is None else f"{video.duration:.1f} s"
    return (
        f"Video {number}: {video.container}, {seconds}, {video.width}×{video.height} px, "
        f"{video.nbytes:,} {unit}."
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _last_user_index(messages: Sequence[Message]) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            return index
    return None


def build_answer(request: ChatRequest) -> str:
    """The full answer text for ``request`` (before ``max_tokens`` and ``stop`` apply)."""
    messages = request.messages
    images = [image for message in messages for image in message.images]
    videos = [video for message in messages for video in message.videos]
    intro = _INTRO_VIDEOS if videos else _INTRO_IMAGES if images else _INTRO_TEXT
    parts = [intro, f"Model: {request.model}."]
    system = " ".join(m.text for m in messages if m.role == "system" and m.text.strip())
    if system:
        parts.append("System: " + _sentence(system))
    last_user = _last_user_index(messages)
    user_turns = sum(1 for m in messages if m.role == "user")
    if user_turns > 1 and last_user is not None:
        earlier = sum(1 for m in messages[:last_user] if m.role != "system")
        parts.append(f"Earlier messages: {earlier}.")
    parts.extend(describe_image(n, image) for n, image in enumerate(images, start=1))
    parts.extend(describe_video(n, video) for n, video in enumerate(videos, start=1))
    prompt = messages[last_user].text.strip() if last_user is not None else ""
    parts.append(f"Prompt: {prompt}" if prompt else "Prompt: (no text).")
    return " ".join(parts)


def split_tokens(text: str) -> list[str]:
    """Split ``text`` into words, each with its following whitespace; they join back exactly.

    Whitespace before the first word belongs to the first token.
    """
    tokens = _WORD.findall(text)
    if not tokens:
        return [text] if text else []
    lead = len(text) - len(text.lstrip())
    if lead:
        tokens[0] = text[:lead] + tokens[0]
    return tokens


def prompt_tokens(request: ChatRequest) -> int:
    """Deterministic prompt size: words of every text part plus a fixed cost per image and
    per video."""
    words = sum(len(text.split()) for message in request.messages for text in message.texts)
    images = sum(len(message.images) for message in request.messages)
    videos = sum(len(message.videos) for message in request.messages)
    return words + IMAGE_PROMPT_TOKENS * images + VIDEO_PROMPT_TOKENS * videos


@dataclass(frozen=True)
class Completion:
    """The tokens to send, why generation ended, and the prompt size."""

    tokens: tuple[str, ...]
    finish_reason: str | None
    prompt_tokens: int

    @property
    def text(self) -> str:
        """All tokens joined: the answer as the client should reassemble it."""
        return "".join(self.tokens)


def complete(request: ChatRequest, reply: str | None = None) -> Completion:
    """Apply ``stop`` (cut before the first match) and ``max_tokens`` to the answer.

    ``reply``, when given, replaces the generated text. Finish reason: ``length`` when
    ``max_tokens`` cut the answer, otherwise ``stop``.
    """
    text = build_answer(request) if reply is None else reply
    cuts = [i for i in (text.find(s) for s in request.stop if s) if i >= 0]
    if cuts:
        text = text[: min(cuts)]
    tokens = split_tokens(text)
    finish = "stop"
    if request.max_tokens is not None and len(tokens) > request.max_tokens:
        tokens, finish = tokens[: request.max_tokens], "length"
    return Completion(tuple(tokens), finish, prompt_tokens(request))
