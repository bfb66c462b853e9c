"""``%%reka --models a,b`` in a real kernel (jupyter_client, as nbclient and nbval start one):
every message the kernel publishes for the cell, while both answers stream side by side into
one display updated in place, through a model that fails and through a stop."""

from __future__ import annotations

import html
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_display import Execution, Kernel

from reka_nb.offline._answer import split_tokens
from reka_nb.offline._catalog import model_entry
from reka_nb.testing import DEFAULT_MODELS, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = "docs/images/cat.jpeg"
INTRO = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)
CELL = f"%%reka -i {CAT} --models reka-flash,reka-edge\nWhat is it?"
COLUMN = re.compile(
    r'<div class="reka-nb-column" data-model="([^"]+)" data-state="(\w+)".*?'
    r'<div class="reka-nb-text"[^>]*>(.*?)</div>'
    r'<div class="reka-nb-footer"[^>]*>(.*?)</div></div>',
    re.DOTALL,
)


def cat_answer(model: str, prompt: str = "What is it?") -> str:
    return f"{INTRO} Model: {model}. Image 1: JPEG, 451×300 px, 35,042 bytes. Prompt: {prompt}"


def board_of(run: Execution) -> list[dict[str, Any]]:
    """The messages of the side-by-side display (the one with a display id)."""
    return [
        m
        for m in run.displays
        if "reka-nb-side-by-side" in m["content"]["data"].get("text/html", "")
    ]


@pytest.fixture(scope="module")
def kernel(
    offline_server: OfflineServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kernel]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(
        REKA_BASE_URL=offline_server.base_url,
        REKA_API_KEY=offline_server.api_key,
        REKA_NB_DISPLAY="live",
        REKA_NB_CACHE=str(tmp_path_factory.mktemp("cache")),
    )  # the model list is looked up (the default): prices give each answer its cost
    k = Kernel(env)
    assert k.run("%load_ext reka_nb").reply["status"] == "ok"
    yield k
    k.stop()


def columns(message: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """model -> (state, text, footer) of one message of the display."""
    found = COLUMN.findall(message["content"]["data"]["text/html"])
    return {m: (state, html.unescape(text), html.unescape(foot)) for m, state, text, foot in found}


def footer(model: str, cost: str) -> re.Pattern[str]:
    tokens = len(split_tokens(cat_answer(model)))
    return re.compile(rf"67 tokens in, {tokens} out · \{cost} · \d+\.\d s")


def test_both_columns_fill_in_at_once_in_one_display(kernel: Kernel, server: OfflineServer) -> None:
    server.token_delay = 0.03  # about a second for each answer
    run = kernel.run(CELL)
    assert run.reply["status"] == "ok"
    assert run.of("execute_result", "error", "stream", "clear_output") == []
    strip, *rest = run.of("display_data", "update_display_data")
    assert "display_id" not in strip["content"].get("transient", {})  # sent once, above
    assert "<img " in strip["content"]["data"]["text/html"]
    board = board_of(run)
    assert board == rest
    assert [m["msg_type"] for m in board] == ["display_data"] + ["update_display_data"] * (
        len(board) - 1
    )
    assert len({m["content"]["transient"]["display_id"] for m in board}) == 1
    # the two questions were asked at once: each started before the other had finished
    edge, flash = sorted(server.chat_requests(), key=lambda r: r.body["model"])
    assert [edge.body["model"], flash.body["model"]] == ["reka-edge", "reka-flash"]
    assert abs(flash.received - edge.received) < 0.5

    shown = [columns(m) for m in board]
    assert shown[0] == {
        "reka-flash": ("waiting", "Asking…", ""),
        "reka-edge": ("waiting", "Asking…", ""),
    }
    final = {model: cat_answer(model) for model in ("reka-flash", "reka-edge")}
    for state in shown[1:-1]:  # while streaming: each column a part of its own answer
        assert list(state) == ["reka-flash", "reka-edge"]
        for model, (kind, text, foot) in state.items():
            if kind == "streaming":
                assert text.endswith("▍") and final[model].startswith(text[:-1])
                assert foot == ""
            else:
                assert kind in ("waiting", "done"), kind
    both = [
        s
        for s in shown[1:-1]
        if all(k == "streaming" and 0 < len(t) - 1 < len(final[m]) for m, (k, t, _) in s.items())
    ]
    assert len(both) >= 3  # both columns filling in, in the same updates
    last = shown[-1]
    assert last["reka-flash"][:2] == ("done", final["reka-flash"])
    assert last["reka-edge"][:2] == ("done", final["reka-edge"])
    assert footer("reka-flash", "$0.00011").fullmatch(last["reka-flash"][2])
    assert footer("reka-edge", "$0.000057").fullmatch(last["reka-edge"][2])
    plain = board[-1]["content"]["data"]["text/plain"]
    assert plain.splitlines()[0].split() == ["reka-flash", "│", "reka-edge"]
    assert "Model: reka-flash." in plain and "Model: reka-edge." in plain
    # at most 10 updates a second
    seconds = (board[-1]["header"]["date"] - board[0]["header"]["date"]).total_seconds()
    assert len(board) <= 10 * seconds + 3
    assert server.api_key not in json.dumps([m["content"] for m in run.messages])
    answers = kernel.run("{m: d.text for m, d in _reka.items()} == " + repr(final))
    assert answers.of("execute_result")[0]["content"]["data"]["text/plain"] == "True"


@pytest.fixture(scope="module")
def retiring() -> Iterator[OfflineServer]:
    """A server whose list names ``reka-retired``, which its chat endpoint no longer knows."""
    entries = [model_entry(m, 0) for m in DEFAULT_MODELS]
    entries.append({**model_entry("reka-edge", 0), "id": "reka-retired"})
    with OfflineServer(model_list=entries) as server:
        yield server


def test_a_model_that_fails_says_so_in_its_column_only(
    kernel: Kernel, server: OfflineServer, retiring: OfflineServer
) -> None:
    retiring.token_delay = 0.01
    switch = f"import os\nos.environ['REKA_BASE_URL'] = {retiring.base_url!r}\n"
    assert kernel.run(switch).reply["status"] == "ok"
    try:
        run = kernel.run(f"%%reka -i {CAT} --models reka-retired,reka-flash\nWhat is it?")
    finally:
        kernel.run(f"os.environ['REKA_BASE_URL'] = {server.base_url!r}")
    assert run.reply["status"] == "ok"  # one model answered: the cell goes on
    last = columns(board_of(run)[-1])
    rid = next(r.request_id for r in retiring.chat_requests() if r.body["model"] == "reka-retired")
    state, text, foot = last["reka-retired"]
    assert (state, text) == ("failed", "")
    assert foot.startswith("— stopped: NotFoundError: ")
    assert "'reka-retired'" in foot and f"request id {rid}" in foot
    assert last["reka-flash"][:2] == ("done", cat_answer("reka-flash"))
    assert footer("reka-flash", "$0.00011").fullmatch(last["reka-flash"][2])
    assert run.of("error") == []
    assert retiring.api_key not in json.dumps([m["content"] for m in run.messages])
    kinds = kernel.run("type(_reka['reka-retired']).__name__, type(_reka['reka-flash']).__name__")
    assert kinds.of("execute_result")[0]["content"]["data"]["text/plain"] == (
        "('NotFoundError', 'Description')"
    )


def test_a_stop_ends_every_stream_and_keeps_their_text(
    kernel: Kernel, server: OfflineServer
) -> None:
    server.token_delay = 0.2  # about 6 s for each answer
    stopped: list[float] = []

    def stop_when_both_stream(msg: dict) -> None:
        data = msg["content"].get("data", {})
        if stopped or "reka-nb-side-by-side" not in data.get("text/html", ""):
            return
        if all(state == "streaming" for state, _, _ in columns(msg).values()):
            stopped.append(time.monotonic())
            kernel.km.interrupt_kernel()

    run = kernel.run(CELL, stop_when_both_stream)
    assert time.monotonic() - stopped[0] < 1.5  # at once, not at the end of the answers
    assert server.wait_idle(1.0)  # both connections closed: the server stopped answering
    assert run.reply["status"] == "error"
    assert run.reply["ename"] == "KeyboardInterrupt"
    (error,) = run.of("error")
    assert error["content"]["traceback"] == [
        "KeyboardInterrupt: interrupted; the text that arrived is kept above"
    ]
    last = columns(board_of(run)[-1])
    for model in ("reka-flash", "reka-edge"):
        state, text, foot = last[model]
        assert (state, foot) == ("interrupted", "— interrupted")
        assert text and cat_answer(model).startswith(text) and text != cat_answer(model)
    server.token_delay = 0
    again = kernel.run(CELL)
    assert again.reply["status"] == "ok"
    assert {m: c[0] for m, c in columns(board_of(again)[-1]).items()} == {
        "reka-flash": "done",
        "reka-edge": "done",
    }


def test_for_nbval_the_finished_columns_are_an_output_of_their_own(
    kernel: Kernel, server: OfflineServer
) -> None:
    server.token_delay = 0.02
    setting = "import os\nos.environ['REKA_NB_DISPLAY'] = 'final'"
    assert kernel.run(setting).reply["status"] == "ok"
    try:
        run = kernel.run(CELL)
    finally:
        kernel.run("os.environ['REKA_NB_DISPLAY'] = 'live'")
    assert run.reply["status"] == "ok"
    first, *updates, final = run.of("display_data", "update_display_data")
    # the thumbnails are the live output: the columns stream into it, and it ends as it began
    assert first["msg_type"] == "display_data"
    assert "<img " in first["content"]["data"]["text/html"]
    live_id = first["content"]["transient"]["display_id"]
    assert {m["msg_type"] for m in updates} == {"update_display_data"}
    assert {m["content"]["transient"]["display_id"] for m in updates} == {live_id}
    assert updates[-1]["content"]["data"] == first["content"]["data"]
    assert any('data-state="streaming"' in m["content"]["data"]["text/html"] for m in updates)
    # then the finished columns, an ordinary output below (what nbval records and compares)
    assert final["msg_type"] == "display_data"
    assert "display_id" not in final["content"].get("transient", {})
    last = columns(final)
    assert {m: c[:2] for m, c in last.items()} == {
        m: ("done", cat_answer(m)) for m in ("reka-flash", "reka-edge")
    }
