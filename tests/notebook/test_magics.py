"""The %reka / %%reka magics in a real in-process IPython shell, against the offline server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

from reka_nb import (
    AuthenticationError,
    BadRequestError,
    Description,
    ImageError,
    MissingAPIKeyError,
    StreamInterrupted,
)
from reka_nb.notebook.magics import RekaMagics
from reka_nb.notebook.prompt import interpolate
from reka_nb.testing import DEFAULT_MODELS, Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
CAT_LINE = "Image 1: JPEG, 451×300 px, 35,042 bytes."
TEXT_INTRO = "This is reka_nb's offline server: no model ran, so nothing here is a real answer."
IMAGE_INTRO = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)


@pytest.fixture
def ip(shell: InteractiveShell, env: OfflineServer) -> Iterator[InteractiveShell]:
    """The shell with a fresh conversation and no answer kept, talking to the offline server."""
    magics(shell).conversation.reset()
    for name in ("_reka", "ans", "img", "imgs", "upload", "name", "obj", "items"):
        shell.user_ns.pop(name, None)
    yield shell


def magics(shell: InteractiveShell) -> RekaMagics:
    return shell.magics_manager.registry["RekaMagics"]


def run(shell: InteractiveShell, code: str) -> Any:
    """Run a cell; return its ExecutionResult."""
    return shell.run_cell(code, store_history=False)


def body(server: OfflineServer) -> dict:
    return server.requests[-1].body


def prompt_sent(server: OfflineServer) -> str:
    """The text part of the last user message of the last request."""
    content = body(server)["messages"][-1]["content"]
    return [part["text"] for part in content if part["type"] == "text"][-1]


def answer(prompt: str, *extra: str, images: bool = False, model: str = "reka-flash") -> str:
    intro = IMAGE_INTRO if images else TEXT_INTRO
    return " ".join([intro, f"Model: {model}.", *extra, f"Prompt: {prompt}"])


# -- options reach the request ----------------------------------------------------------------


def test_every_option_reaches_the_request_body(ip, env, capsys) -> None:
    result = run(
        ip,
        "%%reka -m reka-core -t 0.5 --max-tokens 50 --top-p 0.9 --seed 7 --stop END "
        '--stop STOP --system "Be brief." -i ' + str(CAT) + "\nWhat is this?",
    )
    assert result.error_in_exec is None
    sent = body(env)
    assert sent["model"] == "reka-core"
    assert sent["temperature"] == 0.5
    assert sent["max_tokens"] == 50
    assert sent["top_p"] == 0.9
    assert sent["seed"] == 7
    assert sent["stop"] == ["END", "STOP"]
    assert sent["stream"] is True
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    user = sent["messages"][1]["content"]
    assert [part["type"] for part in user] == ["image_url", "text"]
    assert user[0]["image_url"]["url"].startswith("data:image/jpeg;base64,")
    expected = answer(
        "What is this?", "System: Be brief.", CAT_LINE, images=True, model="reka-core"
    )
    assert capsys.readouterr().out == expected + "\n"


def test_long_option_forms_and_no_stream(ip, env, capsys) -> None:
    run(ip, "%reka --model=reka-edge --temperature=0 --no-stream -- -5 degrees, is that cold?")
    sent = body(env)
    assert sent["model"] == "reka-edge"
    assert sent["temperature"] == 0
    assert sent["stream"] is False
    assert prompt_sent(env) == "-5 degrees, is that cold?"
    assert capsys.readouterr().out == answer("-5 degrees, is that cold?", model="reka-edge") + "\n"


def test_line_question_is_asked_not_a_help_request(ip, env, capsys) -> None:
    result = run(ip, "for n in [1]:\n    %reka   What is this?  ")
    assert result.error_in_exec is None
    assert prompt_sent(env) == "What is this?"
    assert capsys.readouterr().out == answer("What is this?") + "\n"
    run(ip, "%reka?")  # still IPython's help for the magic
    assert "Ask Reka about images from a notebook" in capsys.readouterr().out
    assert len(env.requests) == 1


def test_line_prompt_keeps_quotes_and_dollars(ip, env) -> None:
    ip.user_ns["price"] = 3
    run(ip, '%reka what\'s the "best" way to spend $price?')
    assert prompt_sent(env) == 'what\'s the "best" way to spend $price?'


def test_image_from_variables_lists_and_upload_widget(ip, env, capsys) -> None:
    from ipywidgets import FileUpload

    data = CAT.read_bytes()
    upload = FileUpload(accept="image/*", multiple=True)
    upload.set_state(
        {
            "value": [
                {
                    "name": "cat.jpeg",
                    "type": "image/jpeg",
                    "size": len(data),
                    "content": memoryview(data),
                    "last_modified": 0,
                }
            ]
        }
    )
    ip.user_ns["upload"] = upload
    ip.user_ns["img"] = Image.new("RGB", (40, 30), "red")
    ip.user_ns["imgs"] = [str(CAT), Image.new("RGB", (20, 10), "blue")]
    run(ip, "%reka -i img -i imgs -i upload -i imgs[1] How many?")
    parts = body(env)["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url"] * 5 + ["text"]
    out = capsys.readouterr().out
    assert "Image 1: PNG, 40×30 px," in out
    assert "Image 2: JPEG, 451×300 px, 35,042 bytes." in out
    assert "Image 3: PNG, 20×10 px," in out
    assert "Image 4: JPEG, 451×300 px, 35,042 bytes." in out
    assert "Image 5: PNG, 20×10 px," in out


def test_image_in_a_function_local_scope(ip, env, capsys) -> None:
    ip.user_ns["CAT"] = str(CAT)
    result = run(ip, "def ask():\n    local_img = CAT\n    %reka -i local_img Where?\nask()")
    assert result.error_in_exec is None
    assert capsys.readouterr().out == answer("Where?", CAT_LINE, images=True) + "\n"


def test_image_only_asks_the_default_prompt(ip, env) -> None:
    run(ip, f"%reka -i {CAT}")
    assert prompt_sent(env) == "What can you see in the image?"


# -- the prompt -------------------------------------------------------------------------------


class Box:
    label = "a box"


@pytest.mark.parametrize(
    ("cell", "sent"),
    [
        ("Hello {name}!", "Hello Tom!"),
        ("Look at {obj.label}.", "Look at a box."),
        (
            "First: {items[0]}, last: {items[-1]}, key: {items[2][k]}",
            "First: a, last: {'k': 'v'}, key: v",
        ),
        ("Write {{name}} literally", "Write {name} literally"),
        (
            'Answer as JSON: {"label": "cat", "box": {"x": 1}}',
            'Answer as JSON: {"label": "cat", "box": {"x": 1}}',
        ),
        ('Format {{"a": 1}} and {"name": {name}}', 'Format {"a": 1} and {"name": Tom}'),
        (
            "Unknown {nobody} and {obj.missing} and {items[9]} stay",
            "Unknown {nobody} and {obj.missing} and {items[9]} stay",
        ),
        (
            "Code: def f(x): return {x: [y for y in x]}",
            "Code: def f(x): return {x: [y for y in x]}",
        ),
    ],
)
def test_interpolation(ip, env, cell: str, sent: str) -> None:
    ip.user_ns.update(name="Tom", obj=Box(), items=["a", "b", {"k": "v"}])
    result = run(ip, "%%reka\n" + cell)
    assert result.error_in_exec is None
    assert prompt_sent(env) == sent


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


def test_a_value_whose_str_raises_is_left_as_written(ip, env, capsys) -> None:
    ip.user_ns.update(obj=Unprintable(), name="Tom")
    result = run(ip, "%reka Look at {obj} and {name}")
    assert result.error_in_exec is None
    assert prompt_sent(env) == "Look at {obj} and Tom"
    assert capsys.readouterr().err == ""


def test_interpolate_never_raises_on_a_value_whose_str_raises() -> None:
    namespaces = [{"obj": Unprintable(), "items": [Unprintable()]}]
    assert interpolate("{obj}, {items[0]} and {{obj}}", namespaces) == "{obj}, {items[0]} and {obj}"


def test_line_magic_interpolates_too(ip, env) -> None:
    ip.user_ns["name"] = "Ada"
    run(ip, "%reka Say hi to {name}")
    assert prompt_sent(env) == "Say hi to Ada"


def test_nbval_markers_are_not_sent(ip, env) -> None:
    run(ip, "%%reka\n# NBVAL_IGNORE_OUTPUT\nDescribe it.\n  #NBVAL_SKIP\nBriefly.")
    assert prompt_sent(env) == "Describe it.\nBriefly."


# -- chat -------------------------------------------------------------------------------------


def test_chat_continues_across_cells_and_reset_forgets(ip, env, capsys) -> None:
    run(ip, f'%%reka --chat --system "Be kind." -i {CAT}\nWhat is it?')
    first = capsys.readouterr().out
    run(ip, "%reka Not part of the chat")
    run(ip, "%%reka --chat\nAnd its colour?")
    sent = body(env)["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[0]["content"] == "Be kind."
    assert sent[1]["content"][0]["type"] == "image_url"  # the earlier image goes along
    assert sent[2]["content"] == first.rstrip("\n")
    out = capsys.readouterr().out
    assert "System: Be kind. Earlier messages: 2. Image 1: JPEG" in out
    assert out.endswith("Prompt: And its colour?\n")

    run(ip, "%reka reset")
    assert capsys.readouterr().out == "Forgot the conversation (4 messages).\n"
    run(ip, "%reka --chat Fresh start")
    assert [m["role"] for m in body(env)["messages"]] == ["user"]
    assert capsys.readouterr().out == answer("Fresh start") + "\n"


def test_a_failed_chat_call_leaves_the_conversation_unchanged(ip, env, capsys) -> None:
    chat = magics(ip).conversation
    env.queue(Fault.status(400))
    result = run(ip, '%reka --chat --system "Be rude." hi')
    assert type(result.error_in_exec) is BadRequestError
    assert chat.system is None
    assert chat.messages == []

    run(ip, '%reka --chat --system "Be kind." What is it?')
    assert chat.system == "Be kind."
    before = [dict(m) for m in chat.messages]
    assert [m["role"] for m in before] == ["user", "assistant"]
    env.queue(Fault.status(400))
    result = run(ip, '%reka --chat --system "Be rude." And now?')
    assert type(result.error_in_exec) is BadRequestError
    assert body(env)["messages"][0] == {"role": "system", "content": "Be rude."}  # it was sent
    assert chat.system == "Be kind."
    assert chat.messages == before

    run(ip, "%reka --chat And its colour?")
    sent = body(env)["messages"]
    assert sent[0] == {"role": "system", "content": "Be kind."}
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    capsys.readouterr()


# -- results ----------------------------------------------------------------------------------


def test_out_and_underscore_reka_and_no_second_copy(ip, env, capsys) -> None:
    result = run(ip, "%%reka -o ans\nHello")
    assert result.result is None
    expected = answer("Hello")
    assert capsys.readouterr().out == expected + "\n"  # printed once, while streaming
    assert isinstance(ip.user_ns["ans"], Description)
    assert ip.user_ns["ans"] is ip.user_ns["_reka"]
    assert ip.user_ns["_reka"].text == expected
    assert ip.user_ns["_reka"].prompt == "Hello"
    assert ip.user_ns["_reka"].request_id == env.requests[-1].request_id


def test_terminal_shell_streams_to_stdout(ip, env, monkeypatch) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.writes: list[str] = []

        def write(self, text: str) -> int:
            self.writes.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    recorder = Recorder()
    monkeypatch.setattr(sys, "stdout", recorder)
    env.token_delay = 0.005
    run(ip, "%reka one two three")
    expected = answer("one two three")
    assert "".join(recorder.writes) == expected + "\n"
    assert len(recorder.writes) == len(expected.split()) + 1  # a word at a time, then "\n"


def test_raw_uses_plain_text_in_a_notebook_display(ip, env, monkeypatch) -> None:
    published: list[dict] = []

    class Recording(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
            published.append(data)

    import ipykernel  # noqa: F401  (every kernel has it loaded; the notebook display checks)

    from reka_nb.notebook import display

    monkeypatch.setattr(display, "can_update_displays", lambda: True)
    monkeypatch.setattr(ip, "display_pub", Recording())
    run(ip, "%reka --raw Hi")
    final = published[-1]
    assert list(final) == ["text/plain"]
    assert final["text/plain"].startswith(answer("Hi") + "\n\nreka-flash · ")
    published.clear()
    run(ip, "%reka Hi")
    assert list(published[-1]) == ["text/plain", "text/markdown"]


# -- subcommands ------------------------------------------------------------------------------


def test_models_lists_the_server_models(ip, env, capsys) -> None:
    run(ip, "%reka models")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "model",
        "name",
        "inputs",
        "context",
        "max",
        "output",
        "$/1M",
        "in",
        "$/1M",
        "out",
    ]
    assert [line.split()[0] for line in lines[2:]] == list(DEFAULT_MODELS)
    (flash,) = [line for line in lines if line.startswith("reka-flash ")]
    assert flash.split() == [
        "reka-flash", "(default)", "Reka", "Flash", "text,", "image,", "video,", "audio",
        "128,000", "8,192", "$0.80", "$2.00",
    ]  # fmt: skip


def test_config_shows_settings_but_never_the_key(ip, env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REKA_MODEL", "reka-core")
    run(ip, "%reka config")
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"base URL: {env.base_url}",
        "model:    reka-core",
        "api:      openai",
        "API key:  set",
        "mode:     online",
        "display:  live",
    ]
    assert env.api_key not in out
    monkeypatch.delenv("REKA_API_KEY")
    monkeypatch.setenv("REKA_NB_DISPLAY", "final")
    run(ip, "%reka config")
    out = capsys.readouterr().out
    assert "API key:  not set (set REKA_API_KEY)" in out
    assert "display:  final" in out


def test_help_lists_options_and_subcommands(ip, env, capsys) -> None:
    run(ip, "%reka help")
    out = capsys.readouterr().out
    for option in ("--image", "--model", "--temperature", "--max-tokens", "--top-p", "--seed"):
        assert option in out
    for option in ("--stop", "--no-stream", "--out", "--raw", "--chat", "--system"):
        assert option in out
    assert "%reka reset     forget the --chat conversation" in out
    assert env.requests == []


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("%reka -t abc hi", "argument -t/--temperature: invalid float value: 'abc'"),
        ("%reka --bogus hi", "unrecognized arguments: --bogus"),
        ("%reka --max hi", "unrecognized arguments: --max (did you mean --max-tokens?)"),
        ("%reka -t 5 hi", "temperature must be a number in [0.0, 2.0], not 5.0"),
        ("%reka --max-tokens 0 hi", "max_tokens must be a positive whole number, not 0"),
        ("%reka -o 1x hi", "-o/--out needs a variable name, not '1x'"),
        ("%reka -i nothere hi", "-i nothere: there is no variable and no file of that name"),
        ("%reka --system 'unclosed hi", 'unbalanced quote in the options: "\'unclosed hi"'),
        ("%reka", "nothing to ask: give a prompt or an image (-i); see %reka help"),
        (
            "%%reka --raw extra\nbody",
            "%%reka takes options on its first line and the prompt "
            "from the cell body; unexpected 'extra'",
        ),
    ],
)
def test_bad_options_are_one_line_usage_errors(ip, env, capsys, code: str, message: str) -> None:
    result = run(ip, code)
    assert type(result.error_in_exec) is UsageError
    assert str(result.error_in_exec) == message
    assert capsys.readouterr().err == f"UsageError: {message}\n"
    assert env.requests == []


def test_api_error_is_one_line_with_status_and_request_id(ip, env, capsys) -> None:
    env.queue(Fault.status(400))
    result = run(ip, "%reka hi")
    assert type(result.error_in_exec) is BadRequestError
    rid = env.requests[-1].request_id
    captured = capsys.readouterr()
    out = captured.out + captured.err
    assert out.strip().splitlines() == [f"BadRequestError: {result.error_in_exec}"]
    assert f"(HTTP 400, request id {rid})" in out
    assert "Traceback" not in out


def test_wrong_key_is_one_line(ip, env, capsys, monkeypatch) -> None:
    monkeypatch.setenv("REKA_API_KEY", "wrong-key-123")
    result = run(ip, "%reka hi")
    assert type(result.error_in_exec) is AuthenticationError
    captured = capsys.readouterr()
    lines = (captured.out + captured.err).strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("AuthenticationError: ")
    assert "(HTTP 401, request id req_" in lines[0]
    assert "wrong-key-123" not in lines[0]


def test_missing_key_and_bad_image_are_one_line(ip, env, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("REKA_API_KEY")
    result = run(ip, "%reka hi")
    assert type(result.error_in_exec) is MissingAPIKeyError
    captured = capsys.readouterr()
    assert (captured.out + captured.err).strip() == f"MissingAPIKeyError: {result.error_in_exec}"
    monkeypatch.setenv("REKA_API_KEY", env.api_key)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    result = run(ip, f"%reka -i {bad} hi")
    assert type(result.error_in_exec) is ImageError
    captured = capsys.readouterr()
    assert (captured.out + captured.err).strip() == f"ImageError: {result.error_in_exec}"
    assert env.requests == []


def test_stream_broken_mid_answer_keeps_partial_and_fails(ip, env, capsys) -> None:
    env.queue(Fault.break_after(4))  # four words, then the connection drops
    ip.user_ns["_reka"] = "earlier"
    result = run(ip, "%reka hi")
    assert type(result.error_in_exec) is StreamInterrupted
    captured = capsys.readouterr()
    partial = " ".join(TEXT_INTRO.split()[:4]) + " "
    assert captured.out.startswith(partial + " […]\n")
    assert captured.out.endswith(f"StreamInterrupted: {result.error_in_exec}\n")
    assert result.error_in_exec.partial_text == partial
    assert ip.user_ns["_reka"] == "earlier"  # a failed answer does not replace the last one
