"""What the offline server measures of a video part: container, duration, pixel size, bytes.

The container is named from the first bytes; duration and pixel size come from PyAV (FFmpeg)
when it is installed (the ``video`` and ``test`` extras), an implementation independent of the
client's own box parser. Without PyAV the server says it did not measure them.
"""

from __future__ import annotations

import io

from ._request import VideoInfo

__all__ = ["measure_video"]


def _container(data: bytes) -> str | None:
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "MOV" if data[8:12] == b"qt  " else "MP4"
    if len(data) >= 8 and data[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "MOV"
    if data[:4] == b"\x1a\x45\xdf\xa3" and b"webm" in data[:64]:
        return "WebM"
    return None


def measure_video(data: bytes) -> VideoInfo | str:
    """The measurements, or the reason the bytes are not a video this server accepts."""
    container = _container(data)
    if container is None:
        return "not an MP4, MOV or WebM video"
    try:
        import av
    except ImportError:
        return VideoInfo(container, nbytes=len(data), measured=False)
    try:
        with av.open(io.BytesIO(data), mode="r") as media:
            streams = media.streams.video
            if not streams:
                return f"the {container} file has no video track"
            stream = streams[0]
            seconds = media.duration / 1_000_000 if media.duration else None
            if seconds is None and stream.duration and stream.time_base:
                seconds = float(stream.duration * stream.time_base)
            width, height = stream.codec_context.width, stream.codec_context.height
    except Exception as exc:  # FFmpeg raises several types for damaged files
        return f"the {container} file could not be read ({type(exc).__name__})"
    return VideoInfo(container, seconds, width, height, len(data))
