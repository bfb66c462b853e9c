"""The upload panel in a notebook its user saved and opened again later, in JupyterLab.

JupyterLab saves no widget state by default, and a notebook the user saved is trusted, so on
reopening JupyterLab's widget renderer takes the panel's place and can only say "Error
displaying widget: model not found". The note published just above the panel puts "run this
cell" there instead; while the panel is live the note takes no room.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
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
from _jupyterlab import JupyterLab, wait_for

from reka_nb.notebook.uploader import FALLBACK_TEXT
from reka_nb.testing import OfflineServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PANEL_CELL = "import reka_nb\npanel = reka_nb.uploader()\npanel"
WIDGET_ERROR = "Error displaying widget"

# The note's text as the page shows it: its ::before content, or "none" where it is hidden.
_NOTE = """cell => [...cell.querySelectorAll('.reka-panel-note')].map(note => {
  const before = getComputedStyle(note, '::before');
  return {content: before.content, display: before.display,
          height: note.getBoundingClientRect().height};
})"""


def make_notebook(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(PANEL_CELL)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def notes(cell: Any) -> list[dict[str, Any]]:
    return list(cell.evaluate(_NOTE))


@pytest.fixture(scope="module")
def server() -> Iterator[OfflineServer]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    with OfflineServer() as server:
        yield server


def test_a_reopened_saved_panel_says_to_run_its_cell(server: OfflineServer, tmp_path: Path) -> None:
    root = tmp_path / "root"
    notebook = make_notebook(root / "panel.ipynb")
    home = tmp_path / "home"  # the same home both times: the signature that trusts the notebook
    env = {"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}
    offsite: list[str] = []
    with launch_chromium(tmp_path / "profile", offsite) as page:
        with JupyterLab(root, home, env) as lab, artifacts_on_failure(page, "panel-live", lab):
            open_notebook(page, lab, notebook)
            cell = notebook_cell(page, 0)
            run_cell(page, cell)
            cell.locator(".reka-panel-status").wait_for(state="attached")
            wait_for(lambda: notes(cell), 30, "the note above the panel")
            # Live: the panel is drawn, and its note shows nothing and takes no room.
            assert notes(cell) == [{"content": "none", "display": "inline", "height": 0}]
            assert cell.locator(".widget-vbox").first.is_visible()
            before = notebook.stat().st_mtime_ns
            page.keyboard.press("Control+s")
            wait_for(lambda: notebook.stat().st_mtime_ns != before, 20, "the notebook saved")
            page.wait_for_timeout(500)
        saved = json.loads(notebook.read_text(encoding="utf-8"))
        assert "widgets" not in saved["metadata"]  # JupyterLab's default: no widget state
        assert FALLBACK_TEXT in json.dumps(saved["cells"][0]["outputs"])

        # Opened again by a new server: no kernel holds the panel any more.
        with JupyterLab(root, home, env) as lab, artifacts_on_failure(page, "panel-reopened", lab):
            assert lab.api("/api/contents/panel.ipynb")["content"]["cells"][0]["metadata"] == {
                "trusted": True
            }
            open_notebook(page, lab, notebook)
            cell = notebook_cell(page, 0)
            output = cell.locator(".jp-OutputArea")
            wait_for(lambda: WIDGET_ERROR in output.text_content(), 30, "the widget renderer")
            (note,) = notes(cell)
            assert note["content"] == json.dumps(FALLBACK_TEXT)
            assert note["display"] == "block" and note["height"] > 10
            assert WIDGET_ERROR not in output.inner_text()  # in the DOM, not shown
            assert page.locator(CELLS).count() == 1
            save_screenshot(cell, "reopened-panel.png")
    assert offsite == [], "the page asked for something beyond 127.0.0.1"
