"""The upload panel's picker: an anywidget whose ES module (``picker.js``) takes images from the
file dialog, a drop, a paste or the camera, downscales large photos in the browser, and sends
the bytes in acknowledged parts.

Images travel as binary buffers in custom messages, never as synced traits, so nothing of them
is kept in the notebook's saved widget state. Each part is at most ``CHUNK_BYTES``, below
Jupyter's websocket message limit whatever it is set to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..images import MAX_SIDE

__all__ = ["CHUNK_BYTES", "Picker", "Received"]

CHUNK_BYTES = 1024 * 1024
"""The largest part of a file sent in one message, in bytes."""

_HERE = Path(__file__).resolve().parent

FilesCallback = Callable[[list[dict[str, Any]], str, list[str]], Any]


@dataclass
class Received:
    """One file as it arrived from the browser: sizes, parts and whether it was downscaled."""

    name: str
    type: str
    size: int
    original_size: int
    downscaled: bool
    parts: int = 0
    data: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def complete(self) -> bool:
        return len(self.data) == self.size


class Picker(anywidget.AnyWidget):  # type: ignore[misc]
    """The picker's Python side: collects the parts of each choice and hands the files over.

    ``on_files(callback)`` calls ``callback(files, how, refused)`` once a choice has arrived:
    ``files`` are FileUpload-style dicts (name, type, content), ``how`` is ``"replace"`` (the
    dialog, a drop) or ``"add"`` (a paste, the camera), ``refused`` says what the browser
    refused to send. ``received`` lists every file that arrived, without its bytes.
    """

    _esm = _HERE / "picker.js"
    _css = _HERE / "picker.css"

    max_bytes = traitlets.Int(20 * 1024 * 1024).tag(sync=True)
    max_side = traitlets.Int(MAX_SIDE).tag(sync=True)
    chunk_bytes = traitlets.Int(CHUNK_BYTES).tag(sync=True)
    jpeg_quality = traitlets.Float(0.68).tag(sync=True)  # as the kernel's own downscaling
    keep_originals = traitlets.Bool(False).tag(sync=True)
    chosen_text = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.received: list[Received] = []
        self.ready = False
        self._batches: dict[str, _Batch] = {}
        self._files_callbacks: list[FilesCallback] = []
        self._ready_callbacks: list[Callable[[], Any]] = []
        self.on_msg(self._on_message)

    def on_files(self, callback: FilesCallback) -> None:
        self._files_callbacks.append(callback)

    def on_ready(self, callback: Callable[[], Any]) -> None:
        self._ready_callbacks.append(callback)

    def _on_message(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("kind")
        if kind == "ready":
            self.ready = True
            for callback in self._ready_callbacks:
                callback()
        elif kind == "begin":
            self._begin(content)
        elif kind == "part":
            self._part(content, buffers)
        elif kind == "end":
            self._end(str(content.get("batch")))
        elif kind == "failed":
            batch = self._batches.pop(str(content.get("batch")), None)
            message = str(content.get("message") or "unknown error")
            refused = batch.refused if batch else []
            self._deliver([], "add", [*refused, f"The images did not arrive: {message}"])

    def _begin(self, content: dict[str, Any]) -> None:
        files = []
        for item in content.get("files") or []:
            files.append(
                Received(
                    name=str(item.get("name") or "file"),
                    type=str(item.get("type") or ""),
                    size=int(item.get("size") or 0),
                    original_size=int(item.get("original_size") or 0),
                    downscaled=bool(item.get("downscaled")),
                )
            )
        refused = [str(line) for line in content.get("refused") or []]
        how = "add" if content.get("how") == "add" else "replace"
        self._batches[str(content.get("batch"))] = _Batch(files, refused, how)

    def _part(self, content: dict[str, Any], buffers: Sequence[Any]) -> None:
        batch_id = str(content.get("batch"))
        index, offset = content.get("file"), content.get("offset")
        reply = {"kind": "ack", "batch": batch_id, "file": index, "offset": offset}
        batch = self._batches.get(batch_id)
        error = None
        if batch is None or not isinstance(index, int) or not 0 <= index < len(batch.files):
            error = "a part of an unknown file arrived"
        else:
            target = batch.files[index]
            data = memoryview(buffers[0]).cast("B") if buffers else memoryview(b"")
            if offset != len(target.data):
                error = f"a part of {target.name} arrived out of order"
            elif len(target.data) + data.nbytes > target.size or data.nbytes > self.chunk_bytes:
                error = f"{target.name} sent more bytes than it announced"
            elif target.size > self.max_bytes:
                error = f"{target.name} is larger than this panel's limit"
            else:
                target.data += data
                target.parts += 1
        if error is not None:
            reply["error"] = error
            self._batches.pop(batch_id, None)
        self.send(reply)

    def _end(self, batch_id: str) -> None:
        batch = self._batches.pop(batch_id, None)
        if batch is None:
            return
        files = []
        refused = list(batch.refused)
        for item in batch.files:
            if not item.complete:
                refused.append(f"{item.name} did not arrive whole, so it was not used.")
                continue
            content = bytes(item.data)
            item.data = bytearray()  # keep the record, not the bytes
            self.received.append(item)
            files.append({"name": item.name, "type": item.type, "content": content})
        self._deliver(files, batch.how, refused)

    def _deliver(self, files: list[dict[str, Any]], how: str, refused: list[str]) -> None:
        for callback in self._files_callbacks:
            callback(files, how, refused)


@dataclass
class _Batch:
    files: list[Received]
    refused: list[str]
    how: str
