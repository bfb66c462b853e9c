"""The upload panel's picker in a real browser: drop, paste, camera, large photos, chunks.

JupyterLab (and, for one check, Notebook 7) runs in a subprocess with a notebook made here;
Chromium has a fake camera. Images are made by the test, served by Jupyter's own file
handler and handed to the page as a user's browser would get them: a ``drop`` event with a
``DataTransfer``, a ``paste`` event with clipboard data, the camera button. What the kernel
received is read back by running a cell that prints the panel's state as JSON.
Screenshots (light and dark themes) go to ``tests/artifacts/``.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from _browser import (
    CELLS,
    CHROMIUM,
    artifacts_on_failure,
    launch_chromium,
    notebook_cell,
    open_notebook,
    run_cell,
    save_screenshot,
)
from _jupyterlab import REPO, JupyterLab, wait_for
from PIL import Image

from reka_nb.testing import OfflineServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

CAT = REPO / "docs" / "images" / "cat.jpeg"
FAKE_CAMERA = ("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")
MB = 1024 * 1024
PANEL_CELL = "from reka_nb import uploader\npanel = uploader()\npanel"
STATE_CELL = """import json
print(json.dumps({
    "names": panel.names,
    "received": [[r.name, r.size, r.original_size, r.parts, r.downscaled] for r in panel.received],
    "sizes": [[i.width, i.height] for i in panel.images],
}))"""
# Widget state saved with the notebook (off by default in JupyterLab): on here, so the check
# that no image bytes are saved also covers the widgets' state.
SAVE_WIDGET_STATE = ("@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings", True)

_DROP = """
async (zone, [url, name, type]) => {
  const blob = await (await fetch(url)).blob();
  const data = new DataTransfer();
  data.items.add(new File([blob], name, {type}));
  for (const kind of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}
"""
_PASTE = """
(zone, [b64, name]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const data = new DataTransfer();
  data.items.add(new File([bytes], name, {type: "image/png"}));
  zone.focus();
  const init = {clipboardData: data, bubbles: true, cancelable: true};
  zone.dispatchEvent(new ClipboardEvent("paste", init));
}
"""


def make_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PANEL_CELL), nbformat.v4.new_code_cell(STATE_CELL)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def photo_bmp(path: Path, width: int, height: int) -> Path:
    """An uncompressed photo-like BMP: smooth colour gradients with a little noise."""
    x, y = np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)
    red = (120 + 100 * np.sin(x / 97.0)).astype(np.uint8)
    green = (120 + 100 * np.cos(y / 61.0)).astype(np.uint8)
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = red[None, :]
    pixels[..., 1] = green[:, None]
    pixels[..., 2] = (red[None, :].astype(np.uint16) + green[:, None]) // 2
    noise = np.random.default_rng(7).integers(0, 12, (509, 499, 3), dtype=np.uint8)
    reps = (height // 509 + 1, width // 499 + 1, 1)
    pixels += np.tile(noise, reps)[:height, :width]
    Image.fromarray(pixels).save(path, "BMP")
    return path


def turned_jpeg(path: Path) -> Path:
    """A 3000x2000 JPEG whose EXIF says: turn 90 degrees clockwise to show (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (3000, 2000), (40, 90, 160)).save(path, "JPEG", exif=exif)
    return path


def red_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 200), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Site:
    server: OfflineServer
    jupyter: JupyterLab
    root: Path
    notebook: Path
    images: dict[str, Path]


class JupyterNotebook7(JupyterLab):
    """Notebook 7 (``jupyter notebook``) instead of JupyterLab, otherwise the same set-up."""

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("lab")] = "notebook"
        return [arg for arg in command if not arg.startswith("--LabApp.")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    tmp = tmp_path_factory.mktemp("upload")
    root = tmp / "root"
    notebook = make_notebook(root / "upload.ipynb")
    (root / "images").mkdir()
    images = {
        "cat.jpeg": CAT,
        "huge.bmp": photo_bmp(root / "images" / "huge.bmp", 4200, 4200),  # 50.5 MB
        "big.bmp": photo_bmp(root / "images" / "big.bmp", 2600, 2000),  # 14.9 MB
        "notes.txt": root / "images" / "notes.txt",
        "turned.jpg": turned_jpeg(root / "images" / "turned.jpg"),
    }
    images["notes.txt"].write_text("not a picture\n", encoding="utf-8")
    (root / "images" / "cat.jpeg").write_bytes(CAT.read_bytes())
    home = tmp / "home"
    settings = home / "user-settings" / SAVE_WIDGET_STATE[0]
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"saveState": SAVE_WIDGET_STATE[1]}), encoding="utf-8")
    with OfflineServer(token_delay=0.01) as server:
        env = {"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}
        with JupyterLab(root, home, env) as jupyter:
            yield Site(server, jupyter, root, notebook, images)
        server.check_errors()


@pytest.fixture(scope="module")
def page(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    offsite: list[str] = []
    profile = tmp_path_factory.mktemp("chromium-upload")
    with launch_chromium(profile, offsite, FAKE_CAMERA) as page:
        with artifacts_on_failure(page, "upload-setup", site.jupyter):
            open_notebook(page, site.jupyter, site.notebook)
        yield page
    assert offsite == [], "the page asked for something beyond 127.0.0.1"


def drop(zone: Any, site: Site, name: str, type_: str) -> None:
    url = f"{site.jupyter.base_url}/files/images/{name}"
    zone.evaluate(_DROP, [url, name, type_])


def state(page: Any) -> dict[str, Any]:
    """What the kernel holds: names chosen, files received (name, size, original size,
    parts, downscaled), and the chosen images' sizes."""
    cell = notebook_cell(page, 1)
    run_cell(page, cell)
    return json.loads(cell.locator(".jp-OutputArea-output").inner_text())


def chosen(cell: Any, text: str, timeout: float = 60) -> None:
    status = cell.locator(".reka-picker-chosen")
    wait_for(lambda: text in status.inner_text(), timeout, f"the picker to say {text!r}")


def test_drop_paste_camera_large_photos_and_saved_size(site: Site, page: Any) -> None:
    cell = notebook_cell(page, 0)
    with artifacts_on_failure(page, "upload-picker", site.jupyter):
        run_cell(page, cell)
        zone = cell.locator(".reka-picker-zone")
        zone.wait_for(state="visible")
        before = save(page, site.notebook)

        # A drop: the file arrives byte for byte (small), in one part.
        drop(zone, site, "cat.jpeg", "image/jpeg")
        chosen(cell, "Chosen: cat.jpeg")
        assert "(0)" not in cell.inner_text()
        assert state(page)["received"] == [["cat.jpeg", 35042, 35042, 1, False]]

        # A paste adds a PNG to the choice; so does a camera still.
        png = red_png()
        zone.evaluate(_PASTE, [base64.b64encode(png).decode(), "image.png"])
        chosen(cell, "Chosen: 2 images: cat.jpeg, image.png")
        cell.get_by_role("button", name="Camera").click()
        video = cell.locator("video.reka-picker-video")
        wait_for(lambda: video.evaluate("v => v.videoWidth > 0"), 20, "the camera's picture")
        cell.get_by_role("button", name="Take photo").click()
        chosen(cell, "Chosen: 3 images: cat.jpeg, image.png, camera-")
        now = state(page)
        assert now["received"][1] == ["image.png", len(png), len(png), 1, False]
        camera = now["received"][2]
        assert camera[0].startswith("camera-") and camera[0].endswith(".jpg")
        assert camera[4] is False and camera[3] == 1
        assert now["sizes"][2] == [640, 480]  # Chromium's fake camera
        assert video.evaluate("v => v.srcObject === null")  # the camera is off again

        # A photo taken sideways (EXIF orientation 6) is turned upright as it is downscaled.
        drop(zone, site, "turned.jpg", "image/jpeg")
        chosen(cell, "Chosen: turned.jpg")
        now = state(page)
        name, _, was, _, downscaled = now["received"][3]
        assert (name, was, downscaled) == (
            "turned.jpg",
            site.images["turned.jpg"].stat().st_size,
            True,
        )
        assert now["sizes"] == [[1365, 2048]]  # 3000x2000 stored, 2000x3000 shown

        # A 50 MB photo is downscaled in the browser to 2048 px and described.
        original = site.images["huge.bmp"].stat().st_size
        assert original > 50 * MB
        drop(zone, site, "huge.bmp", "image/bmp")
        chosen(cell, "Chosen: huge.bmp", timeout=90)
        name, size, was, parts, downscaled = state(page)["received"][4]
        assert (name, was, downscaled) == ("huge.bmp", original, True)
        assert size < original // 10 and parts == math.ceil(size / MB)
        site.server.reset()
        cell.get_by_role("button", name="Describe").click()
        status = cell.locator(".widget-label").filter(has_text="tokens in")
        status.wait_for(state="visible", timeout=60_000)
        answer = cell.locator(".widget-output").inner_text()
        assert "Image 1: JPEG, 2048×2048 px" in answer, answer
        (request,) = [r for r in site.server.requests if r.path == "/v1/chat/completions"]
        (url,) = [
            p["image_url"] for p in request.body["messages"][-1]["content"] if "image_url" in p
        ]
        url = url["url"] if isinstance(url, dict) else url
        assert url.startswith("data:image/jpeg;base64,")
        assert len(base64.b64decode(url.partition(",")[2])) == size  # the browser's JPEG as is

        # Keep originals: a 15 MB file goes as it is, in parts of at most 1 MB.
        cell.get_by_label("Keep originals").check()
        big = site.images["big.bmp"].stat().st_size
        drop(zone, site, "big.bmp", "image/bmp")
        chosen(cell, "Chosen: big.bmp", timeout=90)
        received = state(page)["received"]
        assert received[5] == ["big.bmp", big, big, math.ceil(big / MB), False]
        assert math.ceil(big / MB) == 15
        rows = cell.locator(".reka-picker-files li")
        assert rows.count() == 1 and rows.locator("progress").evaluate("p => p.value") == 1

        # Too large as it is (Keep originals), or not an image: refused, naming the file and
        # why; nothing of it is sent.
        error = cell.locator(".reka-nb-error")
        for name, type_, message in [
            (
                "huge.bmp",
                "image/bmp",
                "huge.bmp is 50.5 MB, larger than this panel's limit of 20 MB per image, so it "
                "was not used.",
            ),
            (
                "notes.txt",
                "text/plain",
                "notes.txt is not an image (its type is text/plain), so it was not used.",
            ),
        ]:
            drop(zone, site, name, type_)
            wait_for(
                lambda message=message: error.count() and error.inner_text() == message,
                60,
                f"the message about {name}",
            )
        now = state(page)
        assert len(now["received"]) == 6 and now["names"] == ["big.bmp"]

        # The panel fits its cell: no horizontal scrollbar.
        boxes = cell.locator(".jp-OutputArea-output, .jp-OutputArea-output .widget-vbox")
        overflow = boxes.evaluate_all("all => all.map(a => a.scrollWidth - a.clientWidth)")
        assert overflow and max(overflow) <= 0, f"the panel overflows by {overflow} px"

        save_screenshot(cell, "upload-panel-light.png")
        light = contrast(error)
        switch_theme(page, "JupyterLab Dark")
        save_screenshot(cell, "upload-panel-dark.png")
        dark = contrast(error)
        print(f"\nerror text contrast: light {light:.1f}:1, dark {dark:.1f}:1")
        assert light >= 4.5 and dark >= 4.5
        switch_theme(page, "JupyterLab Light")

        # Saving adds no image bytes: only the thumbnails, the answer and the widget state.
        after = save(page, site.notebook)
        print(f"saved notebook: {before:,} bytes before the uploads, {after:,} after")
        assert after - before <= 300 * 1024

        # The keyboard reaches the picker, shows where the focus is, and presses its buttons.
        zone.focus()
        page.keyboard.press("Tab")
        choose = cell.locator(".reka-picker-choose")
        assert choose.evaluate("b => b === document.activeElement")
        assert choose.evaluate("b => getComputedStyle(b).outlineStyle") == "solid"
        with page.expect_file_chooser(timeout=90_000) as dialog:  # a busy page is slow
            page.keyboard.press("Enter")
        dialog.value.set_files(CAT)
        chosen(cell, "Chosen: cat.jpeg")
        assert page.locator(CELLS).count() == 2  # the keys went to the picker, not the notebook


def save(page: Any, notebook: Path) -> int:
    """Save the notebook with Ctrl+S; its size on disk once written."""
    before = notebook.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    wait_for(lambda: notebook.stat().st_mtime_ns != before, 20, "the notebook to be saved")
    page.wait_for_timeout(500)  # the write is complete
    return notebook.stat().st_size


def switch_theme(page: Any, name: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-item", has_text="Theme").first.hover()
    page.locator(".lm-Menu-item", has_text=name).first.click()
    light = "true" if "Light" in name else "false"
    wait_for(
        lambda: page.evaluate("document.body.dataset.jpThemeLight") == light, 20, f"{name} theme"
    )
    page.wait_for_timeout(300)  # the theme's stylesheet applies


_CONTRAST = """
(node) => {
  const rgba = (text) => text.match(/[\\d.]+/g).map(Number);
  const mix = (top, bottom) => {
    const a = top.length > 3 ? top[3] : 1;
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a));
  };
  let background = [255, 255, 255];
  const layers = [];
  for (let n = node; n; n = n.parentElement) {
    const c = rgba(getComputedStyle(n).backgroundColor);
    if (c.length < 4 || c[3] > 0) layers.push(c);
    if (c.length < 4 || c[3] === 1) break;
  }
  for (const layer of layers.reverse()) background = mix(layer, background);
  const text = mix(rgba(getComputedStyle(node).color), background);
  const lum = (c) => {
    const [r, g, b] = c.map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const [hi, lo] = [lum(text), lum(background)].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}
"""


def contrast(element: Any) -> float:
    """WCAG contrast ratio of an element's text against what is behind it."""
    return float(element.evaluate(_CONTRAST))


def test_notebook_7_shows_the_picker_and_takes_a_drop(site: Site, page: Any) -> None:
    notebook = make_notebook(site.root / "notebook7.ipynb")
    home = site.jupyter.home.parent / "home-notebook7"
    env = {"REKA_BASE_URL": site.server.base_url, "REKA_API_KEY": site.server.api_key}
    with JupyterNotebook7(site.root, home, env) as jupyter:
        tab = page.context.new_page()
        try:
            with artifacts_on_failure(tab, "upload-notebook7", jupyter):
                tab.goto(f"{jupyter.base_url}/notebooks/{notebook.name}")
                wait_for(lambda: "idle" in jupyter.kernel_states(), 60, "the kernel to start")
                cell = notebook_cell(tab, 0)
                cell.wait_for(state="visible")
                run_cell(tab, cell)
                zone = cell.locator(".reka-picker-zone")
                zone.wait_for(state="visible")
                url = f"{jupyter.base_url}/files/images/cat.jpeg"
                zone.evaluate(_DROP, [url, "cat.jpeg", "image/jpeg"])
                chosen(cell, "Chosen: cat.jpeg")
                cell.locator("img.widget-image").wait_for(state="visible")
                save_screenshot(cell, "upload-panel-notebook7.png")
        finally:
            tab.close()


def test_without_anywidget_the_plain_file_button_takes_over(site: Site, page: Any) -> None:
    """A frontend that cannot load anywidget (here its extension's files are blocked)."""
    notebook = make_notebook(site.root / "fallback.ipynb")
    tab = page.context.new_page()
    tab.route("**/extensions/anywidget/**", lambda route: route.abort())
    try:
        with artifacts_on_failure(tab, "upload-fallback", site.jupyter):
            kernels = len(site.jupyter.kernel_states())
            open_notebook(tab, site.jupyter, notebook)
            wait_for(
                lambda: site.jupyter.kernel_states().count("idle") > kernels,
                60,
                "the notebook's own kernel",
            )
            cell = notebook_cell(tab, 0)
            run_cell(tab, cell)
            button = cell.locator("button.widget-upload")
            button.wait_for(state="visible", timeout=30_000)
            assert cell.locator(".reka-picker-zone").count() == 0
            assert "The drop-and-paste picker could not load" in cell.inner_text()
            with tab.expect_file_chooser() as chooser:
                button.click()
            chooser.value.set_files(CAT)
            cell.locator("img.widget-image").wait_for(state="visible")
            save_screenshot(cell, "upload-panel-fallback.png")
    finally:
        tab.close()
