"""Whatever a server sends, the caller gets the right answer or a RekaError: promptly, within
bounded memory, never a raw Python error. Each case is a raw-socket server on 127.0.0.1
sending exactly the bytes that once broke the client, through both clients."""

from __future__ import annotations

import asyncio
import functools
import json
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _hostile import HostileServer, Reply

from reka_nb import (
    AsyncRekaClient,
    BadRequestError,
    Description,
    RekaClient,
    ServerError,
    StreamInterrupted,
    describe,
)

KEY = "reka-hostile-test-key"
CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
HI = [{"role": "user", "content": "hi"}]
DEEP = "[" * 100_000 + "]" * 100_000


@functools.cache
def gzip_zeros(megabytes: int) -> bytes:
    """A gzip body of ``megabytes`` MB of zeros (about 1 KB per MB), built without compressing
    them all: after a full flush, one compressed megabyte is the same bytes every time."""
    zeros = b"\0" * (1024 * 1024)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    first = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    block = packer.compress(zeros) + packer.flush(zlib.Z_FULL_FLUSH)
    last = packer.compress(zeros) + packer.flush()
    crc = 0
    for _ in range(megabytes):
        crc = zlib.crc32(zeros, crc)
    trailer = struct.pack("<II", crc, (megabytes * len(zeros)) & 0xFFFFFFFF)
    return first + block * (megabytes - 2) + last[:-8] + trailer


def chunk(content: str | None = None, finish: str | None = None, **extra: Any) -> dict:
    delta = {} if content is None else {"content": content}
    return {"model": "reka-flash", "choices": [{"delta": delta, "finish_reason": finish}], **extra}


def client_of(server: HostileServer) -> RekaClient:
    return RekaClient(base_url=server.base_url, api_key=KEY, max_retries=0)


def both(server: HostileServer, **options: Any) -> list[Callable[[], Any]]:
    """Read one streamed answer with the sync client, then with the async one."""

    def sync() -> Any:
        with RekaClient(base_url=server.base_url, api_key=KEY, max_retries=0, **options) as c:
            chat = c.stream(HI)
            return "".join(chat), chat.completion

    def asynchronous() -> Any:
        async def main() -> Any:
            async with AsyncRekaClient(
                base_url=server.base_url, api_key=KEY, max_retries=0, **options
            ) as c:
                chat = c.stream(HI)
                return "".join([d async for d in chat]), chat.completion

        return asyncio.run(main())

    return [sync, asynchronous]


# -- 1. the answer is complete at [DONE] (or at the finish), whatever the connection does ------


def hold_after(*events: Any) -> Callable[[Reply], None]:
    def handler(reply: Reply) -> None:
        reply.start()
        reply.events(*events)
        reply.hold(20)

    return handler


@pytest.mark.parametrize(
    "events",
    [
        [chunk("A tabby"), chunk(" cat."), chunk(None, "stop"), "[DONE]"],
        [chunk("A tabby"), chunk(" cat."), chunk(None, "stop")],  # finish, then silence
    ],
    ids=["done", "finish"],
)
def test_answer_returns_at_once_while_the_server_holds_the_connection(events: list) -> None:
    with HostileServer(hold_after(*events)) as server:
        for read in both(server):
            started = time.monotonic()
            text, completion = read()
            assert time.monotonic() - started < 3
            assert text == completion.text == "A tabby cat."
            assert completion.finish_reason == "stop"


def test_usage_after_the_finish_is_still_read() -> None:
    events = [
        chunk("Hi"),
        chunk(None, "stop"),
        chunk(usage={"prompt_tokens": 4, "completion_tokens": 1}, choices=[]),
        "[DONE]",
    ]
    with HostileServer(hold_after(*events)) as server:
        for read in both(server):
            _, completion = read()
            assert (completion.usage.input_tokens, completion.usage.output_tokens) == (4, 1)


# -- 2. one event, one error body, one reply: each has a size limit ------------------------------


def endless_line(reply: Reply) -> None:
    reply.start()
    reply.chunk(b"data: ")
    for _ in range(300):  # 300 MB with no line end, unless the client stops reading first
        reply.chunk(b"x" * (1024 * 1024))


def gzip_bomb(status: int, content_type: str = "text/event-stream") -> Callable[[Reply], None]:
    def handler(reply: Reply) -> None:
        bomb = gzip_zeros(512)  # 0.5 MB that inflates to 512 MB
        reply.whole(status, bomb, content_type, Content_Encoding="gzip")

    return handler


def peak_megabytes(call: Callable[[], Any]) -> tuple[float, BaseException | None]:
    tracemalloc.start()
    error: BaseException | None = None
    try:
        call()
    except BaseException as exc:
        error = exc
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return peak, error


@pytest.mark.parametrize("handler", [endless_line, gzip_bomb(200)], ids=["line", "gzip"])
def test_an_endless_event_is_cut_at_the_limit(handler: Callable[[Reply], None]) -> None:
    with HostileServer(handler) as server:
        for read in both(server):
            started = time.monotonic()
            peak, error = peak_megabytes(read)
            assert isinstance(error, StreamInterrupted), error
            assert "one event was larger than 4,194,304 characters" in str(error)
            assert peak < 64 and time.monotonic() - started < 10


def test_a_gzip_bomb_error_body_or_reply_is_not_inflated() -> None:
    with HostileServer(gzip_bomb(500, "application/json")) as server, client_of(server) as client:
        peak, error = peak_megabytes(lambda: client.complete(HI))
        assert isinstance(error, ServerError) and error.status == 500
        assert "the error body was too large to read" in str(error)
        assert peak < 64
    with HostileServer(gzip_bomb(200, "application/json")) as server, client_of(server) as client:
        for call in (lambda: client.complete(HI), client.models):
            peak, error = peak_megabytes(call)
            assert isinstance(error, ServerError), error
            assert "it was larger than 4,194,304 bytes" in str(error)
            assert peak < 64


# -- 3. server data never escapes as a raw Python error ----------------------------------------


def whole(status: int, body: str | bytes, content_type: str = "application/json") -> Callable:
    data = body.encode() if isinstance(body, str) else body
    return lambda reply: reply.whole(status, data, content_type)


def stream_of(*events: Any) -> Callable[[Reply], None]:
    def handler(reply: Reply) -> None:
        reply.start()
        reply.events(*events)
        reply.end()

    return handler


def test_deeply_nested_json_is_a_typed_error_everywhere() -> None:
    with HostileServer(stream_of(chunk("Hi"), DEEP)) as server:
        for read in both(server):
            with pytest.raises(StreamInterrupted, match="malformed event") as info:
                read()
            assert info.value.partial_text == "Hi"
    with HostileServer(whole(200, DEEP)) as server, client_of(server) as client:
        with pytest.raises(ServerError, match="not the JSON expected"):
            client.complete(HI)
        with pytest.raises(ServerError, match="not the JSON expected"):
            client.models()
    with HostileServer(whole(400, DEEP)) as server, client_of(server) as client:
        rejected = pytest.raises(BadRequestError, match=r"^Reka rejected the request: \[\[\[\[")
        with rejected:
            client.complete(HI)


def test_the_cli_prints_one_line_for_nested_json() -> None:
    with HostileServer(stream_of(DEEP)) as server:
        env = {"REKA_API_KEY": KEY, "REKA_BASE_URL": server.base_url, "PATH": "/usr/bin:/bin"}
        proc = subprocess.run(
            [sys.executable, "-m", "reka_nb", "describe", str(CAT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "malformed event (an event was not valid JSON: [[[[" in proc.stderr


@pytest.mark.parametrize(
    ("parts", "text"),
    [
        ([{"type": "text", "text": 5}, {"type": "text", "text": "ok"}], "ok"),
        ([{"type": "text", "text": None}, {"type": "text", "text": "fine"}], "fine"),
    ],
)
def test_content_parts_with_wrong_types_keep_only_text(parts: list, text: str) -> None:
    event = {"choices": [{"delta": {"content": parts}, "finish_reason": "stop"}]}
    with HostileServer(stream_of(event, "[DONE]")) as server:
        for read in both(server):
            assert read()[0] == text


def test_wrong_typed_fields_are_ignored_not_carried() -> None:
    events = [
        {"model": 123, "choices": [{"delta": {"content": "Hi"}, "finish_reason": None}]},
        {
            "model": None,
            "choices": [{"delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": True, "completion_tokens": -3},
        },
        "[DONE]",
    ]
    with HostileServer(stream_of(*events)) as server:
        for read in both(server):
            _, completion = read()
            assert completion.model is None
            assert (completion.usage.input_tokens, completion.usage.output_tokens) == (None, None)
        with RekaClient(base_url=server.base_url, api_key=KEY) as client:
            answer = describe(CAT, client=client, show=False)
        assert isinstance(answer, Description)
        assert answer.model == "reka-flash"  # what was asked for, not the 123 sent back
        assert answer.footer().startswith("reka-flash · ? tokens in, ? out")


def test_a_200_whose_body_is_an_error_raises() -> None:
    body = json.dumps({"error": {"type": "server_error", "message": "model overloaded"}})
    with HostileServer(whole(200, body)) as server, client_of(server) as client:
        refused = pytest.raises(ServerError, match="answered with an error: model overloaded")
        with refused:
            client.complete(HI)


# -- weak spots: keep-alives, error events, encodings, content types, the snapshot guess ------


def pings_only(reply: Reply) -> None:
    reply.start()
    reply.events(chunk("Hi"))
    while not reply.stopping.wait(0.1):
        reply.chunk(b": ping\n\n")


def test_keep_alive_comments_are_not_progress() -> None:
    with HostileServer(pings_only) as server:
        for read in both(server, read_timeout=0.6):
            started = time.monotonic()
            with pytest.raises(StreamInterrupted, match=r"no event for 0.6 s \(keep-alive") as info:
                read()
            assert info.value.partial_text == "Hi"
            assert time.monotonic() - started < 3


def test_an_error_event_is_an_error_even_without_an_error_key() -> None:
    def handler(reply: Reply) -> None:
        reply.start()
        reply.events(chunk("Partial"))
        reply.chunk(b'event: error\ndata: {"message": "overloaded"}\n\n')
        reply.events("[DONE]")
        reply.end()

    with HostileServer(handler) as server:
        for read in both(server):
            with pytest.raises(StreamInterrupted, match="the server sent an error: overloaded"):
                read()


def test_an_encoding_we_cannot_decode_is_refused() -> None:
    def handler(reply: Reply) -> None:
        reply.start(Content_Encoding="br")
        reply.events(chunk("Hi", "stop"), "[DONE]")
        reply.end()

    with HostileServer(handler) as server:
        for read in both(server):
            with pytest.raises(StreamInterrupted, match=r"encoded as 'br'.*cannot decode"):
                read()
        assert server.requests[0].head.lower().count(b"accept-encoding: gzip, deflate\r\n") == 1


def test_an_html_page_is_named_and_a_whole_json_answer_accepted() -> None:
    with HostileServer(whole(200, "<html>login</html>", "text/html")) as server:
        for read in both(server):
            with pytest.raises(ServerError, match="answered with text/html, not an event stream"):
                read()
    answer = {
        "model": "reka-flash",
        "choices": [{"message": {"content": "A whole answer."}, "finish_reason": "stop"}],
    }
    with HostileServer(whole(200, json.dumps(answer))) as server:
        for read in both(server):
            text, completion = read()
            assert text == completion.text == "A whole answer."


def test_short_increments_are_not_taken_for_snapshots() -> None:
    with HostileServer(stream_of(chunk("1"), chunk("10"), chunk(None, "stop"), "[DONE]")) as s:
        for read in both(s):
            assert read()[0] == "110"


@pytest.mark.parametrize("api", ["openai", "native"])
def test_a_faithful_server_keeps_one_connection_without_waiting(server: Any, api: str) -> None:
    opened: list[str] = []
    with RekaClient(base_url=server.base_url, api_key=server.api_key, api=api) as client:
        note = client._note_connection  # the client's trace hook sees each new connection

        def count(event: str, info: Any) -> None:
            if event == "connection.connect_tcp.complete":
                opened.append(event)
            note(event, info)

        client._note_connection = count  # type: ignore[method-assign]
        started = time.monotonic()
        for _ in range(5):
            assert "no model ran" in "".join(client.stream(HI))
        assert time.monotonic() - started < 2  # no wait after [DONE] or the native finish
    assert len(opened) == 1
