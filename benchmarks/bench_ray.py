"""describe_many (one process) and describe_dataset (Ray, 2 CPUs, 4 actors) side by side.

500 images, the offline server in this process answering each question in 0.2 s and enforcing
the same requests-per-minute limit both runs are given. The ideal time is what the limit
allows: (N - 1) * 60 / rpm between the first and the last request, plus one answer. Each run
is timed from its first request to its last answer (the server's clock), and as a whole
(Ray's includes starting its actors). Needs the ``reka-nb[ray]`` extra.

    python benchmarks/bench_ray.py [--images 500] [--rpm 1200] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reka_nb import AsyncRekaClient, describe_many  # noqa: E402
from reka_nb.testing import OfflineServer  # noqa: E402


def make_images(folder: Path, count: int) -> list[str]:
    cat = Image.open(ROOT / "docs" / "images" / "cat.jpeg").convert("RGB")
    paths = []
    for i in range(count):
        im = cat.resize((48 + i % 97, 32 + i // 97))
        if i % 2:
            im = ImageOps.mirror(im)
        path = folder / f"cat{i:04d}.jpg"
        im.save(path, quality=80)
        paths.append(str(path))
    return paths


def start_ray(attempts: int = 3) -> float:
    """ray.init(num_cpus=2); on a busy machine Ray's node can miss its start-up deadlines, so
    a half-started node is ended and Ray started again. Returns the seconds it took."""
    import ray
    import ray._private.node as node

    start = time.perf_counter()
    for attempt in range(attempts):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            return time.perf_counter() - start
        except Exception as exc:
            if "timed out during startup" not in str(exc) or attempt == attempts - 1:
                raise
            tb = exc.__traceback__
            while tb is not None:
                half = tb.tb_frame.f_locals.get("self")
                if isinstance(half, node.Node):
                    half.kill_all_processes(check_alive=False, allow_graceful=False)
                    break
                tb = tb.tb_next
            ray.shutdown()
    raise AssertionError("unreachable")


def span(server: OfflineServer, latency: float) -> tuple[float, int, int]:
    """(first request to last answer in seconds, answered, 429s) from the server's log."""
    chats = server.chat_requests()
    times = [r.received for r in chats]
    return (
        max(times) - min(times) + latency,
        sum(r.status == 200 for r in chats),
        sum(r.status == 429 for r in chats),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rpm", type=float, default=1200)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    n, rpm, latency = args.images, args.rpm, args.latency
    ideal = (n - 1) * 60 / rpm + latency

    key = "reka-bench-" + secrets.token_hex(8)
    os.environ["REKA_API_KEY"] = key  # before ray.init: Ray's workers inherit it
    os.environ["REKA_NB_CACHE"] = "off"  # both runs ask every question
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    import ray
    import ray.data

    import reka_nb.ray as rr

    init = start_ray()
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        OfflineServer(
            api_key=key, latency=latency, requests_per_minute=rpm, keep_bodies=False
        ) as server,
    ):
        paths = make_images(Path(tmp), n)
        os.environ["REKA_BASE_URL"] = server.base_url

        start = time.perf_counter()
        results = describe_many(
            paths,
            "Write alt text.",
            client=AsyncRekaClient(),
            concurrency=8,
            requests_per_minute=rpm,
            cache=False,
            show=False,
        )
        wall = time.perf_counter() - start
        asked, answered, limited = span(server, latency)
        assert len(results) == n and not results.errors, results.summary()
        rows.append(("describe_many, 1 process", wall, asked, answered, limited))

        server.reset()
        server.latency, server.requests_per_minute = latency, rpm
        ds = ray.data.read_binary_files(tmp, include_paths=True)
        out = rr.describe_dataset(
            ds,
            "Write alt text.",
            concurrency=4,
            in_flight=4,
            batch_size=25,
            requests_per_minute=rpm,
            cache=False,
        )
        start = time.perf_counter()
        done = out.drop_columns(["bytes"]).take_all()
        wall = time.perf_counter() - start
        asked, answered, limited = span(server, latency)
        ray.shutdown()
        assert len(done) == n and all(r["error"] is None for r in done)
        rows.append(("describe_dataset, 4 actors", wall, asked, answered, limited))

    print(f"{n} images, {latency:g} s per answer, {rpm:g} requests/minute for every run")
    print(f"ideal (the limit's time): {ideal:.1f} s;  Ray started in {init:.1f} s (not counted)")
    print()
    header = f"{'run':<28}{'wall s':>8}{'asking s':>10}{'vs ideal':>10}{'answered':>10}{'429s':>6}"
    print(header)
    print("-" * len(header))
    for name, wall, asked, answered, limited in rows:
        print(
            f"{name:<28}{wall:>8.1f}{asked:>10.1f}{asked / ideal - 1:>+10.1%}"
            f"{answered:>10}{limited:>6}"
        )
    print()
    print("wall: the whole call (Ray's includes starting its actors); asking: first request to")
    print("last answer on the server's clock, what the limit governs.")


if __name__ == "__main__":
    main()
