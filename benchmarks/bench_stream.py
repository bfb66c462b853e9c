"""Reading a 4,000-event streamed answer: reka_nb's client against plain httpx + httpx-sse.

The offline server runs in a child process (so it does not share the GIL with the clients)
and streams a 4,000-word reply, one word per event, with no delay. Both readers fetch the
same stream in alternation; the script prints the median time of each and their ratio
(target: reka_nb / baseline <= 1.25). It prints figures; it asserts nothing.

    python benchmarks/bench_stream.py [--events 4000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time

import httpx
import httpx_sse

from reka_nb import RekaClient


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
    finally:
        parent.send("stop")
        proc.join(10)


if __name__ == "__main__":
    main()
