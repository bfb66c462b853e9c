"""Pillow decoding and encoding behind ``images.prepare_image``.

Given bytes or a PIL image, these functions decide whether the image can be sent as is and
otherwise downscale it and re-encode it as JPEG or PNG. They return plain values (``Encoded``:
bytes, format, size, converted); ``images`` turns them into a ``PreparedImage``. Pillow's
warnings are silenced here and its errors, decompression bombs included, become ``ImageError``.
"""

from __future__ import annotations

import io
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from .._exceptions import ImageError

__all__ = ["MIME", "Encoded", "encode_bytes", "encode_pixels", "thumbnail"]

MIME = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",  # a camera JPEG with extra frames appended; its first frame is a JPEG
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
}
_JPEG_FORMATS = ("JPEG", "MPO")
# Tuned with benchmarks/bench_images.py: a 12 MP photo comes out under 1/8 of its base64 size;
# quality 70 met that by only 1%, 68 looks the same and leaves room.
_JPEG_QUALITY = 68
_LOWER_QUALITIES = (55, 40)  # tried in turn when an image is still over max_bytes
_SHRINK = 0.75  # then the image shrinks by this factor per step...
_MIN_SIDE = 32  # ...until its long side would drop below this
# A JPEG may be decoded at a DCT scale down to 90% of the target size and scaled up the rest:
# 4000x3000 -> 2048 decodes at 2000x1500, twice as fast, with no visible loss.
_DRAFT_SLACK = 0.9
_PHOTO_MIN_PIXELS = 256 * 256  # smaller RGB images stay PNG
_GRAPHIC_MAX_COLORS = 1024  # a 64x64 sample with more distinct colours than this is a photo
_RESAMPLE = Image.Resampling.BILINEAR  # antialiased; BICUBIC took 158 ms on a 10 MP photo
_LOAD_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


class Encoded(NamedTuple):
    """Bytes ready to send, their format (a key of ``MIME``) and size as displayed.

    ``converted`` is True when ``data`` differs from the bytes given (for ``encode_bytes``) or
    the image was downscaled (for ``encode_pixels``).
    """

    data: bytes
    format: str
    size: tuple[int, int]
    converted: bool


def encode_bytes(data: bytes, label: str, max_side: int, max_bytes: int) -> Encoded:
    """The given bytes when Pillow reads them as a format sent as is within the limits, else
    the image downscaled and re-encoded; ``label`` names the input in errors."""
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    with _pillow(label):
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError(f"{label} is not an image Pillow can read") from None
        except _LOAD_ERRORS as exc:
            raise ImageError(f"{label} is truncated or corrupt ({exc})") from exc
        fmt = img.format or "unknown"
        size = img.size
        if fmt in MIME and max(size) <= max_side and len(data) <= max_bytes:
            if fmt in _JPEG_FORMATS:  # the 1/8 DCT scale still reads every byte: truncation shows
                img.draft(img.mode, (max(1, size[0] // 8), max(1, size[1] // 8)))
            _load(img, label)  # GIF/WebP: the first frame
            shown = size[::-1] if _turned(img) else size  # as displayed, like a re-encoded one
            return Encoded(data, fmt, shown, False)
        if fmt in _JPEG_FORMATS and max(size) > max_side:
            img.draft("RGB", _draft_size(size, max_side))
        _load(img, label)  # an animated GIF or WebP over the limits: its first frame is sent
        out, out_fmt, final = _reencode(img, size, fmt, label, max_side, max_bytes)
    return Encoded(out, out_fmt, final.size, True)


def encode_pixels(img: Image.Image, label: str, max_side: int, max_bytes: int) -> Encoded:
    """Encode an in-memory image (never modified), downscaled if over max_side."""
    with _pillow(label):
        _load(img, label)
        out, fmt, final = _reencode(img, img.size, img.format, label, max_side, max_bytes)
    resized = sorted(final.size) != sorted(img.size)  # sorted: an EXIF quarter turn is no resize
    return Encoded(out, fmt, final.size, resized)


def thumbnail(data: bytes, label: str, max_side: int, max_bytes: int) -> tuple[bytes, str]:
    """Encoded image bytes fitted into ``max_side``, and their mime type: a JPEG, or a PNG when
    the image has alpha."""
    with _pillow(label):
        img = Image.open(io.BytesIO(data))
        size = img.size
        if img.format in _JPEG_FORMATS:
            img.draft("RGB", _draft_size(size, max_side))
        _load(img, label)
        # "JPEG" as the source format: a thumbnail is JPEG unless it has alpha
        out, fmt, _ = _reencode(img, size, "JPEG", label, max_side, max_bytes)
    return out, MIME[fmt]


class _QuietWarnings:
    """One ``catch_warnings`` shared by every thread running Pillow code at once.

    ``catch_warnings`` is process-wide, not per thread: two threads each entering their own
    and leaving out of order would leave the process with the "ignore" filters for good
    (describe_many prepares images in several threads). So the first thread in enters it and
    the last one out leaves it, which restores the filters exactly as they were.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._context: warnings.catch_warnings | None = None

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                self._context = warnings.catch_warnings()
                self._context.__enter__()
                warnings.simplefilter("ignore")
                warnings.simplefilter("error", Image.DecompressionBombWarning)
            self._depth += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0 and self._context is not None:
                self._context.__exit__(None, None, None)
                self._context = None


_quiet = _QuietWarnings()


@contextmanager
def _pillow(label: str) -> Iterator[None]:
    """Run Pillow code: its warnings silenced, decompression bombs raised as ImageError."""
    with _quiet:
        try:
            yield
        except ImageError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            found = re.search(r"\((\d+) pixels\)", str(exc))
            count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
            raise ImageError(
                f"{label} has {count}, over the limit of {Image.MAX_IMAGE_PIXELS:,} "
                "(PIL.Image.MAX_IMAGE_PIXELS): refusing a possible decompression bomb"
            ) from exc
        except _LOAD_ERRORS as exc:
            raise ImageError(f"{label} could not be processed by Pillow ({exc})") from exc


def _load(img: Image.Image, label: str) -> None:
    try:
        img.load()
    except _LOAD_ERRORS as exc:
        raise ImageError(f"{label} is truncated or corrupt ({exc})") from exc


def _reencode(
    img: Image.Image,
    size: tuple[int, int],
    src_format: str | None,
    label: str,
    max_side: int,
    max_bytes: int,
) -> tuple[bytes, str, Image.Image]:
    """Fit ``size`` (the size before any draft) into max_side, upright, as JPEG or PNG."""
    width, height = size
    if width == 0 or height == 0:
        raise ImageError(f"{label} has no pixels ({width}x{height})")
    scale = min(1.0, max_side / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    given = img
    img = _normal_mode(img)
    if img.size != target:
        img = img.resize(target, _RESAMPLE)
    # EXIF orientation is dropped on re-encoding: apply it (in place on our own copy)
    if img is given:
        img = ImageOps.exif_transpose(img)
    else:
        ImageOps.exif_transpose(img, in_place=True)
    fmt = _choose_format(img, src_format)
    if fmt == "JPEG" and img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    qualities = (_JPEG_QUALITY, *_LOWER_QUALITIES) if fmt == "JPEG" else (0,)
    while True:
        for quality in qualities:
            data = _save(img, fmt, quality, label)
            if len(data) <= max_bytes:
                return data, fmt, img
        w, h = img.size
        if max(w, h) * _SHRINK < _MIN_SIDE:
            raise ImageError(f"{label} does not fit in {max_bytes:,} bytes even at {w}x{h}")
        img = img.resize((max(1, int(w * _SHRINK)), max(1, int(h * _SHRINK))), _RESAMPLE)


def _normal_mode(img: Image.Image) -> Image.Image:
    """L, RGB, RGBA or I;16 (16-bit grey); RGBA only when some pixel is see-through."""
    if img.mode in ("L", "RGB", "I;16") and "transparency" not in img.info:
        return img
    if img.mode != "RGBA":
        see_through = img.mode in ("LA", "La", "PA", "RGBa") or "transparency" in img.info
        grey = img.mode in ("1", "L", "I", "F") or img.mode.startswith("I;16")
        img = img.convert("RGBA" if see_through else ("L" if grey else "RGB"))
    if img.mode == "RGBA" and img.getchannel("A").getextrema()[0] == 255:
        img = img.convert("RGB")
    return img


def _choose_format(img: Image.Image, src_format: str | None) -> str:
    """JPEG for photos (from a JPEG, or a large RGB image with many colours), else PNG."""
    if img.mode not in ("L", "RGB"):
        return "PNG"
    if src_format in _JPEG_FORMATS:
        return "JPEG"
    if img.mode != "RGB" or img.width * img.height < _PHOTO_MIN_PIXELS:
        return "PNG"
    sample = img.resize((64, 64), Image.Resampling.NEAREST)
    return "JPEG" if sample.getcolors(_GRAPHIC_MAX_COLORS) is None else "PNG"


def _save(img: Image.Image, fmt: str, quality: int, label: str) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"icc_profile": img.info.get("icc_profile")}
    if fmt == "JPEG":
        options.update(quality=quality, optimize=True)
    try:
        img.save(buffer, fmt, **options)
    except (OSError, ValueError) as exc:
        raise ImageError(f"{label} could not be encoded as {fmt} ({exc})") from exc
    return buffer.getvalue()


def _draft_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    scale = max_side / max(size) * _DRAFT_SLACK
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def _turned(img: Image.Image) -> bool:
    """Whether the EXIF orientation swaps width and height (a quarter turn)."""
    return img.getexif().get(0x0112) in (5, 6, 7, 8)
