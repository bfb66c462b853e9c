"""What describe() and describe_many show in JupyterLab, measured in Chromium, light and dark.

A notebook made here asks about five images (a panorama, a tall strip, the cat, a fully
transparent and a black square) with a prompt holding a long URL, then runs describe_many
over four files, one of them broken. The test measures what a reader sees: the rendered size
and aspect ratio of every thumbnail, the contrast of every piece of text from its computed
colours (backgrounds composited up to the page), whether anything scrolls sideways, where
table headers sit over their columns, alt texts and captions, the pixels around the
transparent and black thumbnails, and the bytes the saved notebook keeps. Screenshots of the
strip, the progress display and the table, in both themes, go to docs/screenshots/.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _browser import (
    CHROMIUM,
    artifacts_on_failure,
    launch_chromium,
    notebook_cell,
    open_notebook,
    run_cell,
    select,
)
from _jupyterlab import REPO, JupyterLab, wait_for
from PIL import Image

from reka_nb.testing import OfflineServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SCREENSHOTS = REPO / "docs" / "screenshots"
# no hyphen or space: nothing a browser would break the line at
URL = "https://example.com/photos/" + "0123456789abcdef" * 12 + ".jpg?size=large"
IMAGES = {  # name: (size, colour); the cat is copied from docs/images
    "panorama.png": ((256, 31), (40, 120, 200, 255)),
    "tall.png": ((34, 256), (200, 120, 40, 255)),
    "clear.png": ((64, 64), (0, 0, 0, 0)),
    "black.png": ((64, 64), (0, 0, 0, 255)),
}
STRIP = ["panorama.png", "tall.png", "cat.jpeg", "clear.png", "black.png"]
MANY = ["cat.jpeg", "tall.png", "broken.png", "clear.png"]
CELLS = [
    "import reka_nb",
    f"answer = reka_nb.describe({[f'images/{n}' for n in STRIP]!r}, 'Where is {URL} ?')",
    f"results = reka_nb.describe_many({[f'images/{n}' for n in MANY]!r}, "
    f"'Alt text for {URL}', concurrency=2)\nresults",
]
STRIP_CELL, MANY_CELL = 1, 2
MIN_CONTRAST = 4.5

# Each element's own text inside the outputs, its colour blended over its background, and
# that background: the background colours of it and its ancestors composited up to the first
# opaque one (white when none is). The WCAG contrast ratio of the two.
_CONTRASTS = """
(root) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const over = (top, bottom) =>
    [0, 1, 2].map((i) => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const background = (el) => {
    const layers = [];
    for (let n = el; n; n = n.parentElement) {
      const c = parse(getComputedStyle(n).backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let color = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) color = over(layers[i], color);
    return color;
  };
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  };
  const out = [];
  for (const el of root.querySelectorAll('*')) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent)
      .join('').trim();
    if (!own || el.getClientRects().length === 0) continue;
    if (!el.closest('.jp-OutputArea-output')) continue;  // JupyterLab's own prompts
    const bg = background(el);
    const fg = over(parse(getComputedStyle(el).color), bg);
    const [a, b] = [lum(fg), lum(bg)];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    out.push({text: own.slice(0, 40), tag: el.tagName, ratio, color: getComputedStyle(el).color,
              background: bg.slice(0, 3).map(Math.round).join(',')});
  }
  return out;
}
"""

# Per thumbnail: its alt text, rendered content size, natural size and the frame's style.
_THUMBNAILS = """
(root) => [...root.querySelectorAll('img')].map((img) => {
  const s = getComputedStyle(img);
  const px = (v) => parseFloat(v) || 0;
  const width = img.getBoundingClientRect().width - px(s.paddingLeft) - px(s.paddingRight)
    - px(s.borderLeftWidth) - px(s.borderRightWidth);
  const height = img.getBoundingClientRect().height - px(s.paddingTop) - px(s.paddingBottom)
    - px(s.borderTopWidth) - px(s.borderBottomWidth);
  return {alt: img.alt, width, height, natural: [img.naturalWidth, img.naturalHeight],
          complete: img.complete, background: s.backgroundImage};
})
"""

# Per table column: the header's text edges and each body cell's text edges (left, right).
_COLUMNS = """
(table) => {
  const edges = (cell) => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0);
    if (!rects.length || !cell.innerText.trim()) return null;
    return [Math.min(...rects.map((r) => r.left)), Math.max(...rects.map((r) => r.right))];
  };
  const heads = [...table.tHead.rows[0].cells];
  return heads.map((th, i) => ({
    header: th.innerText.trim(),
    head: edges(th),
    cells: [...table.tBodies[0].rows].map((row) => edges(row.cells[i])).filter(Boolean),
  }));
}
"""


@dataclass
class Lab:
    server: OfflineServer
    jupyter: JupyterLab
    notebook: Path


def make_images(folder: Path) -> None:
    folder.mkdir(parents=True)
    shutil.copyfile(REPO / "docs" / "images" / "cat.jpeg", folder / "cat.jpeg")
    for name, (size, colour) in IMAGES.items():
        Image.new("RGBA", size, colour).save(folder / name)
    (folder / "broken.png").write_bytes(b"this is not a PNG")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (.ci/run installs it with apt-get where it can)"
        print(f"\nSKIPPED browser test: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("display")
    root = tmp / "root"
    make_images(root / "images")
    notebook = root / "display.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, notebook)
    with OfflineServer(token_delay=0.01) as server:
        env = {
            "REKA_BASE_URL": server.base_url,
            "REKA_API_KEY": server.api_key,
            "REKA_NB_CACHE": "off",  # each run asks again, so the progress shows in both themes
            "REKA_NB_MODEL_INFO": "off",
        }
        with JupyterLab(root, tmp / "home", env) as jupyter:
            yield Lab(server, jupyter, notebook)
        server.check_errors()


@pytest.fixture(scope="module")
def page(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    offsite: list[str] = []
    with launch_chromium(tmp_path_factory.mktemp("chromium-profile"), offsite) as page:
        with artifacts_on_failure(page, "browser-display-setup", lab.jupyter):
            open_notebook(page, lab.jupyter, lab.notebook)
            run_cell(page, notebook_cell(page, 0))
        yield page
    assert offsite == [], "the page asked for something beyond 127.0.0.1"


def use_theme(page: Any, theme: str) -> None:
    """Settings > Theme > JupyterLab Light/Dark, then wait until the theme's CSS applies."""
    name = f"JupyterLab {theme.title()}"
    if page.evaluate("() => document.body.dataset.jpThemeName") != name:
        page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
        page.locator(".lm-Menu-item", has_text=re.compile(r"^\s*Theme\s*$")).first.hover()
        page.get_by_role("menuitem", name=name, exact=True).click()
    light = "true" if theme == "light" else "false"
    wait_for(
        lambda: page.evaluate(
            "([name, light]) => document.body.dataset.jpThemeName === name"
            " && document.body.dataset.jpThemeLight === light"
            " && getComputedStyle(document.body).getPropertyValue('--jp-layout-color0').trim()"
            " !== ''",
            [name, light],
        ),
        30,
        f"the {name} theme",
    )
    page.wait_for_timeout(500)  # the theme's stylesheet settles


def screenshot(element: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(path))
    return path


def assert_contrast(root: Any, what: str) -> int:
    """Every visible text under ``root`` has a contrast of at least 4.5:1; returns how many."""
    texts = root.evaluate(_CONTRASTS)
    low = [t for t in texts if t["ratio"] < MIN_CONTRAST]
    assert not low, f"{what}: text below {MIN_CONTRAST}:1: {low}"
    return len(texts)


def assert_no_sideways_scroll(cell: Any) -> None:
    widths = cell.evaluate(
        """cell => [...cell.querySelectorAll('.jp-OutputArea-output, .jp-OutputArea-child')]
            .map(n => [n.scrollWidth, n.clientWidth])"""
    )
    assert widths and all(scroll <= client + 1 for scroll, client in widths), widths


def assert_framed_on_a_checkerboard(img: Any, name: str) -> None:
    """The thumbnail's pixels on screen include the checkerboard's light squares around (and,
    when transparent, behind) the image: it does not vanish into a dark page."""
    picture = Image.open(io.BytesIO(img.screenshot())).convert("RGB")
    colours = picture.getcolors(picture.width * picture.height) or []
    light = sum(count for count, (r, g, b) in colours if min(r, g, b) >= 190)
    assert light >= picture.width * 2, f"{name}: {light} light pixels of {picture.size}"


class Checks:
    """Checks grouped by what they are about; a failed one is recorded and the run goes on,
    so one run (a slow one) names every group that fails."""

    def __init__(self) -> None:
        self.failed: dict[str, list[str]] = {}

    @contextlib.contextmanager
    def about(self, what: str) -> Iterator[None]:
        try:
            yield
        except AssertionError as exc:
            self.failed.setdefault(what, []).append(str(exc)[:1500])

    def verify(self) -> None:
        report = "\n".join(f"- {what}: {errors}" for what, errors in self.failed.items())
        assert not self.failed, f"{len(self.failed)} groups of checks failed:\n{report}"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_strip_and_table_read_well(lab: Lab, page: Any, theme: str) -> None:
    checks = Checks()
    with artifacts_on_failure(page, f"browser-display-{theme}", lab.jupyter):
        use_theme(page, theme)
        check_strip(page, theme, checks)
        check_describe_many(lab, page, theme, checks)
        checks.verify()


def check_strip(page: Any, theme: str, checks: Checks) -> None:
    cell = notebook_cell(page, STRIP_CELL)
    run_cell(page, cell)
    strip = cell.locator(".jp-OutputArea-output").first
    answer = cell.locator(".jp-OutputArea-output").last
    wait_for(lambda: "reka-flash ·" in answer.inner_text(), 20, "the answer's footer")
    wait_for(
        lambda: all(t["complete"] and t["natural"][0] > 0 for t in strip.evaluate(_THUMBNAILS)),
        10,
        "the thumbnails to load",
    )
    thumbnails = strip.evaluate(_THUMBNAILS)
    assert len(thumbnails) == len(STRIP)
    with checks.about("strip: each thumbnail keeps its aspect ratio within 256 px"):
        sizes = {
            name: (round(t["width"]), round(t["height"]))
            for name, t in zip(STRIP, thumbnails, strict=True)
        }
        for name, t in zip(STRIP, thumbnails, strict=True):
            natural_w, natural_h = t["natural"]
            assert max(t["width"], t["height"]) <= 256.5, (name, t)
            ratio = natural_w / natural_h
            assert t["width"] / t["height"] == pytest.approx(ratio, rel=0.03), (name, t)
        assert sizes["panorama.png"] == (256, 31) and sizes["tall.png"] == (34, 256), sizes
        assert sizes["cat.jpeg"] == (256, 170), sizes
    with checks.about("strip: alt texts are the file names, captions show them"):
        assert [t["alt"] for t in thumbnails] == STRIP
        captions = strip.locator("figcaption").all_inner_texts()
        assert captions == [f"{n}. {name}" for n, name in enumerate(STRIP, 1)]
    with checks.about("strip: transparent and black images on a checkerboard"):
        assert all("conic-gradient" in t["background"] for t in thumbnails), thumbnails
        for name in ("clear.png", "black.png"):
            assert_framed_on_a_checkerboard(strip.locator("img").nth(STRIP.index(name)), name)
    with checks.about("answer: a long URL wraps (no sideways scrolling)"):
        assert URL in answer.inner_text().replace("\n", "")
        assert_no_sideways_scroll(cell)
    with checks.about(f"strip and answer: contrast of 4.5:1 ({theme})"):
        assert_contrast(cell.locator(".jp-Cell-outputArea"), f"the strip and answer ({theme})")
    screenshot(cell.locator(".jp-Cell-outputArea"), f"strip-{theme}.png")


def check_describe_many(lab: Lab, page: Any, theme: str, checks: Checks) -> None:
    cell = notebook_cell(page, MANY_CELL)
    progress = cell.locator(".reka-nb-progress")
    lab.server.latency = 0.6  # slow enough to see the progress display mid-run
    try:
        select(cell)
        page.keyboard.press("Control+Enter")
        wait_for(
            lambda: progress.count() and re.match(r"[1-3]/4 images", progress.inner_text()),
            30,
            "the progress display mid-run",
            interval=0.05,
        )
        with checks.about(f"progress display: contrast of 4.5:1 ({theme})"):
            assert_contrast(progress, f"the progress display ({theme})")
        screenshot(cell.locator(".jp-Cell-outputArea"), f"progress-{theme}.png")
        wait_for(lambda: cell.locator("caption").count(), 60, "the results table")
    finally:
        lab.server.latency = 0.0
    outputs = cell.locator(".jp-OutputArea-output")
    wait_for(lambda: outputs.count() == 2, 10, "two outputs")
    with checks.about("describe_many: one table at the end"):
        assert cell.locator("table").count() == 1
    with checks.about("progress: counts in words, requests a second, no time left at the end"):
        line = progress.inner_text().strip()
        assert re.fullmatch(
            r"4/4 images · \d+\.\d requests?/s · 1 error · \d+ tokens in, \d+ out", line
        ), line
    table = cell.locator("table").last
    thumbnails = table.evaluate(_THUMBNAILS)
    with checks.about("table: thumbnails named by alt text, aspect ratio kept within 64 px"):
        assert [t["alt"] for t in thumbnails] == ["cat.jpeg", "tall.png", "clear.png"]
        for t in thumbnails:
            natural_w, natural_h = t["natural"]
            ratio = natural_w / natural_h
            assert t["width"] / t["height"] == pytest.approx(ratio, rel=0.05), t
            assert max(t["width"], t["height"]) <= 64.5, t
    with checks.about("table: headers aligned with their columns' text"):
        # text columns share a left edge with their header, number columns a right one
        columns = {c["header"]: c for c in table.evaluate(_COLUMNS)}
        for header in ("image", "answer"):
            c = columns[header]
            assert all(abs(edges[0] - c["head"][0]) <= 1 for edges in c["cells"]), c
        for header in ("tokens in/out", "seconds"):
            c = columns[header]
            assert c["cells"] and all(abs(e[1] - c["head"][1]) <= 1 for e in c["cells"]), c
    with checks.about("table: the failed row is marked"):
        error = table.locator("tr.reka-nb-error")
        assert error.count() == 1 and "ImageError" in error.inner_text()
    with checks.about("table: long URLs wrap (no sideways scrolling)"):
        assert_no_sideways_scroll(cell)
    with checks.about(f"table: contrast of 4.5:1, error row included ({theme})"):
        counted = assert_contrast(cell.locator(".jp-Cell-outputArea"), f"the results ({theme})")
        assert counted >= 20
    screenshot(cell.locator(".jp-Cell-outputArea"), f"table-{theme}.png")
    with checks.about("saved notebook: each thumbnail once, one table"):
        check_saved_bytes(lab, page)


def check_saved_bytes(lab: Lab, page: Any) -> None:
    """Saved, the describe_many cell keeps each thumbnail once: in the results table."""
    before = lab.notebook.stat().st_mtime_ns
    page.keyboard.press("Control+s")
    wait_for(lambda: lab.notebook.stat().st_mtime_ns != before, 20, "the notebook to be saved")
    saved = json.loads(lab.notebook.read_text(encoding="utf-8"))
    outputs = json.dumps(saved["cells"][MANY_CELL]["outputs"])
    assert outputs.count("data:image/") == 3, outputs.count("data:image/")
    assert outputs.count("<table") == 1
