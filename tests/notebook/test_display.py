"""The notebook display: bundles and throttling in-process, the message protocol in a real kernel.

Kernel tests start ipykernel through jupyter_client (what nbclient and nbval use) and record
every iopub message of a cell; the kernel talks to the session's offline server over loopback.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from PIL import Image
from traitlets.config import Config

from reka_nb import ConfigurationError, Description, StreamInterrupted, Usage, prepare_images
from reka_nb.answer import StdoutPresenter
from reka_nb.auto import default_presenter
from reka_nb.notebook.display import (
    NotebookPresenter,
    bundle_size,
    can_update_displays,
    failed_bundle,
    final_bundle,
    images_bundle,
    streaming_bundle,
    waiting_bundle,
)
from reka_nb.offline._answer import split_tokens
from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "docs" / "images" / "cat.jpeg"
INTRO = "This is reka_nb's offline server: no model ran, so nothing here is a real answer."
FOOTER = re.compile(r"reka-flash · (\d+) tokens in, (\d+) out · \d+\.\d s")
CAT_ANSWER = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images. Model: reka-flash. Image 1: JPEG, 451×300 px, 35,042 bytes. Prompt: What is it?"
)
CAT_TOKENS = len(split_tokens(CAT_ANSWER))  # and 3 + 64 tokens in: three words and an image
REPLY = (
    "# A cat\n\n"
    + " ".join(f"word{i}" for i in range(1, 200))
    + "\n\n```python\nprint('meow')\n```\n"
)


# -- bundles ----------------------------------------------------------------------------------


def description(text: str = "**Hi** there", elapsed: float = 1.25) -> Description:
    return Description(
        text,
        model="reka-flash",
        usage=Usage(input_tokens=65, output_tokens=3),
        finish_reason="stop",
        request_id="req_1",
        elapsed=elapsed,
    )


def test_waiting_bundle_shows_model_and_images_bundle_small_thumbnails() -> None:
    assert waiting_bundle("reka-core", []) == {
        "text/plain": "Asking reka-core…",
        "text/markdown": "*Asking **reka-core**…*",
    }
    big = Image.new("RGB", (1000, 600), "green")
    images = prepare_images([str(CAT), big, "https://example.com/x.png"])
    assert waiting_bundle("reka-flash", images) == {
        "text/plain": "Asking reka-flash about 3 images…",
        "text/markdown": "*Asking **reka-flash** about 3 images…*",
    }
    bundle = images_bundle(images)
    assert bundle["text/plain"] == "[image 1: cat.jpeg] [image 2: PIL image] [image 3: URL]"
    sources = re.findall(r'src="([^"]+)"', bundle["text/html"])
    assert sources[2] == "https://example.com/x.png"
    for src in sources[:2]:
        assert src.startswith("data:image/jpeg;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as thumb:
            assert max(thumb.size) == 256
    assert len(bundle["text/html"]) < 40_000  # the saved notebook stays small
    # named by alt text and caption; aligned at the top, so none is stretched to the tallest
    assert re.findall(r'alt="([^"]*)"', bundle["text/html"]) == ["cat.jpeg", "PIL image", "x.png"]
    assert re.findall(r"<figcaption[^>]*>([^<]*)</figcaption>", bundle["text/html"]) == [
        "1. cat.jpeg",
        "2. PIL image",
        "3. x.png",
    ]
    assert "align-items:flex-start" in bundle["text/html"].split(">", 1)[0]


def test_streaming_bundle_has_a_cursor_and_closes_an_open_fence() -> None:
    assert streaming_bundle("Some *text*") == {
        "text/plain": "Some *text*▍",
        "text/markdown": "Some *text*▍",
    }
    assert streaming_bundle("Code:\n```python\nx = 1") == {
        "text/plain": "Code:\n```python\nx = 1▍",
        "text/markdown": "Code:\n```python\nx = 1▍\n```",
    }
    assert streaming_bundle("raw *text*", raw=True) == {"text/plain": "raw *text*▍"}


def test_final_bundle_is_markdown_with_a_footer() -> None:
    assert final_bundle(description()) == {
        "text/plain": "**Hi** there\n\nreka-flash · 65 tokens in, 3 out · 1.2 s",
        "text/markdown": "**Hi** there\n\n---\n\n*reka-flash · 65 tokens in, 3 out · 1.2 s*",
    }
    assert final_bundle(description(), raw=True) == {
        "text/plain": "**Hi** there\n\nreka-flash · 65 tokens in, 3 out · 1.2 s"
    }
    assert final_bundle(description(), timing=False)["text/markdown"] == (
        "**Hi** there\n\n---\n\n*reka-flash · 65 tokens in, 3 out*"
    )


def test_failed_bundle_keeps_the_text_and_marks_the_stop() -> None:
    error = StreamInterrupted("the connection closed", partial_text="Half an", request_id="r9")
    # the message is the cell's error, shown right below: not repeated here
    assert failed_bundle("Half an", error) == {
        "text/plain": "Half an\n\n— stopped: StreamInterrupted",
        "text/markdown": "Half an\n\n**— stopped: StreamInterrupted**",
    }
    assert failed_bundle("Half an", KeyboardInterrupt()) == {
        "text/plain": "Half an\n\n— interrupted",
        "text/markdown": "Half an\n\n**— interrupted**",
    }
    assert failed_bundle("", KeyboardInterrupt(), raw=True) == {"text/plain": "— interrupted"}


# -- the presenter in-process: a recording display publisher and a hand-driven clock ----------


class Recorder(DisplayPublisher):
    """Records what IPython.display would send: (message type, data, display id)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict, str | None]] = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kw):
        kind = "update_display_data" if update else "display_data"
        self.sent.append((kind, data, (transient or {}).get("display_id")))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    recording = Recorder()
    monkeypatch.setattr(shell, "display_pub", recording)
    return recording


def test_first_token_at_once_then_at_most_rate_a_second(recorder: Recorder) -> None:
    clock = Clock()
    presenter = NotebookPresenter(rate=8, clock=clock, mode="live")
    presenter.start(model="reka-flash", prompt="p", images=[])
    text = ""
    shown_at: list[float] = [0.0]  # the waiting state
    for step in range(128):  # a token every 1/64 s for two seconds (exact binary fractions)
        clock.now = step / 64
        text += f"w{step} "
        before = len(recorder.sent)
        presenter.update(f"w{step} ", text)
        if len(recorder.sent) > before:
            shown_at.append(clock.now)
    # the first token at once, then every 1/8 s while the last second has room for one more
    # message and the final answer: 8 a second at most, whatever counts
    assert shown_at == [0, 0] + [k / 8 for k in range(1, 6)] + [1 + k / 8 for k in range(7)]
    assert presenter.pending
    presenter.finish(description(text))
    shown_at.append(clock.now)
    for start in shown_at:
        assert sum(1 for t in shown_at if start <= t < start + 1) <= 8
    kinds = [kind for kind, _, _ in recorder.sent]
    assert kinds == ["display_data"] + ["update_display_data"] * (len(shown_at) - 1)
    assert len({display_id for _, _, display_id in recorder.sent}) == 1
    assert recorder.sent[1][1]["text/plain"] == "w0 ▍"
    assert recorder.sent[-1][1] == final_bundle(description(text))
    assert presenter.messages == len(shown_at) == 15
    assert presenter.bytes == sum(bundle_size(data) for _, data, _ in recorder.sent)


def test_long_text_updates_less_often_to_keep_within_the_byte_budget(recorder: Recorder) -> None:
    clock = Clock()
    presenter = NotebookPresenter(rate=10, clock=clock, max_bytes_per_second=20_000, mode="live")
    presenter.start(model="reka-flash", prompt="p", images=[])
    word = "x" * 999 + " "  # each update of n words sends about 2 * n kB
    for step in range(200):
        clock.now = step * 0.01
        presenter.update(word, word * (step + 1))
    updates = recorder.sent[1:]
    sizes = [bundle_size(data) for _, data, _ in updates]
    assert len(updates) < 10  # 10 a second would be 20
    assert sum(sizes[:-1]) <= 20_000 * 2.0  # what went out within the two seconds
    assert sum(sizes) < 0.2 * sum(bundle_size(streaming_bundle(word * n)) for n in range(1, 201))


def test_live_mode_sends_the_thumbnails_once_above_the_answer(recorder: Recorder) -> None:
    presenter = NotebookPresenter(mode="live")
    images = prepare_images(str(CAT))
    presenter.start(model="reka-flash", prompt="p", images=images)
    presenter.update("Hi ", "Hi ")
    presenter.finish(description("Hi"))
    display_id = recorder.sent[1][2]
    assert display_id is not None
    assert recorder.sent == [
        ("display_data", images_bundle(images), None),
        ("display_data", waiting_bundle("reka-flash", images), display_id),
        ("update_display_data", streaming_bundle("Hi "), display_id),
        ("update_display_data", final_bundle(description("Hi")), display_id),
    ]


def test_final_mode_streams_into_the_thumbnails_and_adds_the_answer(recorder: Recorder) -> None:
    presenter = NotebookPresenter(mode="final")
    images = prepare_images(str(CAT))
    presenter.start(model="reka-flash", prompt="p", images=images)
    presenter.update("Hi ", "Hi ")
    presenter.finish(description("Hi"))
    strip = images_bundle(images)
    display_id = recorder.sent[0][2]
    assert recorder.sent == [
        ("display_data", strip, display_id),
        ("update_display_data", streaming_bundle("Hi "), display_id),
        ("update_display_data", strip, display_id),
        ("display_data", final_bundle(description("Hi")), None),  # seconds included
    ]
    assert "1.2 s" in recorder.sent[-1][1]["text/plain"]


def test_final_mode_without_images_publishes_only_the_answer(recorder: Recorder) -> None:
    presenter = NotebookPresenter(mode="final")
    presenter.start(model="reka-flash", prompt="p", images=[])
    presenter.update("Hi ", "Hi ")
    presenter.finish(description("Hi"))
    assert recorder.sent == [("display_data", final_bundle(description("Hi")), None)]


def test_display_mode_comes_from_the_environment(recorder, monkeypatch) -> None:
    assert NotebookPresenter().mode == "live"
    monkeypatch.setenv("REKA_NB_DISPLAY", "Final")
    assert NotebookPresenter().mode == "final"
    monkeypatch.setenv("REKA_NB_DISPLAY", "sometimes")
    with pytest.raises(ConfigurationError, match="REKA_NB_DISPLAY must be 'live' or 'final'"):
        NotebookPresenter()


def test_default_presenter_passes_raw_to_the_notebook_display(monkeypatch) -> None:
    import ipykernel  # noqa: F401  (every kernel has it loaded; default_presenter checks)

    from reka_nb.notebook import display

    monkeypatch.setattr(display, "can_update_displays", lambda: True)
    raw = default_presenter(raw=True)
    assert type(raw) is NotebookPresenter
    assert raw.raw is True
    assert default_presenter().raw is False
    monkeypatch.setattr(display, "can_update_displays", lambda: False)
    assert type(default_presenter(raw=True)) is StdoutPresenter


def test_no_display_updates_outside_a_kernel(recorder: Recorder) -> None:
    assert can_update_displays() is False  # an IPython shell, but no kernel and frontend
    code = (
        "import reka_nb.notebook.display as d, sys; "
        "print(d.can_update_displays(), 'IPython' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False False\n"


# -- a real kernel ------------------------------------------------------------------------------


@dataclass
class Execution:
    messages: list[dict]  # every iopub message of the cell, in order, status and input excluded
    reply: dict

    def of(self, *kinds: str) -> list[dict]:
        return [m for m in self.messages if m["msg_type"] in kinds]

    @property
    def displays(self) -> list[dict]:
        return self.of("display_data", "update_display_data")


class Kernel:
    def __init__(self, env: dict[str, str]) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(ROOT))
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(self, code: str, on_message: Callable[[dict], None] | None = None) -> Execution:
        msg_id = self.kc.execute(code)
        messages = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    break
                continue
            if msg["msg_type"] != "execute_input":
                messages.append(msg)
                if on_message is not None:
                    on_message(msg)
        reply = self.kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            # a late kernel_info reply: wait_for_ready asks again when a busy machine is slow
            assert reply["msg_type"] == "kernel_info_reply", reply["msg_type"]
            reply = self.kc.get_shell_msg(timeout=120)
        return Execution(messages, reply["content"])

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def kernel_env(server: OfflineServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(REKA_BASE_URL=server.base_url, REKA_API_KEY=server.api_key, **extra)
    env.setdefault("REKA_NB_MODEL_INFO", "off")  # each question makes exactly one request
    return env


@pytest.fixture(scope="module")
def kernel(offline_server: OfflineServer) -> Iterator[Kernel]:
    k = Kernel(kernel_env(offline_server))
    assert k.run("%load_ext reka_nb").reply["status"] == "ok"
    yield k
    k.stop()


def sent_at(msg: dict) -> datetime:
    return msg["header"]["date"]


def test_stream_is_one_display_updated_in_place_within_budget(kernel, server) -> None:
    server.reply = REPLY
    server.token_delay = 0.01
    run = kernel.run(f"%%reka -i {CAT}\nDescribe it.")
    assert run.reply["status"] == "ok"
    assert run.of("execute_result", "error", "stream", "clear_output") == []
    # the thumbnails: an output of their own, sent once, above the answer's output
    strip, *answer = run.messages
    assert strip["msg_type"] == "display_data"
    assert "display_id" not in strip["content"].get("transient", {})
    src = re.search(r'src="data:image/jpeg;base64,([^"]+)"', strip["content"]["data"]["text/html"])
    with Image.open(io.BytesIO(base64.b64decode(src.group(1)))) as thumb:
        assert thumb.size == (256, 170)
    kinds = [m["msg_type"] for m in answer]
    assert kinds == ["display_data"] + ["update_display_data"] * (len(kinds) - 1)
    assert len({m["content"]["transient"]["display_id"] for m in answer}) == 1
    assert all("base64" not in json.dumps(m["content"]) for m in answer)

    waiting = answer[0]["content"]["data"]
    assert waiting == {
        "text/plain": "Asking reka-flash about 1 image…",
        "text/markdown": "*Asking **reka-flash** about 1 image…*",
    }
    assert answer[1]["content"]["data"]["text/plain"] == "# ▍"  # the first token, at once

    tokens = split_tokens(REPLY)
    final = run.messages[-1]["content"]["data"]
    body, footer = final["text/markdown"].rsplit("\n\n---\n\n", 1)
    assert body == REPLY
    assert FOOTER.fullmatch(footer.strip("*")).groups() == ("66", str(len(tokens)))
    assert final["text/plain"].startswith(REPLY + "\n\nreka-flash · 66 tokens in")

    updates = run.messages[1:-1]
    seconds = (sent_at(updates[-1]) - sent_at(updates[0])).total_seconds()
    assert seconds > 1.5  # the answer took its time: ~200 tokens, 10 ms apart
    assert len(updates) <= 10 * seconds + 2
    # never more than 10 in any second; the window is 20 ms short because the kernel stamps a
    # message a little after the presenter read its clock (the exact rule is tested above)
    for first in run.messages:
        window = [
            m
            for m in run.messages
            if timedelta(0) <= sent_at(m) - sent_at(first) < timedelta(seconds=0.98)
        ]
        assert len(window) <= 10
    ours = sum(len(json.dumps(m["content"])) for m in run.messages)
    every_token = sum(
        len(json.dumps({"data": streaming_bundle("".join(tokens[:n]))}))
        for n in range(1, len(tokens))
    )
    assert ours < every_token / 5


def test_text_held_back_is_shown_during_a_pause(kernel, server) -> None:
    words = [f"w{i} " for i in range(1, 41)]
    server.reply = "".join(words).strip()
    server.token_delay = 0.002  # 30 words in ~60 ms: most are held back by the coalescing
    server.queue(Fault.stall(30, 2.0))
    run = kernel.run("%reka Go")
    assert run.reply["status"] == "ok"
    before_pause = "".join(words[:30])
    shown = [
        (sent_at(m), m["content"]["data"]["text/plain"]) for m in run.of("update_display_data")
    ]
    at, _ = next((t, text) for t, text in shown if text == before_pause + "▍")
    after = [t for t, text in shown if len(text) > len(before_pause) + 1]
    assert after, shown
    # every word that came before the pause was on screen well before the answer went on
    assert (after[0] - at).total_seconds() > 1.5


def test_error_mid_stream_keeps_partial_text_and_fails_the_cell(kernel, server) -> None:
    server.queue(Fault.break_after(5))
    server.token_delay = 0.01
    run = kernel.run("%reka Hello")
    assert run.reply["status"] == "error"
    assert run.reply["ename"] == "StreamInterrupted"
    partial = " ".join(INTRO.split()[:5]) + " "
    rid = server.requests[-1].request_id
    last = run.displays[-1]["content"]["data"]
    assert last == {  # the error's words are said once: in the cell's error below
        "text/plain": f"{partial}\n\n— stopped: StreamInterrupted",
        "text/markdown": f"{partial}\n\n**— stopped: StreamInterrupted**",
    }
    (error,) = run.of("error")
    assert error["content"]["evalue"] == (
        f"The answer stopped after {len(partial)} characters: the connection closed before the "
        f"answer was complete (request id {rid})"
    )
    assert error["content"]["traceback"] == [f"StreamInterrupted: {error['content']['evalue']}"]


def test_api_error_fails_the_cell_with_one_line(kernel, server) -> None:
    server.queue(Fault.status(400))
    run = kernel.run("%reka Hello")
    rid = server.requests[-1].request_id
    assert run.reply["status"] == "error"
    (error,) = run.of("error")
    assert error["content"]["ename"] == "BadRequestError"
    (line,) = error["content"]["traceback"]
    assert line.startswith("BadRequestError: ")
    assert line.endswith(f"(HTTP 400, request id {rid})")
    assert run.displays[-1]["content"]["data"]["text/plain"] == "— stopped: BadRequestError"


def test_interrupt_keeps_partial_text_and_the_kernel_usable(kernel, server) -> None:
    server.token_delay = 0.2  # about 5 s for the whole answer
    interrupted: list[float] = []

    def stop_at_first_token(msg: dict) -> None:
        if msg["msg_type"] == "update_display_data" and not interrupted:
            interrupted.append(time.monotonic())
            kernel.km.interrupt_kernel()

    run = kernel.run("%reka Tell me a long story", stop_at_first_token)
    stopped_after = time.monotonic() - interrupted[0]
    assert stopped_after < 1.5  # the connection closed at once, not at the end of the answer
    assert run.reply["status"] == "error"
    assert run.reply["ename"] == "KeyboardInterrupt"
    text = run.displays[-1]["content"]["data"]["text/plain"]
    partial, mark = text.rsplit("\n\n", 1)
    assert mark == "— interrupted"
    assert partial and INTRO.startswith(partial)
    (error,) = run.of("error")
    assert error["content"]["traceback"] == [
        "KeyboardInterrupt: interrupted; the text that arrived is kept above"
    ]
    server.token_delay = 0
    again = kernel.run("%reka Again")
    assert again.reply["status"] == "ok"
    assert again.displays[-1]["content"]["data"]["text/plain"].startswith(INTRO)


def test_describe_uses_the_notebook_display(kernel, server) -> None:
    run = kernel.run(f"import reka_nb\nd = reka_nb.describe(r'{CAT}', 'What is it?')")
    assert run.reply["status"] == "ok"
    kinds = [m["msg_type"] for m in run.messages]
    assert kinds[:2] == ["display_data", "display_data"]  # the thumbnails, the answer
    assert set(kinds[2:]) == {"update_display_data"}
    assert run.displays[-1]["content"]["data"]["text/markdown"].startswith(
        f"{CAT_ANSWER}\n\n---\n\n*reka-flash · 67 tokens in, {CAT_TOKENS} out · "
    )


def test_no_stream_shows_waiting_then_the_answer(kernel, server) -> None:
    run = kernel.run("%reka --no-stream --raw Hi")
    kinds = [m["msg_type"] for m in run.messages]
    assert kinds == ["display_data", "update_display_data"]
    assert list(run.messages[1]["content"]["data"]) == ["text/plain"]
    assert server.requests[-1].body["stream"] is False


# -- nbclient and nbval -----------------------------------------------------------------------


class RecordingClient(NotebookClient):
    """nbclient, keeping every message it processes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[int, str]] = []

    def process_message(self, msg: dict, cell: Any, cell_index: int) -> Any:
        self.seen.append((cell_index, msg["msg_type"]))
        return super().process_message(msg, cell, cell_index)


def notebook(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def execute(nb: nbformat.NotebookNode, **kwargs: Any) -> RecordingClient:
    client = RecordingClient(nb, timeout=120, kernel_name="python3", **kwargs)
    client.execute(cwd=str(ROOT))
    return client


DEMO = (
    "%load_ext reka_nb",
    f"%%reka -i {CAT}\n# NBVAL_CHECK_OUTPUT\nWhat is it?",
    "%reka --no-stream Hello",
)


def test_nbclient_saves_one_output_per_answer_and_sees_failures(env) -> None:
    env.token_delay = 0.005
    nb = notebook(*DEMO, "%reka --bogus Hello", "%reka Hello")
    client = RecordingClient(nb, timeout=120, kernel_name="python3")
    failures = {}
    with client.setup_kernel(cwd=str(ROOT)):
        for index, cell in enumerate(nb.cells):
            if index == 4:
                env.queue(Fault.status(400))
            try:
                client.execute_cell(cell, index)
            except CellExecutionError as exc:
                failures[index] = exc.ename
    assert failures == {3: "UsageError", 4: "BadRequestError"}
    assert [kind for i, kind in client.seen if i == 1].count("display_data") == 2  # images, answer
    assert [kind for i, kind in client.seen if i == 1].count("update_display_data") >= 3
    for cell in nb.cells[1:3]:
        output = cell.outputs[-1]
        assert output.output_type == "display_data"
        assert FOOTER.search(output.data["text/markdown"])
    assert [len(cell.outputs) for cell in nb.cells[1:3]] == [2, 1]  # thumbnails, answer
    assert nb.cells[1].outputs[1].data["text/markdown"].startswith(f"{CAT_ANSWER}\n\n---\n\n")
    assert [o.output_type for o in nb.cells[3].outputs] == ["stream"]  # one line on stderr
    assert nb.cells[3].outputs[0].text == "UsageError: unrecognized arguments: --bogus\n"
    assert [o.output_type for o in nb.cells[4].outputs] == ["display_data", "error"]


def run_nbval(path: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "--nbval", path.name, "-q", "-p", "no:cacheprovider"]
    command += ["--nbval-sanitize-with", str(ROOT / "notebooks" / "sanitize.cfg")]
    return subprocess.run(command, cwd=path.parent, capture_output=True, text=True, timeout=300)


def test_final_mode_notebook_passes_nbval_and_live_mode_does_not(
    env, monkeypatch, tmp_path
) -> None:
    env.token_delay = 0.002
    monkeypatch.setenv("REKA_NB_DISPLAY", "final")
    nb = notebook(*DEMO)
    execute(nb)
    assert [len(cell.outputs) for cell in nb.cells] == [0, 2, 1]
    strip, answer = nb.cells[1].outputs  # as a live run leaves them: no waiting state
    assert strip.data["text/plain"] == "[image 1: cat.jpeg]"
    assert re.fullmatch(
        re.escape(f"{CAT_ANSWER}\n\n---\n\n*reka-flash · 67 tokens in, {CAT_TOKENS} out · ")
        + r"\d+\.\d s\*",
        answer.data["text/markdown"],
    )
    path = tmp_path / "final.ipynb"
    nbformat.write(nb, path)
    result = run_nbval(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout

    monkeypatch.setenv("REKA_NB_DISPLAY", "live")
    nb = notebook(*DEMO)
    execute(nb)
    path = tmp_path / "live.ipynb"
    nbformat.write(nb, path)
    result = run_nbval(path)
    assert result.returncode == 1
    assert "Cell outputs differ" in result.stdout


def test_progress_ends_without_rows_unless_the_run_stopped_on_an_error() -> None:
    """While a run goes on, the latest rows; at its end the Results table holds them, so the
    progress keeps only its bar and counts; a stopped run (no table follows) keeps its rows,
    in input order."""
    from reka_nb.batch.progress import ProgressStats
    from reka_nb.batch.results import Result
    from reka_nb.notebook.progress import progress_bundle

    stats = ProgressStats(3)
    rows = [Result(2, None, "c.png", error=ValueError("bad")), Result(0, None, "a.png")]
    for row in rows:
        stats.add(row)
    live = progress_bundle(stats, rows)["text/html"]
    assert live.index("c.png") < live.index("a.png")  # as they finished
    assert "<table" not in progress_bundle(stats, rows, finished=True)["text/html"]
    stopped = progress_bundle(stats, rows, error=KeyboardInterrupt(), finished=True)
    assert stopped["text/html"].index("a.png") < stopped["text/html"].index("c.png")
    assert stopped["text/plain"].endswith(
        " · 1 error · 0 tokens in, 0 out · interrupted after 2 of 3; finished answers in"
        " reka_nb.last_results"
    )
