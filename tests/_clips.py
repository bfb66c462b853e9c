"""Short video clips made on the spot from the cat photo (PyAV, in the test extra): no binaries
are shipped, and every clip's length, size and container are known exactly."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
from PIL import Image

CAT = Path(__file__).resolve().parent.parent / "docs" / "images" / "cat.jpeg"
CODECS = {"mp4": "mpeg4", "mov": "mpeg4", "webm": "libvpx"}


class _Unseekable(io.RawIOBase):
    """A sink that cannot seek, as a live recording: WebM then has no Duration element."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.data += data
        return len(data)


def make_clip(
    fmt: str = "mp4",
    seconds: float = 2.0,
    fps: int = 4,
    size: tuple[int, int] = (64, 48),
    seekable: bool = True,
) -> bytes:
    """``seconds`` of the cat at ``fps`` frames a second, ``size`` pixels, in ``fmt``."""
    with Image.open(CAT) as cat:
        frame = cat.convert("RGB").resize(size)
    sink: io.RawIOBase | io.BytesIO = io.BytesIO() if seekable else _Unseekable()
    with av.open(sink, mode="w", format=fmt) as out:
        stream = out.add_stream(CODECS[fmt], rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for _ in range(round(seconds * fps)):
            for packet in stream.encode(av.VideoFrame.from_image(frame)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    if isinstance(sink, io.BytesIO):
        return sink.getvalue()
    return bytes(sink.data)


# -- crafted headers (no frames): what a hostile or broken file may say -------------------------


def ebml(ident: int, body: bytes) -> bytes:
    """One EBML element: its id, an 8-byte size, its body."""
    size = (1 << 56) | len(body)  # the 8-byte length marker 0x01, then the size
    return ident.to_bytes((ident.bit_length() + 7) // 8, "big") + size.to_bytes(8, "big") + body


def crafted_webm(
    *,
    timescale: bytes = (1_000_000).to_bytes(3, "big"),
    duration: bytes | None = struct.pack(">d", 2000.0),
    default_duration: bytes = (250_000_000).to_bytes(4, "big"),
    width: bytes = bytes([64]),
    height: bytes = bytes([48]),
    cluster_timecode: bytes = bytes([0]),
    block_time: int = 1750,
) -> bytes:
    """A WebM header whose every number is given as raw bytes (frames are not needed to read
    it): as given it lasts 2.0 s at 64×48, and any field can be made absurd."""
    info = ebml(0x2AD7B1, timescale) + (b"" if duration is None else ebml(0x4489, duration))
    video = ebml(0xB0, width) + ebml(0xBA, height)
    entry = ebml(0x83, b"\x01") + ebml(0x23E383, default_duration) + ebml(0xE0, video)
    block = b"\x81" + struct.pack(">h", block_time) + b"\x80"
    cluster = ebml(0xE7, cluster_timecode) + ebml(0xA3, block)
    segment = ebml(0x1549A966, info) + ebml(0x1654AE6B, ebml(0xAE, entry))
    segment += ebml(0x1F43B675, cluster)
    return ebml(0x1A45DFA3, ebml(0x4282, b"webm")) + ebml(0x18538067, segment)


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(body), kind) + body


def crafted_mp4(*, timescale: int = 1000, length: int = 2000, version: int = 0) -> bytes:
    """An MP4 header (ftyp and moov/mvhd only) whose mvhd says ``length / timescale`` seconds."""
    if version == 1:
        mvhd = bytes([1, 0, 0, 0]) + bytes(16) + struct.pack(">IQ", timescale, length)
    else:
        mvhd = bytes(4) + bytes(8) + struct.pack(">II", timescale, length)
    mvhd += bytes(80)
    return _box(b"ftyp", b"isom" + bytes(4) + b"isom") + _box(b"moov", _box(b"mvhd", mvhd))
