"""Short video clips made on the spot from the cat photo (PyAV, in the test extra): no binaries
are shipped, and every clip's length, size and container are known exactly."""

from __future__ import annotations

import io
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
