"""How long reading a clip's duration and size takes: reka_nb's box/EBML reader vs PyAV.

Makes a 20 s, 640x480, 24 fps MP4 and WebM from docs/images/cat.jpeg with PyAV (the ``video``
extra), then times ``read_video_info(data)`` and ``av.open`` + reading the same fields, both on
bytes already in memory, and prints the medians side by side with the clips' sizes.

    python benchmarks/bench_video.py [--runs 30]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import av  # noqa: E402 - after the path is set
from _clips import make_clip  # noqa: E402

from reka_nb.images import read_video_info  # noqa: E402


def with_pyav(data: bytes) -> tuple[float, int, int]:
    with av.open(io.BytesIO(data), mode="r") as media:
        stream = media.streams.video[0]
        return media.duration / 1_000_000, stream.codec_context.width, stream.codec_context.height


def median_ms(function, data: bytes, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function(data)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    print(f"{'clip':<6} {'bytes':>11} {'reka_nb':>10} {'PyAV':>10}  same answer")
    for fmt in ("mp4", "webm"):
        data = make_clip(fmt, seconds=20, fps=24, size=(640, 480))
        ours = read_video_info(data)
        theirs = with_pyav(data)
        same = (ours.duration, ours.width, ours.height) == theirs
        print(
            f"{fmt:<6} {len(data):>11,} {median_ms(read_video_info, data, runs):>8.3f}ms "
            f"{median_ms(with_pyav, data, runs):>8.3f}ms  {same}"
        )


if __name__ == "__main__":
    main()
