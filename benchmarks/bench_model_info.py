"""What the model list costs a question: a fresh process's first token, and a huge list.

1. Time to first token of ``describe()`` in a fresh process, against an offline server (in this
   process) that answers every request, ``GET /models`` included, after 200 ms: with the model
   lookup off (``model_info=False``), on with the list kept on disk by an earlier process, and
   on without it (an empty cache folder). Targets: on-disk within 1.15x of off; without the
   list at most one round trip (200 ms) more than off. Clocked from the call to ``describe``
   to the first streamed word (the import is the same in all three).
2. ``describe()`` per item against a server with no delay, with the model list of the
   offline server (8 models) and with a 200,000-entry list: the per-question lookup is an
   index, so both cost the same; a scan of the list per question (what it was) is timed
   beside them.

It prints figures; it asserts nothing.

    python benchmarks/bench_model_info.py [--rounds 7] [--items 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reka_nb import RekaClient
from reka_nb.offline._catalog import model_entry
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[1]
CAT = str(ROOT / "docs" / "images" / "cat.jpeg")
LATENCY = 0.2

_CHILD = """
import sys, time
import reka_nb

class First:
    first = None
    def start(self, **kw): pass
    def update(self, delta, text=None):
        if First.first is None:
            First.first = time.perf_counter()
    def finish(self, description): pass
    def fail(self, error, partial_text): pass

info = sys.argv[4] == "on"
client = reka_nb.RekaClient(base_url=sys.argv[1], api_key=sys.argv[2], model_info=info)
started = time.perf_counter()
client.describe(sys.argv[3], show=First())
print(f"{First.first - started:.6f}")
"""


def fresh_ttft(server: OfflineServer, cache: Path, info: str) -> float:
    env = {**os.environ, "REKA_NB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("REKA_NB_MODEL_INFO", None)
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, server.base_url, server.api_key, CAT, info],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(out.stdout.strip())


def first_token(rounds: int) -> None:
    print(f"1. Fresh process, time to first token; every request answered after {LATENCY:g} s")
    times: dict[str, list[float]] = {"off": [], "on, list on disk": [], "on, no list": []}
    with (
        OfflineServer(latency=LATENCY, models_latency=LATENCY) as server,
        tempfile.TemporaryDirectory() as folder,
    ):
        kept = Path(folder) / "kept"
        fresh_ttft(server, kept, "on")  # an earlier process leaves the list on disk
        for n in range(rounds):
            times["off"].append(fresh_ttft(server, Path(folder) / f"off{n}", "off"))
            times["on, list on disk"].append(fresh_ttft(server, kept, "on"))
            times["on, no list"].append(fresh_ttft(server, Path(folder) / f"none{n}", "on"))
        lookups = sum(r.path == "/v1/models" for r in server.requests)
    off = statistics.median(times["off"])
    for name, values in times.items():
        median = statistics.median(values)
        extra = (median - off) / LATENCY
        print(
            f"   model info {name:<17} median {median * 1000:7.1f} ms  "
            f"({median / off:.3f}x off, {extra:+.2f} round trips)  "
            f"min {min(values) * 1000:.1f}  max {max(values) * 1000:.1f}"
        )
    print(f"   GET /models seen by the server: {lookups} (1 + one per round without a list)")


def per_item(items: int) -> None:
    print(f"2. describe() per item, {items} items, server without delay")
    huge = [{"id": f"m{i}"} for i in range(200_000)] + [model_entry("reka-flash", 0)]
    for name, entries in (("8 models", None), ("200,000 models", huge)):
        with OfflineServer(model_list=entries) as server:
            client = RekaClient(base_url=server.base_url, api_key=server.api_key)
            with client:
                models = client.models()
                client.describe(CAT, show=False)  # warm: Pillow, the index
                started = time.perf_counter()
                for _ in range(items):
                    client.describe(CAT, show=False)
                each = (time.perf_counter() - started) / items
                started = time.perf_counter()
                for _ in range(items):  # a scan per question, twice, as before the index
                    next(m for m in models if m == "reka-flash")
                    [m for m in models if m != "reka-flash"]
                scan = (time.perf_counter() - started) / items
        print(
            f"   {name:<15} {each * 1000:6.2f} ms per item   "
            f"(two scans of the list would add {scan * 1000:6.2f} ms)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--items", type=int, default=60)
    args = parser.parse_args()
    first_token(args.rounds)
    per_item(args.items)


if __name__ == "__main__":
    main()
