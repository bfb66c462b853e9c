"""The SSE decoder, fed scripted bytes split at every offset."""

from __future__ import annotations

import pytest

from reka_nb.protocol.sse import SSEDecoder

STREAM = (
    ": keep-alive comment\n\n"
    'data: {"a": "caf\u00e9 \u732b"}\n\n'
    "event: message\r\nid: 7\r\ndata: line one\r\ndata: line two\r\n\r\n"
    "data:no-space\r\rdata: [DONE]\n\n"
).encode()
EXPECTED = ['{"a": "caf\u00e9 \u732b"}', "line one\nline two", "no-space", "[DONE]"]


def feed_all(chunks: list[bytes]) -> list[str]:
    decoder = SSEDecoder()
    events: list[str] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    return events + decoder.close()


def test_whole_stream() -> None:
    assert feed_all([STREAM]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_split_at_every_offset(cut: int) -> None:
    assert feed_all([STREAM[:cut], STREAM[cut:]]) == EXPECTED


def test_one_byte_at_a_time() -> None:
    assert feed_all([bytes([b]) for b in STREAM]) == EXPECTED


def test_events_only_once_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: par") == []
    assert decoder.feed(b"tial\n") == []
    assert decoder.feed(b"\n") == ["partial"]


def test_cut_off_line_at_close_is_dropped_but_whole_line_kept() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: [DONE]\n") == []
    assert decoder.close() == ["[DONE]"]
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"cut') == []
    assert decoder.close() == []


def test_blocks_without_data_are_skipped() -> None:
    assert feed_all([b"event: ping\n\nretry: 10\n\n\n\ndata\n\n"]) == [""]
