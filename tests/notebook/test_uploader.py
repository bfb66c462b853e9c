"""The upload panel, driven from Python the way a browser drives it, against the offline server.

Files arrive through ``FileUpload.set_state`` (what the frontend sends), buttons are pressed
with ``click()``, and ``Uploader.wait`` waits for the background work.
"""

from __future__ import annotations

import html
import io
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest
from PIL import Image

from reka_nb import RekaClient, Uploader, uploader
from reka_nb.images import prepare_image
from reka_nb.notebook.uploader import MAX_UPLOAD_BYTES
from reka_nb.notebook.uploader_job import (
    Chosen,
    Job,
    answer_output,
    format_size,
    progress_text,
)
from reka_nb.testing import DEFAULT_MODELS, TEST_API_KEY, Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
CAT_BYTES = CAT.read_bytes()
CAT_LINE = "Image 1: JPEG, 451×300 px, 35,042 bytes."
INTRO = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images. Model: reka-flash."
)
PROMPT = "Prompt: What can you see in the image?"


def png_bytes(size: tuple[int, int] = (300, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


RED = png_bytes()
RED_LINE = f"PNG, 300×200 px, {len(RED):,} bytes."

File = tuple[str, bytes, str]
CAT_FILE: File = ("cat.jpeg", CAT_BYTES, "image/jpeg")
RED_FILE: File = ("red.png", RED, "image/png")


@pytest.fixture
def make(server: OfflineServer) -> Iterator[Callable[..., Uploader]]:
    """Make panels on the offline server (fast retries); wait for the model list; close after."""
    panels: list[Uploader] = []

    def make(**kw: Any) -> Uploader:
        kw.setdefault(
            "client", RekaClient(base_url=server.base_url, api_key=server.api_key, backoff=0.01)
        )
        panel = Uploader(**kw)
        panels.append(panel)
        assert panel.wait(10)
        return panel

    yield make
    for panel in panels:
        panel.close()


@pytest.fixture
def our_connections(server: OfflineServer) -> Callable[[], set[Any]]:
    """The connections the server holds open that this test made (not, say, a stalled one)."""
    earlier = set(server._connections)
    return lambda: set(server._connections) - earlier


def choose(panel: Uploader, *files: File) -> None:
    """What the browser sends when files are picked."""
    value = [
        {"name": n, "type": t, "size": len(d), "content": memoryview(d), "last_modified": 0}
        for n, d, t in files
    ]
    panel.upload.set_state({"value": value})


def shown(panel: Uploader) -> tuple[str, str]:
    """(Markdown, plain text) of the answer area."""
    (output,) = panel.answer.outputs
    assert output["output_type"] == "display_data"
    return output["data"]["text/markdown"], output["data"]["text/plain"]


def error_text(panel: Uploader) -> str:
    """The error area's text, without its markup."""
    text = re.sub(r"<br>", "\n", panel.error.value)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def describe(panel: Uploader) -> None:
    panel.describe_button.click()
    assert panel.wait(10)


def chat_requests(server: OfflineServer) -> list[Any]:
    return [r for r in server.requests if r.path == "/v1/chat/completions"]


def image_count(request: Any) -> int:
    parts = request.body["messages"][-1]["content"]
    return sum(1 for p in parts if p["type"] == "image_url")


# -- choosing images ------------------------------------------------------------------------


def test_choosing_an_image_shows_a_thumbnail_and_clears_the_picker(make) -> None:
    panel = make()
    assert panel.describe_button.disabled
    choose(panel, CAT_FILE)
    assert panel.upload.value == ()
    assert panel.upload.get_state()["value"] == []
    assert panel.names == ["cat.jpeg"]
    assert panel.images[0].format == "JPEG"
    (box,) = panel.thumbnails.children
    image, label = box.children
    assert isinstance(image, widgets.Image)
    assert image.format == "jpeg"
    assert Image.open(io.BytesIO(image.value)).size == (256, 170)
    assert label.value == "cat.jpeg"
    assert not panel.describe_button.disabled
    assert panel.error.value == ""


def test_a_new_choice_replaces_the_previous_one(make) -> None:
    panel = make()
    choose(panel, CAT_FILE, RED_FILE)
    old = panel.thumbnails.children
    choose(panel, RED_FILE)
    assert panel.names == ["red.png"]
    assert len(panel.thumbnails.children) == 1
    assert all(box.comm is None for box in old)  # the old thumbnails' widgets are closed


def test_an_oversized_file_is_refused_naming_file_and_limit(make) -> None:
    panel = make(max_bytes=20_000)
    choose(panel, CAT_FILE)
    assert error_text(panel) == (
        "cat.jpeg is 34.2 KB, larger than this panel's limit of 19.5 KB per image, so it was "
        "not used. Choose a smaller file, or make the panel with uploader(max_bytes=...)."
    )
    assert panel.names == []
    assert panel.thumbnails.children == ()
    assert panel.describe_button.disabled
    assert panel.upload.value == ()


def test_the_default_limit_is_20_mb_and_said_in_the_panel(make) -> None:
    panel = make()
    assert panel.max_bytes == MAX_UPLOAD_BYTES == 20 * 1024 * 1024
    assert re.sub(r"<[^>]+>", "", panel.limits.value) == (
        "Choose, drop or paste images of up to 20 MB each. Photos larger than 2048 pixels are "
        "made smaller in your browser before they are sent, unless you tick Keep originals."
    )
    big = b"\xff\xd8\xff" + bytes(21 * 1024 * 1024)
    choose(panel, ("big.jpg", big, "image/jpeg"))
    assert error_text(panel).startswith(
        "big.jpg is 21 MB, larger than this panel's limit of 20 MB per image"
    )
    assert panel.upload.value == ()


def test_a_non_image_is_refused_with_the_image_error(make) -> None:
    panel = make()
    choose(panel, ("notes.txt", b"just some text", "text/plain"), CAT_FILE)
    assert error_text(panel) == (
        "upload 'notes.txt' is not an image file (JPEG, PNG, GIF, WebP and other common "
        "formats can be used)"
    )
    assert panel.names == ["cat.jpeg"]  # the good file of the same choice is kept
    assert panel.upload.value == ()


def test_a_bad_max_bytes_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^max_bytes must be a number of bytes above 0, not 0$"):
        Uploader(max_bytes=0)


# -- asking ---------------------------------------------------------------------------------


def test_one_image(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    describe(panel)
    expected = f"{INTRO} {CAT_LINE} {PROMPT}"
    assert shown(panel) == (expected, expected)
    (result,) = panel.results
    assert result.text == expected
    assert result.model == "reka-flash"
    assert panel.status.value == result.footer()
    # the panel listed the models, so it knows reka-flash's example prices: 71 × $0.0000008
    # + 34 × $0.000002 = $0.0001248
    assert result.cost == Decimal("0.0001248")
    assert re.fullmatch(
        r"reka-flash · 71 tokens in, 34 out · \$0\.00012 · \d+\.\d s", panel.status.value
    )
    assert panel.error.value == ""
    assert not panel.describe_button.disabled
    assert panel.stop_button.disabled
    (request,) = chat_requests(server)
    assert image_count(request) == 1
    assert request.body["stream"] is True


def test_the_prompt_and_model_chosen_are_used(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    panel.prompt.value = "How many cats?"
    panel.model.value = "reka-core"
    describe(panel)
    expected = (
        "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
        f"the images. Model: reka-core. {CAT_LINE} Prompt: How many cats?"
    )
    assert panel.results[0].text == expected
    assert chat_requests(server)[0].body["model"] == "reka-core"


def test_several_images_together(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE, RED_FILE)
    assert panel.mode.value == "together"
    describe(panel)
    expected = f"{INTRO} {CAT_LINE} Image 2: {RED_LINE} {PROMPT}"
    assert shown(panel) == (expected, expected)
    assert [r.text for r in panel.results] == [expected]
    (request,) = chat_requests(server)
    assert image_count(request) == 2


def test_one_answer_per_image(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE, RED_FILE)
    panel.mode.value = "each"
    describe(panel)
    first = f"{INTRO} {CAT_LINE} {PROMPT}"
    second = f"{INTRO} Image 1: {RED_LINE} {PROMPT}"
    assert [r.text for r in panel.results] == [first, second]
    assert shown(panel) == (
        f"**1. cat.jpeg**\n\n{first}\n\n**2. red.png**\n\n{second}",
        f"1. cat.jpeg\n{first}\n\n2. red.png\n{second}",
    )
    assert [image_count(r) for r in chat_requests(server)] == [1, 1]
    tokens_in = sum(r.usage.input_tokens for r in panel.results)
    tokens_out = sum(r.usage.output_tokens for r in panel.results)
    assert re.fullmatch(
        rf"reka-flash · 2 answers · {tokens_in} tokens in, {tokens_out} out · \d+\.\d s",
        panel.status.value,
    )


def test_describe_without_images_says_what_to_do(make, server: OfflineServer) -> None:
    panel = make()
    panel.describe()
    assert error_text(panel) == "Choose one or more images first, with the button at the top."
    assert chat_requests(server) == []


def test_the_kernel_is_not_blocked_and_describe_is_disabled_meanwhile(
    make, server: OfflineServer
) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    server.token_delay = 0.02  # about 0.7 s for the whole answer
    started = time.monotonic()
    panel.describe_button.click()
    assert time.monotonic() - started < 0.2
    assert panel.running
    assert panel.describe_button.disabled
    assert not panel.stop_button.disabled
    panel.describe_button.click()  # ignored while an answer runs
    assert panel.wait(10)
    assert len(chat_requests(server)) == 1
    assert len(panel.results) == 1
    assert not panel.describe_button.disabled


def test_updates_are_coalesced(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    server.reply = " ".join(f"word{i}" for i in range(300))
    server.token_delay = 0.005  # 300 words in 1.5 s or more
    changes: list[Any] = []
    panel.answer.observe(changes.append, names="outputs")
    started = time.monotonic()
    describe(panel)
    elapsed = time.monotonic() - started
    assert elapsed > 1.4
    assert panel.results[0].text == server.reply
    assert 5 <= len(changes) <= 10 * elapsed + 4  # 300 words, at most 10 updates a second
    assert shown(panel) == (server.reply, server.reply)


# -- stopping -------------------------------------------------------------------------------


def test_stop_mid_answer_closes_the_connection_and_keeps_the_text(
    make, server: OfflineServer, our_connections: Callable[[], set[Any]]
) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    server.reply = " ".join(f"word{i}" for i in range(200))
    server.token_delay = 0.05  # 10 s for the whole answer
    panel.describe_button.click()
    poll(lambda: "word2" in shown(panel)[1])
    started = time.monotonic()
    panel.stop_button.click()
    assert panel.wait(2)
    assert time.monotonic() - started < 1.0
    markdown, plain = shown(panel)
    assert plain.endswith("\n\n(stopped)")
    assert markdown.endswith("\n\n*(stopped)*")
    partial = plain.removesuffix("\n\n(stopped)")
    assert partial.startswith("word0 word1 word2")
    assert server.reply.startswith(partial)
    assert panel.results == []
    assert re.fullmatch(r"reka-flash · stopped after \d+\.\d s", panel.status.value)
    assert panel.error.value == ""
    assert not panel.describe_button.disabled
    assert panel.stop_button.disabled
    poll(lambda: not our_connections(), timeout=3)  # the server saw the connection close


def test_stop_while_no_word_arrives(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE, RED_FILE)
    panel.mode.value = "each"
    server.queue(Fault.ok(), Fault.stall(2, 20.0))  # the second image's answer stalls
    panel.describe_button.click()
    streaming = re.compile(r"\n\n2\. red\.png\n(This .*)▍$")
    poll(lambda: streaming.search(shown(panel)[1]) is not None)  # shown, though no word follows
    partial = streaming.search(shown(panel)[1]).group(1)
    assert INTRO.startswith(partial)
    started = time.monotonic()
    panel.stop()
    assert panel.wait(2)
    assert time.monotonic() - started < 1.0
    first = f"{INTRO} {CAT_LINE} {PROMPT}"
    assert shown(panel)[1] == f"1. cat.jpeg\n{first}\n\n2. red.png\n{partial}\n\n(stopped)"
    assert [r.text for r in panel.results] == [first]


def test_stop_before_the_first_byte(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE, RED_FILE)
    panel.mode.value = "each"
    server.queue(Fault.slow_first_byte(20.0))
    panel.describe_button.click()
    poll(lambda: len(chat_requests(server)) == 1)
    started = time.monotonic()
    panel.stop_button.click()
    assert panel.wait(2)
    assert time.monotonic() - started < 1.0
    assert shown(panel) == (
        "**1. cat.jpeg**\n\n*(stopped)*\n\n**2. red.png**\n\n*(not asked)*",
        "1. cat.jpeg\n(stopped)\n\n2. red.png\n(not asked)",
    )
    assert not panel.describe_button.disabled
    describe(panel)  # the panel works again afterwards
    assert len(panel.results) == 2


# -- errors ---------------------------------------------------------------------------------


def test_a_server_error_shows_one_message_with_status_and_request_id(
    make, server: OfflineServer
) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    server.queue(Fault.status(500), Fault.status(500), Fault.status(500))
    describe(panel)
    requests = chat_requests(server)
    assert [r.status for r in requests] == [500, 500, 500]
    assert error_text(panel) == (
        "ServerError: Server error: Internal Server Error "
        f"(HTTP 500, request id {requests[-1].request_id})"
    )
    assert shown(panel) == ("*(failed)*", "(failed)")
    assert re.fullmatch(r"reka-flash · failed after \d+\.\d s", panel.status.value)
    assert panel.results == []
    assert not panel.describe_button.disabled
    assert panel.stop_button.disabled


def test_a_wrong_key(make, server: OfflineServer) -> None:
    panel = make(client=RekaClient(base_url=server.base_url, api_key="wrong-key"))
    assert error_text(panel).startswith("Could not list the models, so only reka-flash is offered")
    choose(panel, CAT_FILE)
    describe(panel)
    request_id = chat_requests(server)[-1].request_id
    assert error_text(panel) == (
        "AuthenticationError: The API key is missing or wrong: check REKA_API_KEY (keys are "
        "made at platform.reka.ai). The server said: Missing or invalid API key "
        f"(HTTP 401, request id {request_id})"
    )


def test_a_broken_answer_keeps_the_partial_text(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    server.queue(Fault.break_after(4))  # four words, then the connection drops
    describe(panel)
    assert shown(panel) == (
        "This is reka_nb's offline \n\n*(failed)*",
        "This is reka_nb's offline \n\n(failed)",
    )
    assert re.fullmatch(r"reka-flash · failed after \d+\.\d s", panel.status.value)
    assert error_text(panel).startswith(
        "StreamInterrupted: The answer stopped after 26 characters: the connection closed before "
        "the answer was complete"
    )


def test_no_key_means_a_clear_message_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    panel = uploader()
    try:
        assert panel.wait(10)
        assert "MissingAPIKeyError: No Reka API key" in error_text(panel)
        assert panel.model.options == ("reka-flash",)
        choose(panel, CAT_FILE)
        panel.describe()
        assert panel.wait(10)
        assert error_text(panel).startswith("MissingAPIKeyError: No Reka API key")
        assert not panel.describe_button.disabled
    finally:
        panel.close()


# -- models -----------------------------------------------------------------------------------


def test_the_models_come_from_the_server(make) -> None:
    panel = make()
    assert panel.model.options == DEFAULT_MODELS
    assert panel.model.value == "reka-flash"
    assert panel.error.value == ""


def test_a_model_not_listed_is_still_offered_first(make) -> None:
    panel = make(model="my-own-model")
    assert panel.model.options == ("my-own-model", *DEFAULT_MODELS)
    assert panel.model.value == "my-own-model"


def test_the_configured_model_when_listing_fails(make, server: OfflineServer) -> None:
    server.queue(Fault.status(500), Fault.status(500), Fault.status(500))
    panel = make()
    assert panel.model.options == ("reka-flash",)
    request_id = server.requests[-1].request_id
    assert error_text(panel) == (
        "Could not list the models, so only reka-flash is offered: ServerError: Server error: "
        f"Internal Server Error (HTTP 500, request id {request_id})"
    )
    choose(panel, CAT_FILE)
    describe(panel)
    assert panel.results[0].model == "reka-flash"
    assert panel.error.value == ""


def test_the_environment_settings_by_default(env: OfflineServer) -> None:
    env.token_delay = 0.0
    panel = uploader(max_tokens=5)
    try:
        assert panel.wait(10)
        assert panel.model.options == DEFAULT_MODELS
        choose(panel, CAT_FILE)
        describe(panel)
        assert panel.results[0].text == "This is reka_nb's offline server: "
        assert panel.results[0].finish_reason == "length"
        assert env.requests[-1].body["max_tokens"] == 5
    finally:
        panel.close()


# -- results and callbacks ----------------------------------------------------------------------


def test_on_result_callbacks_and_their_errors(make) -> None:
    panel = make()
    seen: list[str] = []

    def keep(description: Any) -> None:
        seen.append(description.text)

    def broken(description: Any) -> None:
        raise ValueError("no room left")

    panel.on_result(keep)
    panel.on_result(broken)
    choose(panel, CAT_FILE, RED_FILE)
    panel.mode.value = "each"
    describe(panel)
    assert seen == [r.text for r in panel.results]
    assert len(seen) == 2
    line = (
        "on_result callback test_on_result_callbacks_and_their_errors.<locals>.broken raised "
        "ValueError: no room left"
    )
    assert error_text(panel) == f"{line}\n{line}"
    panel.on_result(broken, remove=True)
    describe(panel)
    assert len(seen) == 4
    assert len(panel.results) == 4
    assert panel.error.value == ""


# -- privacy --------------------------------------------------------------------------------


def _all_widgets(widget: widgets.Widget) -> Iterator[widgets.Widget]:
    yield widget
    for name in widget.keys:
        value = getattr(widget, name)
        values = value if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            if isinstance(item, widgets.Widget):
                yield from _all_widgets(item)


def _dump(state: dict) -> str:
    def raw(value: Any) -> str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("latin-1")
        return repr(value)

    return json.dumps(state, default=raw)


def test_no_key_and_no_upload_in_any_widget_state(env: OfflineServer) -> None:
    panel = uploader()
    try:
        assert panel.wait(10)
        choose(panel, CAT_FILE)
        describe(panel)
        assert len(panel.results) == 1
        found = list(_all_widgets(panel))
        assert len(found) > 20  # children, their layouts and styles
        for widget in found:
            text = _dump(widget.get_state())
            assert TEST_API_KEY not in text
            assert CAT_BYTES[:2000].decode("latin-1") not in text  # the upload itself
        assert panel.upload.get_state()["value"] == []
        assert TEST_API_KEY not in repr(panel)
        assert repr(panel) == "<Uploader: 1 image, model 'reka-flash', 1 result(s)>"
    finally:
        panel.close()


def test_close_stops_and_closes_every_widget(
    make, server: OfflineServer, our_connections: Callable[[], set[Any]]
) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    server.token_delay = 0.05
    panel.describe()
    poll(lambda: "This " in shown(panel)[1])
    children = list(_all_widgets(panel))
    panel.close()
    assert not panel.running
    assert panel.comm is None
    assert all(w.comm is None for w in children if isinstance(w, widgets.DOMWidget))
    poll(lambda: not our_connections(), timeout=3)


def _peer_closed(conn: socket.socket) -> bool:
    """True once the client end of a server connection is closed (peeks; reads nothing)."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset by the client, or closed by the server meanwhile
        return True


def test_close_cancels_a_slow_model_list(
    server: OfflineServer, our_connections: Callable[[], set[Any]]
) -> None:
    server.queue(Fault.slow_first_byte(2))  # the /models request answers after 2 s
    panel = Uploader(RekaClient(base_url=server.base_url, api_key=server.api_key))
    changes: list[Any] = []
    panel.model.observe(changes.append, names=["options", "value"])
    panel.error.observe(changes.append, names="value")
    poll(lambda: [r.path for r in server.requests] == ["/v1/models"])
    (connection,) = our_connections()
    started = time.monotonic()
    panel.close()
    assert time.monotonic() - started < 1.0
    assert panel.wait(0)  # the listing is over, not left running
    poll(lambda: _peer_closed(connection), timeout=1)  # closed by the client, before any answer
    time.sleep(2.5)  # past the moment the server answers
    assert changes == []  # no trait was set on the closed widgets
    assert panel.model.options == ("reka-flash",)
    assert panel.error.value == ""
    poll(lambda: not our_connections(), timeout=3)


# -- what is shown (pure parts) ---------------------------------------------------------------


def test_sizes_for_people() -> None:
    sizes = (999, 1024, 35_042, 20 * 1024 * 1024, 21 * 1024 * 1024 + 1)
    assert [format_size(n) for n in sizes] == ["999 bytes", "1 KB", "34.2 KB", "20 MB", "21 MB"]


def test_a_partial_code_block_is_closed_while_it_streams() -> None:
    image = prepare_image(CAT)
    job = Job([Chosen("a_b.jpeg", image)], "?", "reka-flash", each=True)
    job.texts[0], job.states[0] = "Code:\n```python\nprint(1)", "streaming"
    assert answer_output(job)["data"] == {
        "text/markdown": "**1. a\\_b.jpeg**\n\nCode:\n```python\nprint(1)▍\n```",
        "text/plain": "1. a_b.jpeg\nCode:\n```python\nprint(1)▍",
    }


def test_a_section_that_failed_is_marked_failed_and_later_ones_not_asked() -> None:
    image = prepare_image(CAT)
    job = Job([Chosen("a.jpeg", image), Chosen("b.jpeg", image)], "?", "reka-flash", each=True)
    job.texts[0], job.states[0] = "Half an", "streaming"
    job.end("failed")
    assert job.states == ["failed", "skipped"]
    assert answer_output(job)["data"] == {
        "text/markdown": "**1. a.jpeg**\n\nHalf an\n\n*(failed)*\n\n**2. b.jpeg**\n\n*(not asked)*",
        "text/plain": "1. a.jpeg\nHalf an\n\n(failed)\n\n2. b.jpeg\n(not asked)",
    }


def test_per_image_only_the_image_being_asked_says_asking() -> None:
    image = prepare_image(CAT)
    files = [Chosen("a.jpeg", image), Chosen("b.jpeg", image)]
    job = Job(files, "?", "reka-flash", each=True)
    assert answer_output(job)["data"]["text/plain"] == (
        "1. a.jpeg\nAsking reka-flash…\n\n2. b.jpeg\n(waiting its turn)"
    )
    assert re.fullmatch(r"reka-flash · image 1 of 2 · asking · \d+\.\d s", progress_text(job))
    job.texts, job.states = ["A cat.", "A cat too."], ["done", "done"]
    assert re.fullmatch(r"reka-flash · finishing · \d+\.\d s", progress_text(job))


def test_a_new_choice_clears_the_old_answers(make, server: OfflineServer) -> None:
    panel = make()
    choose(panel, CAT_FILE)
    panel.mode.value = "each"
    describe(panel)
    assert panel.answer.outputs and panel.status.value
    choose(panel, CAT_FILE)
    assert panel.answer.outputs == () and panel.status.value == ""


# -- structured answers ------------------------------------------------------------------------


def test_a_schema_from_code_shows_the_fields_as_a_table(make, server: OfflineServer) -> None:
    panel = make(schema="caption, people int")
    choose(panel, CAT_FILE)
    describe(panel)
    (result,) = panel.results
    note = "No model ran: reka_nb's offline server made this answer from the schema."
    assert result.data == {"caption": f"{note} {CAT_LINE}", "people": 1}
    table = (
        "| field | value |\n|:--|:--|\n"
        f"| **caption** | {note.replace('_', chr(92) + '_')} {CAT_LINE} |\n"
        "| **people** | 1 |"
    )
    assert shown(panel) == (table, table)
    (request,) = chat_requests(server)
    assert request.body["response_format"]["json_schema"]["schema"]["required"] == [
        "caption",
        "people",
    ]
    labelled = make(labels=["cat", "dog"])
    choose(labelled, CAT_FILE)
    describe(labelled)
    assert labelled.results[0].data == {"label": "cat"}


def test_an_unusable_schema_is_refused_when_the_panel_is_made(server: OfflineServer) -> None:
    from reka_nb import ConfigurationError

    with pytest.raises(ConfigurationError, match="schema field 'n' has an unknown type 'number'"):
        uploader(schema="n number")
    assert server.requests == []
