"""``%%reka --models a,b`` in a real in-process IPython shell against the offline server: the
columns as text, the checks made before anything is sent, a model failing on its own, and
structured answers side by side. (What a notebook kernel publishes while the answers stream:
``test_side_by_side_kernel.py``.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from reka_nb import (
    BadRequestError,
    Description,
    InvalidRequestError,
    MissingAPIKeyError,
    StreamInterrupted,
    Usage,
)
from reka_nb.notebook.side_by_side import Column, board_bundle, html_columns, plain_columns
from reka_nb.offline._answer import split_tokens
from reka_nb.testing import Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
INTRO = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)
TH = ' style="text-align:left;padding-right:8px"'
TD = ' style="text-align:left"'
TEXT_INTRO = "This is reka_nb's offline server: no model ran, so nothing here is a real answer."


def cat_answer(model: str, prompt: str = "What is it?") -> str:
    return f"{INTRO} Model: {model}. Image 1: JPEG, 451×300 px, 35,042 bytes. Prompt: {prompt}"


@pytest.fixture
def ip(shell: InteractiveShell, env: OfflineServer) -> Iterator[InteractiveShell]:
    for name in ("_reka", "both"):
        shell.user_ns.pop(name, None)
    yield shell


def run(shell: InteractiveShell, code: str) -> Any:
    return shell.run_cell(code, store_history=False)


# -- the columns as text ----------------------------------------------------------------------


def test_plain_columns_wrap_each_answer_beside_the_other() -> None:
    answered = Description(
        "A tabby cat on a sofa, looking at the camera.",
        model="reka-flash",
        usage=Usage(input_tokens=67, output_tokens=11),
        elapsed=1.24,
    )
    done = Column("reka-flash", ["ignored"], "done", answered)
    failed = Column("reka-edge", ["A cat"], "failed", error=InvalidRequestError("no such thing"))
    assert plain_columns([done, failed], width=43) == (
        "reka-flash           │ reka-edge\n"
        "─────────────────────┼─────────────────────\n"
        "A tabby cat on a     │ A cat\n"
        "sofa, looking at the │\n"
        "camera.              │ — stopped:\n"
        "                     │ InvalidRequestError:\n"
        "67 tokens in, 11 out │ no such thing\n"
        "· 1.2 s              │"
    )
    waiting = Column("reka-core")
    streaming = Column("reka-edge", ["Half ", "an"], "streaming")
    assert plain_columns([waiting, streaming], width=23).splitlines()[2:] == [
        "Asking…      │ Half an▍"  # a column is 12 characters at least
    ]
    assert list(board_bundle([waiting, streaming], raw=True)) == ["text/plain"]
    markup = board_bundle([Column("<b>", ["<i>&"], "streaming"), waiting])["text/html"]
    assert 'data-model="&lt;b&gt;"' in markup and "&lt;i&gt;&amp;▍" in markup
    assert "<i>" not in markup


def test_structured_columns_show_fields_never_braces() -> None:
    answered = Description(
        '{"caption": "two\\nlines", "people": 2}', data={"caption": "two\nlines", "people": 2}
    )
    done = Column("reka-flash", [], "done", answered)
    arriving = Column("reka-edge", ['{"caption": "a c'], "streaming", fields=("caption", "people"))
    markup = html_columns([done, arriving])
    assert re.findall(r"<tr>(.*?)</tr>", markup, re.DOTALL) == [
        f"<th{TH}>caption</th><td{TD}>two\nlines</td>",
        f"<th{TH}>people</th><td{TD}>2</td>",
        f"<th{TH}>caption</th><td{TD}>a c</td>",
        f"<th{TH}>people</th><td{TD}>▍</td>",
    ]
    assert "{" not in plain_columns([done, arriving])
    assert plain_columns([done, arriving], width=43).splitlines()[2:5] == [
        "caption  two         │ caption  a c",
        "lines                │ people   ▍",
        "people   2           │",
    ]


# -- checked before anything is sent ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("%reka --models reka-flash hi", "--models needs two or more models separated by "
         "commas, not 'reka-flash'"),
        ("%reka --models reka-flash,,  hi", "--models needs two or more models separated by "
         "commas, not 'reka-flash,,'"),
        ("%reka --models reka-edge,reka-flash,reka-edge hi",
         "--models names 'reka-edge' twice; name each model once"),
        ("%reka -m reka-core --models reka-flash,reka-edge hi",
         "--models and -m/--model do not go together: list every model in --models"),
        (f"%reka --each -i {CAT} --models reka-flash,reka-edge hi",
         "--models asks one question side by side: it does not go with --each"),
        ("%reka --chat --models reka-flash,reka-edge hi",
         "--models does not go with --chat: a conversation has one model"),
        ("%reka --concurrency 2 --models reka-flash,reka-edge hi",
         "--concurrency and --rpm go with --each"),
    ],
)  # fmt: skip
def test_mistakes_are_one_line_usage_errors_with_nothing_sent(
    ip, env, capsys, code: str, message: str
) -> None:
    result = run(ip, code)
    assert type(result.error_in_exec) is UsageError
    assert str(result.error_in_exec) == message
    assert capsys.readouterr().err == f"UsageError: {message}\n"
    assert env.requests == []


def test_an_unknown_name_gets_the_near_miss(ip, env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # the names are checked against the list
    result = run(ip, f"%%reka -i {CAT} --models reka-flash,reka-edg\nWhat is it?")
    assert type(result.error_in_exec) is UsageError
    assert str(result.error_in_exec) == (
        "--models: there is no model 'reka-edg' (did you mean reka-edge?); %reka models lists "
        "the models your key can use"
    )
    assert env.chat_requests() == []
    result = run(ip, "%reka --models reka-flash,gpt-4o hi")
    assert str(result.error_in_exec) == (
        "--models: there is no model 'gpt-4o'; %reka models lists the models your key can use"
    )
    assert env.chat_requests() == []


def test_a_model_that_cannot_take_the_image_is_refused_by_name(ip, env, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    result = run(ip, f"%%reka -i {CAT} --models reka-flash,reka-flash-3\nWhat is it?")
    assert type(result.error_in_exec) is InvalidRequestError
    assert str(result.error_in_exec).startswith(
        "model 'reka-flash-3' does not take image input: it takes text; models that take "
        "image: reka-core, reka-flash, "
    )
    assert env.chat_requests() == []


def test_no_key_and_a_bad_image_are_refused_before_anything_is_sent(
    ip, env, monkeypatch, tmp_path
) -> None:
    monkeypatch.delenv("REKA_API_KEY")
    result = run(ip, "%reka --models reka-flash,reka-edge hi")
    assert type(result.error_in_exec) is MissingAPIKeyError
    monkeypatch.setenv("REKA_API_KEY", env.api_key)
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    result = run(ip, f"%reka -i {notes} --models reka-flash,reka-edge hi")
    assert type(result.error_in_exec).__name__ == "ImageError"
    assert env.requests == []


# -- answers ----------------------------------------------------------------------------------


def test_a_terminal_gets_the_columns_once_at_the_end(ip, env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")  # the list's prices: each answer's cost
    env.token_delay = 0.005
    result = run(ip, f"%%reka -i {CAT} --models reka-flash,reka-edge -o both\nWhat is it?")
    assert result.error_in_exec is None
    answers = {m: cat_answer(m) for m in ("reka-flash", "reka-edge")}
    kept = ip.user_ns["both"]
    assert kept is ip.user_ns["_reka"]
    assert list(kept) == ["reka-flash", "reka-edge"]
    assert {m: d.text for m, d in kept.items()} == answers
    assert all(isinstance(d, Description) for d in kept.values())
    columns = [Column(m, [answers[m]], "done", kept[m]) for m in ("reka-flash", "reka-edge")]
    out = capsys.readouterr().out
    assert out == plain_columns(columns) + "\n"
    lines = out.splitlines()
    assert lines[0].split() == ["reka-flash", "│", "reka-edge"]
    tokens = len(split_tokens(answers["reka-flash"]))
    assert re.fullmatch(
        rf"67 tokens in, {tokens} out · \$0\.00011 · \d+\.\d s +│ "
        rf"67 tokens in, {tokens} out · \$0\.000057 · \d+\.\d s",
        lines[-1],
    )
    sent = sorted(env.chat_requests(), key=lambda r: r.body["model"])
    assert [r.body["model"] for r in sent] == ["reka-edge", "reka-flash"]
    assert all(r.body["stream"] is True for r in sent)
    assert env.api_key not in out


def test_no_stream_system_and_params_reach_every_request(ip, env, capsys) -> None:
    result = run(
        ip, '%reka --models reka-flash,reka-core --no-stream --system "Be brief." -t 0.2 hi'
    )
    assert result.error_in_exec is None
    for request in env.chat_requests():
        assert request.body["stream"] is False
        assert request.body["temperature"] == 0.2
        assert request.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sorted(r.body["model"] for r in env.chat_requests()) == ["reka-core", "reka-flash"]
    texts = {m: d.text for m, d in ip.user_ns["_reka"].items()}
    assert texts == {
        m: f"{TEXT_INTRO} Model: {m}. System: Be brief. Prompt: hi"
        for m in ("reka-flash", "reka-core")
    }


def test_one_broken_stream_keeps_its_partial_text_and_the_other_answer(ip, env, capsys) -> None:
    env.queue(Fault.break_after(4), Fault.ok())  # whichever request comes first breaks
    result = run(ip, "%reka --models reka-flash,reka-edge hi")
    assert result.error_in_exec is None
    kept = ip.user_ns["_reka"]
    broken = [m for m, d in kept.items() if isinstance(d, StreamInterrupted)]
    (model,) = broken
    (other,) = {"reka-flash", "reka-edge"} - {model}
    partial = " ".join(TEXT_INTRO.split()[:4]) + " "
    assert kept[model].partial_text == partial
    assert kept[other].text == f"{TEXT_INTRO} Model: {other}. Prompt: hi"
    shown = {
        model: Column(model, [partial], "failed", error=kept[model]),
        other: Column(other, [], "done", kept[other]),
    }
    out = capsys.readouterr().out
    assert out == plain_columns([shown["reka-flash"], shown["reka-edge"]]) + "\n"
    assert str(kept[model]).startswith(f"The answer stopped after {len(partial)} characters")
    assert shown[model].footer() == f"— stopped: StreamInterrupted: {kept[model]}"


def test_when_every_model_fails_the_cell_fails(ip, env, capsys) -> None:
    env.queue(Fault.status(400), Fault.status(400))
    result = run(ip, "%reka --models reka-flash,reka-edge hi")
    assert type(result.error_in_exec) is BadRequestError
    out = capsys.readouterr().out
    assert out.count("— stopped: BadRequestError:") == 2
    assert "_reka" not in ip.user_ns


def test_labels_side_by_side(ip, env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    result = run(ip, f"%%reka -i {CAT} --labels cat,dog --models reka-flash,reka-edge-2603\nWhich?")
    assert result.error_in_exec is None
    kept = ip.user_ns["_reka"]
    assert {m: d.data for m, d in kept.items()} == {
        "reka-flash": {"label": "cat"},
        "reka-edge-2603": {"label": "cat"},
    }
    sent = {r.body["model"]: r.body for r in env.chat_requests()}
    assert "response_format" in sent["reka-flash"]
    assert "response_format" not in sent["reka-edge-2603"]  # its schema goes in the prompt
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split() == ["label", "cat", "│", "label", "cat"]
    assert re.fullmatch(
        r"65 tokens in, 2 out · \$0\.000056 · \d\.\d s +│ 104 tokens in, 2 out · "
        r"\$0\.000011 · \d\.\d s",
        lines[4],
    )


def test_help_names_the_option(ip, env, capsys) -> None:
    run(ip, "%reka help")
    out = capsys.readouterr().out
    assert "--models <A,B>        ask two or more models at once" in out
    assert "%%reka -i cat.jpeg --models reka-flash,reka-edge" in out


def test_cache_answers_each_model_again_without_asking(ip, env, capsys) -> None:
    assert run(ip, "%reka --cache --models reka-flash,reka-edge hi").error_in_exec is None
    first = {m: d.text for m, d in ip.user_ns["_reka"].items()}
    assert len(env.chat_requests()) == 2
    capsys.readouterr()
    assert run(ip, "%reka --cache --models reka-flash,reka-edge,reka-core hi").error_in_exec is None
    again = ip.user_ns["_reka"]
    assert [m for m, d in again.items() if d.cached] == ["reka-flash", "reka-edge"]
    assert {m: again[m].text for m in first} == first
    assert [r.body["model"] for r in env.chat_requests()[2:]] == ["reka-core"]  # only the new one
    out = capsys.readouterr().out
    assert out == plain_columns([Column(m, [], "done", d) for m, d in again.items()]) + "\n"
    assert [Column(m, [], "done", d).footer().endswith(" · cached") for m, d in again.items()] == [
        True,
        True,
        False,
    ]
