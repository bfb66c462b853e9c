"""A structured answer in a real kernel (nbclient): every message the kernel publishes while
the answer streams shows the fields read so far as a key/value table, never raw braces, and
the last one is the table with its footer."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.util import run_sync

from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = "docs/images/cat.jpeg"
NOTE = "No model ran: reka\\_nb's offline server made this answer from the schema."
FOOTER = re.compile(r"\*reka-flash · \d+ tokens in, \d+ out · \$0\.\d+ · \d+\.\d s\*$")


@pytest.fixture(scope="module")
def kernel(offline_server: OfflineServer) -> Iterator[Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(
        REKA_BASE_URL=offline_server.base_url,
        REKA_API_KEY=offline_server.api_key,
        REKA_NB_DISPLAY="live",
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    with client.setup_kernel(cwd=str(ROOT), env=env):
        yield client.kc


def execute(kc: Any, code: str) -> list[dict[str, Any]]:
    """Run ``code``; every display message the kernel published for it, in order."""
    msg_id = kc.execute(code)
    messages = []
    while True:
        msg = run_sync(kc.get_iopub_msg)(timeout=120)  # the client is asyncio's
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind in ("display_data", "update_display_data", "execute_result"):
            messages.append(msg["content"]["data"])
        elif kind == "error":
            raise AssertionError("\n".join(msg["content"]["traceback"]))
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            return messages


def test_fields_fill_in_while_the_answer_streams(kernel: Any, server: OfflineServer) -> None:
    server.token_delay = 0.03
    try:
        published = execute(
            kernel,
            "import reka_nb\n"
            f"r = reka_nb.describe({CAT!r}, 'Count.', schema='caption, people int, outdoor bool')",
        )
    finally:
        server.token_delay = 0.0
    answers = [p for p in published if "text/markdown" in p and "text/html" not in p]
    waiting, *streaming, final = answers
    assert waiting["text/markdown"].startswith("*Asking **reka-flash**")
    assert len(streaming) >= 3
    for update in streaming:
        assert update["text/markdown"].startswith("| field | value |\n|:--|:--|\n| **caption** | ")
        assert "{" not in update["text/plain"] and '"' not in update["text/plain"]
    assert "| **people** | ▍ |\n| **outdoor** | ▍ |" in streaming[0]["text/markdown"]
    table, footer = final["text/markdown"].split("\n\n---\n\n")
    assert table == (
        "| field | value |\n|:--|:--|\n"
        f"| **caption** | {NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes. |\n"
        "| **people** | 1 |\n"
        "| **outdoor** | true |"
    )
    assert FOOTER.match(footer), footer
    [data] = execute(
        kernel, "r.data == {'caption': r.data['caption'], 'people': 1, 'outdoor': True}"
    )
    assert data["text/plain"] == "True"


def test_a_structured_answer_shown_again_is_its_fields(kernel: Any) -> None:
    """Evaluated again in a later cell, or passed to display(), a structured answer shows the
    key/value table its first display showed (Markdown, and aligned fields as plain text),
    never the JSON the model wrote."""
    execute(
        kernel,
        "import reka_nb\n"
        f"again = reka_nb.describe({CAT!r}, 'Count.', schema='caption, people int, outdoor bool',"
        " cache=False)",
    )
    caption = f"{NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes."
    markdown = (
        "| field | value |\n|:--|:--|\n"
        f"| **caption** | {caption} |\n"
        "| **people** | 1 |\n"
        "| **outdoor** | true |"
    )
    plain = f"caption  {caption.replace(chr(92), '')}\npeople   1\noutdoor  true"
    [result] = execute(kernel, "again")
    assert result == {"text/plain": plain, "text/markdown": markdown}
    [shown] = execute(kernel, "display(again)")
    assert shown == {"text/plain": plain, "text/markdown": markdown}
    [described] = execute(kernel, "repr(again)")
    data = repr({"caption": caption.replace(chr(92), ""), "people": 1, "outdoor": True})
    assert re.fullmatch(
        re.escape(f"Description(data={data[:77]}..., model='reka-flash', finish_reason='stop', ")
        + r"request_id='req_[0-9a-f]{32}'\)",
        eval(described["text/plain"]),
    ), described


def test_progress_rows_of_a_structured_run_show_the_fields(
    kernel: Any, server: OfflineServer, tmp_path: Path
) -> None:
    """While describe_many runs with a schema, every row of the live progress table shows a
    column per field with the row's values, as the Results table at the end does; no row
    shows the JSON text."""
    from PIL import Image

    paths = []
    for n, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        path = tmp_path / f"shot{n}.png"
        Image.new("RGB", (16 + n, 12), colour).save(path)
        paths.append(str(path))
    server.latency = 0.4  # a few progress updates while the rows arrive
    try:
        published = execute(
            kernel,
            "import reka_nb\n"
            f"res = reka_nb.describe_many({paths!r}, 'Count.', schema='caption, people int',"
            " concurrency=1, cache=False)",
        )
    finally:
        server.latency = 0.0
    [fields] = execute(
        kernel, "[[r.source, d['caption'], d['people']] for r, d in zip(res, res.data)]"
    )
    final = eval(fields["text/plain"])
    assert [source for source, _, _ in final] == paths
    expected = {source: [caption, str(people)] for source, caption, people in final}
    tables = [
        p["text/html"]
        for p in published
        if "reka-nb-progress" in p.get("text/html", "") and "<table" in p["text/html"]
    ]
    assert len(tables) >= 2
    for table in tables:
        heads = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table)
        assert heads == ["", "image", "caption", "people", "tokens in/out", "seconds"]
        rows = re.findall(r"<tr><td.*?</tr>", table)
        assert rows
        for row in rows:
            cells = [html.unescape(c) for c in re.findall(r"<td(?: [^>]*)?>(.*?)</td>", row)]
            assert cells[1] in expected, cells
            assert cells[2:4] == expected[cells[1]]
        assert "{&quot;" not in table and '{"' not in table
    assert len(rows) == 3  # the last live table holds every row
