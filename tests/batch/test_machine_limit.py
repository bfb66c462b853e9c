"""Two processes on one key share one rate limit on one machine (real processes, the offline
server counting when each request arrived)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from _env import child_environment

from reka_nb.batch.machine_limit import FILE_NAME
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]

RUN = """
import io, sys, time
from PIL import Image
import reka_nb
start, name = float(sys.argv[1]), sys.argv[2]
images = []
for i in range(30):
    buffer = io.BytesIO()
    Image.new("RGB", (10 + i, 8 if name == "a" else 9)).save(buffer, "PNG")
    images.append(buffer.getvalue())
time.sleep(max(0.0, start - time.time()))  # both processes start together
results = reka_nb.describe_many(
    images, "Size?", requests_per_minute=600, concurrency=4, cache=False, show=False
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
    start = time.time() + 4.0  # after both have imported reka_nb
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RUN, str(start), name],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [out for out, _ in outputs] == ["30\n", "30\n"], [err for _, err in outputs]
    times = sorted(r.received for r in server.chat_requests())
    assert len(times) == 60
    # 600 a minute together: one request every 0.1 s, so no second holds more than 10 (+1
    # for a window's two edges); each alone at 600 would make it 20.
    busiest = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert busiest <= 11, busiest
    assert times[-1] - times[0] >= 5.5
    with sqlite3.connect(cache / FILE_NAME) as db:
        (account,) = db.execute("SELECT account FROM slots").fetchone()
    assert server.api_key not in account and len(account) == 64
    assert server.api_key.encode() not in (cache / FILE_NAME).read_bytes()
