"""A server-sent events decoder without I/O: feed it bytes, get back each event's data.

Follows the WHATWG event-stream rules that matter for chat streams: lines end in LF, CRLF
or CR; ``data:`` lines of one event are joined with LF; comments (``:``) and other fields
are ignored; an event ends at a blank line; an event cut off mid-line at the end of the
stream is dropped. Bytes may be split anywhere, even inside a UTF-8 character or a CRLF pair.
"""

from __future__ import annotations

import codecs

__all__ = ["SSEDecoder"]


class SSEDecoder:
    """Incremental decoder: ``feed(chunk)`` returns the data of the events it completed."""

    __slots__ = ("_buffer", "_cr_pending", "_utf8")

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer = ""
        self._cr_pending = False

    def feed(self, chunk: bytes) -> list[str]:
        """Decode a chunk of bytes; return the data strings of the completed events."""
        text = self._utf8.decode(chunk)
        if self._cr_pending:
            text = "\r" + text
            self._cr_pending = False
        if "\r" in text:
            if text.endswith("\r"):  # may be the first half of a CRLF split across chunks
                text = text[:-1]
                self._cr_pending = True
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        buffer = self._buffer + text
        if "\n\n" not in buffer:
            self._buffer = buffer
            return []
        *blocks, self._buffer = buffer.split("\n\n")
        events = []
        for block in blocks:
            data = _event_data(block)
            if data is not None:
                events.append(data)
        return events

    def close(self) -> list[str]:
        """End of stream: an event whose last line ended is kept; a cut-off line is dropped.

        (The standard drops any event without its blank line; servers that close right
        after ``data: [DONE]\\n`` are common enough to be lenient about whole lines.)
        """
        events = self.feed(b"\n" if self._cr_pending else b"")
        buffer, self._buffer = self._buffer, ""
        if buffer.endswith("\n"):
            data = _event_data(buffer.rstrip("\n"))
            if data is not None:
                events.append(data)
        return events


def _event_data(block: str) -> str | None:
    """The data of one event block, or None when it has no data field."""
    if block.startswith("data: ") and "\n" not in block:  # the common case, kept fast
        return block[6:]
    data: list[str] = []
    for line in block.split("\n"):
        if not line or line.startswith(":"):
            continue
        field, sep, value = line.partition(":")
        if field != "data":
            continue
        if not sep:
            value = ""
        elif value.startswith(" "):
            value = value[1:]
        data.append(value)
    if not data:
        return None
    return "\n".join(data)
