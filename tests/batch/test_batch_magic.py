"""%%reka --each: in a real kernel (nbclient), with its one updating progress display and the
results table; usage mistakes in an in-process IPython shell."""

from __future__ import annotations

import io
import re
from pathlib import Path

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from reka_nb import Results
from reka_nb.testing import OfflineServer, run_notebook


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (120, 60, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        (folder / f"img{i}.png").write_bytes(png(10 + i))
    return folder


def run(shell: InteractiveShell, code: str):  # type: ignore[no-untyped-def]
    return shell.run_cell(code, store_history=False)


def test_each_in_a_kernel_shows_progress_then_one_table(photos: Path) -> None:
    each = '%%reka -i "photos/*.png" --each --concurrency 2\nSize?'
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext reka_nb"),
        nbformat.v4.new_code_cell("import os\nos.environ['REKA_NB_DISPLAY'] = 'live'"),
        nbformat.v4.new_code_cell(each),
        nbformat.v4.new_code_cell("print(type(_reka).__name__, [r.ok for r in _reka])"),
        nbformat.v4.new_code_cell("os.environ['REKA_NB_DISPLAY'] = 'final'"),
        nbformat.v4.new_code_cell(each),
    ]
    run_notebook(notebook, photos.parent)
    live = notebook.cells[2].outputs
    assert [o.output_type for o in live] == ["display_data", "display_data"]
    progress, table = live
    # One display, updated in place to its final state (nbclient applies the updates); its
    # live rows are gone at the end: the results table below holds each row once.
    text = progress.data["text/plain"]
    assert re.fullmatch(
        r"3/3 images · \d+\.\d requests/s · 0 errors · \d+ tokens in, \d+ out", text
    )
    assert '<progress max="3" value="3"' in progress.data["text/html"]
    assert "<img" not in progress.data["text/html"] and "<table" not in progress.data["text/html"]
    assert table.data["text/plain"].startswith("<Results 3 of 3 answered")
    html = table.data["text/html"]
    assert html.count('<img src="data:image/') == 3
    for i in range(3):
        assert f"photos/img{i}.png" in html and f"PNG, {10 + i}×8 px" in html
    assert notebook.cells[3].outputs[0].text == "Results [True, True, True]\n"
    # For nbval: the display ends as it began, then the final counts, without timings.
    first, final, table = notebook.cells[5].outputs
    assert first.data["text/plain"] == "0/3 images · 0 errors · 0 tokens in, 0 out"
    assert final.data["text/plain"].startswith("3/3 images · 0 errors · ")
    assert "/s" not in final.data["text/plain"]


def test_describe_many_in_a_kernel_counts_in_words_and_shows_one_table(photos: Path) -> None:
    """The progress line says "1 error" and counts answers from the cache apart from the
    requests a second; the rows are shown once, by the results table."""
    (photos / "broken.png").write_bytes(b"not a png")
    run_twice = 'results = reka_nb.describe_many(["photos/img0.png", "photos/broken.png"], "Size?")'
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(
            "import os\nos.environ['REKA_NB_DISPLAY'] = 'live'\n"
            "os.environ['REKA_NB_CACHE'] = 'answers'\nimport reka_nb"
        ),
        nbformat.v4.new_code_cell(f"{run_twice}\nresults"),
        nbformat.v4.new_code_cell(f"{run_twice}\nresults"),
    ]
    run_notebook(notebook, photos.parent)
    for cell, counts in (
        (notebook.cells[1], r"1 error · \d+ tokens in, \d+ out"),
        (notebook.cells[2], r"1 error · 1 from the cache · 0 tokens in, 0 out"),
    ):
        assert [o.output_type for o in cell.outputs] == ["display_data", "execute_result"]
        progress, table = cell.outputs
        line = progress.data["text/plain"]
        assert re.fullmatch(r"2/2 images · \d+\.\d requests?/s · " + counts, line), line
        assert "<img" not in progress.data["text/html"]
        html = table.data["text/html"]
        assert html.count("<img ") == 1 and html.count("<tr") == 3  # the header and 2 rows
        assert '<tr class="reka-nb-error">' in html and "ImageError" in html
        assert 'alt="img0.png"' in html


def test_each_usage_mistakes_are_usage_errors(
    shell: InteractiveShell, env: OfflineServer, photos: Path
) -> None:
    for line, message in (
        ("%%reka --each\nSize?", "--each needs images"),
        (f"%%reka -i {photos} --each --chat\nSize?", "takes no --chat or --system"),
        (f"%%reka -i {photos} --rpm 10\nSize?", "--concurrency and --rpm go with --each"),
        (f"%%reka -i {photos} --each --rpm 0\nSize?", "--rpm must be above 0"),
        (f"%%reka -i {photos / 'none*.png'} --each\nSize?", "no files match"),
    ):
        result = run(shell, line)
        assert isinstance(result.error_in_exec, UsageError), line
        assert message in str(result.error_in_exec)
    assert env.requests == []


def test_each_in_a_shell_keeps_results_in_reka_and_out(
    shell: InteractiveShell, env: OfflineServer, photos: Path
) -> None:
    result = run(
        shell, f"%%reka -i {photos} -i {photos / 'img0.png'} --each --concurrency 1 -o table\nSize?"
    )
    assert result.error_in_exec is None
    results = shell.user_ns["_reka"]
    assert isinstance(results, Results) and shell.user_ns["table"] is results
    assert len(results) == 4 and [r.cached for r in results] == [False, False, False, True]
    assert len(env.chat_requests()) == 3


def test_cache_option_of_a_single_question(
    shell: InteractiveShell, env: OfflineServer, photos: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(shell, f"%reka -i {photos / 'img0.png'} --cache Size?")
    run(shell, f"%reka -i {photos / 'img0.png'} --cache Size?")
    assert shell.user_ns["_reka"].cached is True
    run(shell, f"%reka -i {photos / 'img0.png'} Size?")
    assert shell.user_ns["_reka"].cached is False
    assert len(env.chat_requests()) == 2
