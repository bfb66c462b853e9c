"""Streamed answers: reka_nb's client against plain httpx + httpx-sse, and linearity.

1. The offline server runs in a child process (so it does not share the GIL with the clients)
   and streams a 4,000-word reply, one word per event, with no delay. Both readers fetch the
   same stream in alternation; the script prints the median time of each and their ratio
   (target: reka_nb / baseline <= 1.25).
4. One 32 MB event against one 8 MB event, decoded as a stream in 64 KB chunks (SSE decoder and
   accumulator, the event limit raised for the test): linear means the 32 MB one takes at most
   1.5x of 4x the time of the 8 MB one.
2. The same stream through ``AsyncRekaClient.stream`` on each transport (httpx's own pool, and
   httpx over aiohttp's: ``reka-nb[fast]``) against the httpx-sse floor on the same
   transport, in alternating rounds (target: within 1.1x of the floor on both).
5. ``describe()`` of a 2,000-token and a 20,000-token answer, with the notebook display on (a
   NotebookPresenter publishing to a shell whose publisher drops the messages) and off: the
   cost per token at 20,000 must stay within 1.5x of the cost at 2,000.

It prints figures; it asserts nothing.

    python benchmarks/bench_stream.py [--events 4000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import time
from typing import Any

import httpx
import httpx_sse

from reka_nb import AsyncRekaClient, RekaClient
from reka_nb.client.replies import StreamState
from reka_nb.client.settings import Settings
from reka_nb.client.sync import run_describe
from reka_nb.client.transports import FAST_INSTALL, fast_installed
from reka_nb.protocol.sse import SSEDecoder


def _serve(conn, words: int) -> None:
    from reka_nb.testing import OfflineServer

    reply = " ".join(f"w{i % 97}" for i in range(words))
    with OfflineServer(reply=reply) as server:
        conn.send((server.base_url, server.api_key))
        conn.recv()  # wait until the parent is done


def _body(model: str = "reka-flash") -> dict:
    return {
        "model": model,
        "stream": True,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
    }


def read_baseline(http: httpx.Client, url: str, key: str) -> str:
    """What a careful hand-written reader does: httpx-sse events, json.loads each."""
    parts: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    with httpx_sse.connect_sse(
        http, "POST", url + "/chat/completions", json=_body(), headers=headers
    ) as source:
        for event in source.iter_sse():
            if event.data == "[DONE]":
                break
            choices = json.loads(event.data).get("choices") or []
            if choices:
                content = choices[0].get("delta", {}).get("content")
                if content:
                    parts.append(content)
    return "".join(parts)


async def aread_baseline(http: httpx.AsyncClient, url: str, key: str, body: dict) -> str:
    """``read_baseline`` on an asyncio client (the floor of the asyncio stream reads)."""
    parts: list[str] = []
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx_sse.aconnect_sse(
        http, "POST", url + "/chat/completions", json=body, headers=headers
    ) as source:
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                break
            choices = json.loads(event.data).get("choices") or []
            if choices:
                content = choices[0].get("delta", {}).get("content")
                if content:
                    parts.append(content)
    return "".join(parts)


async def aread_reka_nb(client: AsyncRekaClient, messages: list[dict]) -> str:
    parts: list[str] = []
    async with client.stream(messages) as chat:
        async for text in chat:
            parts.append(text)
    return "".join(parts)


def read_reka_nb(client: RekaClient) -> str:
    chat = client.stream(_body()["messages"])
    return "".join(chat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_serve, args=(child, args.events), daemon=True)
    proc.start()
    url, key = parent.recv()
    try:
        ours: list[float] = []
        base: list[float] = []
        with httpx.Client(timeout=60) as http, RekaClient(base_url=url, api_key=key) as client:
            expected = read_baseline(http, url, key)  # warm both paths once
            assert read_reka_nb(client) == expected, "the two readers disagree"
            for _ in range(args.rounds):
                t = time.perf_counter()
                read_baseline(http, url, key)
                base.append(time.perf_counter() - t)
                t = time.perf_counter()
                text = read_reka_nb(client)
                ours.append(time.perf_counter() - t)
                assert text == expected
        words = len(expected.split())
        b, o = statistics.median(base), statistics.median(ours)
        print(f"stream of {words} events ({len(expected):,} characters), {args.rounds} rounds each")
        print(f"{'reader':<34}{'median ms':>10}{'min ms':>10}{'events/s':>12}")
        for name, times in (
            ("httpx + httpx-sse + json.loads", base),
            ("reka_nb RekaClient.stream", ours),
        ):
            med = statistics.median(times)
            print(f"{name:<34}{med * 1e3:>10.1f}{min(times) * 1e3:>10.1f}{words / med:>12,.0f}")
        print(f"ratio reka_nb / baseline: {o / b:.3f}  (target <= 1.25)")
        print()
        async_streams(url, key, args.rounds, expected)
    finally:
        parent.send("stop")
        proc.join(10)
    print()
    one_event()
    print()
    describe_lengths(args.rounds)


async def _async_reads(url: str, key: str, rounds: int, expected: str) -> dict[str, list[float]]:
    """Seconds per read of each asyncio reader, in alternating rounds."""

    def floor(http: httpx.AsyncClient) -> Any:
        return aread_baseline(http, url, key, _body())

    def ours(client: AsyncRekaClient) -> Any:
        return aread_reka_nb(client, _body()["messages"])

    readers: list[tuple[str, Any]] = []
    async with (
        httpx.AsyncClient(timeout=60) as h1,
        AsyncRekaClient(base_url=url, api_key=key, transport="httpx") as plain,
    ):
        readers += [
            ("httpx-sse floor, httpx", lambda: floor(h1)),
            ("reka_nb AsyncRekaClient.stream, httpx", lambda: ours(plain)),
        ]
        if fast_installed():
            from httpx_aiohttp import AiohttpTransport

            h2 = httpx.AsyncClient(timeout=60, transport=AiohttpTransport())
            fast = AsyncRekaClient(base_url=url, api_key=key, transport="aiohttp")
            readers += [
                ("httpx-sse floor, aiohttp transport", lambda: floor(h2)),
                ("reka_nb AsyncRekaClient.stream, aiohttp", lambda: ours(fast)),
            ]
        try:
            for name, read in readers:  # warm each once, and check they agree
                assert await read() == expected, name
            times: dict[str, list[float]] = {name: [] for name, _ in readers}
            for _ in range(rounds):
                for name, read in readers:
                    t = time.perf_counter()
                    await read()
                    times[name].append(time.perf_counter() - t)
        finally:
            if fast_installed():
                await h2.aclose()
                await fast.aclose()
    return times


def async_streams(url: str, key: str, rounds: int, expected: str) -> None:
    """The stream through AsyncRekaClient on each transport beside the httpx-sse floor."""
    times = asyncio.run(_async_reads(url, key, rounds, expected))
    words = len(expected.split())
    print(f"asyncio: stream of {words} events, {rounds} alternating rounds")
    print(f"{'reader':<44}{'median ms':>10}{'min ms':>10}{'vs floor':>10}")
    floors = {"httpx": "httpx-sse floor, httpx", "aiohttp": "httpx-sse floor, aiohttp transport"}
    for name, seconds in times.items():
        floor = statistics.median(times[floors["aiohttp" if "aiohttp" in name else "httpx"]])
        med = statistics.median(seconds)
        print(f"{name:<44}{med * 1e3:>10.1f}{min(seconds) * 1e3:>10.1f}{med / floor:>10.3f}")
    if not fast_installed():
        print(f"(the aiohttp transport is not installed: {FAST_INSTALL})")
    print("target: reka_nb within 1.1x of the floor on the same transport")


def decode_one_event(megabytes: int) -> float:
    """Seconds to decode one event of ``megabytes`` MB of text, fed in 64 KB chunks."""
    content = "x" * (megabytes << 20)
    body = b"data: " + json.dumps({"choices": [{"delta": {"content": content}}]}).encode()
    body += b"\n\n"
    settings = Settings("http://127.0.0.1:1/v1", "reka-flash", "k", "openai", False)
    response = httpx.Response(200, headers={"content-type": "text/event-stream"})
    state = StreamState(settings, response, read_timeout=120)
    state.decoder = SSEDecoder(max_event_size=len(body) + 1)  # this test's event is the point
    started = time.perf_counter()
    for i in range(0, len(body), 65536):
        state.feed(body[i : i + 65536])
    elapsed = time.perf_counter() - started
    assert len(state.acc.text) == len(content)
    return elapsed


def one_event() -> None:
    times = {mb: min(decode_one_event(mb) for _ in range(3)) for mb in (8, 32)}
    ratio = times[32] / times[8]
    print("one event, decoded in 64 KB chunks (best of 3)")
    for mb, seconds in times.items():
        print(f"  {mb:>2} MB event: {seconds * 1e3:8.1f} ms  ({mb / seconds:,.0f} MB/s)")
    verdict = "met" if ratio <= 6 else "MISSED"
    print(f"  32 MB / 8 MB time: {ratio:.2f}  (target <= 6, 1.5x of 4x: {verdict})")


class _DropPublisher:
    """A display publisher that drops every message (the display's own cost is measured)."""

    def publish(self, *args: object, **kwargs: object) -> None:
        pass

    def clear_output(self, wait: bool = False) -> None:
        pass


def describe_lengths(rounds: int) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    from reka_nb.notebook.display import NotebookPresenter

    servers = {}  # started before the shell, which replaces __main__ (spawn needs it)
    for tokens in (2_000, 20_000):
        parent, child = mp.Pipe()
        proc = mp.get_context("spawn").Process(target=_serve, args=(child, tokens), daemon=True)
        proc.start()
        servers[tokens] = (parent, proc, *parent.recv())
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.display_pub = _DropPublisher()  # type: ignore[assignment]
    per_token: dict[tuple[str, int], float] = {}
    try:
        for tokens, (_, _, url, key) in servers.items():
            with RekaClient(base_url=url, api_key=key) as client:
                for display in ("on", "off"):
                    best = float("inf")
                    for _ in range(max(3, rounds // 3)):
                        show = NotebookPresenter(mode="live") if display == "on" else False
                        started = time.perf_counter()
                        answer = run_describe(client, None, "Tell me a long story.", show=show)
                        best = min(best, time.perf_counter() - started)
                    assert len(answer.split()) == tokens
                    per_token[(display, tokens)] = best / tokens
    finally:
        for parent, proc, *_ in servers.values():
            parent.send("stop")
            proc.join(10)
    print("describe(), best of runs: cost per token")
    for display in ("on", "off"):
        small, large = per_token[(display, 2_000)], per_token[(display, 20_000)]
        ratio = large / small
        verdict = "met" if ratio <= 1.5 else "MISSED"
        print(
            f"  display {display:<3}: 2,000 tokens {small * 1e6:6.1f} us/token, "
            f"20,000 tokens {large * 1e6:6.1f} us/token, ratio {ratio:.2f} "
            f"(target <= 1.5: {verdict})"
        )


if __name__ == "__main__":
    main()
