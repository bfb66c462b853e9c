"""Two processes on one key share one rate limit on one machine (real processes, the offline
server counting when each request arrived)."""

from __future__ import annotations

import itertools
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

from _env import child_environment

from reka_nb.batch.machine_limit import FILE_NAME
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import io, sys
from PIL import Image
import reka_nb
name = sys.argv[1]
images = []
for i in range(30):
    buffer = io.BytesIO()
    Image.new("RGB", (10 + i, 8), (i, 0, 0)).save(buffer, "PNG")
    images.append(buffer.getvalue())
print("ready", flush=True)
sys.stdin.readline()  # both processes start together, when the test says so
results = reka_nb.describe_many(
    images, f"Size? {name}", requests_per_minute=600, concurrency=4, cache=False, show=False
)
print(sum(r.ok for r in results), flush=True)
"""


def test_two_processes_at_600_a_minute_send_600_together(
    server: OfflineServer, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = child_environment()
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_CACHE=str(cache),
        PYTHONPATH=str(ROOT),
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, name],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for proc in procs:  # imported and ready
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [out for out, _ in outputs] == ["30\n", "30\n"], [err for _, err in outputs]
    requests = server.chat_requests()
    assert len(requests) == 60
    times = {n: sorted(r.received for r in requests if r.prompt == f"Size? {n}") for n in "ab"}
    assert [len(times["a"]), len(times["b"])] == [30, 30]
    # Together at 600 a minute, the two take turns: each one's 30 requests take 5.8 s, where
    # alone at 600 a minute they would take 2.9 s (a stall of the machine can only add time).
    assert min(times["a"][-1] - times["a"][0], times["b"][-1] - times["b"][0]) >= 5.0
    # ... one request every 0.1 s between them (a stall bunches a few, not half of them).
    both = sorted(times["a"] + times["b"])
    gaps = [b - a for a, b in itertools.pairwise(both)]
    assert statistics.median(gaps) >= 0.08, gaps  # 0.1 s shared, 0.05 s each on its own
    with sqlite3.connect(cache / FILE_NAME) as db:
        (account,) = db.execute("SELECT account FROM slots").fetchone()
    assert server.api_key not in account and len(account) == 64
    assert server.api_key.encode() not in (cache / FILE_NAME).read_bytes()
