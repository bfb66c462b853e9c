"""transport=: the pool an asyncio client asks through, httpx's own or httpx over aiohttp's
(the fast extra), chosen by name, by REKA_NB_TRANSPORT, or by ``auto``; refused clearly when
misspelt or not installed, before anything is sent."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from _hostile import HostileServer, Reply

from reka_nb import AsyncRekaClient, ConfigurationError, RekaClient, describe_many
from reka_nb.client import aiohttp_transport
from reka_nb.client.transports import fast_installed
from reka_nb.testing import OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
HI = [{"role": "user", "content": "hi"}]
KEY = "reka-transport-test-key"
NOT_INSTALLED = (
    "transport='aiohttp' needs httpx-aiohttp, which is not installed: "
    "pip install 'reka-nb[fast]' (or use transport='httpx')"
)
needs_fast = pytest.mark.skipif(not fast_installed(), reason="reka-nb[fast] is not installed")


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("aiohtp", " (did you mean 'aiohttp'?)"),
        ("htpx", " (did you mean 'httpx'?)"),
        ("fast", " (the fast extra's transport is 'aiohttp')"),
        ("requests", ""),
        (3, ""),
    ],
)
def test_an_unknown_transport_names_the_choices(env: OfflineServer, name: Any, hint: str) -> None:
    expected = f"transport must be one of 'auto', 'httpx', 'aiohttp', not {name!r}{hint}"
    for make in (AsyncRekaClient, RekaClient):
        with pytest.raises(ConfigurationError) as info:
            make(transport=name)
        assert str(info.value) == expected
    with pytest.raises(ConfigurationError) as info:
        describe_many([CAT], "hi", transport=name, show=False)
    assert str(info.value) == expected
    assert env.requests == []


def test_a_bad_environment_transport_is_refused_before_anything_is_sent(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_TRANSPORT", " aiohtpp ")
    expected = (
        "REKA_NB_TRANSPORT must be one of 'auto', 'httpx', 'aiohttp', not 'aiohtpp' "
        "(did you mean 'aiohttp'?)"
    )

    async def ask() -> None:
        async with AsyncRekaClient() as client:
            await client.complete(HI)

    with pytest.raises(ConfigurationError) as info:
        asyncio.run(ask())
    assert str(info.value) == expected
    with pytest.raises(ConfigurationError) as info:
        describe_many([CAT], "hi", show=False)
    assert str(info.value) == expected
    assert env.requests == []


def test_without_the_fast_extra_aiohttp_says_what_to_install_and_auto_is_httpx(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "httpx_aiohttp", None)  # as if not installed
    assert not fast_installed()
    with pytest.raises(ConfigurationError) as info:
        AsyncRekaClient(transport="aiohttp")
    assert str(info.value) == NOT_INSTALLED
    with pytest.raises(ConfigurationError) as info:
        describe_many([CAT], "hi", transport="aiohttp", show=False)
    assert str(info.value) == NOT_INSTALLED
    assert env.requests == []
    monkeypatch.setenv("REKA_NB_TRANSPORT", "aiohttp")
    with pytest.raises(ConfigurationError) as info:
        describe_many([CAT], "hi", show=False)
    assert str(info.value) == NOT_INSTALLED
    assert env.requests == []
    monkeypatch.delenv("REKA_NB_TRANSPORT")
    assert AsyncRekaClient(transport="auto").transport_in_use() == "httpx"
    results = describe_many([CAT, CAT], "hi", show=False, cache=False)  # auto: httpx
    assert [r.error for r in results] == [None, None]
    assert len(env.chat_requests()) == 2


@needs_fast
def test_the_transport_is_the_argument_else_the_environment_else_httpx(
    monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    assert AsyncRekaClient().transport_in_use() == transport  # REKA_NB_TRANSPORT
    assert AsyncRekaClient(transport="httpx").transport_in_use() == "httpx"
    assert AsyncRekaClient(transport="AIOHTTP").transport_in_use() == "aiohttp"
    assert AsyncRekaClient(transport="auto").transport_in_use() == "aiohttp"
    monkeypatch.delenv("REKA_NB_TRANSPORT")
    assert AsyncRekaClient().transport_in_use() == "httpx"
    assert AsyncRekaClient(transport="aiohttp").options()["transport"] == "aiohttp"


def test_a_sync_client_uses_httpx_and_refuses_aiohttp(server: OfflineServer) -> None:
    with pytest.raises(ConfigurationError) as info:
        RekaClient(transport="aiohttp")
    assert str(info.value) == (
        "transport='aiohttp' is for AsyncRekaClient (and describe_many): a RekaClient always "
        "uses httpx's own pool"
    )
    with RekaClient(base_url=server.base_url, api_key=server.api_key, transport="auto") as c:
        assert c.complete(HI).text
        assert type(c._client()._transport).__name__ == "HTTPTransport"


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests sent through the aiohttp transport (its own method, wrapped to count)."""
    sent: list[str] = []
    real = aiohttp_transport.AiohttpPool.handle_async_request

    async def handle(self: Any, request: Any) -> Any:
        sent.append(request.url.path)
        return await real(self, request)

    monkeypatch.setattr(aiohttp_transport.AiohttpPool, "handle_async_request", handle)
    return sent


@needs_fast
def test_describe_many_is_auto_unless_told_and_a_client_choice_is_kept(
    server: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REKA_NB_TRANSPORT")
    sent = counting(monkeypatch)
    options = {"show": False, "cache": False}
    plain = RekaClient(base_url=server.base_url, api_key=server.api_key)
    assert not describe_many([CAT, CAT], "hi", client=plain, **options).errors
    assert len(sent) == 2  # auto: the aiohttp transport, installed here
    assert not describe_many([CAT], "hi", client=plain, transport="httpx", **options).errors
    assert len(sent) == 2
    chosen = AsyncRekaClient(base_url=server.base_url, api_key=server.api_key, transport="httpx")
    assert not describe_many([CAT], "hi", client=chosen, **options).errors
    assert len(sent) == 2  # the client's own choice
    monkeypatch.setenv("REKA_NB_TRANSPORT", "httpx")
    assert not describe_many([CAT], "hi", client=plain, **options).errors
    assert len(sent) == 2
    assert not describe_many([CAT], "hi", client=plain, transport="aiohttp", **options).errors
    assert len(sent) == 3
    assert len(server.chat_requests()) == 6


@needs_fast
def test_adescribe_many_refuses_a_transport_its_client_does_not_use(
    server: OfflineServer,
) -> None:
    from reka_nb import adescribe_many

    async def main() -> None:
        async with AsyncRekaClient(
            base_url=server.base_url, api_key=server.api_key, transport="httpx"
        ) as client:
            with pytest.raises(ValueError) as info:
                await adescribe_many([CAT], "hi", client=client, transport="aiohttp", show=False)
            assert str(info.value) == (
                "transport='aiohttp' asks for aiohttp, but the AsyncRekaClient given uses httpx: "
                "make it with AsyncRekaClient(transport='aiohttp'), or leave transport out"
            )
            same = await adescribe_many(
                [CAT], "hi", client=client, transport="httpx", show=False, cache=False
            )
            assert not same.errors

    asyncio.run(main())
    assert len(server.chat_requests()) == 1


ANSWER = json.dumps(
    {
        "model": "reka-flash",
        "choices": [{"message": {"content": "A cat."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }
).encode()


def test_a_run_keeps_one_connection_per_request_in_flight() -> None:
    """30 at once, 120 images: the pool keeps every connection it opened (httpx's default
    keeps 20 alive, so a run at 30 would open new ones all along)."""
    ports: list[int] = []
    lock = threading.Lock()

    def handler(reply: Reply) -> None:
        with lock:
            ports.append(reply.sock.getpeername()[1])
        time.sleep(0.02)
        reply.whole(200, ANSWER)

    with HostileServer(handler) as hostile:
        client = RekaClient(base_url=hostile.base_url, api_key=KEY)
        results = describe_many(
            [CAT] * 120, "hi", client=client, concurrency=30, show=False, cache=False
        )
    assert [r.text for r in results] == ["A cat."] * 120
    assert len(ports) == 120
    assert len(set(ports)) <= 31


@needs_fast
def test_both_transports_send_the_same_bytes_and_read_the_same_answer() -> None:
    heads: list[bytes] = []
    bodies: list[bytes] = []

    def handler(reply: Reply) -> None:
        heads.append(reply.head.replace(reply.head.split(b"\r\n")[1], b"Host: -"))
        bodies.append(reply.body)
        reply.whole(200, ANSWER)

    async def ask(hostile: HostileServer, name: str) -> Any:
        async with AsyncRekaClient(base_url=hostile.base_url, api_key=KEY, transport=name) as c:
            return await c.complete(HI)

    with HostileServer(handler) as hostile:
        plain = asyncio.run(ask(hostile, "httpx"))
        fast = asyncio.run(ask(hostile, "aiohttp"))
    assert heads[0] == heads[1]
    assert heads[0].split(b"\r\n")[-1] == b"Authorization: Bearer " + KEY.encode()
    assert bodies[0] == bodies[1]
    assert (fast.text, fast.request_id, fast.usage) == (plain.text, plain.request_id, plain.usage)
    assert fast.text == "A cat."


@needs_fast
def test_a_header_httpx_reads_is_read_on_aiohttp_too() -> None:
    """aiohttp's own limit is 8,190 bytes a header; h11 takes a 16 KB head."""

    def handler(reply: Reply) -> None:
        reply.whole(200, ANSWER, x_note="n" * 12_000)

    async def ask(hostile: HostileServer, name: str) -> str:
        async with AsyncRekaClient(base_url=hostile.base_url, api_key=KEY, transport=name) as c:
            return (await c.complete(HI)).text

    with HostileServer(handler) as hostile:
        assert [asyncio.run(ask(hostile, name)) for name in ("httpx", "aiohttp")] == ["A cat."] * 2
