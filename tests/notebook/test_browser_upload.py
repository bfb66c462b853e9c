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
    OutputRecorder,
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
HELD_CELL = "panel.picker.max_held_bytes = 8 * 1024 * 1024  # what uploads may hold at once"
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
_DROP_MANY = """
async (zone, files) => {
  const data = new DataTransfer();
  for (const [url, name, type] of files) {
    const blob = await (await fetch(url)).blob();
    data.items.add(new File([blob], name, {type}));
  }
  for (const kind of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}
"""
# A drop, then Describe pressed 50 ms later (before the new choice can have arrived): what the
# picker says at that moment.
_DROP_AND_DESCRIBE = """
async (zone, [url, name, type]) => {
  const blob = await (await fetch(url)).blob();
  const data = new DataTransfer();
  data.items.add(new File([blob], name, {type}));
  for (const kind of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
  await new Promise((ok) => setTimeout(ok, 50));
  const cell = zone.closest(".jp-Cell");
  const buttons = [...cell.querySelectorAll("button")];
  buttons.find((b) => b.innerText.trim() === "Describe").click();
  return cell.querySelector(".reka-picker-chosen").innerText;
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


LONG_NAME = "a_photo_with_a_very_long_name_taken_on_the_first_day_of_the_holidays.png"
SCREENSHOTS = REPO / "docs" / "screenshots"


def make_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(PANEL_CELL),
        nbformat.v4.new_code_cell(STATE_CELL),
        nbformat.v4.new_code_cell(HELD_CELL),
    ]
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
    Image.new("RGB", (60, 450), (30, 140, 60)).save(root / "images" / "tall.png")
    Image.new("RGB", (400, 300), (200, 160, 40)).save(root / "images" / LONG_NAME)
    (root / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG at all")
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
        (row,) = cell.locator(".reka-picker-files li").all()  # marked where it is listed
        assert "reka-picker-refused" in (row.get_attribute("class") or "")
        assert row.inner_text().split("\n") == ["notes.txt", "not used: not an image (text/plain)"]

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
        assert page.locator(CELLS).count() == 3  # the keys went to the picker, not the notebook


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
                cell.locator(".reka-picker-thumb img").wait_for(state="visible")
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
            thumbnail = cell.locator("img.widget-image")
            thumbnail.wait_for(state="visible")
            box = thumbnail.evaluate(
                "i => [i.getBoundingClientRect().width, i.getBoundingClientRect().height,"
                " i.naturalWidth, i.naturalHeight]"
            )
            assert box[2:] == [256, 170]  # the kernel's thumbnail, drawn at most 256 px
            assert max(box[:2]) <= 256 and abs(box[0] / box[1] - 256 / 170) < 0.05, box
            save_screenshot(cell, "upload-panel-fallback.png")
    finally:
        tab.close()


# Measured in the page: each thumbnail's drawn box and natural size, each caption's top edge
# and whether it is cut with an ellipsis, and the prompt's top edge.
_LAYOUT = """
(cell) => {
  const box = (n) => n.getBoundingClientRect();
  const figures = [...cell.querySelectorAll(".reka-picker-thumb")];
  const captions = figures.map((f) => f.querySelector("figcaption"));
  const prompt = cell.querySelector(".widget-textarea textarea");
  return {
    images: figures.map((f) => {
      const img = f.querySelector("img");
      const r = box(img);
      return {alt: img.alt, width: r.width, height: r.height,
              natural: [img.naturalWidth, img.naturalHeight]};
    }),
    captions: captions.map((c) => ({
      text: c.textContent, top: box(c).top, cut: c.scrollWidth > c.clientWidth,
      overflow: getComputedStyle(c).textOverflow,
    })),
    thumbsBottom: Math.max(...figures.map((f) => box(f).bottom)),
    promptTop: box(prompt).top,
  };
}
"""
# The focused drop zone's outline, and how much of it each clipping ancestor cuts off (px).
_OUTLINE = """
(zone) => {
  const style = getComputedStyle(zone);
  const reach = parseFloat(style.outlineWidth) + Math.max(0, parseFloat(style.outlineOffset));
  const r = zone.getBoundingClientRect();
  const cut = [];
  for (let n = zone.parentElement; n && !n.classList.contains("jp-Cell"); n = n.parentElement) {
    const s = getComputedStyle(n);
    if (s.overflowX === "visible" && s.overflowY === "visible") continue;
    const c = n.getBoundingClientRect();
    cut.push([n.className, Math.max(c.left - (r.left - reach), (r.right + reach) - c.right,
                                    c.top - (r.top - reach), (r.bottom + reach) - c.bottom, 0)]);
  }
  return {style: style.outlineStyle, width: style.outlineWidth, cut};
}
"""


def chat_requests(site: Site) -> list[Any]:
    return [r for r in site.server.requests if r.path == "/v1/chat/completions"]


def rect(locator: Any) -> dict[str, float]:
    return dict(locator.evaluate("n => n.getBoundingClientRect().toJSON()"))


def screenshot(cell: Any, name: str) -> Path:
    """A screenshot into tests/artifacts, copied to docs/screenshots; the page is made tall
    enough for the whole panel, answers and status line included."""
    page = cell.page
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 1600})
    try:
        page.wait_for_timeout(300)  # the notebook lays itself out again
        path = save_screenshot(cell, name)
    finally:
        page.set_viewport_size(size)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / name).write_bytes(path.read_bytes())
    return path


def test_the_panel_as_a_user_meets_it(site: Site, page: Any) -> None:
    """Thumbnails that keep their shape, refused files marked, one "Asking" at a time, the
    choice updated at once, old answers cleared, nothing of the images in the saved state."""
    cell = notebook_cell(page, 0)
    with artifacts_on_failure(page, "upload-panel", site.jupyter):
        run_cell(page, cell)  # a fresh panel
        zone = cell.locator(".reka-picker-zone")
        zone.wait_for(state="visible")
        base = f"{site.jupyter.base_url}/files/images"
        given = [
            [f"{base}/cat.jpeg", "cat.jpeg", "image/jpeg"],
            [f"{base}/tall.png", "tall.png", "image/png"],
            [f"{base}/corrupt.jpg", "corrupt.jpg", "image/jpeg"],
            [f"{base}/{LONG_NAME}", LONG_NAME, "image/png"],
        ]
        zone.evaluate(_DROP_MANY, given)
        chosen(cell, f"Chosen: 3 images: cat.jpeg, tall.png, {LONG_NAME}; 1 file not used: ")
        assert cell.locator(".reka-picker-chosen").inner_text() == (
            f"Chosen: 3 images: cat.jpeg, tall.png, {LONG_NAME}; 1 file not used: corrupt.jpg"
        )

        # The refused file is marked where it is listed; the others are whole.
        rows = cell.locator(".reka-picker-files li")
        assert rows.count() == 4
        bad = rows.nth(2)
        wait_for(lambda: "reka-picker-refused" in (bad.get_attribute("class") or ""), 10, "mark")
        assert bad.locator("progress").is_hidden()
        assert bad.locator(".reka-picker-note").text_content() == (
            "not used: upload 'corrupt.jpg' is truncated or corrupt (Truncated File Read)"
        )
        for index in (0, 1, 3):
            assert rows.nth(index).locator("progress").evaluate("p => p.value") == 1
            assert "reka-picker-refused" not in (rows.nth(index).get_attribute("class") or "")

        # Thumbnails fit a box of at most 256 px with their aspect ratio; captions line up, a
        # long name ends in an ellipsis; the prompt follows right after.
        cell.locator(".reka-picker-thumb img").nth(2).wait_for(state="visible")
        layout = cell.evaluate(_LAYOUT)
        assert [i["alt"] for i in layout["images"]] == ["cat.jpeg", "tall.png", LONG_NAME]
        assert layout["images"][1]["natural"] == [34, 256]  # the kernel's thumbnail
        for image in layout["images"]:
            natural = image["natural"][0] / image["natural"][1]
            assert max(image["width"], image["height"]) <= 256, image
            assert abs(image["width"] / image["height"] - natural) < 0.05 * natural, image
        tops = {round(c["top"]) for c in layout["captions"]}
        assert len(tops) == 1, layout["captions"]
        long_caption = layout["captions"][2]
        assert long_caption["cut"] and long_caption["overflow"] == "ellipsis", long_caption
        name = rows.nth(3).locator(".reka-picker-name")
        assert name.evaluate("n => getComputedStyle(n).textOverflow") == "ellipsis"
        assert 0 <= layout["promptTop"] - layout["thumbsBottom"] < 120, layout

        # The drop zone's focus outline shows whole; the row reads as a sentence; the model
        # list and the mode buttons have rows of their own.
        zone.scroll_into_view_if_needed()
        zone.focus()
        outline = zone.evaluate(_OUTLINE)
        assert outline["style"] == "solid" and outline["width"] == "2px", outline
        assert outline["cut"] and max(cut for _, cut in outline["cut"]) == 0, outline
        hint = cell.locator(".reka-picker-hint")
        assert hint.evaluate("h => h.parentElement.textContent") == (
            "Choose images…Camera" + "or drop images here, or paste one with Ctrl+V"
        )
        keep = cell.locator(".reka-picker-option")
        assert rect(keep)["top"] >= rect(hint)["bottom"]
        assert (
            rect(cell.locator(".widget-radio-box"))["top"]
            >= rect(cell.locator(".widget-dropdown"))["bottom"]
        )

        # One answer per image: only the image being asked says "Asking", and the status
        # line never goes back to "asking" once the last words are in.
        cell.get_by_text("One answer per image").click()
        answers = OutputRecorder(cell, ".reka-panel-answer")
        statuses = OutputRecorder(cell, ".reka-panel-status")
        site.server.reset()
        cell.get_by_role("button", name="Describe").click()
        status = cell.locator(".reka-panel-status")
        wait_for(lambda: " · 3 answers · " in status.inner_text(), 60, "three answers")
        texts, lines = answers.stop(), statuses.stop()
        assert any("(waiting its turn)" in text for text in texts), texts
        assert all(text.count("Asking reka-flash") <= 1 for text in texts), texts
        last_words = max(i for i, line in enumerate(lines) if "image 3 of 3 · " in line)
        assert not any("asking" in line for line in lines[last_words + 1 :]), lines
        assert len(chat_requests(site)) == 3
        screenshot(cell, "upload-panel-answers-light.png")
        switch_theme(page, "JupyterLab Dark")
        screenshot(cell, "upload-panel-answers-dark.png")
        switch_theme(page, "JupyterLab Light")

        # A new choice clears the answers about the old one.
        drop(zone, site, "cat.jpeg", "image/jpeg")
        chosen(cell, "Chosen: cat.jpeg")
        wait_for(lambda: cell.locator(".reka-panel-answer").inner_text() == "", 10, "no answer")
        assert status.inner_text() == ""

        # Describe pressed right after a drop describes nothing old: the picker says at once
        # what is coming, and Describe waits for it.
        site.server.reset()
        describe = cell.get_by_role("button", name="Describe")
        said = zone.evaluate(_DROP_AND_DESCRIBE, [f"{base}/huge.bmp", "huge.bmp", "image/bmp"])
        assert said == "Preparing: huge.bmp…"
        wait_for(lambda: describe.is_disabled(), 10, "Describe to wait for the new choice")
        chosen(cell, "Chosen: huge.bmp", timeout=90)
        wait_for(lambda: describe.is_enabled(), 10, "Describe to be ready again")
        assert chat_requests(site) == []  # the old choice was not described

        # More than the kernel takes at once: refused, the file marked, nothing kept.
        run_cell(page, notebook_cell(page, 2))
        cell.get_by_label("Keep originals").check()
        before = state(page)["received"]
        drop(zone, site, "big.bmp", "image/bmp")
        why = (
            "these images add up to 14.9 MB, more than the 8 MB this panel takes at once now: "
            "choose fewer at a time"
        )
        error = cell.locator(".reka-nb-error")
        wait_for(
            lambda: error.count() and error.inner_text() == f"The images did not arrive: {why}",
            60,
            "the refusal",
        )
        (row,) = cell.locator(".reka-picker-files li").all()
        assert row.inner_text().split("\n") == ["big.bmp", f"not used: {why}"]
        now = state(page)
        assert now["received"] == before and now["names"] == ["huge.bmp"]
        assert cell.locator(".reka-picker-chosen").inner_text() == "Chosen: huge.bmp"

        # Saved with "Save widget state automatically" on: no image and no thumbnail in it.
        save(page, site.notebook)
        saved = json.loads(site.notebook.read_text(encoding="utf-8"))
        widgets_state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]
        models = widgets_state["state"].values()
        assert models
        assert [m for m in models if m["model_name"] == "ImageModel"] == []
        assert [m for m in models if m.get("buffers")] == []
        text = json.dumps(widgets_state)
        for name in ("cat.jpeg", "tall.png"):
            data = (site.root / "images" / name).read_bytes()
            assert base64.b64encode(data[:300]).decode()[:200] not in text
