"""A structured answer in a real kernel (nbclient): every message the kernel publishes while
the answer streams shows the fields read so far as a key/value table, never raw braces, and
the last one is the table with its footer."""

from __future__ import annotations

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
        assert update["text/markdown"].startswith("| field | value |\n|---|---|\n| **caption** | ")
        assert "{" not in update["text/plain"] and '"' not in update["text/plain"]
    assert "| **people** | ▍ |\n| **outdoor** | ▍ |" in streaming[0]["text/markdown"]
    table, footer = final["text/markdown"].split("\n\n---\n\n")
    assert table == (
        "| field | value |\n|---|---|\n"
        f"| **caption** | {NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes. |\n"
        "| **people** | 1 |\n"
        "| **outdoor** | true |"
    )
    assert FOOTER.match(footer), footer
    [data] = execute(
        kernel, "r.data == {'caption': r.data['caption'], 'people': 1, 'outdoor': True}"
    )
    assert data["text/plain"] == "True"
