"""Conformance, judged by code and data nobody here wrote.

1. Streams recorded from OpenAI's live API (kept by the ``openai`` package's own test suite,
   see tests/fixtures/README.md) are read by our SSE decoder and accumulator, and served over
   a real socket to RekaClient, AsyncRekaClient and the OpenAI-style Client.
2. A minimal OpenAI-compatible server of the kind people run locally (no ``/models``, no usage,
   CRLF lines and comments, maybe no ``[DONE]``) works with RekaClient, describe() and Client.
3. The official clients judge the offline server where tests/offline/test_offline_server.py does not
   already: the async ``openai`` client with ``stream_options``, its streaming helper, its
   retries on our Retry-After, and reka-api's async client on the native endpoint.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import re
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from reka import ChatMessage, TypedMediaContent, TypedText
from reka.client import AsyncReka

from reka_nb import (
    AsyncClient,
    AsyncRekaClient,
    Client,
    NotFoundError,
    RekaClient,
    StreamInterrupted,
)
from reka_nb.answer import StdoutPresenter
from reka_nb.compat import AsyncStream
from reka_nb.images import prepare_image
from reka_nb.protocol.messages import user_message
from reka_nb.protocol.sse import SSEDecoder
from reka_nb.protocol.stream import Accumulator, Usage
from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "docs" / "images" / "cat.jpeg"
RECORDINGS = ROOT / "tests" / "fixtures" / "openai-python"
WEATHER = RECORDINGS / "038a5c69c34c9513021b52aa61661f4f5bea321c0aac9e164f2ed3e409aebc48.bin"
CUT = RECORDINGS / "69363a555f8ea9b6eee0bb022af0afcd22d4f0e85418ab38ee24d2a570a84ff0.bin"
# The texts openai-python's test_completions_streaming.py asserts for these recordings.
WEATHER_TEXT = (
    "I'm unable to provide real-time updates, including current weather information. For the "
    "latest weather in San Francisco, I recommend checking a reliable weather website or app "
    "such as the Weather Channel, BBC Weather, or a local San Francisco news station."
)
CUT_TEXT = '{"'
RECORDED_MODEL = "gpt-4o-2024-08-06"
KINDS = ["sync", "async"]


# -- a minimal HTTP server replaying fixed bytes -------------------------------------------


@dataclass
class Reply:
    """What the server answers on one route; ``piece`` > 0 streams the body in chunks."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    piece: int = 0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class ReplayServer:
    """Fixed replies by (method, path) on a loopback port; anything else is a plain-text 404."""

    replies: dict[tuple[str, str], Reply] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    base_url: str = ""

    def chat(self, reply: Reply) -> None:
        self.replies["POST", "/v1/chat/completions"] = reply


class _ReplayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        owner: ReplayServer = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        owner.requests.append(Seen(self.command, self.path, headers, json.loads(raw or "null")))
        reply = owner.replies.get((self.command, self.path))
        if reply is None:
            reply = Reply(404, b"404 page not found", "text/plain; charset=utf-8")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("X-Request-ID", f"replay-{len(owner.requests)}")
        if reply.piece:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(reply.body), reply.piece):
                piece = reply.body[start : start + reply.piece]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

    do_POST = do_GET


class _ReplayHTTPServer(ThreadingHTTPServer):
    """Keeps handler errors for the test to see; a client hanging up early is not one."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ReplayHandler)
        self.errors: list[BaseException] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, (BrokenPipeError, ConnectionResetError)):
            self.errors.append(exc)


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    state = ReplayServer()
    httpd = _ReplayHTTPServer()
    httpd.owner = state  # type: ignore[attr-defined]
    state.base_url = f"http://127.0.0.1:{httpd.server_port}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert httpd.errors == []


def stream_with(kind: str, base_url: str, model: str = "gpt-4o", **kw: Any) -> tuple[list, Any]:
    """Stream one answer with RekaClient or AsyncRekaClient: (deltas, completion)."""
    messages = [{"role": "user", "content": "What's the weather like in SF?"}]
    options: dict[str, Any] = {"base_url": base_url, "api_key": "local-key", "max_retries": 0}
    options.update(kw)
    if kind == "sync":
        with RekaClient(**options) as client:
            chat = client.stream(messages, model=model)
            return list(chat), chat.completion

    async def main() -> tuple[list, Any]:
        async with AsyncRekaClient(**options) as client:
            chat = client.stream(messages, model=model)
            return [d async for d in chat], chat.completion

    return asyncio.run(main())


# -- 1. recorded streams -------------------------------------------------------------------


def recorded_deltas(path: Path) -> list[str]:
    """The content of each chunk, read with json alone (independent of our code)."""
    out = []
    for line in path.read_bytes().decode().split("\n"):
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                if choice["delta"].get("content"):
                    out.append(choice["delta"]["content"])
    return out


def test_recordings_are_byte_exact_copies() -> None:
    for path in (WEATHER, CUT):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.stem
    assert "".join(recorded_deltas(WEATHER)) == WEATHER_TEXT
    assert len(recorded_deltas(WEATHER)) == 47
    assert recorded_deltas(CUT) == [CUT_TEXT]


def decode(data: bytes, pieces: list[int]) -> tuple[list[str], Accumulator]:
    """Feed data split at the given offsets through SSEDecoder and Accumulator."""
    decoder, acc = SSEDecoder(), Accumulator("openai")
    deltas = []
    for start, end in itertools.pairwise([0, *pieces, len(data)]):
        for event in decoder.feed(data[start:end]):
            if delta := acc.feed(event):
                deltas.append(delta)
    for event in decoder.close():
        if delta := acc.feed(event):
            deltas.append(delta)
    return deltas, acc


def test_decoder_and_accumulator_read_the_weather_recording() -> None:
    data = WEATHER.read_bytes()
    for pieces in ([], list(range(1, len(data))), list(range(0, len(data), 7)), [len(data) // 2]):
        deltas, acc = decode(data, pieces)
        assert deltas == recorded_deltas(WEATHER)
        assert acc.text == WEATHER_TEXT
        assert (acc.finish_reason, acc.done, acc.model) == ("stop", True, RECORDED_MODEL)
        # The usage arrives after the finish reason, in a chunk whose choices are empty.
        assert acc.usage == Usage(input_tokens=14, output_tokens=47)
        assert acc.usage.total_tokens == 61


def test_decoder_and_accumulator_read_the_cut_recording_split_anywhere() -> None:
    data = CUT.read_bytes()
    for a in range(len(data) + 1):
        for b in (a, (a + len(data)) // 2):
            deltas, acc = decode(data, [a, b])
            assert deltas == [CUT_TEXT]
            assert (acc.finish_reason, acc.done) == ("length", True)
            assert acc.usage == Usage(input_tokens=17, output_tokens=1)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("piece", [0, 1, 61])
def test_clients_read_the_recording_over_a_socket(
    kind: str, piece: int, replay: ReplayServer
) -> None:
    replay.chat(Reply(body=WEATHER.read_bytes(), content_type="text/event-stream", piece=piece))
    deltas, done = stream_with(kind, replay.base_url)
    assert deltas == recorded_deltas(WEATHER)
    assert done.text == WEATHER_TEXT
    assert (done.finish_reason, done.model, done.request_id) == ("stop", RECORDED_MODEL, "replay-1")
    assert done.usage == Usage(input_tokens=14, output_tokens=47)
    (seen,) = replay.requests
    assert (seen.method, seen.path, seen.headers["authorization"]) == (
        "POST",
        "/v1/chat/completions",
        "Bearer local-key",
    )
    assert seen.body["stream"] is True and seen.body["model"] == "gpt-4o"


@pytest.mark.parametrize("kind", KINDS)
def test_clients_read_the_length_recording(kind: str, replay: ReplayServer) -> None:
    replay.chat(Reply(body=CUT.read_bytes(), content_type="text/event-stream", piece=5))
    deltas, done = stream_with(kind, replay.base_url)
    assert (deltas, done.finish_reason) == ([CUT_TEXT], "length")
    assert done.usage == Usage(input_tokens=17, output_tokens=1)


@pytest.mark.parametrize("kind", KINDS)
def test_compat_client_reads_the_recording(kind: str, replay: ReplayServer) -> None:
    replay.chat(Reply(body=WEATHER.read_bytes(), content_type="text/event-stream", piece=100))
    kw: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "What's the weather like in SF?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    options = {"base_url": replay.base_url, "api_key": "local-key"}
    if kind == "sync":
        with Client(**options) as client:
            chunks = list(client.chat.completions.create(**kw))
    else:

        async def main() -> list[Any]:
            async with AsyncClient(**options) as client:
                stream = await client.chat.completions.create(**kw)
                assert isinstance(stream, AsyncStream)
                return [chunk async for chunk in stream]

        chunks = asyncio.run(main())
    assert [c.choices[0].delta.content for c in chunks[:-1]] == recorded_deltas(WEATHER)
    final = chunks[-1]
    assert (final.choices[0].delta.content, final.choices[0].finish_reason) == (None, "stop")
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (14, 47)
    assert (final.usage.total_tokens, final.model, final.id) == (61, RECORDED_MODEL, "replay-1")


def test_the_openai_package_reads_the_replayed_recording_the_same_way(
    replay: ReplayServer,
) -> None:
    """The replay server is faithful: OpenAI's own client reads the same text and usage."""
    replay.chat(Reply(body=WEATHER.read_bytes(), content_type="text/event-stream", piece=61))
    with openai.OpenAI(base_url=replay.base_url, api_key="local-key", max_retries=0) as oai:
        chunks = list(
            oai.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": "What's the weather like in SF?"}],
                stream=True,
            )
        )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == WEATHER_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 61


# -- 2. a minimal OpenAI-compatible server (vLLM, Ollama, LM Studio, gateways) ----------------

LOCAL_MODEL = "llava:7b"
LOCAL_WORDS = ["A ", "tabby ", "cat ", "on ", "a ", "sofa."]


def local_stream(*, done: bool) -> bytes:
    """Events the way local servers send them: CRLF, a comment, role in every delta,
    an empty content beside the finish reason, no usage; ``[DONE]`` only when asked."""

    def event(delta: dict, finish: str | None) -> bytes:
        chunk = {
            "id": "chatcmpl-local",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": LOCAL_MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"

    body = b": keep-alive\r\n\r\n"
    body += b"".join(event({"role": "assistant", "content": w}, None) for w in LOCAL_WORDS)
    body += event({"role": "assistant", "content": ""}, "stop")
    return body + (b"data: [DONE]\r\n\r\n" if done else b"")


LOCAL_WHOLE = json.dumps(
    {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "created": 1700000000,
        "model": LOCAL_MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(LOCAL_WORDS)},
                "finish_reason": "stop",
            }
        ],
    }
).encode()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("done", [True, False], ids=["with-DONE", "without-DONE"])
def test_local_server_stream_without_usage(kind: str, done: bool, replay: ReplayServer) -> None:
    replay.chat(Reply(body=local_stream(done=done), content_type="text/event-stream", piece=9))
    deltas, completion = stream_with(kind, replay.base_url, model=LOCAL_MODEL)
    assert deltas == LOCAL_WORDS
    assert (completion.finish_reason, completion.usage, completion.model) == (
        "stop",
        None,
        LOCAL_MODEL,
    )
    assert [(r.method, r.path) for r in replay.requests] == [("POST", "/v1/chat/completions")]
    assert set(replay.requests[0].body) == {"model", "messages", "stream"}


@pytest.mark.parametrize("kind", KINDS)
def test_local_server_cut_before_the_finish_is_still_an_interruption(
    kind: str, replay: ReplayServer
) -> None:
    body = local_stream(done=False)
    body = body[: body.index(b"sofa.")].rsplit(b"data: ", 1)[0]
    replay.chat(Reply(body=body, content_type="text/event-stream"))
    with pytest.raises(StreamInterrupted, match="ended without") as info:
        stream_with(kind, replay.base_url, model=LOCAL_MODEL)
    assert info.value.partial_text == "".join(LOCAL_WORDS[:-1])


def test_describe_and_models_against_a_local_server(replay: ReplayServer) -> None:
    replay.chat(Reply(body=local_stream(done=False), content_type="text/event-stream"))
    shown = io.StringIO()
    client = RekaClient(base_url=replay.base_url, api_key="ollama", model=LOCAL_MODEL)
    with client:
        answer = client.describe(CAT, "What is it?", show=StdoutPresenter(shown))  # type: ignore[arg-type]
        assert answer == "".join(LOCAL_WORDS) and shown.getvalue() == answer + "\n"
        assert (answer.model, answer.usage, answer.finish_reason) == (LOCAL_MODEL, None, "stop")
        assert re.fullmatch(r"llava:7b · \d+\.\d s", answer.footer())
        sent = replay.requests[0].body["messages"][0]["content"]
        assert [p["type"] for p in sent] == ["image_url", "text"]
        assert sent[0]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")
        replay.chat(Reply(body=LOCAL_WHOLE))
        whole = client.complete([{"role": "user", "content": "hi"}])
        assert (whole.text, whole.usage, whole.finish_reason) == (
            "A tabby cat on a sofa.",
            None,
            "stop",
        )
        with pytest.raises(NotFoundError) as missing:
            client.models()
        assert str(missing.value) == "Not found: 404 page not found (HTTP 404, request id replay-3)"


def test_unknown_model_on_a_server_without_a_model_list(replay: ReplayServer) -> None:
    error = {
        "error": {"message": 'model "nope" not found, try pulling it first', "type": "api_error"}
    }
    replay.chat(Reply(404, json.dumps(error).encode()))
    with (
        RekaClient(base_url=replay.base_url, api_key="ollama") as client,
        pytest.raises(NotFoundError) as info,
    ):
        client.complete([{"role": "user", "content": "hi"}], model="nope")
    assert info.value.available_models == []
    assert str(info.value) == "Unknown model 'nope' (HTTP 404, request id replay-1)"
    assert [r.path for r in replay.requests] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize("kind", KINDS)
def test_compat_client_against_a_local_server(kind: str, replay: ReplayServer) -> None:
    replay.chat(Reply(body=local_stream(done=True), content_type="text/event-stream", piece=4))
    options = {"base_url": replay.base_url, "api_key": "ollama"}
    kw: dict[str, Any] = {"model": LOCAL_MODEL, "messages": [{"role": "user", "content": "?"}]}
    if kind == "sync":
        with Client(**options) as client:
            chunks = list(client.chat.completions.create(stream=True, image=CAT, **kw))
            replay.chat(Reply(body=LOCAL_WHOLE))
            whole = client.chat.completions.create(**kw)
    else:

        async def main() -> tuple[list, Any]:
            async with AsyncClient(**options) as client:
                stream = await client.chat.completions.create(stream=True, image=CAT, **kw)
                got = [c async for c in stream]
                replay.chat(Reply(body=LOCAL_WHOLE))
                return got, await client.chat.completions.create(**kw)

        chunks, whole = asyncio.run(main())
    assert [c.choices[0].delta.content for c in chunks] == [*LOCAL_WORDS, None]
    assert (chunks[-1].choices[0].finish_reason, chunks[-1].usage) == ("stop", None)
    assert (whole.choices[0].message.content, whole.usage) == ("A tabby cat on a sofa.", None)


# -- 3. the official clients judge the offline server ----------------------------------------


def test_async_openai_streams_with_include_usage_like_our_client(server: OfflineServer) -> None:
    messages = [{"role": "user", "content": "Describe nothing in particular."}]

    async def main() -> list[Any]:
        async with openai.AsyncOpenAI(
            base_url=server.base_url, api_key=server.api_key, max_retries=0
        ) as oai:
            stream = await oai.chat.completions.create(
                model="reka-edge",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as ours:
        done = ours.complete(messages, model="reka-edge", stream=True)
    assert text == done.text
    assert text.endswith("Model: reka-edge. Prompt: Describe nothing in particular.")
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes == [None] * (len(finishes) - 1) + ["stop"]
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and done.usage is not None
    assert (usage[0].prompt_tokens, usage[0].completion_tokens, usage[0].total_tokens) == (
        done.usage.input_tokens,
        done.usage.output_tokens,
        done.usage.total_tokens,
    )
    assert server.requests[0].body["stream_options"] == {"include_usage": True}


def test_openai_streaming_helper_accepts_the_offline_stream(server: OfflineServer) -> None:
    """``chat.completions.stream()`` rebuilds the answer and checks each chunk as it goes."""
    messages = [{"role": "user", "content": "hi"}]
    with (
        openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as oai,
        oai.chat.completions.stream(model="reka-flash", messages=messages) as stream,  # type: ignore[arg-type]
    ):
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert kinds[0] == "chunk" and kinds.count("content.done") == 1
    choice = final.choices[0]
    assert choice.message.content == (
        "This is reka_nb's offline server: no model ran, so nothing here is a real answer. "
        "Model: reka-flash. Prompt: hi"
    )
    assert (choice.finish_reason, choice.message.role, final.model) == (
        "stop",
        "assistant",
        "reka-flash",
    )
    assert final.usage is not None and (final.usage.prompt_tokens, final.usage.total_tokens) == (
        1,
        20,
    )


@pytest.mark.parametrize("status", [429, 503])
def test_openai_retries_on_our_retry_after(server: OfflineServer, status: int) -> None:
    server.queue(Fault.status(status, retry_after=0.05))
    with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=1) as oai:
        result = oai.chat.completions.create(
            model="reka-flash", messages=[{"role": "user", "content": "hi"}]
        )
    assert result.choices[0].finish_reason == "stop"
    assert [r.status for r in server.requests] == [status, 200]
    assert server.requests[0].fault == "status"


def _reka_messages() -> list[ChatMessage]:
    url = "data:image/jpeg;base64," + base64.b64encode(CAT.read_bytes()).decode()
    content = [
        TypedMediaContent(type="image_url", image_url=url),
        TypedText(type="text", text="What can you see?"),
    ]
    return [ChatMessage(role="user", content=content)]


def test_async_reka_sdk_reads_the_native_endpoint(server: OfflineServer) -> None:
    async def main() -> tuple[Any, list[Any]]:
        async with httpx.AsyncClient(timeout=10) as http:
            sdk = AsyncReka(api_key=server.api_key, base_url=server.base_url, httpx_client=http)
            whole = await sdk.chat.create(model="reka-core", messages=_reka_messages())
            chunks = [
                c
                async for c in sdk.chat.create_stream(
                    model="reka-core", messages=_reka_messages(), max_tokens=4
                )
            ]
            return whole, chunks

    whole, chunks = asyncio.run(main())
    with RekaClient(base_url=server.base_url, api_key=server.api_key, api="native") as ours:
        message = user_message("What can you see?", [prepare_image(CAT)], "native")
        done = ours.complete([message], model="reka-core")
    assert whole.responses[0].message.content == done.text
    assert whole.responses[0].finish_reason == "stop"
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == (
        done.usage.input_tokens,  # type: ignore[union-attr]
        done.usage.output_tokens,  # type: ignore[union-attr]
    )
    # Snapshots: each event holds the whole text so far; the last one the finish reason.
    assert [c.responses[0].chunk.content for c in chunks] == [
        "This ",
        "This is ",
        "This is reka_nb's ",
        "This is reka_nb's offline ",
    ]
    assert chunks[-1].responses[0].finish_reason == "length"
    assert [r.path for r in server.requests] == ["/v1/chat", "/v1/chat", "/v1/chat"]
