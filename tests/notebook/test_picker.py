"""The picker's kernel side, driven with the custom messages its ES module sends.

Each message goes through ``_handle_custom_msg`` (what ipywidgets calls when one arrives),
and the replies the browser would get are recorded. ``tests/test_browser_upload.py`` drives
the same messages from a real browser.
"""

from __future__ import annotations

import html
import io
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reka_nb import ImageError, RekaClient, Uploader
from reka_nb.notebook.picker import CHUNK_BYTES
from reka_nb.testing import OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
CAT_BYTES = CAT.read_bytes()


@pytest.fixture
def panel(server: OfflineServer) -> Iterator[Uploader]:
    client = RekaClient(base_url=server.base_url, api_key=server.api_key)
    panel = Uploader(client)
    assert panel.wait(10)
    yield panel
    panel.close()


@pytest.fixture
def replies(panel: Uploader) -> list[dict[str, Any]]:
    """What the kernel sends back to the browser."""
    sent: list[dict[str, Any]] = []
    panel.picker.send = lambda content, buffers=None: sent.append(content)
    return sent


def message(panel: Uploader, content: dict[str, Any], *buffers: bytes) -> None:
    panel.picker._handle_custom_msg(content, [memoryview(b) for b in buffers])


def send_file(
    panel: Uploader,
    name: str,
    data: bytes,
    *,
    batch: str = "b1",
    how: str = "replace",
    part: int = CHUNK_BYTES,
    refused: list[str] | None = None,
) -> None:
    """What picker.js sends for one file: begin, its parts, end."""
    described = {"name": name, "type": "image/jpeg", "size": len(data)}
    described |= {"original_size": len(data), "downscaled": False}
    message(
        panel,
        {
            "kind": "begin",
            "batch": batch,
            "how": how,
            "files": [described],
            "refused": refused or [],
        },
    )
    for offset in range(0, len(data), part):
        message(
            panel,
            {"kind": "part", "batch": batch, "file": 0, "offset": offset},
            data[offset : offset + part],
        )
    message(panel, {"kind": "end", "batch": batch})


def error_text(panel: Uploader) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", panel.error.value.replace("<br>", "\n")))


def png(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_parts_are_acknowledged_and_joined(panel: Uploader, replies: list[dict]) -> None:
    send_file(panel, "cat.jpeg", CAT_BYTES, part=16_000)
    assert replies == [
        *[{"kind": "ack", "batch": "b1", "file": 0, "offset": o} for o in (0, 16_000, 32_000)],
        {"kind": "outcome", "batch": "b1", "files": [{"file": 0, "used": True, "note": ""}]},
    ]
    assert panel.names == ["cat.jpeg"]
    assert panel.images[0].data == CAT_BYTES
    (received,) = panel.received
    assert (received.name, received.size, received.parts, received.downscaled) == (
        "cat.jpeg",
        35_042,
        3,
        False,
    )
    assert received.data == bytearray()  # the record keeps no bytes
    assert panel.picker.chosen_text == "Chosen: cat.jpeg"
    assert not panel.describe_button.disabled


def test_a_drop_replaces_and_a_paste_adds(panel: Uploader, replies: list[dict]) -> None:
    send_file(panel, "cat.jpeg", CAT_BYTES, batch="1")
    send_file(panel, "image.png", png(), batch="2", how="add")
    assert panel.names == ["cat.jpeg", "image.png"]
    assert panel.picker.chosen_text == "Chosen: 2 images: cat.jpeg, image.png"
    first = panel.thumbnails.children[0]
    send_file(panel, "other.png", png(), batch="3", how="add")
    assert panel.thumbnails.children[0] is first  # kept, not made again
    send_file(panel, "cat.jpeg", CAT_BYTES, batch="4")
    assert panel.names == ["cat.jpeg"]
    assert first.comm is None  # the replaced thumbnails' widgets are closed


@pytest.mark.parametrize(
    ("offset", "data", "declared", "error"),
    [
        (10, b"x" * 10, 20, "a part of a.jpg arrived out of order"),
        (0, b"x" * 30, 20, "a.jpg sent more bytes than it announced"),
    ],
)
def test_a_bad_part_is_refused_and_the_file_dropped(
    panel: Uploader, replies: list[dict], offset: int, data: bytes, declared: int, error: str
) -> None:
    described = {"name": "a.jpg", "type": "image/jpeg", "size": declared}
    message(panel, {"kind": "begin", "batch": "b", "how": "replace", "files": [described]})
    message(panel, {"kind": "part", "batch": "b", "file": 0, "offset": offset}, data)
    assert replies == [{"kind": "ack", "batch": "b", "file": 0, "offset": offset, "error": error}]
    message(panel, {"kind": "end", "batch": "b"})
    assert panel.names == [] and panel.received == []


def test_a_part_larger_than_one_message_allows_is_refused(
    panel: Uploader, replies: list[dict]
) -> None:
    data = bytes(CHUNK_BYTES + 1)
    described = {"name": "a.jpg", "type": "image/jpeg", "size": len(data)}
    message(panel, {"kind": "begin", "batch": "b", "how": "replace", "files": [described]})
    message(panel, {"kind": "part", "batch": "b", "file": 0, "offset": 0}, data)
    assert replies[0]["error"] == "a.jpg sent more bytes than it announced"


def test_what_the_browser_refused_is_shown_with_the_kernels_refusals(
    panel: Uploader, replies: list[dict]
) -> None:
    send_file(panel, "notes.jpg", b"not an image at all", refused=["x.txt is not an image."])
    assert error_text(panel) == (
        "x.txt is not an image.\n"
        "upload 'notes.jpg' is not an image file (JPEG, PNG, GIF, WebP and other common "
        "formats can be used)"
    )
    assert panel.names == []


def test_a_transfer_that_failed_in_the_browser_says_so(panel: Uploader, replies: list) -> None:
    message(panel, {"kind": "begin", "batch": "b", "how": "replace", "files": []})
    message(panel, {"kind": "failed", "batch": "b", "message": "the kernel did not answer"})
    assert error_text(panel) == "The images did not arrive: the kernel did not answer"


def test_add_from_code(panel: Uploader, tmp_path: Path) -> None:
    panel.add(CAT)
    panel.add(Image.new("RGB", (50, 40), "white"))
    panel.add(str(CAT), name="again.jpeg")
    assert panel.names == ["cat.jpeg", "image 2", "again.jpeg"]
    assert [(i.width, i.height) for i in panel.images] == [(451, 300), (50, 40), (451, 300)]
    assert panel.picker.chosen_text == "Chosen: 3 images: cat.jpeg, image 2, again.jpeg"
    with pytest.raises(ImageError, match=r"^no such file: 'nowhere\.png'"):
        panel.add("nowhere.png")
    with pytest.raises(TypeError, match=r"^name must be a str, not int$"):
        panel.add(CAT, name=3)  # type: ignore[arg-type]
    assert len(panel.names) == 3


def test_nothing_of_the_images_is_in_synced_state(panel: Uploader, replies: list) -> None:
    send_file(panel, "cat.jpeg", CAT_BYTES)
    state = panel.picker.get_state()
    assert not any(isinstance(v, (bytes, bytearray, memoryview)) for v in state.values())
    assert len(repr({k: v for k, v in state.items() if k not in ("_esm", "_css")})) < 1000


def poll(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_the_plain_file_button_replaces_a_picker_that_does_not_load(panel: Uploader) -> None:
    assert panel.upload.layout.display == "none"
    panel._chooser.wait = 0.1
    panel._repr_mimebundle_()  # shown, and the picker never says it loaded
    poll(lambda: panel.upload.layout.display is None)
    note = re.sub(r"<[^>]+>", "", panel.limits.value)
    assert note.startswith("The drop-and-paste picker could not load in this notebook app, so ")
    message(panel, {"kind": "ready"})  # it loaded after all
    assert panel.upload.layout.display == "none"
    assert "could not load" not in panel.limits.value


def test_a_picker_that_loads_in_time_keeps_the_fallback_hidden(panel: Uploader) -> None:
    panel._chooser.wait = 0.1
    message(panel, {"kind": "ready"})
    panel._repr_mimebundle_()
    time.sleep(0.3)
    assert panel.upload.layout.display == "none"


def test_the_browser_encodes_jpegs_at_the_kernels_quality(panel: Uploader) -> None:
    from reka_nb.images import codec

    assert round(panel.picker.jpeg_quality * 100) == codec._JPEG_QUALITY
    assert (panel.picker.max_side, panel.picker.chunk_bytes) == (2048, 1024 * 1024)


# -- a hostile front end -------------------------------------------------------------------------

MB = 1024 * 1024


def begin(panel: Uploader, batch: str, *sizes: int) -> None:
    files = [
        {"name": f"{batch}-{n}.jpg", "type": "image/jpeg", "size": size, "original_size": size}
        for n, size in enumerate(sizes)
    ]
    message(panel, {"kind": "begin", "batch": batch, "how": "replace", "files": files})


def test_the_limits_are_the_kernels_and_the_browser_cannot_raise_them(
    panel: Uploader, replies: list[dict]
) -> None:
    picker = panel.picker
    assert not {"max_bytes", "chunk_bytes"} & set(picker.keys)  # not synced state
    # The front end sends a state update raising both limits: nothing changes.
    update = {"method": "update", "state": {"max_bytes": 300 * MB, "chunk_bytes": 300 * MB}}
    picker._handle_msg({"content": {"data": {**update, "buffer_paths": []}}, "buffers": []})
    assert (picker.max_bytes, picker.chunk_bytes) == (20 * MB, MB)
    message(panel, {"kind": "ready"})
    assert replies[0] == {"kind": "limits", "max_bytes": 20 * MB, "chunk_bytes": MB}
    replies.clear()
    begin(panel, "big", 300 * MB)
    message(panel, {"kind": "part", "batch": "big", "file": 0, "offset": 0}, bytes(2 * MB))
    assert replies == [
        {
            "kind": "refused",
            "batch": "big",
            "error": "big-0.jpg is larger than this panel's limit of 20 MB",
        },
        {
            "kind": "ack",
            "batch": "big",
            "file": 0,
            "offset": 0,
            "error": "a part of an unknown file arrived",
        },
    ]
    assert picker.held_bytes == 0 and panel.received == []


SIZE_ERROR = "a announced a size that is not a number of bytes"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (["begin"], "a message that is not an object"),
        ({"kind": "begin"}, "a 'begin' message without its batch"),
        ({"kind": "begin", "batch": {"x": 1}}, "a message whose batch is not text"),
        ({"kind": "steal", "batch": "b"}, "a message of unknown kind 'steal'"),
        (
            {"kind": "begin", "batch": "b", "files": "a.jpg"},
            "a choice whose files are not a list of at most 1,000",
        ),
        (
            {"kind": "begin", "batch": "b", "files": [1]},
            "a file described by something that is not an object",
        ),
        ({"kind": "begin", "batch": "b", "files": [{"name": "a", "size": "big"}]}, SIZE_ERROR),
        ({"kind": "begin", "batch": "b", "files": [{"name": "a", "size": -1}]}, SIZE_ERROR),
        ({"kind": "begin", "batch": "b", "files": [{"name": "a", "size": True}]}, SIZE_ERROR),
        (
            {"kind": "begin", "batch": "b", "files": [{"name": ["a"], "size": 1}]},
            "a message whose name is not text",
        ),
        (
            {"kind": "begin", "batch": "b", "files": [], "refused": "no"},
            "a choice whose refusals are not a list",
        ),
        (
            {"kind": "choosing", "batch": "b", "names": "a.jpg"},
            "a choice whose names are not a list of text",
        ),
        ({"kind": "preparing", "batch": "x"}, "a message about a choice that is not arriving"),
        ({"kind": "end", "batch": "x"}, "the end of a choice that is not arriving"),
        (
            {"kind": "failed", "batch": "b", "message": {"x": 1}},
            "a message whose message is not text",
        ),
    ],
)
def test_a_malformed_message_is_refused_never_raised(
    panel: Uploader, replies: list[dict], content: Any, error: str
) -> None:
    message(panel, content)  # no exception
    (reply,) = replies
    assert reply["kind"] == "refused" and reply["error"] == error
    assert not panel.picker.busy and panel.names == []


@pytest.mark.parametrize(
    ("part", "buffers", "error"),
    [
        ({"file": "0", "offset": 0}, [b"x"], "a part of an unknown file arrived"),
        ({"file": True, "offset": 0}, [b"x"], "a part of an unknown file arrived"),
        ({"file": 5, "offset": 0}, [b"x"], "a part of an unknown file arrived"),
        ({"file": 0, "offset": "0"}, [b"x"], "a part of b-0.jpg arrived out of order"),
        ({"file": 0, "offset": 0}, [], "a part of b-0.jpg came in 0 buffers"),
        ({"file": 0, "offset": 0}, [b"x", b"y"], "a part of b-0.jpg came in 2 buffers"),
    ],
)
def test_a_malformed_part_is_refused_and_its_choice_dropped(
    panel: Uploader, replies: list[dict], part: dict, buffers: list[bytes], error: str
) -> None:
    begin(panel, "b", 10)
    assert panel.picker.held_bytes == 10
    message(panel, {"kind": "part", "batch": "b", **part}, *buffers)
    (reply,) = replies
    assert reply["kind"] == "ack" and reply["error"] == error
    assert panel.picker.held_bytes == 0 and not panel.picker.busy


def test_the_bytes_held_across_choices_are_bounded(panel: Uploader, replies: list[dict]) -> None:
    panel.picker.max_held_bytes = 3 * MB
    begin(panel, "one", MB, MB)
    begin(panel, "two", 2 * MB)
    assert replies == [
        {
            "kind": "refused",
            "batch": "two",
            "error": "these images add up to 2 MB, more than the 1 MB this panel takes at once "
            "now: choose fewer at a time",
        }
    ]
    assert panel.picker.held_bytes == 2 * MB
    message(panel, {"kind": "failed", "batch": "one", "message": "the tab was closed"})
    begin(panel, "two", 2 * MB)  # room again
    assert panel.picker.held_bytes == 2 * MB and len(replies) == 1


def test_a_choice_that_stops_sending_is_dropped(panel: Uploader, replies: list[dict]) -> None:
    panel.picker.idle_seconds = 0.3
    begin(panel, "b", 20)
    message(panel, {"kind": "part", "batch": "b", "file": 0, "offset": 0}, b"x" * 10)
    assert panel.picker.held_bytes == 20 and panel.describe_button.disabled
    poll(lambda: not panel.picker.busy, timeout=5)
    assert panel.picker.held_bytes == 0
    assert replies[-1] == {
        "kind": "refused",
        "batch": "b",
        "error": "nothing arrived for 0.3 s, so the images were dropped",
    }
    assert error_text(panel) == (
        "The images did not arrive: nothing came from the browser for 0.3 s, so b-0.jpg was "
        "dropped."
    )
    message(panel, {"kind": "part", "batch": "b", "file": 0, "offset": 10}, b"x" * 10)
    assert replies[-1]["error"] == "a part of an unknown file arrived"


def test_closing_the_panel_frees_every_choice_arriving(server: OfflineServer) -> None:
    client = RekaClient(base_url=server.base_url, api_key=server.api_key)
    panel = Uploader(client)
    panel.picker.send = lambda content, buffers=None: None
    begin(panel, "a", 5 * MB, 5 * MB)
    message(panel, {"kind": "part", "batch": "a", "file": 0, "offset": 0}, bytes(MB))
    assert panel.picker.held_bytes == 10 * MB
    picker = panel.picker
    panel.close()
    assert picker.held_bytes == 0 and not picker.busy and picker.comm is None


def test_describe_waits_while_a_choice_is_arriving(panel: Uploader, replies: list[dict]) -> None:
    send_file(panel, "cat.jpeg", CAT_BYTES, batch="1")
    assert not panel.describe_button.disabled
    message(panel, {"kind": "choosing", "batch": "2", "how": "replace", "names": ["huge.bmp"]})
    assert panel.describe_button.disabled
    assert panel.picker.chosen_text == "Preparing: huge.bmp…"
    panel.describe()  # pressed all the same: nothing is asked about the old choice
    assert panel.results == [] and not panel.running
    assert error_text(panel) == (
        "The images just chosen are still arriving: Describe once they are shown."
    )
    message(panel, {"kind": "preparing", "batch": "2"})
    send_file(panel, "huge.bmp", CAT_BYTES, batch="2")
    assert panel.names == ["huge.bmp"] and not panel.describe_button.disabled
    assert panel.picker.chosen_text == "Chosen: huge.bmp"


def test_a_refused_file_is_marked_and_not_counted(panel: Uploader, replies: list[dict]) -> None:
    files = [
        {"name": "cat.jpeg", "type": "image/jpeg", "size": len(CAT_BYTES)},
        {"name": "corrupt.jpg", "type": "image/jpeg", "size": 7},
    ]
    message(panel, {"kind": "begin", "batch": "b", "how": "replace", "files": files})
    message(panel, {"kind": "part", "batch": "b", "file": 0, "offset": 0}, CAT_BYTES)
    message(panel, {"kind": "part", "batch": "b", "file": 1, "offset": 0}, b"garbage")
    message(panel, {"kind": "end", "batch": "b"})
    why = (
        "upload 'corrupt.jpg' is not an image file (JPEG, PNG, GIF, WebP and other common "
        "formats can be used)"
    )
    assert replies[-1] == {
        "kind": "outcome",
        "batch": "b",
        "files": [{"file": 0, "used": True, "note": ""}, {"file": 1, "used": False, "note": why}],
    }
    assert panel.names == ["cat.jpeg"]
    assert panel.picker.chosen_text == "Chosen: cat.jpeg; 1 file not used: corrupt.jpg"


def test_the_thumbnails_go_to_the_loaded_picker_as_buffers(
    panel: Uploader, replies: list[dict]
) -> None:
    sent: list[tuple[dict, list]] = []
    panel.picker.send = lambda content, buffers=None: sent.append((content, buffers or []))
    send_file(panel, "cat.jpeg", CAT_BYTES)
    assert len(panel.thumbnails.children) == 1  # not loaded: Image widgets
    message(panel, {"kind": "ready"})
    assert panel.thumbnails.children == ()  # loaded: drawn by the picker
    content, buffers = sent[-1]
    assert content == {
        "kind": "thumbnails",
        "items": [{"name": "cat.jpeg", "mime": "image/jpeg", "has_image": True}],
    }
    assert Image.open(io.BytesIO(buffers[0])).size == (256, 170)
