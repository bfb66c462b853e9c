"""The example notebook in a real browser: JupyterLab driven through Playwright and Chromium.

An offline server with a token delay runs in this process; JupyterLab runs in a subprocess
whose kernels reach that server through REKA_BASE_URL and REKA_API_KEY. The test opens a copy
of ``notebooks/quickstart.ipynb`` (so saving never touches the repository), watches a
``%%reka`` answer grow in place, and uses the upload panel through Chromium's file chooser.
Screenshots go to ``tests/artifacts/``; on a failure, a page screenshot and JupyterLab's log.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _browser import (
    CHROMIUM,
    CellRun,
    OutputRecorder,
    artifacts_on_failure,
    clear_all_outputs,
    launch_chromium,
    notebook_cell,
    open_notebook,
    run_all_above,
    run_cell,
    save_screenshot,
    screenshot_while_streaming,
)
from _jupyterlab import REPO, JupyterLab, cell_sources, copy_root, find_cell, wait_for

from reka_nb.testing import OfflineServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

NOTEBOOK = "notebooks/quickstart.ipynb"
CAT = REPO / "docs" / "images" / "cat.jpeg"
TOKEN_DELAY = 0.05  # seconds between streamed words: an answer takes about two seconds
INTRO = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)
CAT_FACTS = "Image 1: JPEG, 451×300 px, 35,042 bytes."  # what the server measures of cat.jpeg
# the kernel looks reka-flash up (GET /models), so its example prices give each answer a cost
FOOTER = re.compile(r"^reka-flash · \d+ tokens in, \d+ out · \$0\.\d+ · \d+\.\d s$", re.MULTILINE)
CURSOR = "▍"


def is_magic_cell(source: str) -> bool:
    """The first ``%%reka -i`` cell about the cat."""
    return source.startswith("%%reka -i") and "cat.jpeg" in source.partition("\n")[0]


def is_uploader_cell(source: str) -> bool:
    return "uploader(" in source


@dataclass
class Lab:
    server: OfflineServer
    jupyter: JupyterLab
    notebook: Path

    def cells(self) -> list[tuple[str, str]]:
        return cell_sources(self.notebook)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The offline server (with a token delay) and JupyterLab serving a copy of the notebook."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (.ci/run installs it with apt-get where it can)"
        print(f"\nSKIPPED browser test: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("browser")
    root = copy_root(tmp / "root")
    notebook = root / NOTEBOOK
    assert notebook.is_file(), f"{NOTEBOOK} is missing"
    with OfflineServer(token_delay=TOKEN_DELAY) as server:
        env = {"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}
        with JupyterLab(root, tmp / "home", env) as jupyter:
            yield Lab(server, jupyter, notebook)
        server.check_errors()


@pytest.fixture(scope="module")
def page(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium showing the notebook, outputs cleared, every cell above the %%reka cell run."""
    offsite: list[str] = []
    with launch_chromium(tmp_path_factory.mktemp("chromium-profile"), offsite) as page:
        with artifacts_on_failure(page, "browser-setup", lab.jupyter):
            open_notebook(page, lab.jupyter, lab.notebook)
            clear_all_outputs(page)
            target = find_cell(lab.cells(), is_magic_cell, "%%reka -i about cat.jpeg")
            run_all_above(page, target, lab.cells())
        yield page
    assert offsite == [], "the page asked for something beyond 127.0.0.1"


def test_reka_magic_streams_into_one_output(lab: Lab, page: Any) -> None:
    index = find_cell(lab.cells(), is_magic_cell, "%%reka -i about cat.jpeg")
    cell = notebook_cell(page, index)
    prompt = lab.cells()[index][1].partition("\n")[2].strip()
    lab.server.reset()
    with artifacts_on_failure(page, "browser-reka-magic", lab.jupyter):
        recorder = OutputRecorder(cell, ".jp-Cell-outputArea")
        run = CellRun(page, cell)
        output = cell.locator(".jp-OutputArea-output").last  # below the thumbnails
        shot = screenshot_while_streaming(
            cell, output, "browser-reka-magic-streaming.png", "Model:", run.finished
        )
        run.wait()
        wait_for(lambda: FOOTER.search(output.inner_text()), 10, "the footer of the answer")
        states = recorder.stop()
        if not shot:
            print("\nnote: no screenshot of a partial answer (it ended first)")
        print(f"\n%%reka: {len(states)} output states: {[t[-24:] for t in states]}")
        # the strip, captioned with the file's name, stays above the answer in every state
        assert all(t.startswith("1. cat.jpeg") for t in states), states
        texts = [t.removeprefix("1. cat.jpeg").lstrip() for t in states]

        outputs = cell.locator(".jp-OutputArea-output")
        assert outputs.count() == 2  # the thumbnails, and one answer updated in place
        thumbnail = outputs.first.locator("img")
        assert thumbnail.evaluate("img => img.complete && img.naturalWidth > 0")
        answer, footer = texts[-1].rsplit("\n\n", 1)
        assert answer == f"{INTRO} Model: reka-flash. {CAT_FACTS} Prompt: {prompt}"
        assert FOOTER.match(footer), footer
        assert_grew(texts, answer)
        assert [(r.method, r.path, r.status, r.auth_ok) for r in lab.server.requests] == [
            ("POST", "/v1/chat/completions", 200, True)
        ]
        save_screenshot(cell, "browser-reka-magic.png")


def test_uploader_describes_the_chosen_cat(lab: Lab, page: Any) -> None:
    cell = notebook_cell(page, find_cell(lab.cells(), is_uploader_cell, "calling uploader("))
    lab.server.reset()
    with artifacts_on_failure(page, "browser-uploader", lab.jupyter):
        run_cell(page, cell)
        picker = cell.locator("button.reka-picker-choose")
        picker.wait_for(state="visible")
        with page.expect_file_chooser() as chooser:
            picker.click()
        chooser.value.set_files(CAT)

        thumbnail = cell.locator(".reka-picker-thumb img")  # drawn by the picker, never saved
        thumbnail.wait_for(state="visible")
        assert thumbnail.evaluate("img => img.complete && img.naturalWidth > 0")
        caption = cell.locator(".reka-picker-thumb figcaption", has_text=re.compile(r"^cat\.jpeg$"))
        assert caption.is_visible()

        describe = cell.get_by_role("button", name="Describe")
        recorder = OutputRecorder(cell, ".widget-output")
        describe.click()
        output = cell.locator(".widget-output")
        status = cell.locator(".widget-label").filter(has_text=FOOTER)
        shot = screenshot_while_streaming(
            cell, output, "browser-uploader-streaming.png", "Model:", status.count
        )
        if not shot:
            print("\nnote: no screenshot of a partial answer (it ended first)")
        status.wait_for(state="visible", timeout=30_000)
        wait_for(lambda: not output.inner_text().strip().endswith(CURSOR), 10, "the last words")
        texts = recorder.stop()
        print(f"\nuploader: {len(texts)} answer states: {[t[-24:] for t in texts]}")

        answer = texts[-1]
        assert answer.startswith(f"{INTRO} Model: reka-flash. {CAT_FACTS} Prompt: "), answer
        assert_grew(texts, answer)
        assert sorted((r.method, r.path, r.status, r.auth_ok) for r in lab.server.requests) == [
            ("GET", "/v1/models", 200, True),
            ("POST", "/v1/chat/completions", 200, True),
        ]
        save_screenshot(cell, "browser-uploader.png")


def assert_grew(texts: list[str], answer: str) -> None:
    """The answer grew: at least 3 different partial texts (ending in the cursor), each
    longer than the one before and a beginning of ``answer``; the last text has no cursor."""
    partial = [t[: -len(CURSOR)].rstrip() for t in texts if t.endswith(CURSOR)]
    assert len(partial) >= 3, texts
    assert all(answer.startswith(p) for p in partial), texts
    assert all(len(a) < len(b) for a, b in itertools.pairwise(partial)), texts
    assert not texts[-1].endswith(CURSOR), texts  # the final state
