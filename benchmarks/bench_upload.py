"""A 12 MP phone photo through the upload panel's picker, with browser downscaling on and off.

JupyterLab and Debian's Chromium (through the browser test's helpers) show an upload panel
on the offline server. A 4000x3000 JPEG made from the cat, with a little noise so that it
weighs what a phone photo does, is dropped on the picker, then Describe is pressed. For each
mode the script prints the bytes the browser sent to the kernel (and in how many messages),
the time from the drop until the image was in the kernel, the time from Describe to the first
word of the answer, and the sum. Each mode runs ``ROUNDS`` times, alternating; medians shown.
On 127.0.0.1 moving the bytes costs little, so the last column works out (it does not measure)
how long sending them would take over an upload link of ``LINK_MBIT`` Mbit/s.

Run: ``python benchmarks/bench_upload.py`` (about two minutes). It prints figures, asserts nothing.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "notebook"))

from _browser import launch_chromium, notebook_cell, open_notebook, run_cell  # noqa: E402
from _jupyterlab import JupyterLab  # noqa: E402

from reka_nb.testing import OfflineServer  # noqa: E402

ROUNDS = 5
LINK_MBIT = 10  # an ordinary upload link to a remote Jupyter server, for the computed column
STATE = (
    "import json; print(json.dumps([[r.name, r.size, r.original_size, r.parts, r.downscaled]"
    " for r in panel.received][-1]))"
)
_LOAD = """
async (zone, url) => { window.__photo = await (await fetch(url)).blob(); }
"""
# Each returns the milliseconds from its first action until what it waits for is shown.
_DROP = """
async (zone, name) => {
  const status = zone.querySelector(".reka-picker-chosen");
  const data = new DataTransfer();
  data.items.add(new File([window.__photo], name, {type: "image/jpeg"}));
  const start = performance.now();
  for (const kind of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
  while (status.textContent !== `Chosen: ${name}`) await new Promise((ok) => setTimeout(ok, 2));
  return performance.now() - start;
}
"""
_DESCRIBE = """
async (cell) => {
  const button = [...cell.querySelectorAll("button")].find((b) => b.textContent === "Describe");
  const output = cell.querySelector(".widget-output");
  let first = null;
  const start = performance.now();
  const observer = new MutationObserver(() => {
    if (first === null && output.innerText.includes("\u258d")) first = performance.now() - start;
  });
  observer.observe(output, {childList: true, subtree: true, characterData: true});
  button.click();
  const deadline = start + 60000;
  while (first === null || button.disabled) {
    if (performance.now() > deadline) break;
    await new Promise((ok) => setTimeout(ok, 5));
  }
  observer.disconnect();
  if (first === null) throw new Error(`no word arrived; the panel shows: ${cell.innerText}`);
  return first;
}
"""


def phone_photo(path: Path) -> int:
    """A 4000x3000 JPEG (quality 92) of the cat with sensor-like noise: about 2.7 MB."""
    cat = Image.open(REPO / "docs" / "images" / "cat.jpeg").convert("RGB")
    big = np.asarray(cat.resize((4000, 3000), Image.Resampling.BICUBIC), dtype=np.float32)
    big += np.random.default_rng(3).normal(0, 5, big.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(big, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
    path.write_bytes(buffer.getvalue())
    return len(buffer.getvalue())


def write_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.cells = [
        nbformat.v4.new_code_cell("from reka_nb import uploader\npanel = uploader()\npanel"),
        nbformat.v4.new_code_cell(STATE),
    ]
    nbformat.write(nb, path)


def one_round(page: Any, number: int, keep: bool) -> dict[str, Any]:
    cell = notebook_cell(page, 0)
    box = cell.get_by_label("Keep originals")
    box.set_checked(keep)
    name = f"photo-{number}.jpg"
    arrive = cell.locator(".reka-picker-zone").evaluate(_DROP, name) / 1000
    answer = cell.evaluate(_DESCRIBE) / 1000
    state_cell = notebook_cell(page, 1)
    run_cell(page, state_cell)
    sent_name, size, _original, parts, downscaled = json.loads(
        state_cell.locator(".jp-OutputArea-output").inner_text()
    )
    assert sent_name == name and downscaled is not keep
    return {
        "bytes": size,
        "parts": parts,
        "arrive": arrive,
        "answer": answer,
        "total": arrive + answer,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        root.mkdir()
        size = phone_photo(root / "photo.jpg")
        write_notebook(root / "bench.ipynb")
        print(f"photo: 4000x3000 JPEG, {size:,} bytes; {ROUNDS} rounds per mode, medians")
        results: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        with OfflineServer(token_delay=0.01) as server:
            env = {"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}
            with (
                JupyterLab(root, tmp / "home", env) as lab,
                launch_chromium(tmp / "profile") as page,
            ):
                open_notebook(page, lab, root / "bench.ipynb")
                cell = notebook_cell(page, 0)
                run_cell(page, cell)
                zone = cell.locator(".reka-picker-zone")
                zone.wait_for(state="visible")
                zone.evaluate(_LOAD, f"{lab.base_url}/files/photo.jpg")
                number = 0
                for _ in range(ROUNDS):
                    for keep in (False, True):
                        number += 1
                        results[keep].append(one_round(page, number, keep))
    print(
        f"{'browser downscaling':<20} {'bytes sent':>12} {'messages':>9} "
        f"{'drop→kernel':>12} {'Describe→1st word':>18} {'total':>8} "
        f"{f'sending at {LINK_MBIT} Mbit/s':>22}"
    )
    for keep, label in ((False, "on (default)"), (True, "off (originals)")):
        rows = results[keep]

        def med(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        print(
            f"{label:<20} {int(med('bytes')):>12,} {int(med('parts')):>9} "
            f"{med('arrive') * 1000:>10.0f} ms {med('answer') * 1000:>15.0f} ms "
            f"{med('total') * 1000:>6.0f} ms "
            f"{med('bytes') * 8 / (LINK_MBIT * 1e6):>15.2f} s (computed)"
        )


if __name__ == "__main__":
    main()
