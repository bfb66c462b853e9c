"""How long prepare_image takes on a 12 MP photo, and how small the payload gets.

Makes a 4000x3000 JPEG (quality 95) from docs/images/cat.jpeg in a temporary directory, times
``prepare_image(path)`` several times with ``time.perf_counter`` and prints the figures next to
the targets: at most 150 ms, and a data URL at most 1/8 of the original's base64 length.

    python benchmarks/bench_images.py [--runs 15]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reka_nb.images import prepare_image  # noqa: E402 - after the path is set

CAT = ROOT / "docs" / "images" / "cat.jpeg"
TARGET_MS = 150.0
TARGET_RATIO = 1 / 8


def make_photo(directory: Path) -> Path:
    """A 12 MP JPEG: the cat scaled up to 4000x3000, saved at quality 95."""
    path = directory / "photo-12mp.jpeg"
    with Image.open(CAT) as cat:
        cat.resize((4000, 3000)).save(path, "JPEG", quality=95)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="timed runs (default 15)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        path = make_photo(Path(tmp))
        original = path.read_bytes()
        prepare_image(path)  # warm-up: imports, caches
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            prepared = prepare_image(path)
            times.append((time.perf_counter() - start) * 1000)

    original_b64 = len(base64.b64encode(original))
    payload = len(prepared.to_url())
    ratio = payload / original_b64
    best, median = min(times), statistics.median(times)
    rows = [
        ("input", f"{path.name}, 4000x3000 JPEG quality 95"),
        ("original file", f"{len(original):,} bytes"),
        ("original base64", f"{original_b64:,} characters"),
        ("result", repr(prepared)),
        ("payload (data URL)", f"{payload:,} characters"),
        ("payload / original base64", f"{ratio:.4f} (1/{1 / ratio:.1f})"),
        (f"time, best of {runs}", f"{best:.1f} ms"),
        ("time, median", f"{median:.1f} ms"),
        ("target time", f"<= {TARGET_MS:.0f} ms: {'met' if median <= TARGET_MS else 'MISSED'}"),
        (
            "target payload",
            f"<= 1/8 of original base64 ({original_b64 / 8:,.0f}): "
            f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
