"""The example notebook: nbval fails on a wrong key, it runs from the repository root, and
its saved outputs are small, honest and free of secrets."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbval.plugin import get_sanitize_patterns
from PIL import Image

from reka_nb.testing import run_notebook

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
SANITIZE = get_sanitize_patterns((ROOT / "notebooks" / "sanitize.cfg").read_text(encoding="utf-8"))


def nbval(extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(extra_env)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval",
            str(NOTEBOOK),
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_nbval_fails_when_the_key_is_wrong() -> None:
    proc = nbval({"REKA_NB_NOTEBOOK_KEY": "reka-wrong-notebook-key"})
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "AuthenticationError: The API key is missing or wrong" in proc.stdout
    assert "reka-wrong-notebook-key" not in proc.stdout + proc.stderr


def test_notebook_runs_from_the_repository_root() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    saved = [_answer_texts(cell) for cell in notebook.cells]
    run_notebook(notebook, ROOT)
    assert [_answer_texts(cell) for cell in notebook.cells] == saved


def _answer_texts(cell: nbformat.NotebookNode) -> list[str]:
    """The answers in a cell, masked as nbval masks them (notebooks/sanitize.cfg)."""
    out = []
    for output in cell.get("outputs", []):
        markdown = output.get("data", {}).get("text/markdown")
        if markdown and "no model ran" in markdown:
            for pattern, replacement in SANITIZE:
                markdown = re.sub(pattern, replacement, markdown)
            out.append(markdown)
    return out


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(NOTEBOOK.read_text(encoding="utf-8"))


def test_saved_answers_say_no_model_ran(saved: dict) -> None:
    answers = [
        "".join(o["data"]["text/markdown"])
        for cell in saved["cells"]
        for o in cell.get("outputs", [])
        if "text/markdown" in o.get("data", {}) and "Prompt:" in "".join(o["data"]["text/markdown"])
    ]
    assert len(answers) >= 8
    for text in answers:
        assert text.startswith("This is reka_nb's offline server: no model ran")


def test_saved_notebook_is_small_and_thumbnails_are_small(saved: dict) -> None:
    assert NOTEBOOK.stat().st_size < 500_000
    html = [
        "".join(o["data"]["text/html"])
        for cell in saved["cells"]
        for o in cell.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert html
    for page in html:
        for chunk in page.split("base64,")[1:]:
            data = base64.b64decode(chunk.split('"', 1)[0])
            assert max(Image.open(io.BytesIO(data)).size) <= 256


def test_saved_notebook_holds_no_key_or_uploads(saved: dict) -> None:
    text = NOTEBOOK.read_text(encoding="utf-8")
    from reka_nb.testing import TEST_API_KEY

    assert TEST_API_KEY not in text
    assert 'REKA_API_KEY"] = "' not in text
    assert "application/vnd.jupyter.widget-state+json" not in json.dumps(saved["metadata"])


def test_saved_notebook_carries_no_folder_of_the_machine(saved: dict) -> None:
    text = NOTEBOOK.read_text(encoding="utf-8")
    assert str(ROOT) not in text
    assert not re.search(r"/(?:home|Users|work|tmp|root)/", text)
    assert "site-packages" not in text and "Traceback" not in text


def test_error_cells_are_one_line_and_the_text_says_why_run_all_goes_on(saved: dict) -> None:
    cells = saved["cells"]
    failing = [
        i
        for i, cell in enumerate(cells)
        if any(o["output_type"] == "error" for o in cell.get("outputs", []))
    ]
    tagged = [
        i for i, cell in enumerate(cells) if "raises-exception" in cell["metadata"].get("tags", [])
    ]
    assert failing == tagged and len(failing) == 2
    for i in failing:
        (error,) = [o for o in cells[i]["outputs"] if o["output_type"] == "error"]
        assert error["traceback"] == [f"{error['ename']}: {error['evalue']}"]
    intro = "".join(cells[failing[0] - 1]["source"])
    assert '"Run all" stops at a failing cell' in intro
    assert "`raises-exception` tag" in intro and '"Run all" goes on past them' in intro
    for cell in cells:
        if cell["cell_type"] == "markdown":
            assert 'so "Run all" stops there' not in "".join(cell["source"])


def test_executed_copies_are_neither_collected_nor_committed(tmp_path: Path) -> None:
    """``jupyter nbconvert --execute`` writes quickstart.nbconvert.ipynb next to the notebook:
    nbval does not collect it, and git ignores it."""
    import shutil

    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    shutil.copy(NOTEBOOK, tmp_path / "notebooks" / "quickstart.nbconvert.ipynb")
    shutil.copy(NOTEBOOK, tmp_path / "notebooks" / "Untitled.ipynb")
    options = ["-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", "--collect-only", "-q", "notebooks", *options],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    files = {line.split("::")[0] for line in proc.stdout.splitlines() if "::" in line}
    assert files == {"notebooks/quickstart.ipynb"}
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "notebooks/quickstart.nbconvert.ipynb"], cwd=ROOT
    )
    assert ignored.returncode == 0
