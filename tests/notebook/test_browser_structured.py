"""Structured answers in JupyterLab, measured in Chromium, light and dark.

A notebook made here asks describe() for the fields of a receipt-style schema about the cat,
shows that answer again in a later cell, then runs describe_many with the same schema over
three files (one of them broken). The test reads what the browser shows: the key/value table
(each field's name and value, exactly, under left-aligned headers), the same table when the
answer is shown again, the results table's headers and cells (a column per field, the failed
row marked), and the contrast of every piece of text from its computed colours. Screenshots
of the key/value display and of the table, in both themes, go to
docs/screenshots/structured-*.png.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from _browser import CHROMIUM, artifacts_on_failure, launch_chromium, notebook_cell, open_notebook
from _browser import run_cell as run
from _jupyterlab import JupyterLab, wait_for
from test_browser_display import _COLUMNS, assert_contrast, make_images, screenshot, use_theme

import reka_nb
from reka_nb.testing import OfflineServer

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SCHEMA = "store, total float, items list[str], paid bool"
PROMPT = "Read this receipt."
MANY = ["cat.jpeg", "tall.png", "broken.png"]
CELLS = [
    "import reka_nb",
    f"receipt = reka_nb.describe('images/cat.jpeg', {PROMPT!r}, schema={SCHEMA!r})",
    "receipt",
    f"results = reka_nb.describe_many({[f'images/{n}' for n in MANY]!r}, {PROMPT!r}, "
    f"schema={SCHEMA!r}, concurrency=1)\nresults",
]
ANSWER_CELL, AGAIN_CELL, MANY_CELL = 1, 2, 3
FIELDS = ["store", "total", "items", "paid"]

# Each row of the rendered Markdown tables in an output: the text of its cells.
_ROWS = """
(root) => [...root.querySelectorAll('table')].map((table) =>
  [...table.rows].map((row) => [...row.cells].map((cell) => cell.innerText.trim())))
"""


@dataclass
class Lab:
    server: OfflineServer
    jupyter: JupyterLab
    notebook: Path
    expected: dict[str, dict[str, Any]]


def shown(value: Any) -> str:
    """A field's value as the key/value table shows it."""
    if isinstance(value, list):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (.ci/run installs it with apt-get where it can)"
        print(f"\nSKIPPED browser test: {reason}")
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("structured")
    root = tmp / "root"
    make_images(root / "images")
    notebook = root / "structured.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    nbformat.write(nb, notebook)
    with OfflineServer(token_delay=0.01) as server:
        # the fields the offline server gives each image, asked here the same way
        with reka_nb.RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
            expected = {
                name: client.describe(
                    root / "images" / name, PROMPT, schema=SCHEMA, show=False
                ).data
                for name in MANY
                if name != "broken.png"
            }
        server.reset()
        env = {
            "REKA_BASE_URL": server.base_url,
            "REKA_API_KEY": server.api_key,
            "REKA_NB_CACHE": "off",  # each theme's run asks again
            "REKA_NB_MODEL_INFO": "off",
        }
        with JupyterLab(root, tmp / "home", env) as jupyter:
            yield Lab(server, jupyter, notebook, expected)
        server.check_errors()


@pytest.fixture(scope="module")
def page(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    offsite: list[str] = []
    with launch_chromium(tmp_path_factory.mktemp("chromium-profile"), offsite) as page:
        with artifacts_on_failure(page, "browser-structured-setup", lab.jupyter):
            open_notebook(page, lab.jupyter, lab.notebook)
            run(page, notebook_cell(page, 0))
        yield page
    assert offsite == [], "the page asked for something beyond 127.0.0.1"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_fields_and_typed_table_read_well(lab: Lab, page: Any, theme: str) -> None:
    with artifacts_on_failure(page, f"browser-structured-{theme}", lab.jupyter):
        use_theme(page, theme)
        check_key_value_display(lab, page, theme)
        check_results_table(lab, page, theme)


def check_key_value_display(lab: Lab, page: Any, theme: str) -> None:
    cat = lab.expected["cat.jpeg"]
    rows = [["field", "value"], *([name, shown(cat[name])] for name in FIELDS)]
    cell = notebook_cell(page, ANSWER_CELL)
    run(page, cell)
    answer = cell.locator(".jp-OutputArea-output").last
    wait_for(lambda: "reka-flash ·" in answer.inner_text(), 20, "the answer's footer")
    assert answer.evaluate(_ROWS) == [rows]
    footer = answer.inner_text().strip().splitlines()[-1]
    assert re.fullmatch(r"reka-flash · \d+ tokens in, \d+ out · \d+\.\d s", footer), footer
    assert "{" not in answer.inner_text()
    for column in answer.locator("table").evaluate(_COLUMNS):  # headers over their text
        assert all(abs(edges[0] - column["head"][0]) <= 1 for edges in column["cells"]), column
    output = cell.locator(".jp-Cell-outputArea")
    assert assert_contrast(output, f"the key/value display ({theme})") >= 2 * len(rows) + 1
    page.mouse.move(1, 1)  # no hover marks in the picture
    screenshot(output, f"structured-answer-{theme}.png")

    again = notebook_cell(page, AGAIN_CELL)  # the answer shown again: the same table
    run(page, again)
    outputs = again.locator(".jp-OutputArea-output")
    wait_for(lambda: outputs.count() == 1, 10, "the answer shown again")
    assert outputs.first.evaluate(_ROWS) == [rows]
    assert "{" not in outputs.first.inner_text()
    assert_contrast(again.locator(".jp-Cell-outputArea"), f"the answer shown again ({theme})")


def check_results_table(lab: Lab, page: Any, theme: str) -> None:
    cell = notebook_cell(page, MANY_CELL)
    run(page, cell, timeout=60)
    wait_for(lambda: cell.locator("table.reka-nb-results caption").count(), 30, "the table")
    table = cell.locator("table.reka-nb-results").last
    rows = table.evaluate(
        "(t) => [...t.rows].map((r) => [...r.cells].map((c) => c.innerText.trim()))"
    )
    head, *body = rows
    assert head == ["", "image", *FIELDS, "tokens in/out", "seconds"]
    assert [row[1] for row in body] == [f"images/{name}" for name in MANY]
    for row, name in zip(body, MANY, strict=True):
        if name == "broken.png":
            assert len(row) == 5 and row[2].startswith("ImageError: "), row
            continue
        data = lab.expected[name]
        values = [shown(data[f]) for f in FIELDS]  # as the key/value display writes them
        assert row[2:6] == values, (name, row)
        assert re.fullmatch(r"\d+/\d+", row[6]) and re.fullmatch(r"\d+\.\d\d", row[7]), row
    assert table.locator("tr.reka-nb-error").count() == 1
    caption = table.locator("caption").inner_text()
    assert caption.startswith("2 of 3 answered · 1 failed · "), caption
    assert "{&quot;" not in table.inner_html() and '{"' not in table.inner_text()
    output = cell.locator(".jp-Cell-outputArea")
    assert assert_contrast(output, f"the structured results ({theme})") >= 20
    page.mouse.move(1, 1)
    screenshot(output, f"structured-table-{theme}.png")
    saved = json.loads(lab.notebook.read_text(encoding="utf-8"))
    assert len(saved["cells"]) == len(CELLS)
