"""A server-sent events decoder without I/O: feed it bytes, get back each event's data.

Follows the WHATWG event-stream rules that matter for chat streams: lines end in LF, CRLF
or CR; ``data:`` lines of one event are joined with LF; comments (``:``) and fields other
than ``data`` and ``event`` are ignored; an event ends at a blank line; an event cut off
mid-line at the end of the stream is dropped. Bytes may be split anywhere, even inside a
UTF-8 character or a CRLF pair.

Work is linear in the bytes fed, however they are split and however long one event is, and
one event may hold at most ``max_event_size`` characters: beyond that ``EventTooLarge`` is
raised before more is kept, so memory stays bounded whatever the server sends.
"""

from __future__ import annotations

import codecs

__all__ = ["MAX_EVENT_SIZE", "Event", "EventTooLarge", "SSEDecoder"]

MAX_EVENT_SIZE = 4 * 1024 * 1024
"""Characters one event may hold by default (a native snapshot of a long answer is ~100 KB)."""


class EventTooLarge(Exception):
    """One event grew past the decoder's limit (internal; becomes StreamInterrupted)."""


class Event(str):
    """An event's data with an ``event:`` type other than ``message`` (e.g. ``error``)."""

    __slots__ = ("event",)
    event: str

    def __new__(cls, data: str, event: str) -> Event:
        self = super().__new__(cls, data)
        self.event = event
        return self


class SSEDecoder:
    """Incremental decoder: ``feed(chunk)`` returns the data of the events it completed.

    ``comments`` counts comment lines (keep-alives); ``max_event_size`` caps one event.
    Text of an event not complete yet is kept as a list of pieces and joined once, when its
    blank line arrives: each byte is looked at a bounded number of times.
    """

    __slots__ = ("_cr_pending", "_pending", "_size", "_utf8", "comments", "max_event_size")

    def __init__(self, max_event_size: int = MAX_EVENT_SIZE) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending: list[str] = []  # text after the last blank line, in pieces
        self._size = 0  # its characters
        self._cr_pending = False
        self.comments = 0
        self.max_event_size = max_event_size

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
        pending = self._pending
        if "\n\n" not in text and not (
            pending and text.startswith("\n") and pending[-1].endswith("\n")
        ):
            if text:
                pending.append(text)
                self._size += len(text)
                if self._size > self.max_event_size:
                    self._overflow()
            return []
        if pending:
            pending.append(text)
            text = "".join(pending)
            self._pending = pending = []
        *blocks, rest = text.split("\n\n")
        if rest:
            pending.append(rest)
        self._size = len(rest)
        events = []
        for block in blocks:
            if len(block) > self.max_event_size:
                self._overflow()
            if block.startswith("data: ") and "\n" not in block:  # the common case, kept fast
                events.append(block[6:])
            elif block:
                data = self._event_data(block)
                if data is not None:
                    events.append(data)
        if self._size > self.max_event_size:
            self._overflow()
        return events

    def _event_data(self, block: str) -> str | None:
        """The data of one event block (an ``Event`` when it is typed), or None without data."""
        data: list[str] = []
        kind = ""
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] == ":":
                self.comments += 1
                continue
            name, sep, value = line.partition(":")
            if sep and value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = "" if value == "message" else value
        if not data:
            return None
        joined = "\n".join(data)
        return Event(joined, kind) if kind else joined

    def _overflow(self) -> None:
        self._pending, self._size = [], 0
        raise EventTooLarge(f"one event was larger than {self.max_event_size:,} characters")

    def close(self) -> list[str]:
        """End of stream: an event whose last line ended is kept; a cut-off line is dropped.

        (The standard drops any event without its blank line; servers that close right
        after ``data: [DONE]\\n`` are common enough to be lenient about whole lines.)
        """
        events = self.feed(b"\n" if self._cr_pending else b"")
        buffer = "".join(self._pending)
        self._pending, self._size = [], 0
        if buffer.endswith("\n"):
            data = self._event_data(buffer.rstrip("\n"))
            if data is not None:
                events.append(data)
        return events
