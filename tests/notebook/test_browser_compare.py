"""What compare() shows in JupyterLab, in Chromium, light and dark: the comparison table (a row
per image, a column per model, wrong answers and disagreements marked, the summary) and its
plot. Every text of the table keeps a contrast of 4.5:1, nothing scrolls sideways, and the
plot's background is the notebook's own (transparent), so it reads in both themes.
Screenshots go to docs/screenshots/compare-{light,dark}.png and compare-plot-{light,dark}.png.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
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
)
from _jupyterlab import REPO, JupyterLab, wait_for
from PIL import Image
from test_browser_display import (
    assert_contrast,
    assert_no_sideways_scroll,
    screenshot,
    use_theme,
)

from reka_nb.testing import OfflineServer, image_digest, offline_choice, reference_choice

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

LABELS = ["damaged", "intact", "unclear"]
PROMPT = "Damaged or intact?"
MODELS = ["reka-core", "reka-flash", "reka-edge"]
NAMES = ["cat.jpeg", "a.png", "b.png", "c.png", "d.png", "e.png"]


def make_images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True)
    shutil.copyfile(REPO / "docs" / "images" / "cat.jpeg", folder / "cat.jpeg")
    for i, name in enumerate(NAMES[1:]):
        Image.new("RGB", (40 + 9 * i, 30), (60 * i, 120, 200 - 40 * i)).save(folder / name)
    return [folder / name for name in NAMES]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[JupyterLab, Path, list]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    tmp = tmp_path_factory.mktemp("compare")
    root = tmp / "root"
    paths = make_images(root / "shots")
    digests = [image_digest(p.read_bytes()) for p in paths]
    truth = [reference_choice(LABELS, [d], PROMPT) for d in digests]
    notebook = root / "compare.ipynb"
    nb = nbformat.v4.new_notebook()
    images = [f"shots/{n}" for n in NAMES]
    nb.cells = [
        nbformat.v4.new_code_cell("import reka_nb"),
        nbformat.v4.new_code_cell(
            f"cmp = reka_nb.compare({images!r}, {PROMPT!r}, models={MODELS!r},\n"
            f"                      labels={LABELS!r}, truth={truth!r}, show=False)\ncmp"
        ),
        nbformat.v4.new_code_cell("cmp.plot()"),
    ]
    nbformat.write(nb, notebook)
    with OfflineServer(varied_choices=True) as server:
        env = {
            "REKA_BASE_URL": server.base_url,
            "REKA_API_KEY": server.api_key,
            "REKA_NB_CACHE": "off",
            "REKA_NB_MODEL_INFO": "on",  # prices: a cost per model
        }
        with JupyterLab(root, tmp / "home", env) as jupyter:
            yield jupyter, notebook, [truth, digests]
        server.check_errors()


@pytest.fixture(scope="module")
def page(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    jupyter, notebook, _ = lab
    offsite: list[str] = []
    with launch_chromium(tmp_path_factory.mktemp("chromium-profile"), offsite) as page:
        with artifacts_on_failure(page, "browser-compare-setup", jupyter):
            open_notebook(page, jupyter, notebook)
            run_cell(page, notebook_cell(page, 0))
        yield page
    assert offsite == [], "the page asked for something beyond 127.0.0.1"


def _lightness(png: bytes) -> tuple[float, float]:
    """The shares of the picture's pixels that are dark and light."""
    picture = Image.open(io.BytesIO(png)).convert("L")
    histogram = picture.histogram()
    total = picture.width * picture.height
    return sum(histogram[:60]) / total, sum(histogram[200:]) / total


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_comparison_and_its_plot_read_well(lab: Any, page: Any, theme: str) -> None:
    jupyter, _, (truth, digests) = lab
    answers = {m: [offline_choice(m, LABELS, [d], PROMPT) for d in digests] for m in MODELS}
    wrong = sum(a != t for m in MODELS for a, t in zip(answers[m], truth, strict=True))
    differ = sum(len({answers[m][i] for m in MODELS}) > 1 for i in range(len(NAMES)))
    assert wrong > 0 and differ > 0  # the rule gives these images wrong and differing answers
    with artifacts_on_failure(page, f"browser-compare-{theme}", jupyter):
        use_theme(page, theme)
        cell = notebook_cell(page, 1)
        run_cell(page, cell)
        table = cell.locator("table.reka-nb-compare")
        wait_for(lambda: table.count() == 1, 30, "the comparison table")
        assert table.locator("tbody tr").count() == len(NAMES)
        assert table.locator("tbody tr.reka-nb-differs").count() == differ
        assert table.inner_text().count("✗") == wrong
        summary = cell.locator("table.reka-nb-compare-summary")
        assert summary.locator("tbody tr").count() == len(MODELS)
        assert_no_sideways_scroll(cell)
        assert_contrast(cell.locator(".jp-Cell-outputArea"), f"the comparison ({theme})")
        screenshot(cell.locator(".jp-Cell-outputArea"), f"compare-{theme}.png")

        plot = notebook_cell(page, 2)
        run_cell(page, plot)
        img = plot.locator(".jp-OutputArea-output img")
        wait_for(lambda: img.count() == 1, 30, "the plot")
        wait_for(lambda: img.evaluate("i => i.complete && i.naturalWidth > 0"), 10, "the image")
        dark, light = _lightness(img.screenshot())
        # transparent: the page's own background shows through, light or dark
        if theme == "dark":
            assert dark > 0.5 and light < 0.25, (dark, light)
        else:
            assert light > 0.5 and dark < 0.25, (dark, light)
        screenshot(plot.locator(".jp-Cell-outputArea"), f"compare-plot-{theme}.png")
