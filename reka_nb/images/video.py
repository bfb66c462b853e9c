"""Short videos for ``video_url`` parts: container, duration and pixel size read from the bytes.

MP4 and MOV (ISO base media) keep their duration in the ``mvhd`` box and the picture size in
the video track's ``tkhd`` box; WebM (Matroska's EBML) in ``Segment/Info`` and
``Tracks/TrackEntry/Video``. Both are read here without decoding anything, so no video library
is needed to send a clip. A poster frame for the notebook's waiting state needs a decoder:
PyAV (``pip install "reka-nb[video]"``), imported only when a poster is asked for.

Reka answers best for clips under ``LONG_VIDEO_SECONDS``: longer ones get a
``LongVideoWarning``. Clips over the byte limit (``max_bytes``, default ``MAX_VIDEO_BYTES`` or
the ``REKA_NB_MAX_VIDEO_MB`` environment variable) are refused with a ``VideoError``.
"""

from __future__ import annotations

import base64
import io
import math
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .._exceptions import LongVideoWarning, VideoError

__all__ = [
    "LONG_VIDEO_SECONDS",
    "MAX_VIDEO_BYTES",
    "VIDEO_EXTENSIONS",
    "PreparedVideo",
    "VideoInfo",
    "max_video_bytes",
    "prepare_video",
    "read_video_info",
    "sniff_video",
]

LONG_VIDEO_SECONDS = 30.0
MAX_VIDEO_BYTES = 16 * 1024 * 1024
"""Default byte limit: its base64 fits the request sizes servers commonly take."""
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".webm")
"""File name endings of an https URL sent as a video (the bytes are not fetched here)."""

MIME = {"MP4": "video/mp4", "MOV": "video/quicktime", "WebM": "video/webm"}
_MOV_FIRST_BOXES = (b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"


@dataclass(frozen=True)
class VideoInfo:
    """What the container says: its name, seconds and pixel size (None when it does not say)."""

    container: str
    duration: float | None
    width: int | None
    height: int | None


def sniff_video(data: bytes) -> str | None:
    """``MP4``, ``MOV``, ``WebM`` (or ``Matroska``) from the first bytes; None for anything else."""
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "MOV" if data[8:12] == b"qt  " else "MP4"
    if len(data) >= 8 and data[4:8] in _MOV_FIRST_BOXES:
        return "MOV"
    if data[:4] == _EBML_MAGIC:
        doctype = _ebml_doctype(data)
        return "WebM" if doctype == "webm" else "Matroska" if doctype == "matroska" else None
    return None


def read_video_info(data: bytes, label: str = "the video") -> VideoInfo:
    """Container, duration and size of an MP4, MOV or WebM clip; VideoError when unreadable."""
    container = sniff_video(data)
    if container == "Matroska":
        raise VideoError(f"{label} is a Matroska (.mkv) file: send MP4, MOV or WebM")
    if container is None:
        raise VideoError(f"{label} is not an MP4, MOV or WebM video")
    try:
        return _scan(data, container)[0]
    except (IndexError, ValueError, struct.error, ArithmeticError) as exc:
        raise VideoError(f"{label} is a damaged {container} file ({exc})") from None


def max_video_bytes() -> int:
    """The byte limit now: ``REKA_NB_MAX_VIDEO_MB`` when set, else ``MAX_VIDEO_BYTES``."""
    text = os.environ.get("REKA_NB_MAX_VIDEO_MB", "").strip()
    if not text:
        return MAX_VIDEO_BYTES
    try:
        megabytes = float(text)
    except ValueError:
        megabytes = -1.0
    if not megabytes > 0:
        raise VideoError(
            f"REKA_NB_MAX_VIDEO_MB must be a positive number of megabytes, not {text!r}"
        )
    return int(megabytes * 1024 * 1024)


@dataclass(frozen=True, repr=False)
class PreparedVideo:
    """A clip checked for sending: ``data`` bytes (sent as a data URL) or a remote ``url``."""

    data: bytes | None
    url: str | None
    mime: str | None
    container: str | None
    duration: float | None
    width: int | None
    height: int | None
    source: str

    kind = "video"
    converted = False  # videos are sent as given

    @property
    def format(self) -> str | None:
        return self.container

    @property
    def nbytes(self) -> int | None:
        return None if self.data is None else len(self.data)

    def to_url(self) -> str:
        """The value of a ``video_url`` part: a ``data:`` URL, or the remote URL as given."""
        if self.data is None:
            return self.url or ""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def summary(self) -> str:
        """``MP4 video, 2.0 s, 64×48 px, 2,469 bytes`` (what is known of it)."""
        if self.data is None:
            return "video URL (not fetched here)"
        parts = [f"{self.container} video"]
        if self.duration is not None:
            parts.append(f"{self.duration:.1f} s")
        if self.width and self.height:
            parts.append(f"{self.width}×{self.height} px")
        parts.append(f"{len(self.data):,} bytes")
        return ", ".join(parts)

    def thumbnail(self, max_side: int = 256) -> tuple[bytes, str] | None:
        """A poster frame (JPEG) when a decoder (PyAV) is installed; else None."""
        if self.data is None:
            return None
        try:
            import av
        except ImportError:
            return None
        return _poster(av, self.data, max_side)

    def __repr__(self) -> str:
        if self.data is None:
            return f"<PreparedVideo URL {self.url!r}>"
        return f"<PreparedVideo {self.summary()} from {self.source!r}>"


def prepare_video(
    data: bytes, source: str, label: str, max_bytes: int | None = None
) -> PreparedVideo:
    """Check a clip's bytes: within the byte limit (checked first, before any parsing), a known
    container with a believable header; warn when it is long."""
    limit = max_video_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise VideoError(
            f"{label} is {len(data):,} bytes, over the {limit:,}-byte limit for a video "
            "(set REKA_NB_MAX_VIDEO_MB to change it, or send a shorter or smaller clip)"
        )
    info = read_video_info(data, label)
    if info.duration is not None and info.duration > LONG_VIDEO_SECONDS:
        warnings.warn(
            LongVideoWarning(
                f"{label} lasts {info.duration:.1f} s: Reka answers best for videos under "
                f"{LONG_VIDEO_SECONDS:.0f} s"
            ),
            stacklevel=2,
        )
    return PreparedVideo(
        data,
        None,
        MIME[info.container],
        info.container,
        info.duration,
        info.width,
        info.height,
        source,
    )


def video_url(url: str) -> PreparedVideo:
    """An https URL sent as is (its bytes are not fetched, so nothing is measured)."""
    return PreparedVideo(None, url, None, None, None, None, None, "URL")


# -- reading headers within a budget --------------------------------------------------------

MAX_STEPS = 200_000
"""Most boxes/elements one clip's header may make the reader visit: a crafted file with
millions of tiny elements is refused instead of read for seconds."""
MAX_VIDEO_SECONDS = 7 * 24 * 3600.0
"""Longest duration believed: a header that says more (or NaN, infinite, negative) is damaged."""
MAX_SIDE = 65_535
"""Widest or tallest picture believed (MP4's 16.16 fixed point cannot say more)."""
_MAX_UINT_BYTES = 8  # Matroska's unsigned integers have at most 8 bytes


class _Budget:
    """Counts the boxes/elements visited; ValueError when a header asks for more than MAX_STEPS."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise ValueError(f"more than {MAX_STEPS:,} boxes or elements in its header")


def _scan(data: bytes, container: str) -> tuple[VideoInfo, int]:
    """The header's facts and the boxes/elements visited to read them (a measure of the work)."""
    budget = _Budget()
    info = _webm_info(data, budget) if container == "WebM" else _mp4_info(data, container, budget)
    return _checked(info), budget.steps


def _checked(info: VideoInfo) -> VideoInfo:
    """ValueError for a duration or size no real clip has."""
    seconds = info.duration
    if seconds is not None and not (math.isfinite(seconds) and 0 <= seconds <= MAX_VIDEO_SECONDS):
        shown = f"{seconds:.3g}" if math.isfinite(seconds) else str(seconds)
        raise ValueError(f"its header says it lasts {shown} s, which no clip does")
    for name, side in (("width", info.width), ("height", info.height)):
        if side is not None and not 0 <= side <= MAX_SIDE:
            raise ValueError(f"its header gives a {name} over {MAX_SIDE:,} pixels")
    return info


# -- MP4 / MOV ------------------------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int, budget: _Budget) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, box end) of each box between start and end."""
    pos = start
    while pos + 8 <= end:
        budget.step()
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"the {kind.decode('latin-1')!r} box runs past the end")
        yield kind, pos + header, pos + size
        pos += size


def _child(
    data: bytes, start: int, end: int, kind: bytes, budget: _Budget
) -> tuple[int, int] | None:
    for found, body, stop in _boxes(data, start, end, budget):
        if found == kind:
            return body, stop
    return None


def _mp4_info(data: bytes, container: str, budget: _Budget) -> VideoInfo:
    moov = _child(data, 0, len(data), b"moov", budget)
    if moov is None:
        raise ValueError("no 'moov' box: the file is cut short or was never finished")
    duration = width = height = None
    for kind, body, stop in _boxes(data, *moov, budget):
        if kind == b"mvhd":
            if data[body] == 1:
                timescale, length = struct.unpack_from(">IQ", data, body + 20)
            else:
                timescale, length = struct.unpack_from(">II", data, body + 12)
            if timescale and length != (1 << (64 if data[body] == 1 else 32)) - 1:
                duration = length / timescale
        elif kind == b"trak" and width is None:
            tkhd = _child(data, body, stop, b"tkhd", budget)
            mdia = _child(data, body, stop, b"mdia", budget)
            hdlr = _child(data, *mdia, b"hdlr", budget) if mdia else None
            if tkhd and hdlr and data[hdlr[0] + 8 : hdlr[0] + 12] == b"vide":
                w, h = struct.unpack_from(">II", data, tkhd[1] - 8)
                width, height = w >> 16, h >> 16
    return VideoInfo(container, duration, width or None, height or None)


# -- WebM (EBML) ----------------------------------------------------------------------------

_SEGMENT, _INFO, _TRACKS, _CLUSTER = 0x18538067, 0x1549A966, 0x1654AE6B, 0x1F43B675
_TIMESCALE, _DURATION, _TRACK_ENTRY, _TRACK_TYPE = 0x2AD7B1, 0x4489, 0xAE, 0x83
_DEFAULT_DURATION, _VIDEO, _PIXEL_WIDTH, _PIXEL_HEIGHT = 0x23E383, 0xE0, 0xB0, 0xBA
_TIMECODE, _SIMPLE_BLOCK, _BLOCK_GROUP, _BLOCK = 0xE7, 0xA3, 0xA0, 0xA1


def _vint(data: bytes, pos: int, *, size: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer: (value, length, all ones = unknown size)."""
    first = data[pos]
    length, mask = 1, 0x80
    while not first & mask:
        length, mask = length + 1, mask >> 1
        if length > 8:
            raise ValueError("an EBML number longer than 8 bytes")
    value = first & (mask - 1) if size else first
    for byte in data[pos + 1 : pos + length]:
        value = value << 8 | byte
    if pos + length > len(data):
        raise ValueError("an EBML number runs past the end")
    unknown = size and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _elements(data: bytes, start: int, end: int, budget: _Budget) -> Iterator[tuple[int, int, int]]:
    """(id, body start, body end) of each element between start and end."""
    pos = start
    while pos < end:
        budget.step()
        ident, n, _ = _vint(data, pos, size=False)
        length, m, unknown = _vint(data, pos + n, size=True)
        body = pos + n + m
        stop = end if unknown else min(body + length, end)
        yield ident, body, stop
        pos = stop


def _uint(data: bytes, start: int, end: int) -> int:
    """An EBML unsigned integer (at most 8 bytes: a longer one is damage, not a number)."""
    if end - start > _MAX_UINT_BYTES:
        raise ValueError(f"a {end - start:,}-byte number where at most 8 bytes fit")
    return int.from_bytes(data[start:end], "big")


def _ebml_doctype(data: bytes) -> str | None:
    budget = _Budget()
    try:
        for ident, body, stop in _elements(data, 0, min(len(data), 4096), budget):
            if ident == 0x1A45DFA3:
                for child, start, end in _elements(data, body, stop, budget):
                    if child == 0x4282:
                        return data[start:end].rstrip(b"\0").decode("ascii", "replace")
            return None
    except (IndexError, ValueError):
        return None
    return None


def _webm_info(data: bytes, budget: _Budget) -> VideoInfo:
    scale, duration, width, height = 1_000_000, None, None, None
    frame = 0  # nanoseconds a frame lasts (DefaultDuration), for the block fallback
    last: int | None = None  # the latest block time, when Info has no Duration (live recordings)
    for ident, body, stop in _elements(data, 0, len(data), budget):
        if ident != _SEGMENT:
            continue
        for kind, start, end in _elements(data, body, stop, budget):
            if kind == _INFO:
                for child, s, e in _elements(data, start, end, budget):
                    if child == _TIMESCALE:
                        scale = _uint(data, s, e) or scale
                    elif child == _DURATION and e - s in (4, 8):
                        duration = struct.unpack(">f" if e - s == 4 else ">d", data[s:e])[0]
            elif kind == _TRACKS:
                for entry, s, e in _elements(data, start, end, budget):
                    if entry == _TRACK_ENTRY and width is None:
                        track = _video_track(data, s, e, budget)
                        width, height, frame = track or (None, None, 0)
            elif kind == _CLUSTER and duration is None:  # only a recording without one
                last = _latest_block(data, start, end, last, budget)
    if duration is not None:
        seconds: float | None = duration * scale / 1e9
    elif last is not None:
        seconds = last * scale / 1e9 + frame / 1e9
    else:
        seconds = None
    return VideoInfo("WebM", seconds, width, height)


def _video_track(
    data: bytes, start: int, end: int, budget: _Budget
) -> tuple[int | None, int | None, int] | None:
    kind, width, height, frame = None, None, None, 0
    for ident, s, e in _elements(data, start, end, budget):
        if ident == _TRACK_TYPE:
            kind = _uint(data, s, e)
        elif ident == _DEFAULT_DURATION:
            frame = _uint(data, s, e)
        elif ident == _VIDEO:
            for child, s2, e2 in _elements(data, s, e, budget):
                if child == _PIXEL_WIDTH:
                    width = _uint(data, s2, e2)
                elif child == _PIXEL_HEIGHT:
                    height = _uint(data, s2, e2)
    return (width, height, frame) if kind == 1 else None


def _latest_block(
    data: bytes, start: int, end: int, last: int | None, budget: _Budget
) -> int | None:
    base = 0
    for ident, s, e in _elements(data, start, end, budget):
        if ident == _TIMECODE:
            base = _uint(data, s, e)
        elif ident in (_SIMPLE_BLOCK, _BLOCK_GROUP):
            block = s
            if ident == _BLOCK_GROUP:
                found = [s2 for child, s2, _ in _elements(data, s, e, budget) if child == _BLOCK]
                if not found:
                    continue
                block = found[0]
            _, n, _ = _vint(data, block, size=True)
            at = base + struct.unpack_from(">h", data, block + n)[0]
            last = at if last is None else max(last, at)
    return last


# -- poster frame (optional decoder) --------------------------------------------------------


def _poster(av: Any, data: bytes, max_side: int) -> tuple[bytes, str] | None:
    """The first frame as a JPEG of at most ``max_side``; None when it cannot be decoded."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0))
            image = frame.to_image()
    except Exception:  # a poster is a courtesy: a clip PyAV cannot read still gets sent
        return None
    image.thumbnail((max_side, max_side))
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=80)
    return out.getvalue(), "image/jpeg"
