"""The upload panel's picker: an anywidget whose ES module (``picker.js``) takes images from the
file dialog, a drop, a paste or the camera, downscales large photos in the browser, sends the
bytes in acknowledged parts, and shows the chosen images' thumbnails.

Images and thumbnails travel as binary buffers in custom messages, never as synced traits, so
nothing of them is kept in the notebook's saved widget state. The limits (bytes per file, per
part, held at once) are the kernel's own attributes: the browser is told them, and cannot
raise them. Every message from the browser is checked; a malformed one is answered with a
``refused`` message, and a choice that stops arriving is dropped after ``idle_seconds``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from ..images import MAX_SIDE
from . import background
from .uploader_job import format_size

__all__ = ["CHUNK_BYTES", "MAX_HELD_BYTES", "Picker", "Received", "Thumbnail"]

CHUNK_BYTES = 1024 * 1024
"""The largest part of a file sent in one message, in bytes."""

MAX_HELD_BYTES = 256 * 1024 * 1024
"""The most bytes all choices still arriving may announce together."""

IDLE_SECONDS = 120.0
"""A choice from which nothing arrives for this long is dropped, and its bytes freed."""

MAX_FILES = 1000
"""The most files one choice may announce."""

MAX_OPEN = 16
"""The most choices that may be arriving at once."""

_TEXT_LIMIT = 1000  # characters kept of a name, a type or a message from the browser

_HERE = Path(__file__).resolve().parent

FilesCallback = Callable[[list[dict[str, Any]], str, list[str]], Any]
Outcome = tuple[bool, str]  # (used, note): what became of one file of a choice


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


@dataclass(frozen=True)
class Thumbnail:
    """One thumbnail the picker shows: the file name and the encoded small image (or None)."""

    name: str
    data: bytes | None
    mime: str = ""


class Malformed(ValueError):
    """A message from the browser that does not follow the picker's protocol."""


class Picker(anywidget.AnyWidget):  # type: ignore[misc]
    """The picker's Python side: collects the parts of each choice and hands the files over.

    ``on_files(callback)`` calls ``callback(files, how, refused)`` once a choice has arrived:
    ``files`` are FileUpload-style dicts (name, type, content), ``how`` is ``"replace"`` (the
    dialog, a drop) or ``"add"`` (a paste, the camera), ``refused`` says what the browser
    refused to send. ``on_busy(callback)`` calls ``callback(names)`` when choices start or stop
    arriving (the names of the files on their way; [] once none are). ``received`` lists every
    file that arrived, without its bytes.
    """

    _esm = _HERE / "picker.js"
    _css = _HERE / "picker.css"

    max_side = traitlets.Int(MAX_SIDE).tag(sync=True)
    jpeg_quality = traitlets.Float(0.68).tag(sync=True)  # as the kernel's own downscaling
    keep_originals = traitlets.Bool(False).tag(sync=True)
    chosen_text = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        *,
        max_bytes: int = 20 * 1024 * 1024,
        chunk_bytes: int = CHUNK_BYTES,
        max_held_bytes: int = MAX_HELD_BYTES,
        idle_seconds: float = IDLE_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.max_held_bytes = max_held_bytes
        self.idle_seconds = idle_seconds
        self.received: list[Received] = []
        self.ready = False
        self._lock = threading.RLock()
        self._batches: dict[str, _Batch] = {}
        self._thumbnails: list[Thumbnail] = []
        self._sweeper: asyncio.TimerHandle | None = None
        self._files_callbacks: list[FilesCallback] = []
        self._ready_callbacks: list[Callable[[], Any]] = []
        self._busy_callbacks: list[Callable[[list[str]], Any]] = []
        self.on_msg(self._on_message)

    # -- for the panel ----------------------------------------------------------------------

    def on_files(self, callback: FilesCallback) -> None:
        self._files_callbacks.append(callback)

    def on_ready(self, callback: Callable[[], Any]) -> None:
        self._ready_callbacks.append(callback)

    def on_busy(self, callback: Callable[[list[str]], Any]) -> None:
        self._busy_callbacks.append(callback)

    @property
    def busy(self) -> bool:
        """True while a choice is on its way from the browser."""
        return bool(self._batches)

    @property
    def held_bytes(self) -> int:
        """The bytes all choices still arriving announced (the most they can hold)."""
        with self._lock:
            return sum(batch.announced for batch in self._batches.values())

    def show_thumbnails(self, thumbnails: Sequence[Thumbnail]) -> None:
        """Show these thumbnails under the picker (sent as buffers, never saved)."""
        self._thumbnails = list(thumbnails)
        if self.ready:
            self._send_thumbnails()

    def close(self) -> None:
        """Free every choice still arriving, stop the timer, close the widget."""
        with self._lock:
            self._batches.clear()
            self._thumbnails = []
            sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None and sweeper is not _PENDING:
            loop = background.existing_loop()
            if loop is not None:
                loop.call_soon_threadsafe(sweeper.cancel)
        super().close()

    # -- messages from the browser -----------------------------------------------------------

    def _on_message(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        """Check and act on one message; a malformed one is refused, never raised."""
        try:
            self._handle(content, buffers)
        except Malformed as exc:
            batch = content.get("batch") if isinstance(content, dict) else None
            self._refuse(str(exc), batch if isinstance(batch, str) else None)

    def _handle(self, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            raise Malformed("a message that is not an object")
        kind = content.get("kind")
        if kind == "ready":
            self.ready = True
            self.send(
                {"kind": "limits", "max_bytes": self.max_bytes, "chunk_bytes": self.chunk_bytes}
            )
            for callback in self._ready_callbacks:
                callback()
            self._send_thumbnails()
            return
        batch_id = _text(content, "batch", 100)
        if not batch_id:
            raise Malformed(f"a {_kind(kind)} message without its batch")
        if kind == "choosing":
            self._choosing(batch_id, content)
        elif kind == "preparing":
            self._touch(batch_id)
        elif kind == "begin":
            self._begin(batch_id, content)
        elif kind == "part":
            self._part(batch_id, content, buffers)
        elif kind == "end":
            self._end(batch_id)
        elif kind == "failed":
            with self._lock:
                batch = self._batches.pop(batch_id, None)
            message = _text(content, "message") or "unknown error"
            refused = batch.refused if batch else []
            self._deliver([], "add", [*refused, f"The images did not arrive: {message}"])
            self._busy_changed()
        else:
            raise Malformed(f"a message of unknown kind {_kind(kind)}")

    def _choosing(self, batch_id: str, content: dict[str, Any]) -> None:
        names = content.get("names")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise Malformed("a choice whose names are not a list of text")
        if len(names) > MAX_FILES:
            raise Malformed(f"a choice of {len(names):,} files (at most {MAX_FILES:,} at once)")
        with self._lock:
            if batch_id not in self._batches and len(self._batches) >= MAX_OPEN:
                raise Malformed(f"more than {MAX_OPEN} choices arriving at once")
            batch = self._batches.setdefault(batch_id, _Batch())
            batch.names = [name[:_TEXT_LIMIT] for name in names]
            batch.touched = time.monotonic()
        self._arm_sweeper()
        self._busy_changed()

    def _touch(self, batch_id: str) -> None:
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is None:
                raise Malformed("a message about a choice that is not arriving")
            batch.touched = time.monotonic()

    def _begin(self, batch_id: str, content: dict[str, Any]) -> None:
        items = content.get("files")
        if not isinstance(items, list) or len(items) > MAX_FILES:
            raise Malformed(f"a choice whose files are not a list of at most {MAX_FILES:,}")
        refused = content.get("refused", [])
        if not isinstance(refused, list) or len(refused) > MAX_FILES:
            raise Malformed("a choice whose refusals are not a list")
        files = [self._announced(item) for item in items]
        total = sum(item.size for item in files)
        with self._lock:
            batch = self._batches.get(batch_id)
            if batch is not None and batch.begun:
                raise Malformed("a choice that has already begun")
            others = sum(b.announced for k, b in self._batches.items() if k != batch_id)
            if others + total > self.max_held_bytes:
                self._batches.pop(batch_id, None)
                self._busy_changed()
                raise Malformed(
                    f"these images add up to {_size(total)}, more than the "
                    f"{_size(self.max_held_bytes - others)} this panel takes at once now: "
                    "choose fewer at a time"
                )
            if batch is None and len(self._batches) >= MAX_OPEN:
                raise Malformed(f"more than {MAX_OPEN} choices arriving at once")
            batch = self._batches.setdefault(batch_id, _Batch())
            batch.files = files
            batch.refused = [str(line)[:_TEXT_LIMIT] for line in refused]
            batch.how = "add" if content.get("how") == "add" else "replace"
            batch.begun = True
            batch.touched = time.monotonic()
            if not batch.names:
                batch.names = [item.name for item in files]
        self._arm_sweeper()
        self._busy_changed()

    def _announced(self, item: Any) -> Received:
        if not isinstance(item, dict):
            raise Malformed("a file described by something that is not an object")
        name = _text(item, "name") or "file"
        size, original = _count(item.get("size")), _count(item.get("original_size", 0))
        if size is None or original is None:
            raise Malformed(f"{name} announced a size that is not a number of bytes")
        if size > self.max_bytes:
            raise Malformed(f"{name} is larger than this panel's limit of {_size(self.max_bytes)}")
        return Received(
            name=name,
            type=_text(item, "type", 100),
            size=size,
            original_size=original,
            downscaled=item.get("downscaled") is True,
        )

    def _part(self, batch_id: str, content: dict[str, Any], buffers: Sequence[Any]) -> None:
        index, offset = content.get("file"), content.get("offset")
        reply = {"kind": "ack", "batch": batch_id, "file": index, "offset": offset}
        error = None
        dropped = None
        with self._lock:
            batch = self._batches.get(batch_id)
            if (
                batch is None
                or not batch.begun
                or isinstance(index, bool)
                or not isinstance(index, int)
                or not 0 <= index < len(batch.files)
            ):
                error = "a part of an unknown file arrived"
                reply["file"] = index if isinstance(index, int) else None
            elif len(buffers) != 1:
                error = f"a part of {batch.files[index].name} came in {len(buffers)} buffers"
            else:
                target = batch.files[index]
                try:
                    data = memoryview(buffers[0]).cast("B")
                except (TypeError, ValueError):
                    data = None
                if data is None:
                    error = f"a part of {target.name} was not bytes"
                elif isinstance(offset, bool) or offset != len(target.data):
                    error = f"a part of {target.name} arrived out of order"
                elif target.size > self.max_bytes:
                    error = f"{target.name} is larger than this panel's limit"
                elif len(target.data) + data.nbytes > target.size or data.nbytes > self.chunk_bytes:
                    error = f"{target.name} sent more bytes than it announced"
                else:
                    target.data += data
                    target.parts += 1
                    batch.touched = time.monotonic()
            if error is not None:
                reply["offset"] = offset if isinstance(offset, int) else None
                reply["error"] = error
                dropped = self._batches.pop(batch_id, None)
        self.send(reply)
        if error is not None and dropped is not None:
            self._busy_changed()

    def _end(self, batch_id: str) -> None:
        with self._lock:
            batch = self._batches.pop(batch_id, None)
        if batch is None:
            raise Malformed("the end of a choice that is not arriving")
        files = []
        refused = list(batch.refused)
        outcome: dict[int, Outcome] = {}
        for index, item in enumerate(batch.files):
            if not item.complete:
                note = f"{item.name} did not arrive whole, so it was not used."
                refused.append(note)
                outcome[index] = (False, note)
                continue
            content = bytes(item.data)
            item.data = bytearray()  # keep the record, not the bytes
            self.received.append(item)
            files.append({"name": item.name, "type": item.type, "content": content})
        results = self._deliver(files, batch.how, refused)
        kept = iter(results if results is not None else [(True, "")] * len(files))
        rows = []
        for index in range(len(batch.files)):
            used, note = outcome.get(index) or next(kept, (True, ""))
            rows.append({"file": index, "used": used, "note": note})
        self.send({"kind": "outcome", "batch": batch_id, "files": rows})
        self._busy_changed()

    def _deliver(
        self, files: list[dict[str, Any]], how: str, refused: list[str]
    ) -> list[Outcome] | None:
        """Hand a choice to the panel; the first callback's answer says what became of each."""
        results = None
        for callback in self._files_callbacks:
            answer = callback(files, how, refused)
            if results is None and isinstance(answer, list) and len(answer) == len(files):
                results = answer
        return results

    def _refuse(self, error: str, batch: str | None) -> None:
        reply: dict[str, Any] = {"kind": "refused", "error": error}
        if batch is not None:
            reply["batch"] = batch
        self.send(reply)

    def _busy_changed(self) -> None:
        with self._lock:
            names = [name for batch in self._batches.values() for name in batch.names]
        for callback in self._busy_callbacks:
            callback(names)

    # -- choices that stop arriving ----------------------------------------------------------

    def _arm_sweeper(self) -> None:
        with self._lock:
            if self._sweeper is not None:
                return
            self._sweeper = _PENDING
        background.background_loop().call_soon_threadsafe(self._schedule_sweep)

    def _schedule_sweep(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._sweeper is _PENDING:
                self._sweeper = loop.call_later(self._next_sweep(), self._sweep)

    def _next_sweep(self) -> float:
        now = time.monotonic()
        due = [b.touched + self.idle_seconds - now for b in self._batches.values()]
        return max(0.0, min(due, default=self.idle_seconds))

    def _sweep(self) -> None:
        """Drop each choice nothing arrived from for ``idle_seconds`` (background thread)."""
        now = time.monotonic()
        with self._lock:
            stale = [k for k, b in self._batches.items() if now - b.touched >= self.idle_seconds]
            dropped = [self._batches.pop(key) for key in stale]
            self._sweeper = None
            again = bool(self._batches)
        for key in stale:
            self._refuse(
                f"nothing arrived for {self.idle_seconds:g} s, so the images were dropped", key
            )
        if dropped:
            names = [name for batch in dropped for name in batch.names]
            shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
            self._deliver(
                [],
                "add",
                [
                    f"The images did not arrive: nothing came from the browser for "
                    f"{self.idle_seconds:g} s, so {shown or 'the choice'} was dropped."
                ],
            )
            self._busy_changed()
        if again:
            self._arm_sweeper()

    def _send_thumbnails(self) -> None:
        thumbs = list(self._thumbnails)
        items = [{"name": t.name, "mime": t.mime, "has_image": t.data is not None} for t in thumbs]
        buffers = [t.data for t in thumbs if t.data is not None]
        self.send({"kind": "thumbnails", "items": items}, buffers)


_PENDING: Any = object()  # the sweeper is being scheduled on the background loop


@dataclass
class _Batch:
    """One choice on its way: what was announced, what arrived, when it last sent anything."""

    names: list[str] = field(default_factory=list)
    files: list[Received] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    how: str = "replace"
    begun: bool = False
    touched: float = field(default_factory=time.monotonic)

    @property
    def announced(self) -> int:
        return sum(item.size for item in self.files)


def _text(content: dict[str, Any], key: str, limit: int = _TEXT_LIMIT) -> str:
    """A text field of a message ("" when absent); anything but text is malformed."""
    value = content.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Malformed(f"a message whose {key} is not text")
    return str(value)[:limit]


def _count(value: Any) -> int | None:
    """A whole number of bytes from a message, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _kind(kind: Any) -> str:
    return repr(kind)[:40]


def _size(size: int) -> str:
    return format_size(max(0, size))
