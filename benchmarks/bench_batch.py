"""describe_many: wall time, rate limit, cache and memory, figures side by side in one run.

The offline server runs in another process (so the client's timing and memory are its own),
and answers after ``latency`` seconds; the runs:

1. 200 images at concurrency 16 with 0.5 s per answer, against the ideal 200 / 16 x 0.5 s,
   and the same 200 asked one by one with a loop of ``describe()``; then ``compare()`` of 3
   models over the 200 at concurrency 16 (600 answers in one run, interleaved), against the
   ideal 600 / 16 x 0.5 s (the issue's target: at most 1.15x).
2. The server limits to 600 requests a minute; ``requests_per_minute=600``: 429s, the rate
   the server saw, items lost.
3. The 200 again, from the cache: milliseconds per item, requests sent.
4. Peak RSS of a fresh process describing 200, then 2,000 images made on disk (1-4 MP).

One warm-up run of 16 images (a process's one-time costs: imports, codecs, the thread
pool) comes first and is not counted.

Run: ``python benchmarks/bench_batch.py`` (about 10 minutes; ``--quick`` skips the
sequential loop and uses 1,000 images for the memory run; ``--compare`` runs only section 1
without the loop: the single-model run beside the comparison). It prints figures, asserts
nothing.

``--scale`` runs the scale section instead (``batch_scale.py``): client CPU per image at
concurrency 64 against a stub server at latency 0, reka_nb beside the openai SDK, bare httpx,
bare aiohttp and httpx on the aiohttp transport; peak memory at 5,000 and 20,000 images; a
4,000-event stream read on both transports against the httpx-sse floor. ``--experiments``
adds rows that patch reka_nb at run time to measure changes before they are made;
``--profile reka`` samples that client with py-spy and prints where its CPU goes. A client
``baseline`` in ``--kinds`` runs reka_nb from the checkout named by ``BASELINE=<folder>``
(say, ``git archive <commit> reka_nb | tar -x -C <folder>``): before and after in one run.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

LATENCY = 0.5
N = 200
CONCURRENCY = 16
RPM = 600


# -- the server process ----------------------------------------------------------------------


def _serve(conn: Any) -> None:
    """Run an OfflineServer and answer commands from the benchmark over a pipe."""
    from reka_nb.testing import OfflineServer

    with OfflineServer(keep_bodies=False) as server:
        conn.send((server.base_url, server.api_key))
        while True:
            command, arg = conn.recv()
            if command == "stop":
                break
            if command == "set":
                server.reset()
                for name, value in arg.items():
                    setattr(server, name, value)
                conn.send(None)
            elif command == "log":
                conn.send([(r.status, r.received) for r in server.chat_requests()])


class ServerProcess:
    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        self.base_url, self.api_key = self.conn.recv()

    def set(self, **values: Any) -> None:
        self.conn.send(("set", values))
        self.conn.recv()

    def log(self) -> list[tuple[int, float]]:
        self.conn.send(("log", None))
        return self.conn.recv()  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.conn.send(("stop", None))
        self.process.join(10)


# -- images ----------------------------------------------------------------------------------


def small_images(folder: Path, count: int) -> list[str]:
    """Distinct small PNGs (the time runs measure the client, not the encoder)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"small{i:04d}.png"
        buffer = io.BytesIO()
        img = Image.new("RGB", (32 + i % 50, 24), (i % 256, (i * 7) % 256, (i * 13) % 256))
        img.putpixel((0, 0), (i % 256, i // 256 % 256, i // 65536 % 256))  # every one differs
        img.save(buffer, "PNG")
        path.write_bytes(buffer.getvalue())
        paths.append(str(path))
    return paths


def big_images(folder: Path, count: int) -> None:
    """JPEGs of 1 to 4 megapixels (sides up to 2048, so they are sent as they are)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(1)
    bases = []
    for _ in range(8):
        w, h = rng.randint(1000, 2048), rng.randint(1000, 1950)
        gradient = Image.linear_gradient("L").resize((w, h))
        noise = Image.effect_noise((w, h), 40)
        bases.append(
            Image.merge("RGB", (gradient, noise, gradient.transpose(Image.FLIP_LEFT_RIGHT)))
        )
    for i in range(count):
        img = bases[i % len(bases)].copy()
        img.paste((i % 256, i // 256 % 256, 7), (0, 0, 16, 16))  # every file differs
        img.save(folder / f"big{i:05d}.jpg", "JPEG", quality=80)


MEMORY_CHILD = """
import resource, sys, time
import reka_nb
start = time.monotonic()
results = reka_nb.describe_many(sys.argv[1], "Size?", concurrency=16, cache=False, show=False)
seconds = time.monotonic() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(len(results), len(results.errors), peak, f"{seconds:.1f}")
for failed in results.errors[:3]:
    print(failed.source, type(failed.error).__name__, failed.error, file=sys.stderr)
"""


def memory_run(server: ServerProcess, folder: Path) -> tuple[int, int, int, float]:
    env = {**os.environ, "REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(folder)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    if proc.stderr.strip():
        print(proc.stderr, file=sys.stderr)
    out = proc.stdout.split()
    return int(out[0]), int(out[1]), int(out[2]), float(out[3])


# -- the runs ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip the sequential loop")
    parser.add_argument(
        "--compare", action="store_true", help="only the single-model run and the comparison"
    )
    parser.add_argument("--scale", action="store_true", help="run the scale section instead")
    parser.add_argument("--images", type=int, default=5000, help="scale: images per client")
    parser.add_argument("--big", type=int, default=20000, help="scale: the memory run (0: none)")
    parser.add_argument("--rounds", type=int, default=15, help="scale: stream reads (0: none)")
    parser.add_argument("--kinds", default="", help="scale: clients, comma-separated")
    parser.add_argument("--experiments", action="store_true", help="scale: patched reka_nb rows")
    parser.add_argument("--memory-kinds", default="reka", help="scale: clients for the memory run")
    parser.add_argument("--profile", default="", help="scale: clients to sample with py-spy")
    args = parser.parse_args()
    if args.scale:
        import batch_scale

        kinds = args.kinds.split(",") if args.kinds else list(batch_scale.DEFAULT_KINDS)
        if args.experiments:
            kinds[1:1] = batch_scale.EXPERIMENT_KINDS
        tmp = Path(tempfile.mkdtemp(prefix="reka-nb-scale-"))
        memory = args.memory_kinds.split(",")
        profiles = [k for k in args.profile.split(",") if k]
        batch_scale.main(
            tmp, small_images, args.images, args.big, args.rounds, kinds, memory, profiles
        )
        return
    big = 1000 if args.quick else 2000

    tmp = Path(tempfile.mkdtemp(prefix="reka-nb-bench-"))
    os.environ["REKA_NB_CACHE"] = str(tmp / "cache")
    server = ServerProcess()
    os.environ["REKA_BASE_URL"] = server.base_url
    os.environ["REKA_API_KEY"] = server.api_key
    import reka_nb

    paths = small_images(tmp / "small", N)
    rows: list[tuple[str, str, str]] = []
    # Warm up once (imports, Pillow's codecs, the thread pool): costs a process pays once.
    server.set(latency=0.0)
    reka_nb.describe_many(paths[:CONCURRENCY], "Warm up?", cache=False, show=False)

    # 1. concurrency against the ideal, and a loop of describe()
    server.set(latency=LATENCY, requests_per_minute=None)
    start = time.monotonic()
    results = reka_nb.describe_many(
        paths, "Size?", concurrency=CONCURRENCY, cache=False, show=False
    )
    wall = time.monotonic() - start
    ideal = N / CONCURRENCY * LATENCY
    rows.append(
        (
            f"{N} images, {LATENCY} s each, concurrency {CONCURRENCY}",
            f"{wall:.2f} s ({wall / ideal:.3f}x the ideal {ideal:.2f} s)",
            f"{len(results.errors)} errors, {len(server.log())} requests",
        )
    )
    # 1b. three models over the same images: one run, one concurrency for all
    models = ["reka-flash", "reka-edge", "reka-core"]
    server.set(latency=LATENCY, requests_per_minute=None)
    start = time.monotonic()
    compared = reka_nb.compare(
        paths, "Size?", models=models, concurrency=CONCURRENCY, cache=False, show=False
    )
    wall3 = time.monotonic() - start
    ideal3 = N * len(models) / CONCURRENCY * LATENCY
    failed = sum(len(r.errors) for r in compared.results.values())
    rows.append(
        (
            f"compare {len(models)} models x {N} images, {LATENCY} s each, "
            f"concurrency {CONCURRENCY}",
            f"{wall3:.2f} s ({wall3 / ideal3:.3f}x the ideal {ideal3:.2f} s)",
            f"{failed} errors, {len(server.log())} requests",
        )
    )
    if args.compare:
        _print(rows)
        server.stop()
        return
    if not args.quick:
        server.set(latency=LATENCY)
        start = time.monotonic()
        for path in paths:
            reka_nb.describe(path, "Size?", show=False)
        loop = time.monotonic() - start
        rows.append(
            (
                f"{N} images, a loop of describe()",
                f"{loop:.2f} s ({loop / wall:.1f}x slower than describe_many)",
                f"{len(server.log())} requests",
            )
        )

    # 2. the server's limit and the client's
    server.set(latency=LATENCY, requests_per_minute=RPM)
    start = time.monotonic()
    results = reka_nb.describe_many(
        paths, "Size?", concurrency=CONCURRENCY, requests_per_minute=RPM, show=False
    )
    wall = time.monotonic() - start
    log = server.log()
    times = sorted(t for s, t in log if s == 200)
    rate = (len(times) - 1) / (times[-1] - times[0]) * 60
    limited = sum(s == 429 for s, _ in log)
    lost = N - sum(r.ok for r in results)
    rows.append(
        (
            f"{N} images, server limit {RPM}/min, requests_per_minute={RPM}",
            f"{rate:.1f} requests/min seen by the server ({rate / RPM - 1:+.1%} of the limit)",
            f"{limited} 429s, {lost} items lost, {wall:.1f} s",
        )
    )

    # 3. the same 200 from the cache (stored by run 2)
    server.set(latency=LATENCY, requests_per_minute=None)
    start = time.monotonic()
    results = reka_nb.describe_many(paths, "Size?", concurrency=CONCURRENCY, show=False)
    wall = time.monotonic() - start
    rows.append(
        (
            f"{N} images again, from the cache",
            f"{wall / N * 1000:.2f} ms per item",
            f"{results.cached_count} cached, {len(server.log())} requests",
        )
    )

    # 4. memory: 200 and 2,000 images of 1-4 MP
    server.set(latency=0.0, requests_per_minute=None)
    big_images(tmp / "big", big)
    few = tmp / "few"
    few.mkdir()
    for p in sorted((tmp / "big").iterdir())[:N]:
        os.link(p, few / p.name)
    n1, e1, rss1, s1 = memory_run(server, few)
    n2, e2, rss2, s2 = memory_run(server, tmp / "big")
    rows.append(
        (
            f"peak RSS, {n1} images of 1-4 MP",
            f"{rss1 / 1024:.0f} MiB",
            f"{e1} errors, {s1:.0f} s",
        )
    )
    rows.append(
        (
            f"peak RSS, {n2} images of 1-4 MP",
            f"{rss2 / 1024:.0f} MiB ({rss2 / rss1:.2f}x the {n1})",
            f"{e2} errors, {s2:.0f} s",
        )
    )
    server.stop()
    _print(rows)


def _print(rows: list[tuple[str, str, str]]) -> None:
    width = max(len(r[0]) for r in rows)
    middle = max(len(r[1]) for r in rows)
    print(f"{'run'.ljust(width)}  {'figure'.ljust(middle)}  details")
    for name, figure, detail in rows:
        print(f"{name.ljust(width)}  {figure.ljust(middle)}  {detail}")


if __name__ == "__main__":
    main()
