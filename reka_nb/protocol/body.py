"""Response bodies decoded with a bounded size, without I/O: feed raw bytes, get decoded bytes.

httpx decodes ``Content-Encoding`` by itself, but without a limit (a 509 KB gzip reply can
inflate to 512 MB in one go) and it passes an encoding it cannot decode (``br`` without the
brotli package) through as raw bytes. The clients therefore read raw bytes and decode them
here: identity, gzip and deflate, never more than ``chunk_size`` bytes out per step, and
anything else refused with ``UndecodableBody``. ``ACCEPT_ENCODING`` is what the clients ask for.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = [
    "ACCEPT_ENCODING",
    "MAX_BODY_SIZE",
    "BodyDecoder",
    "BodyTooLarge",
    "UndecodableBody",
]

ACCEPT_ENCODING = "gzip, deflate"
MAX_BODY_SIZE = 4 * 1024 * 1024
"""Decoded bytes one non-streamed reply or error body may hold."""

_STEP = 256 * 1024  # decoded bytes handed out at a time: memory stays bounded


class UndecodableBody(Exception):
    """The body's Content-Encoding is one we neither asked for nor can decode (internal)."""


class BodyTooLarge(Exception):
    """A body that must be read whole is larger than its limit (internal)."""


class BodyDecoder:
    """Decodes one body's ``Content-Encoding`` step by step, each step at most 256 KB."""

    def __init__(self, content_encoding: str | None) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
        codings = [c for c in codings if c != "identity"]
        self._stages: list[zlib._Decompress] = []
        for coding in reversed(codings):  # the last one applied is undone first
            if coding in ("gzip", "x-gzip"):
                self._stages.append(zlib.decompressobj(zlib.MAX_WBITS | 16))
            elif coding == "deflate":
                self._stages.append(_Deflate())  # type: ignore[arg-type]
            else:
                raise UndecodableBody(
                    f"the server sent the body encoded as {coding!r}, which reka_nb did not ask "
                    f"for and cannot decode (it asks for {ACCEPT_ENCODING})"
                )

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded bytes of ``data``, in pieces of at most 256 KB."""
        yield from self._through(0, data)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._stages):
            if data:
                yield data
            return
        stage = self._stages[index]
        try:
            out = stage.decompress(data, _STEP)
            while True:
                yield from self._through(index + 1, out)
                if not stage.unconsumed_tail:
                    break
                out = stage.decompress(stage.unconsumed_tail, _STEP)
        except zlib.error as exc:
            raise UndecodableBody(f"the body's compressed data is corrupt ({exc})") from None

    def read_all(self, chunks: Iterator[bytes], limit: int = MAX_BODY_SIZE) -> bytes:
        """Every decoded byte of a body, or ``BodyTooLarge`` as soon as it passes ``limit``."""
        out = bytearray()
        for chunk in chunks:
            for piece in self.feed(chunk):
                out += piece
                if len(out) > limit:
                    raise BodyTooLarge(f"the reply was larger than {limit:,} bytes")
        return bytes(out)


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped as the standard says, or raw."""

    def __init__(self) -> None:
        self._obj: zlib._Decompress | None = None
        self._first = True

    @property
    def unconsumed_tail(self) -> bytes:
        return self._obj.unconsumed_tail if self._obj is not None else b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._obj is None:
            if not data:
                return b""
            self._obj = zlib.decompressobj()
            try:
                return self._obj.decompress(data, max_length)
            except zlib.error:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        return self._obj.decompress(data, max_length)
