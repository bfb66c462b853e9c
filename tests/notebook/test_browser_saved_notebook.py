"""The saved quickstart as a reader first sees it: opened in JupyterLab in Chromium, not run.

A saved answer must look finished: no output is left in a waiting state ("Asking …") or
mid-stream (the cursor), every answer about images has the thumbnails of those images right
above it (rendered: the browser decoded them), and every footer has its seconds. A screenshot
of the first answer goes to ``tests/artifacts/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _browser import (
    CHROMIUM,
    artifacts_on_failure,
    launch_chromium,
    notebook_cell,
    open_notebook,
    save_screenshot,
)
from _jupyterlab import JupyterLab, cell_sources, copy_root

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

NOTEBOOK = "notebooks/quickstart.ipynb"
FOOTER = re.compile(r"\nreka-flash · \d+ tokens in, \d+ out · \$0\.\d+ · \d+\.\d s$")
ANSWER = "This is reka_nb's offline server: no model ran"


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """Chromium showing a copy of the saved notebook (no cell run); no offline server needed."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (.ci/run installs it with apt-get where it can)"
        print(f"\nSKIPPED browser test: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("saved")
    root = copy_root(tmp / "root")
    notebook = root / NOTEBOOK
    offsite: list[str] = []
    profile = tmp_path_factory.mktemp("profile")
    with (
        JupyterLab(root, tmp / "home", {}) as jupyter,
        launch_chromium(profile, offsite) as page,
        artifacts_on_failure(page, "browser-saved-notebook", jupyter),
    ):
        open_notebook(page, jupyter, notebook)
        yield page, notebook
    assert offsite == [], "the page asked for something beyond 127.0.0.1"


def outputs_of(cell: Any) -> list[dict[str, Any]]:
    """Each rendered output of a cell: its text, how many images it shows (decoded ones)
    and its top edge on the page."""
    return cell.evaluate(
        """cell => [...cell.querySelectorAll('.jp-OutputArea-output')].map(node => ({
            text: node.innerText.trim(),
            images: [...node.querySelectorAll('img')].filter(
                img => img.complete && img.naturalWidth > 0).length,
            top: node.getBoundingClientRect().top,
        }))"""
    )


def test_saved_answers_look_finished_with_their_images_above(opened: tuple[Any, Path]) -> None:
    page, notebook = opened
    sources = cell_sources(notebook)
    answers = 0
    for index, (kind, source) in enumerate(sources):
        if kind != "code":
            continue
        cell = notebook_cell(page, index)
        cell.scroll_into_view_if_needed()  # images load when in view
        page.wait_for_timeout(100)
        shown = outputs_of(cell)
        for number, output in enumerate(shown):
            text = output["text"]
            assert not text.startswith("Asking "), (index, text)
            assert "▍" not in text, (index, text)
            if not text.startswith(ANSWER):
                continue
            answers += 1
            assert FOOTER.search(text), (index, text[-80:])
            asks_about_images = "-i " in source.partition("\n")[0] or "describe(" in source
            if asks_about_images:
                assert number > 0, (index, "no thumbnails above the answer")
                above = shown[number - 1]
                assert above["images"] >= 1, (index, above)
                assert above["top"] < output["top"]
        if answers == 1 and any(o["text"].startswith(ANSWER) for o in shown):
            save_screenshot(cell, "browser-saved-answer.png")
    assert answers >= 8


def test_the_upload_panel_says_to_run_its_cell(opened: tuple[Any, Path]) -> None:
    """Without its kernel the panel cannot be drawn: its place says so, in plain words."""
    page, notebook = opened
    sources = cell_sources(notebook)
    (index,) = [
        i for i, (kind, src) in enumerate(sources) if kind == "code" and "uploader()" in src
    ]
    cell = notebook_cell(page, index)
    cell.scroll_into_view_if_needed()
    output = cell.locator(".jp-OutputArea-executeResult .jp-OutputArea-output")
    output.wait_for(state="visible")
    # The note above the panel (for a trusted notebook reopened) shows nothing here: untrusted,
    # its style is removed, and the panel's own fallback says it once.
    note = cell.locator(".reka-panel-note")
    assert note.evaluate("n => getComputedStyle(n, '::before').content") == "none"
    assert note.evaluate("n => n.getBoundingClientRect().height") == 0
    assert output.inner_text().strip() == (
        "Upload panel: run this cell to show it (it needs a running kernel)."
    )
    assert output.locator(".reka-panel-fallback").count() == 1
    assert "Error displaying widget" not in page.locator(".jp-Notebook").inner_text()
