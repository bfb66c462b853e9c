"""How long ``import reka_nb`` takes, next to ``import httpx, PIL.Image`` (what it builds on).

Each import runs in a fresh interpreter (``python -c``), timed inside it with
``time.perf_counter`` so that interpreter start-up is left out; the two are run in turn,
``--runs`` times each, and the medians are printed with their ratio. The goal is a ratio of
at most 1.3: reka_nb should cost little beyond its two dependencies. For scale, ``import
openai`` is timed too when it is installed.

    python benchmarks/bench_import.py [--runs 15]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.3
CODE = "import time; t = time.perf_counter(); {imports}; print(time.perf_counter() - t)"


def seconds(imports: str) -> float:
    """Seconds one fresh interpreter spends on ``imports``."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(imports=imports)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    subjects = {"reka_nb": "import reka_nb", "httpx + PIL.Image": "import httpx, PIL.Image"}
    if importlib.util.find_spec("openai") is not None:
        subjects["openai"] = "import openai"
    times: dict[str, list[float]] = {name: [] for name in subjects}
    for imports in subjects.values():  # one warm-up each: the file cache, .pyc files
        seconds(imports)
    for _ in range(args.runs):
        for name, imports in subjects.items():
            times[name].append(seconds(imports))
    base = statistics.median(times["httpx + PIL.Image"])
    print(f"{'import':<20} {'median ms':>10} {'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<20} {median * 1000:>10.1f} {median / base:>7.2f}")
    ratio = statistics.median(times["reka_nb"]) / base
    verdict = "within" if ratio <= GOAL else "ABOVE"
    print(f"import reka_nb / import httpx, PIL.Image = {ratio:.2f} ({verdict} the goal {GOAL})")


if __name__ == "__main__":
    main()
