"""Turn anything a notebook user calls an image into what is sent to Reka.

``prepare_image`` takes a path, an https:// or ``data:`` URL, bytes, an open binary file, a PIL
image, a numpy array, a matplotlib figure or an ipywidgets ``FileUpload`` (or its value) and
returns a ``PreparedImage``. Everything is checked here, before any request: a bad input raises
``ImageError`` naming the input, and nothing is sent.

- The format comes from the bytes (Pillow), never from the file name.
- JPEG, PNG, WebP and GIF within ``max_side`` and ``max_bytes`` are sent byte-identical, less
  their metadata (``metadata.py``; ``keep_metadata=True`` keeps it), the orientation kept.
- Larger images are downscaled and re-encoded: JPEG for photos, PNG for graphics and alpha.
  A JPEG about twice ``max_side`` or more is decoded at a reduced DCT scale (``draft``).
- Other formats Pillow reads (BMP, TIFF, ICO, PPM, ...) are converted to PNG or JPEG.

This module turns inputs into bytes or PIL images; ``codec`` decodes and encodes them.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from PIL import Image

from .._exceptions import ImageError
from .codec import MIME, Encoded, encode_bytes, encode_pixels, thumbnail
from .limits import check_count, check_total, read_limited
from .lists import expand
from .metadata import strip_metadata
from .urls import short_url, shorten_data_urls
from .video import VIDEO_EXTENSIONS, PreparedVideo, prepare_video, sniff_video, video_url

__all__ = [
    "LIGHT_BYTES",
    "MAX_BYTES",
    "MAX_SIDE",
    "READ_AGAIN",
    "THUMBNAIL_SIDE",
    "Media",
    "PreparedImage",
    "ReadAgain",
    "deferred_thumbnail",
    "light",
    "prepare_image",
    "prepare_images",
    "row_thumbnail",
    "shorten_data_urls",
    "thumbnail_again",
]

MAX_SIDE = 2048
MAX_BYTES = 4 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024 * 1024  # read no larger file: no image worth sending is this big
THUMBNAIL_SIDE = 256

_ACCEPTED = (
    "pass a path, URL, bytes, an open binary file, a PIL image, a numpy array "
    "or a matplotlib figure"
)


@dataclass(frozen=True, repr=False)
class PreparedImage:
    """An image checked and encoded for sending: either ``data`` bytes or a remote ``url``.

    ``converted`` is True when the image was re-encoded (downscaled or another format); for
    pixel inputs (PIL image, numpy array) it is True when downscaled. An image that was not
    re-encoded is sent as given, its pixel data byte for byte, less its metadata (EXIF with
    the GPS position, XMP, comments): ``stripped`` counts the bytes removed (0 with
    ``keep_metadata=True``). The EXIF orientation stays, so the picture is still upright.
    """

    data: bytes | None
    url: str | None
    mime: str | None
    format: str | None
    width: int | None
    height: int | None
    source: str
    original_size: int | None
    converted: bool
    stripped: int = 0

    kind = "image"  # the content part it becomes: image_url (a PreparedVideo's is "video")

    def to_url(self) -> str:
        """The value of an ``image_url`` part: a ``data:`` URL, or the remote URL as given."""
        if self.data is None:
            return self.url or ""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    def thumbnail(self, max_side: int = THUMBNAIL_SIDE) -> tuple[bytes, str] | None:
        """Bytes and mime type for display, at most ``max_side``; None for a remote URL.

        Always re-encoded (a JPEG, or a PNG when it has alpha), even when small enough: the
        original's metadata (EXIF, GPS, camera) must not travel into widgets or notebooks.
        """
        if self.data is None or self.mime is None:
            return None
        return thumbnail(self.data, f"image from {self.source!r}", max_side, MAX_BYTES)

    def __repr__(self) -> str:
        if self.data is None:
            return f"<PreparedImage URL {short_url(self.url or '')!r}>"
        text = f"<PreparedImage {self.format} {self.width}x{self.height} {len(self.data):,} bytes"
        text += f" from {self.source!r}"
        if self.converted:
            was = f" from {self.original_size:,} bytes" if self.original_size else ""
            text += f" (re-encoded{was})"
        elif self.stripped:
            text += f" ({self.stripped:,} bytes of metadata removed)"
        return text + ">"


Media = PreparedImage | PreparedVideo
"""What an input becomes: an image, or a video sent as it is."""


def deferred_thumbnail(
    obj: object, prepared: Media, max_side: int
) -> tuple[bytes, str] | Callable[[], tuple[bytes, str] | None] | None:
    """A thumbnail of ``obj``'s first image (``prepared``), or a function making it when called.

    An input that reads the same twice (a path, bytes, an upload's content, a PIL image, a
    numpy array) is read again only when the thumbnail is wanted, so a run whose table is
    never shown makes none and keeps no image bytes for them; an open file or a figure is
    made into a thumbnail now, from ``prepared``. A remote URL has none.
    """
    made = row_thumbnail(obj, prepared, max_side)
    if isinstance(made, ReadAgain):
        return _ThumbnailAgain(obj, max_side)
    return made


LIGHT_BYTES = 64 * 1024
"""A file or bytes up to this size is prepared where it is asked for, not in a worker
thread: reading and checking it costs less than handing it to a thread and back."""


def light(obj: object) -> bool:
    """True when ``obj`` is best prepared on the event loop, not in a worker thread: an
    https:// URL, or an image file (not a video) or bytes of at most ``LIGHT_BYTES``, or a
    list of them. A thread's round trip (the GIL handed to and fro) costs more CPU than such
    an image's preparing saves the loop, which is at most about a millisecond for an ordinary
    one (a 64 KiB JPEG or PNG: 0.7-1 ms) and about 0.2 s for a crafted one (Pillow refuses
    more than ``MAX_IMAGE_PIXELS`` before decoding)."""
    if isinstance(obj, (list, tuple)):
        return bool(obj) and all(_light(item) for item in obj)
    return _light(obj)


def _light(obj: object) -> bool:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return len(obj) <= LIGHT_BYTES
    if isinstance(obj, os.PathLike):
        obj = os.fspath(obj)
    if not isinstance(obj, str):
        return False
    head = obj.lstrip()[:8].lower()
    if head.startswith("https://"):
        return True
    if head.startswith(("http://", "data:")) or obj.lower().endswith(VIDEO_EXTENSIONS):
        return False
    try:
        info = os.stat(os.path.expanduser(obj))
    except (OSError, ValueError):
        return False  # the worker thread says what is wrong with it
    return stat.S_ISREG(info.st_mode) and info.st_size <= LIGHT_BYTES


def _reads_again(obj: object) -> bool:
    if isinstance(obj, (str, os.PathLike, bytes, Image.Image)):
        return True
    if isinstance(obj, Mapping):
        return isinstance(obj.get("content"), bytes)
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(obj, numpy.ndarray)


class _ThumbnailAgain:
    """Makes the thumbnail of an input read again, when called (``thumbnail_again``)."""

    __slots__ = ("max_side", "obj")

    def __init__(self, obj: object, max_side: int) -> None:
        self.obj = obj
        self.max_side = max_side

    def __call__(self) -> tuple[bytes, str] | None:
        return thumbnail_again(self.obj, self.max_side)


class ReadAgain:
    """The type of ``READ_AGAIN``: one marker for every row of a run, where a maker each
    would cost a row its own object (it pickles as the same marker)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "READ_AGAIN"

    def __reduce__(self) -> str:
        return "READ_AGAIN"


READ_AGAIN = ReadAgain()
"""A row's thumbnail is made from the row's own input, read again when first wanted."""


def row_thumbnail(
    obj: object, prepared: Media, max_side: int
) -> tuple[bytes, str] | ReadAgain | None:
    """``deferred_thumbnail`` for a row that keeps ``obj``: ``READ_AGAIN`` in place of a
    maker (the row calls ``thumbnail_again(obj, max_side)`` when its thumbnail is wanted)."""
    if prepared.data is None:
        return None
    if _reads_again(expand(obj)[0]):
        return READ_AGAIN
    try:
        return prepared.thumbnail(max_side)
    except ImageError:  # a thumbnail is a courtesy: a table without it is still a table
        return None


def thumbnail_again(obj: object, max_side: int) -> tuple[bytes, str] | None:
    """The thumbnail of ``obj``'s first image, read again (None if it no longer reads: a file
    since deleted). Prepared within ``THUMBNAIL_SIDE`` first, so a large photo is decoded at a
    reduced scale and never re-encoded at full size for it."""
    try:
        first = expand(obj)[0]
        return prepare_image(first, max_side=max(max_side, THUMBNAIL_SIDE)).thumbnail(max_side)
    except ImageError:
        return None


def prepare_image(
    obj: object,
    *,
    max_side: int = MAX_SIDE,
    max_bytes: int = MAX_BYTES,
    keep_metadata: bool = False,
) -> Media:
    """Check and encode one image; raise ImageError, naming the input, when it cannot be sent."""
    items = expand(obj)
    if len(items) > 1:
        raise ImageError(
            f"prepare_image takes one image but got {len(items)}: use prepare_images for several"
        )
    return _prepare_one(items[0], max_side, max_bytes, keep_metadata)


def prepare_images(
    obj: object,
    *,
    max_side: int = MAX_SIDE,
    max_bytes: int = MAX_BYTES,
    keep_metadata: bool = False,
    max_images: int | None = None,
    max_request_bytes: int | None = None,
) -> list[Media]:
    """Check and encode one input or a list/tuple of them; an upload widget may give several.

    ``max_images`` is checked before any image is read; ``max_request_bytes`` (the images'
    size as sent, in base64) after each one, so preparing stops at the first over it. A video
    (MP4, MOV or WebM, recognised from its bytes, or an https URL ending in .mp4, .m4v, .mov or
    .webm) becomes a ``PreparedVideo``, sent as a ``video_url`` part, within its own limit.
    """
    items = expand(obj)
    check_count(len(items), max_images)
    prepared: list[Media]
    if len(items) == 1:
        prepared = [_prepare_one(items[0], max_side, max_bytes, keep_metadata)]
        check_total(prepared, max_request_bytes, len(items))
        return prepared
    prepared = []
    for number, item in enumerate(items, 1):
        try:
            prepared.append(_prepare_one(item, max_side, max_bytes, keep_metadata))
        except ImageError as exc:
            raise ImageError(f"image {number} of {len(items)}: {exc}") from exc
        check_total(prepared, max_request_bytes, len(items))
    return prepared


def _prepare_one(obj: object, max_side: int, max_bytes: int, keep: bool) -> Media:
    prepared = _prepare(obj, max_side, max_bytes)
    if isinstance(prepared, PreparedVideo):  # sent as given, within the video limit
        return prepared
    if keep or prepared.converted or prepared.data is None or prepared.format is None:
        return prepared
    data = strip_metadata(prepared.data, prepared.format)
    if data is prepared.data:
        return prepared
    return replace(prepared, data=data, stripped=len(prepared.data) - len(data))


# -- inputs ---------------------------------------------------------------------------------


def _prepare(obj: object, max_side: int, max_bytes: int) -> Media:
    if isinstance(obj, str):
        return _from_str(obj, max_side, max_bytes)
    if isinstance(obj, os.PathLike):
        return _from_path(os.fspath(obj), max_side, max_bytes)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        label = f"the {type(obj).__name__} object"
        return _from_bytes(bytes(obj), "bytes", label, max_side, max_bytes)
    if isinstance(obj, Mapping) and "content" in obj:
        return _from_upload(obj, max_side, max_bytes)
    if isinstance(obj, Image.Image):
        return _from_pixels(obj, "PIL image", "the PIL image", None, max_side, max_bytes)
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(obj, numpy.ndarray):
        return _from_array(obj, numpy, max_side, max_bytes)
    figure = sys.modules.get("matplotlib.figure")
    if figure is not None and isinstance(obj, figure.Figure):
        return _from_figure(obj, max_side, max_bytes)
    if callable(getattr(obj, "read", None)):
        return _from_file(obj, max_side, max_bytes)
    raise ImageError(f"unsupported type {type(obj).__name__}: {_ACCEPTED}")


def _from_str(text: str, max_side: int, max_bytes: int) -> Media:
    stripped = text.strip()
    head = stripped[:8].lower()
    if head.startswith("https://"):
        return _from_url(stripped)
    if head.startswith("http://"):
        raise ImageError(
            f"plain http:// image URL {short_url(stripped)!r}: Reka fetches only https:// "
            "URLs, so send an https:// URL (or download the image and pass its path)"
        )
    if head.startswith("data:"):
        return _from_data_url(stripped, max_side, max_bytes)
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]+)://", stripped)
    if scheme:
        is_file = scheme[1].lower() == "file"
        hint = " (for a local file, its path without file://)" if is_file else ""
        raise ImageError(
            f"unsupported URL scheme '{scheme[1]}' in {short_url(stripped)!r}: "
            f"pass an https:// URL, a data: URL or a local path{hint}"
        )
    if not stripped:
        raise ImageError("empty path: pass a file path, an https:// URL or a data: URL")
    return _from_path(text, max_side, max_bytes)


def _from_url(url: str) -> Media:
    """Check an https:// URL's shape; it is sent as is and fetched by the server."""
    shown = short_url(url)
    if any(ch.isspace() for ch in url):
        raise ImageError(f"URL {shown!r} contains whitespace: percent-encode it (%20)")
    parts = urlsplit(url)
    if not parts.hostname:
        raise ImageError(f"URL {shown!r} has no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ImageError(f"URL {shown!r} has an invalid port") from None
    if parts.path.lower().endswith(VIDEO_EXTENSIONS):
        return video_url(url)
    return PreparedImage(None, url, None, None, None, None, "URL", None, False)


def _from_data_url(url: str, max_side: int, max_bytes: int) -> Media:
    header, comma, payload = url[5:].partition(",")
    if not comma:
        raise ImageError("the data URL has no ',' between its header and its data")
    params = [p.strip().lower() for p in header.split(";")]
    mime = params[0]
    if mime and not mime.startswith(("image/", "video/")):
        raise ImageError(
            f"the data URL has type '{mime}', not an image type (image/...) or a video type "
            "(video/...)"
        )
    if params[-1] == "base64" and len(params) > 1:
        packed = re.sub(r"\s+", "", payload).rstrip("=").translate(str.maketrans("-_", "+/"))
        packed += "=" * (-len(packed) % 4)  # tolerate missing padding
        try:
            data = base64.b64decode(packed, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageError(f"the data URL has invalid base64 ({exc})") from exc
    else:
        data = unquote_to_bytes(payload)
    return _from_bytes(data, "data URL", "the data URL", max_side, max_bytes)


def _from_path(text: str, max_side: int, max_bytes: int) -> Media:
    # Plain strings, not pathlib: a Path interns each part of its name, and a run over many
    # files would keep a table of every file name it read for the life of the process.
    path = os.path.expanduser(text)
    expanded = f" (expanded to '{path}')" if path != text else ""
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            raise ImageError(f"'{text}' is not a regular file (a device, pipe or socket)")
        if info.st_size > MAX_FILE_BYTES:
            raise ImageError(
                f"'{text}' is {info.st_size:,} bytes, over the {MAX_FILE_BYTES:,} bytes "
                "an image file may have"
            )
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ImageError(
            f"no such file: '{text}'{expanded} (current directory: {os.getcwd()})"
        ) from None
    except IsADirectoryError:
        raise ImageError(f"'{text}' is a directory, not an image file") from None
    except OSError as exc:
        raise ImageError(f"cannot read '{text}': {exc.strerror or exc}") from exc
    except ImageError:
        raise
    except ValueError:  # a NUL byte, or a lone surrogate the file system cannot encode
        why = "a NUL character" if "\0" in text else "characters the file system cannot encode"
        raise ImageError(f"{text!a} is not a usable file path: it contains {why}") from None
    return _from_bytes(data, os.path.basename(path), f"'{text}'", max_side, max_bytes)


def _from_file(file: Any, max_side: int, max_bytes: int) -> Media:
    name = getattr(file, "name", None)
    label = f"file '{name}'" if isinstance(name, str) else "the file object"
    source = os.path.basename(name) if isinstance(name, str) and name else "file object"
    mode = getattr(file, "mode", None)
    text_mode = f"{label} is open in text mode: open it in binary mode, open(path, 'rb')"
    if isinstance(file, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise ImageError(text_mode)
    if getattr(file, "closed", False):
        raise ImageError(f"{label} is closed: open it again with open(path, 'rb')")
    try:
        data = read_limited(file, label, MAX_FILE_BYTES)
    except ImageError:
        raise
    except UnicodeDecodeError:
        raise ImageError(text_mode) from None
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read {label}: {exc}") from exc
    if isinstance(data, str):
        raise ImageError(text_mode)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError(f"{label}.read() returned {type(data).__name__}, not bytes")
    if not data:
        try:
            position = file.tell()
        except (AttributeError, OSError, ValueError):
            position = 0
        if position:
            raise ImageError(
                f"{label} has nothing left to read (at position {position:,}): call .seek(0) first"
            )
    return _from_bytes(bytes(data), source, label, max_side, max_bytes)


def _from_upload(upload: Mapping, max_side: int, max_bytes: int) -> Media:
    label = f"upload '{upload.get('name') or 'file'}'"
    content = upload["content"]
    if not isinstance(content, (bytes, bytearray, memoryview)):
        raise ImageError(f"{label} has content of type {type(content).__name__}, not bytes")
    return _from_bytes(bytes(content), label, label, max_side, max_bytes)


def _from_array(array: Any, numpy: Any, max_side: int, max_bytes: int) -> PreparedImage:
    shape, dtype = array.shape, array.dtype
    accepted = "accepted: dtype uint8 with shape (H, W), (H, W, 3) or (H, W, 4)"
    if dtype != numpy.uint8:
        raise ImageError(f"numpy array has dtype {dtype} (shape {shape}); {accepted}")
    if not (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4))):
        raise ImageError(f"numpy array has shape {shape}; {accepted}")
    if 0 in shape:
        raise ImageError(f"numpy array has no pixels (shape {shape})")
    img = Image.fromarray(numpy.ascontiguousarray(array))
    label = "the numpy array"
    return _from_pixels(img, "numpy array", label, array.nbytes, max_side, max_bytes)


def _from_figure(figure: Any, max_side: int, max_bytes: int) -> PreparedImage:
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", bbox_inches="tight", dpi=100)
    except Exception as exc:
        raise ImageError(f"the matplotlib figure could not be saved as PNG: {exc}") from exc
    label = "the matplotlib figure"
    encoded = encode_bytes(buffer.getvalue(), label, max_side, max_bytes)
    return _result(encoded, "matplotlib figure", None)  # the PNG was made here, not given


def _from_bytes(data: bytes, source: str, label: str, max_side: int, max_bytes: int) -> Media:
    """Encoded bytes from any input that arrives as bytes (path, URL data, file, upload);
    a video container is recognised from its first bytes and sent as it is."""
    if sniff_video(data) is not None:
        return prepare_video(data, source, label)
    return _result(encode_bytes(data, label, max_side, max_bytes), source, len(data))


def _from_pixels(
    img: Image.Image,
    source: str,
    label: str,
    original_size: int | None,
    max_side: int,
    max_bytes: int,
) -> PreparedImage:
    """An in-memory image (PIL image, numpy array) encoded, downscaled if over max_side."""
    return _result(encode_pixels(img, label, max_side, max_bytes), source, original_size)


def _result(encoded: Encoded, source: str, original_size: int | None) -> PreparedImage:
    """A PreparedImage of the codec's encoded bytes."""
    data, fmt, (width, height), converted = encoded
    return PreparedImage(
        data, None, MIME[fmt], fmt, width, height, source, original_size, converted
    )
