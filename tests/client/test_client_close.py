"""close() while other threads (or tasks) use the client: every call ends at once with a
RekaError, in progress or not, and later calls raise ClientClosedError."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from reka_nb import (
    AsyncRekaClient,
    ClientClosedError,
    RekaClient,
    RekaError,
    StreamInterrupted,
)
from reka_nb.testing import OfflineServer

HI = [{"role": "user", "content": "hi"}]


def test_close_while_eight_threads_call(server: OfflineServer) -> None:
    server.reply = "word " * 300
    server.token_delay = 0.01  # each answer takes 3 s: close() lands mid-answer
    client = RekaClient(base_url=server.base_url, api_key=server.api_key, read_timeout=30)
    outcomes: list[BaseException] = []
    ended: list[float] = []

    def work() -> None:
        try:
            while True:
                "".join(client.stream(HI))
        except BaseException as exc:
            outcomes.append(exc)
            ended.append(time.monotonic())

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    closed_at = time.monotonic()
    client.close()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 8
    assert all(isinstance(exc, RekaError) for exc in outcomes), outcomes
    assert max(ended) - closed_at < 2
    for exc in outcomes:
        if isinstance(exc, StreamInterrupted):
            assert exc.reason == "the client was closed"
            assert exc.partial_text.startswith("word ")
        else:
            assert isinstance(exc, ClientClosedError)
    started = time.monotonic()
    with pytest.raises(ClientClosedError, match="this RekaClient was closed: make a new client"):
        client.models()
    assert time.monotonic() - started < 0.1
    assert client.closed


def test_aclose_while_tasks_stream(server: OfflineServer) -> None:
    server.reply = "word " * 300
    server.token_delay = 0.01

    async def main() -> list[BaseException]:
        client = AsyncRekaClient(base_url=server.base_url, api_key=server.api_key)

        async def work() -> BaseException:
            try:
                while True:
                    async for _ in client.stream(HI):
                        pass
            except BaseException as exc:
                return exc

        tasks = [asyncio.create_task(work()) for _ in range(8)]
        await asyncio.sleep(0.5)
        await client.aclose()
        done = await asyncio.wait_for(asyncio.gather(*tasks), 2)
        with pytest.raises(ClientClosedError, match="this AsyncRekaClient was closed"):
            await client.models()
        return list(done)

    outcomes = asyncio.run(main())
    assert all(isinstance(exc, RekaError) for exc in outcomes), outcomes
