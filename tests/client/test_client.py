"""Both clients against the offline server over real sockets: every scenario runs sync and async."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from reka_nb import (
    APIConnectionError,
    APITimeoutError,
    AsyncRekaClient,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    MissingAPIKeyError,
    NotFoundError,
    RateLimitError,
    RekaClient,
    ServerError,
    StreamInterrupted,
)
from reka_nb.images import prepare_image
from reka_nb.protocol.messages import user_message
from reka_nb.testing import Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
KINDS = ["sync", "async"]


def messages(prompt: str = "What can you see in the image?", api: str = "openai") -> list[dict]:
    return [user_message(prompt, [prepare_image(CAT)], api)]  # type: ignore[arg-type]


def make(kind: str, server: OfflineServer | None, **kw: Any) -> RekaClient | AsyncRekaClient:
    if server is not None:
        kw.setdefault("base_url", server.base_url)
        kw.setdefault("api_key", server.api_key)
    kw.setdefault("backoff", 0.01)
    return RekaClient(**kw) if kind == "sync" else AsyncRekaClient(**kw)


def stream(kind: str, server: OfflineServer, msgs: list[dict] | None = None, **kw: Any):
    """Stream an answer; return (deltas, completion, text seen); errors propagate."""
    params = kw.pop("params", {})
    client = make(kind, server, **kw)
    msgs = msgs or messages(api=kw.get("api") or "openai")
    if kind == "sync":
        with client:
            chat = client.stream(msgs, **params)
            deltas = list(chat)
            return deltas, chat.completion

    async def run():
        async with client:
            chat = client.stream(msgs, **params)
            deltas = [d async for d in chat]
            return deltas, chat.completion

    return asyncio.run(run())


def complete(kind: str, server: OfflineServer, **kw: Any):
    params = kw.pop("params", {})
    client = make(kind, server, **kw)
    msgs = messages(api=kw.get("api") or "openai")
    if kind == "sync":
        with client:
            return client.complete(msgs, **params)

    async def run():
        async with client:
            return await client.complete(msgs, **params)

    return asyncio.run(run())


def models(kind: str, server: OfflineServer, **kw: Any) -> list[str]:
    client = make(kind, server, **kw)
    if kind == "sync":
        with client:
            return client.models()

    async def run():
        async with client:
            return await client.models()

    return asyncio.run(run())


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


def test_stream_matches_whole_answer(kind: str, server: OfflineServer) -> None:
    deltas, done = stream(kind, server)
    whole = complete(kind, server)
    assert "".join(deltas) == done.text == whole.text
    assert "451×300 px" in done.text and "no model ran" in done.text
    assert len(deltas) > 10
    assert done.finish_reason == "stop" and whole.finish_reason == "stop"
    assert done.usage.output_tokens == len(deltas)
    assert done.request_id == server.requests[0].request_id
    assert server.requests[0].headers["authorization"] == "Bearer [secure]"


def test_native_snapshots_give_the_same_text(kind: str, server: OfflineServer) -> None:
    openai_deltas, openai_done = stream(kind, server)
    native_deltas, native_done = stream(kind, server, api="native")
    assert native_deltas == openai_deltas
    assert native_done.text == openai_done.text
    assert complete(kind, server, api="native").text == openai_done.text
    assert server.requests[1].path == "/v1/chat"
    assert server.requests[1].headers["x-api-key"] != server.api_key


def test_models(kind: str, server: OfflineServer) -> None:
    assert "reka-flash" in models(kind, server)


def test_params_reach_the_server(kind: str, server: OfflineServer) -> None:
    deltas, done = stream(kind, server, params={"max_tokens": 3, "temperature": 0.2, "seed": 7})
    assert len(deltas) == 3 and done.finish_reason == "length"
    body = server.requests[0].body
    assert (body["max_tokens"], body["temperature"], body["seed"]) == (3, 0.2, 7)


def test_retry_then_success(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.status(503), Fault.reset(), Fault.ok())
    _, done = stream(kind, server)
    assert done.finish_reason == "stop"
    assert [r.status for r in server.requests][:1] == [503]
    assert len(server.requests) == 3


def test_retry_after_is_honoured(kind: str, server: OfflineServer) -> None:
    import time

    server.queue(Fault.status(429, retry_after=0.4), Fault.ok())
    start = time.monotonic()
    stream(kind, server, backoff=0.0)
    assert time.monotonic() - start >= 0.4
    assert len(server.requests) == 2


def test_retries_spent(kind: str, server: OfflineServer) -> None:
    server.queue(*[Fault.status(500)] * 3)
    with pytest.raises(ServerError) as info:
        stream(kind, server)
    assert info.value.status == 500
    assert info.value.request_id == server.requests[-1].request_id
    assert len(server.requests) == 3


def test_no_retry_when_disabled(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.status(502), Fault.ok())
    with pytest.raises(ServerError):
        stream(kind, server, max_retries=0)
    assert len(server.requests) == 1


def test_credits_429_not_retried(kind: str, server: OfflineServer) -> None:
    body = {"error": {"type": "rate_limit_error", "message": "Not enough credits"}}
    server.queue(Fault.status(429, body, retry_after=0), Fault.ok())
    with pytest.raises(RateLimitError) as info:
        stream(kind, server)
    assert info.value.out_of_credits and info.value.status == 429
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (422, BadRequestError),
    ],
)
def test_each_error_type(kind: str, server: OfflineServer, status: int, cls: type) -> None:
    server.queue(Fault.status(status), Fault.ok())
    with pytest.raises(cls) as info:
        stream(kind, server)
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.request_id == server.requests[0].request_id
    assert f"request id {server.requests[0].request_id}" in str(info.value)


def test_wrong_key(kind: str, server: OfflineServer) -> None:
    with pytest.raises(AuthenticationError) as info:
        stream(kind, server, api_key="reka-wrong-key-123")
    assert info.value.status == 401
    assert "reka-wrong-key-123" not in str(info.value)


def test_unknown_model_lists_models(kind: str, server: OfflineServer) -> None:
    with pytest.raises(NotFoundError) as info:
        stream(kind, server, model="reka-nope")
    assert "reka-flash" in info.value.available_models
    assert str(info.value).startswith("Unknown model 'reka-nope'; the models this key can use: ")


def test_native_422(kind: str, server: OfflineServer) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    server.queue(Fault.status(422, {"detail": [{"loc": ["body", "x"], "msg": "bad", "type": "t"}]}))
    with pytest.raises(BadRequestError) as info:
        stream(kind, server, msgs, api="native")
    assert info.value.messages == ["x: bad"]


def test_break_mid_stream_keeps_partial_text(kind: str, server: OfflineServer) -> None:
    _, full = stream(kind, server)
    server.reset()
    server.queue(Fault.break_after(5), Fault.ok())
    with pytest.raises(StreamInterrupted) as info:
        stream(kind, server)
    err = info.value
    words = full.text.split(" ")
    assert err.partial_text == " ".join(words[:5]) + " "
    assert err.request_id == server.requests[0].request_id
    assert err.reason == "the connection closed before the answer was complete"
    assert str(err) == (
        f"The answer stopped after {len(err.partial_text)} characters: the connection closed "
        f"before the answer was complete (request id {err.request_id})"
    )
    # httpx's own words stay on __cause__, without the request (whose headers hold the key)
    assert isinstance(err.__cause__, httpx.RemoteProtocolError)
    assert "incomplete chunked read" in str(err.__cause__)
    with pytest.raises(RuntimeError):
        err.__cause__.request  # noqa: B018 - a detached copy has none
    assert len(server.requests) == 1  # never retried once text arrived


def test_malformed_event(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.malformed(3))
    with pytest.raises(StreamInterrupted, match="malformed event") as info:
        stream(kind, server)
    assert len(info.value.partial_text.split()) == 3


def test_clean_close_without_finish_is_a_cut(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.end_without_finish(4))
    with pytest.raises(StreamInterrupted, match="ended without") as info:
        stream(kind, server)
    assert len(info.value.partial_text.split()) == 4


def test_stall_longer_than_read_timeout(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.stall(2, 3.0))
    with pytest.raises(StreamInterrupted, match=r"no event for 0\.3 s") as info:
        stream(kind, server, read_timeout=0.3)
    assert len(info.value.partial_text.split()) == 2


def test_slow_first_byte(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.slow_first_byte(0.3))
    _, done = stream(kind, server, read_timeout=5)
    assert done.finish_reason == "stop"
    server.queue(Fault.slow_first_byte(3.0))
    with pytest.raises(APITimeoutError, match=r"did not answer within 0\.3 s"):
        stream(kind, server, read_timeout=0.3, connect_timeout=0.3, max_retries=0)


def test_reset_every_time(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.reset(), Fault.reset(), Fault.reset())
    with pytest.raises(APIConnectionError, match="failed before an answer"):
        stream(kind, server)
    assert len(server.requests) == 3


def test_nothing_listening(kind: str) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = make(kind, None, base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=1)
    msgs = [{"role": "user", "content": "hi"}]
    with pytest.raises(
        APIConnectionError, match=f"Could not connect to http://127.0.0.1:{port}/v1"
    ):
        if kind == "sync":
            with client:
                client.complete(msgs)
        else:

            async def run() -> None:
                async with client:
                    await client.complete(msgs)

            asyncio.run(run())


def test_redirect_not_followed(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.status(307, "moved", headers={"Location": "https://elsewhere.example/v1"}))
    with pytest.raises(ServerError, match="Unexpected redirect"):
        stream(kind, server)
    assert len(server.requests) == 1


def test_missing_key_sends_nothing(kind: str, server: OfflineServer) -> None:
    client = (
        RekaClient(base_url=server.base_url)
        if kind == "sync"
        else AsyncRekaClient(base_url=server.base_url)
    )
    with pytest.raises(MissingAPIKeyError, match="set the REKA_API_KEY environment variable"):
        client.stream([{"role": "user", "content": "hi"}])
    assert server.requests == []


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com/v1", "ftp://127.0.0.1/v1", "localhost:8000", "https://u:p@x.example"],
)
def test_bad_base_urls_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        RekaClient(base_url=url)


def test_loopback_http_allowed() -> None:
    for url in ("http://127.0.0.1:1/v1", "http://localhost:1", "http://[::1]:1/v1"):
        RekaClient(base_url=url)


def test_settings_read_at_call_time(env: OfflineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REKA_API_KEY")
    with RekaClient() as client:
        with pytest.raises(MissingAPIKeyError):
            client.models()
        monkeypatch.setenv("REKA_API_KEY", env.api_key)
        monkeypatch.setenv("REKA_MODEL", "reka-core")
        assert client.settings().model == "reka-core"
        assert client.complete([{"role": "user", "content": "hi"}]).model == "reka-core"


def test_offline_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    import reka_nb

    monkeypatch.setenv("REKA_NB_OFFLINE", "1")
    with RekaClient() as client:
        assert client.settings().offline
        assert "no model ran" in client.complete([{"role": "user", "content": "hi"}]).text
        monkeypatch.delenv("REKA_NB_OFFLINE")
        assert not client.settings().offline
        server = reka_nb.use_offline_server()
        assert client.settings().base_url == server.base_url
        assert "reka-flash" in client.models()


@pytest.mark.parametrize(
    ("fault", "error", "match"),
    [
        (Fault.break_after(0), APIConnectionError, "failed before an answer"),
        (Fault.stall(0, 3.0), APITimeoutError, r"did not answer within 0\.3 s"),
    ],
)
def test_whole_answer_body_failures_are_typed_and_not_resent(
    kind: str, server: OfflineServer, fault: Fault, error: type, match: str
) -> None:
    server.queue(fault, Fault.ok())
    with pytest.raises(error, match=match) as info:
        complete(kind, server, read_timeout=0.3)
    assert info.value.__context__ is None and info.value.__cause__ is None
    assert len(server.requests) == 1


def test_read_timeout_before_the_reply_is_not_resent(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.slow_first_byte(3.0), Fault.ok())
    with pytest.raises(APITimeoutError, match=r"did not answer within 0\.3 s"):
        stream(kind, server, read_timeout=0.3, connect_timeout=5)
    assert len(server.requests) == 1


def test_break_after_the_finish_reason_loses_nothing(kind: str, server: OfflineServer) -> None:
    server.reply = "one two three"
    server.queue(Fault.break_after(4))  # three words, the finish chunk, then a break
    deltas, done = stream(kind, server)
    assert "".join(deltas) == done.text == "one two three"
    assert done.finish_reason == "stop"


def test_an_answer_is_read_once(server: OfflineServer) -> None:
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        chat = client.stream([{"role": "user", "content": "hi"}])
        assert "no model ran" in "".join(chat)
        with pytest.raises(RuntimeError, match="this answer has been read already"):
            list(chat)


@pytest.mark.parametrize("value", ["fast", "-1", "nan"])
def test_bad_offline_delay_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from reka_nb.client import offline_mode as _offline

    monkeypatch.setattr(_offline, "_server", None)
    monkeypatch.setenv("REKA_NB_OFFLINE", "1")
    monkeypatch.setenv("REKA_NB_OFFLINE_DELAY", value)
    with pytest.raises(ConfigurationError, match="REKA_NB_OFFLINE_DELAY must be seconds"):
        RekaClient().settings()


def test_streams_reuse_one_connection(server: OfflineServer) -> None:
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        for _ in range(3):
            assert "no model ran" in "".join(client.stream([{"role": "user", "content": "hi"}]))
        pool = client._client()._transport._pool  # type: ignore[attr-defined]
        assert len(pool.connections) == 1


def test_unknown_model_lists_models_once_without_retries(kind: str, server: OfflineServer) -> None:
    server.queue(Fault.ok(), Fault.status(503), Fault.ok())  # the chat, then a failing listing
    with pytest.raises(NotFoundError) as info:
        stream(kind, server, model="reka-nope")
    assert info.value.available_models == []
    assert [r.path for r in server.requests] == ["/v1/chat/completions", "/v1/models"]


def test_a_base_url_httpx_cannot_parse_is_a_configuration_error(
    server: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match=r"^base URL 'http://\[::1\]evil.com' is not a"):
        RekaClient(base_url="http://[::1]evil.com")
    monkeypatch.setenv("REKA_BASE_URL", "http://[::1]evil.com")
    monkeypatch.setenv("REKA_API_KEY", server.api_key)
    with RekaClient() as client, pytest.raises(ConfigurationError, match="is not a valid URL"):
        client.stream([{"role": "user", "content": "hi"}])
    assert server.requests == []


@pytest.mark.parametrize("header", ["0", "-5", "soon"])
def test_retry_after_zero_negative_or_unreadable_still_backs_off(
    server: OfflineServer, header: str
) -> None:
    """Three 429s that say 'retry now': the client waits its own backoff floor between tries
    (0.1, 0.2, 0.4 s at backoff=0.2), never a burst."""
    server.queue(*[Fault.status(429, retry_after=header)] * 3)
    with RekaClient(
        base_url=server.base_url, api_key=server.api_key, backoff=0.2, max_retries=3
    ) as client:
        text = client.complete([{"role": "user", "content": "hi"}]).text
    assert text
    times = [r.received for r in server.requests]
    assert [r.status for r in server.requests] == [429, 429, 429, 200]
    gaps = [times[i + 1] - times[i] for i in range(3)]
    assert all(gaps[i] >= (0.1, 0.2, 0.4)[i] for i in range(3)), gaps
