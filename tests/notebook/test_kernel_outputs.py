"""What a notebook user sees, checked in a real kernel through nbclient: what each cell
publishes and what is saved. An answer is shown once; expected errors are one line; the images
stay above the answer; ``%load_ext`` and a question in one cell fail loudly; ``%reka help``."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = "docs/images/cat.jpeg"
INTRO = "This is reka_nb's offline server: no model ran"
FOOTER = re.compile(r"reka-flash · \d+ tokens in, \d+ out · \$0\.\d+ · \d+\.\d s")


class Session:
    """One kernel, cells run one by one; each cell's outputs as nbclient saves them."""

    def __init__(self, client: NotebookClient, nb: nbformat.NotebookNode) -> None:
        self.client = client
        self.nb = nb

    def run(self, source: str) -> tuple[list[dict[str, Any]], str | None]:
        """(outputs, the error's name or None)."""
        cell = nbformat.v4.new_code_cell(source)
        self.nb.cells.append(cell)
        try:
            self.client.execute_cell(cell, len(self.nb.cells) - 1)
        except CellExecutionError as exc:
            return cell.outputs, exc.ename
        return cell.outputs, None


def kernel_env(server: OfflineServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(REKA_BASE_URL=server.base_url, REKA_API_KEY=server.api_key)
    return env


def new_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


@pytest.fixture(scope="module")
def session(offline_server: OfflineServer) -> Iterator[Session]:
    nb = new_notebook()
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    with client.setup_kernel(cwd=str(ROOT), env=kernel_env(offline_server)):
        yield Session(client, nb)


def texts(outputs: list[dict[str, Any]]) -> list[str]:
    out = []
    for o in outputs:
        if "data" in o:
            out.append(o["data"].get("text/plain", ""))
        elif "text" in o:
            out.append(o["text"])
        else:
            out.append("\n".join(o.get("traceback", [])))
    return out


def test_a_bare_describe_shows_its_answer_once(session: Session, server: OfflineServer) -> None:
    outputs, error = session.run(f"import reka_nb\nreka_nb.describe({CAT!r}, 'What is it?')")
    assert error is None
    assert [o["output_type"] for o in outputs] == ["display_data", "display_data"]
    strip, answer = outputs
    assert "<img " in strip["data"]["text/html"]
    assert answer["data"]["text/plain"].startswith(INTRO)
    assert FOOTER.search(answer["data"]["text/plain"])
    # the same object evaluated in a later cell does show, as that cell's result
    outputs, _ = session.run("_")
    (result,) = outputs
    assert result["output_type"] == "execute_result"
    assert result["data"]["text/markdown"] == answer["data"]["text/plain"].rsplit("\n\n", 1)[0]


def test_an_answer_is_shown_when_asked_for_in_its_own_cell(
    session: Session, server: OfflineServer
) -> None:
    outputs, _ = session.run(f"d = reka_nb.describe({CAT!r}, 'Once?')\nd")
    assert [o["output_type"] for o in outputs] == ["display_data", "display_data"]
    outputs, _ = session.run(f"d2 = reka_nb.describe({CAT!r}, 'Twice?')\ndisplay(d2)")
    assert [o["output_type"] for o in outputs] == ["display_data"] * 3  # display() is explicit
    assert outputs[2]["data"]["text/markdown"].startswith(INTRO)
    outputs, _ = session.run(f"await reka_nb.adescribe({CAT!r}, 'Async?')")
    assert [o["output_type"] for o in outputs] == ["display_data", "display_data"]
    outputs, _ = session.run(f"reka_nb.describe({CAT!r}, 'Quiet?', show=False)")
    assert [o["output_type"] for o in outputs] == ["execute_result"]  # not shown by the call
    outputs, _ = session.run("d")
    assert [o["output_type"] for o in outputs] == ["execute_result"]


def test_an_expected_error_is_one_line(session: Session, server: OfflineServer) -> None:
    outputs, error = session.run("reka_nb.describe('no-such-cat.jpeg')")
    assert error == "ImageError"
    (output,) = outputs
    assert output["output_type"] == "error"
    assert output["traceback"] == [f"ImageError: {output['evalue']}"]
    assert output["evalue"].startswith("no such file: 'no-such-cat.jpeg'")
    assert "reka_nb/" not in json.dumps(output)  # no frames of reka_nb's code
    outputs, error = session.run("def oops():\n    return 1 / 0\n\noops()")
    assert error == "ZeroDivisionError"
    assert len(outputs[0]["traceback"]) > 1  # an unexpected error keeps its traceback


def test_an_api_error_is_said_once(session: Session, server: OfflineServer) -> None:
    session.run("%load_ext reka_nb")
    outputs, error = session.run("%reka -m reka-unknown Hello")
    assert error == "NotFoundError"
    shown = "\n".join(texts(outputs))
    assert shown.count("Unknown model 'reka-unknown'") == 1
    assert texts(outputs)[0] == "— stopped: NotFoundError"


def test_a_stream_that_breaks_says_so_in_plain_words(
    session: Session, server: OfflineServer
) -> None:
    server.queue(Fault.break_after(3))
    outputs, error = session.run(f"reka_nb.describe({CAT!r})")
    assert error == "StreamInterrupted"
    assert outputs[-1]["traceback"][0].startswith("StreamInterrupted: The answer stopped after ")
    assert "the connection closed before the answer was complete" in outputs[-1]["evalue"]
    assert "chunked" not in json.dumps(outputs)


def test_load_ext_and_a_question_in_one_cell_fail_loudly(offline_server: OfflineServer) -> None:
    nb = new_notebook()
    cell = nbformat.v4.new_code_cell("%load_ext reka_nb\n%reka What is this?")
    nb.cells = [cell]
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    with client.setup_kernel(cwd=str(ROOT), env=kernel_env(offline_server)):
        with pytest.raises(CellExecutionError) as info:
            client.execute_cell(cell, 0)
        assert info.value.ename == "UsageError"
        assert texts(cell.outputs) == [
            "UsageError: '%reka What is this?' was read by IPython as a help request, before "
            "%load_ext reka_nb ran, so nothing was asked. The magics are loaded now: run this "
            "cell again, or load the extension in a cell of its own.\n"
        ]
        client.execute_cell(cell, 0)  # the same cell again: now it asks
    assert cell.outputs[-1]["data"]["text/plain"].startswith(INTRO)
    assert "Prompt: What is this?" in cell.outputs[-1]["data"]["text/plain"]


def test_reka_help_reads_well_and_a_typo_gets_a_suggestion(session: Session) -> None:
    session.run("%load_ext reka_nb")
    outputs, error = session.run("%reka help")
    assert error is None
    (help_text,) = texts(outputs)
    assert help_text.startswith(
        "Usage:\n"
        "  %reka [options] PROMPT     ask about the rest of the line\n"
        "  %%reka [options]           ask about the cell body (the options on the first line)\n"
        "  %reka models | usage | reset | config | help\n"
    )
    assert "::" not in help_text and "NBVAL" not in help_text
    assert "\nOptions:\n  -i IMAGE, --image IMAGE" in help_text
    outputs, error = session.run("%reka --temprature 0.3 Hi")
    assert error == "UsageError"
    assert texts(outputs) == [
        "UsageError: unrecognized arguments: --temprature (did you mean --temperature?)\n"
    ]


def test_describe_many_suggests_requests_per_minute_for_rpm(session: Session) -> None:
    outputs, error = session.run(
        f"import reka_nb\nreka_nb.describe_many([{CAT!r}], rpm=10, show=False)"
    )
    assert error == "InvalidRequestError"
    (output,) = [o for o in outputs if o["output_type"] == "error"]
    assert output["evalue"] == (
        "unknown parameter 'rpm' (did you mean requests_per_minute?); expected one of the "
        "options model, concurrency, requests_per_minute, cache, show, client, retries, stream, "
        "limiter, max_cost, keep_metadata, transport, schema, labels, multi_label, "
        "schema_retries, or the "
        "model parameters max_tokens, temperature, "
        "top_p, stop, seed"
    )


def test_the_upload_panel_publishes_its_saved_note_then_itself(session: Session) -> None:
    """The note for a reopened notebook comes first; the panel's own bundle carries the
    fallback text and HTML for where widgets are not drawn at all."""
    from reka_nb.notebook.uploader import FALLBACK_HTML, FALLBACK_TEXT, SAVED_NOTE_HTML

    outputs, error = session.run("panel = reka_nb.uploader()\npanel")
    assert error is None
    assert [o["output_type"] for o in outputs] == ["display_data", "execute_result"]
    note, panel = outputs
    assert note["data"] == {"text/plain": "", "text/html": SAVED_NOTE_HTML}
    assert set(panel["data"]) == {
        "text/plain",
        "text/html",
        "application/vnd.jupyter.widget-view+json",
    }
    assert panel["data"]["text/plain"] == FALLBACK_TEXT
    assert panel["data"]["text/html"] == FALLBACK_HTML
    outputs, _ = session.run("display(panel)\npanel.close()")
    assert [o["output_type"] for o in outputs] == ["display_data", "display_data"]
