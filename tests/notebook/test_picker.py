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
        {"kind": "ack", "batch": "b1", "file": 0, "offset": offset}
        for offset in (0, 16_000, 32_000)
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
        (0, b"x" * 10, 21 * 1024 * 1024, "a.jpg is larger than this panel's limit"),
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
