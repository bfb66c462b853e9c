"""Chromium through Playwright, driving a notebook in JupyterLab as a user does.

Cells are run from the menus and the keyboard; a MutationObserver in the page records each
state an output goes through, so a test can check that an answer grew in place.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from _jupyterlab import REPO, JupyterLab, cell_sources, wait_for

ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",  # containers often have a small /dev/shm
)


# -- Chromium -----------------------------------------------------------------------------------

_LOCAL = ("http://127.0.0.1:", "ws://127.0.0.1:", "data:", "blob:", "about:")


@contextlib.contextmanager
def launch_chromium(
    profile: Path, offsite: list[str] | None = None, extra_args: Sequence[str] = ()
) -> Iterator[Any]:
    """Debian's Chromium, headless, with a fresh profile; yields its page.

    Each request the browser makes for anything but 127.0.0.1 (or data:/blob: URLs) is
    appended to ``offsite``, so a test can check that nothing tried to leave the machine.
    ``extra_args`` go on Chromium's command line (e.g. a fake camera).
    """
    from playwright.sync_api import sync_playwright

    def note(request: Any) -> None:
        if offsite is not None and not request.url.startswith(_LOCAL):
            offsite.append(request.url)

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=[*CHROMIUM_ARGS, *extra_args],
            viewport={"width": 1280, "height": 1000},
        )
        try:
            context.on("request", note)
            context.set_default_timeout(30_000)
            # File choosers are intercepted on every page from its start: Playwright turns the
            # interception on without waiting when a test first waits for a chooser, so a
            # click sent right after could reach a slow browser first and open none.
            context.on("page", _intercept_file_choosers)
            page = context.pages[0] if context.pages else context.new_page()
            _intercept_file_choosers(page)
            yield page
        finally:
            context.close()


def _intercept_file_choosers(page: Any) -> None:
    page.on("filechooser", lambda chooser: None)  # expect_file_chooser takes each one


def save_screenshot(element: Any, name: str) -> Path:
    """A screenshot of one element (a notebook cell) in tests/artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    element.scroll_into_view_if_needed()
    element.screenshot(path=str(path))
    return path


@contextlib.contextmanager
def artifacts_on_failure(page: Any, name: str, lab: JupyterLab) -> Iterator[None]:
    """On any failure, save a screenshot of the page and JupyterLab's log into tests/artifacts."""
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"), full_page=True)
        with contextlib.suppress(OSError):
            shutil.copyfile(lab.log_path, ARTIFACTS / f"{name}-jupyterlab.log")
        raise


# -- driving JupyterLab -------------------------------------------------------------------------

CELLS = ".jp-NotebookPanel .jp-Cell"
_ERROR_LINE = re.compile(r"^(\w+Error|\w+Exception|KeyboardInterrupt)\b", re.MULTILINE)

# Installed on a cell under a name: the text of the element matching `selector` inside it and
# the cell's input prompt, each time the DOM under the cell changes (repeats dropped).
_RECORDER = """
(cell, [name, selector]) => {
  const texts = [], prompts = [];
  const push = (list, value) => {
    if (list.length === 0 || list[list.length - 1] !== value) list.push(value);
  };
  const record = () => {
    const node = cell.querySelector(selector);
    push(texts, node ? node.innerText.trim() : '');
    push(prompts, cell.querySelector('.jp-InputPrompt').innerText.trim());
  };
  record();
  const observer = new MutationObserver(record);
  observer.observe(cell, {childList: true, subtree: true, characterData: true});
  cell.__reka = cell.__reka || {};
  cell.__reka[name] = {texts, prompts, stop: () => { observer.disconnect(); record(); }};
}
"""


class OutputRecorder:
    """Records every text an element inside a cell shows, from now until ``stop()``.

    A MutationObserver in the page sees each change made to the DOM, so no state is lost
    between two polls; empty texts (a re-render in progress) are dropped from the result.
    """

    _count = 0

    def __init__(self, cell: Any, selector: str) -> None:
        OutputRecorder._count += 1
        self.cell = cell
        self.name = f"recorder{OutputRecorder._count}"
        cell.evaluate(_RECORDER, [self.name, selector])

    def prompts(self) -> list[str]:
        return list(self.cell.evaluate("(cell, name) => cell.__reka[name].prompts", self.name))

    def stop(self) -> list[str]:
        texts = self.cell.evaluate(
            "(cell, name) => (cell.__reka[name].stop(), cell.__reka[name].texts)", self.name
        )
        return [text for text in texts if text]


def open_notebook(page: Any, lab: JupyterLab, notebook: Path, timeout: float = 60) -> None:
    """Open a notebook, wait for its kernel; accept a kernel dialog, close notifications."""
    relative = notebook.relative_to(lab.root_dir).as_posix()
    page.goto(f"{lab.base_url}/lab/tree/{relative}")
    page.locator(CELLS).first.wait_for(state="visible", timeout=timeout * 1000)

    def ready() -> bool:
        dismiss_dialogs(page)
        return "idle" in lab.kernel_states()

    wait_for(ready, timeout, "the notebook's kernel to start")
    dismiss_dialogs(page)
    count = len(cell_sources(notebook))
    wait_for(lambda: page.locator(CELLS).count() == count, 30, f"{count} cells in the page")


def dismiss_dialogs(page: Any) -> None:
    """Accept a kernel-selection dialog (it offers the notebook's kernel); dismiss toasts."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        accept = dialog.locator(".jp-Dialog-button.jp-mod-accept")
        if accept.count():
            accept.first.click()
    for button in page.locator(".jp-toast-dismiss").all():
        with contextlib.suppress(Exception):
            button.click(timeout=2000)


def notebook_cell(page: Any, index: int) -> Any:
    return page.locator(CELLS).nth(index)


def select(cell: Any) -> None:
    """Make a cell the active one, in command mode, by clicking its input prompt."""
    cell.scroll_into_view_if_needed()
    cell.locator(".jp-InputPrompt").click()


def execution_count(cell: Any) -> int | None:
    """The number in the cell's ``[n]:`` prompt; None before a run and while it runs."""
    match = re.search(r"\[(\d+)\]", cell.locator(".jp-InputPrompt").inner_text())
    return int(match.group(1)) if match else None


def cell_error(cell: Any) -> str | None:
    """The text of the cell's error output (a traceback, or a one-line UsageError), if any."""
    stderr = cell.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    for text in stderr.all_inner_texts():
        if _ERROR_LINE.search(text):
            return text
    return None


def menu(page: Any, title: str, command: str) -> None:
    """Choose a command from the main menu, e.g. ``menu(page, "Run", "notebook:run-all-above")``."""
    page.locator(".lm-MenuBar-itemLabel", has_text=title).first.click()
    page.locator(f'.lm-Menu-item[data-command="{command}"]').click()


def clear_all_outputs(page: Any) -> None:
    """Edit > Clear Outputs of All Cells: no saved output or prompt number is left over."""
    menu(page, "Edit", "editmenu:clear-all")
    wait_for(lambda: page.locator(f"{CELLS} .jp-OutputArea-output").count() == 0, 10, "no outputs")


def run_all_above(page: Any, index: int, cells: list[tuple[str, str]], timeout: float = 90) -> None:
    """Run > Run All Above Selected Cell; wait until each code cell above has run, or one failed."""
    select(notebook_cell(page, index))
    menu(page, "Run", "notebook:run-all-above")
    above = [notebook_cell(page, i) for i, (kind, _) in enumerate(cells[:index]) if kind == "code"]

    def all_ran() -> bool:
        for cell in above:
            error = cell_error(cell)
            if error is not None:
                raise AssertionError(f"a cell above the target failed:\n{error}")
        return all(execution_count(cell) is not None for cell in above)

    wait_for(all_ran, timeout, f"the {len(above)} code cells above cell {index} to run", 0.25)


class CellRun:
    """Run one cell as a user does (select it, Ctrl+Enter); ``wait()`` for the end."""

    def __init__(self, page: Any, cell: Any) -> None:
        self.cell = cell
        self._watch = OutputRecorder(cell, ".jp-Cell-outputArea")
        select(cell)
        page.keyboard.press("Control+Enter")

    def finished(self) -> int | None:
        """The cell's number once it has started ([*]) and ended; else None."""
        if not any("*" in prompt for prompt in self._watch.prompts()):
            return None
        return execution_count(self.cell)

    def wait(self, timeout: float = 60, check: bool = True) -> int:
        """Wait for the end; with ``check``, an error output fails, showing its text."""
        number = int(wait_for(self.finished, timeout, "the cell to run"))
        self._watch.stop()
        error = cell_error(self.cell) if check else None
        if error is not None:
            raise AssertionError(f"cell [{number}] failed:\n{error}")
        return number


def run_cell(page: Any, cell: Any, timeout: float = 60, check: bool = True) -> int:
    """Run a cell and wait for its end (see CellRun); returns its execution count."""
    return CellRun(page, cell).wait(timeout, check)


def screenshot_while_streaming(
    cell: Any, output: Any, name: str, after: str, done: Callable[[], Any], timeout: float = 30
) -> bool:
    """Screenshot ``cell`` while ``output`` shows a growing answer that has reached ``after``.

    Returns True when the answer was still growing after the picture was taken (so it shows
    a partial answer); False, without a picture, when ``done()`` came first.
    """
    growing = re.compile(re.escape(after) + r".*▍\s*$", re.DOTALL)

    def partial() -> bool:
        return any(growing.search(text) for text in output.all_inner_texts())

    state = wait_for(
        lambda: "partial" if partial() else "done" if done() else None,
        timeout,
        f"a partial answer showing {after!r}",
        interval=0.02,
    )
    if state == "done":
        return False
    save_screenshot(cell, name)
    return partial()
