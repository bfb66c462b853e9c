"""The upload panel without its widgets: checking uploads, one run, and what is shown.

``read_uploads`` checks the picker's files (size, then whether they are images). A ``Job`` is
a snapshot of the panel when Describe was pressed (images, prompt, model, mode) plus the
answer as it arrives: one section for all images together, or one per image.
``PanelPresenter`` is the ``Presenter`` that ``run_adescribe`` drives; the pure functions
below turn a job into the answer's Markdown, the status line and error messages.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ImageError
from ..answer import Description
from ..client.aio import AsyncRekaClient
from ..client.sync import RekaClient
from ..images import Media, prepare_image
from .display import data_fields, fields_bundle
from .markdown import CURSOR, close_fences, escape_markdown
from .throttle import Throttle

__all__ = [
    "JUPYTER_MESSAGE_LIMIT",
    "MAX_UPLOAD_BYTES",
    "UPDATE_RATE",
    "Chosen",
    "Job",
    "PanelPresenter",
    "answer_output",
    "chosen_text",
    "error_html",
    "error_text",
    "format_size",
    "limits_html",
    "panel_client",
    "preparing_text",
    "progress_text",
    "read_uploads",
    "summary_text",
]

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""The panel's default limit for one image file, in bytes."""

JUPYTER_MESSAGE_LIMIT = 10 * 1024 * 1024
"""Jupyter's default websocket message limit: a larger selection never reaches the kernel."""

UPDATE_RATE = 10.0
"""Answer updates a second at most while text streams in (the first one is shown at once)."""

# What follows a section's text once it ended early: (Markdown, plain text).
_MARKS = {
    "stopped": ("*(stopped)*", "(stopped)"),
    "failed": ("*(failed)*", "(failed)"),
    "skipped": ("*(not asked)*", "(not asked)"),
}


@dataclass(frozen=True)
class Chosen:
    """An accepted upload: the file's name and the checked image (its bytes, not the file's)."""

    name: str
    image: Media

    def as_upload(self) -> dict[str, Any] | str:
        """A FileUpload-style value, so the request names the file: ``upload 'cat.jpeg'``
        (an image added from code as a URL is sent as that URL)."""
        if self.image.data is None:
            return self.image.url or ""
        return {"name": self.name, "type": self.image.mime, "content": self.image.data}

    def __repr__(self) -> str:
        return f"Chosen({self.name!r}, {self.image!r})"


def read_uploads(
    files: Sequence[Mapping[str, Any]], max_bytes: int
) -> tuple[list[Chosen], list[str]]:
    """Check the picker's files: (accepted, messages for the refused ones).

    The size is checked first, so an oversized file is never decoded.
    """
    accepted: list[Chosen] = []
    refused: list[str] = []
    for item in files:
        name = str(item.get("name") or "file")
        content = item.get("content")
        if isinstance(content, (bytes, bytearray, memoryview)):
            size = memoryview(content).nbytes
            if size > max_bytes:
                refused.append(
                    f"{name} is {format_size(size)}, larger than this panel's limit of "
                    f"{format_size(max_bytes)} per image, so it was not used. Choose a smaller "
                    "file, or make the panel with uploader(max_bytes=...)."
                )
                continue
        try:
            accepted.append(Chosen(name, prepare_image(item)))
        except ImageError as exc:
            refused.append(str(exc))
    return accepted, refused


def panel_client(client: RekaClient | AsyncRekaClient | None) -> AsyncRekaClient:
    """An AsyncRekaClient for the panel's background loop, with ``client``'s settings.

    The panel always makes its own: an async connection pool belongs to one event loop.
    Without ``client``, settings come from the environment at each request.
    """
    if client is None:
        return AsyncRekaClient()
    if not isinstance(client, (RekaClient, AsyncRekaClient)):
        raise TypeError(
            f"client must be a RekaClient or AsyncRekaClient, not {type(client).__name__}"
        )
    return AsyncRekaClient(**client.options())


@dataclass(eq=False)
class Job:
    """One press of Describe: what is asked, and the answer sections as they arrive.

    ``states`` holds one of queued, waiting (being asked), streaming, done, stopped, failed,
    skipped per section: only the section being asked says so.
    """

    files: list[Chosen]
    prompt: str
    model: str
    each: bool
    started: float = field(default_factory=time.monotonic)
    texts: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    results: list[Description] = field(default_factory=list)
    error: BaseException | None = None
    problems: list[str] = field(default_factory=list)  # e.g. a failing on_result callback
    task: asyncio.Task[None] | None = None
    done: threading.Event = field(default_factory=threading.Event)
    throttle: Throttle = field(default_factory=lambda: Throttle(UPDATE_RATE))
    flush: asyncio.TimerHandle | None = None  # shows text the throttle held back

    def cancel_flush(self) -> None:
        if self.flush is not None:
            self.flush.cancel()
            self.flush = None

    def __post_init__(self) -> None:
        count = len(self.groups)
        self.texts = [""] * count
        self.states = ["waiting"] + ["queued"] * (count - 1)

    @property
    def groups(self) -> list[list[Chosen]]:
        """The images of each request: all together, or one request per image."""
        return [[f] for f in self.files] if self.each else [list(self.files)]

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def end(self, state: str) -> None:
        """After a stop or failure: the section left unanswered gets ``state``, later ones skip."""
        self.cancel_flush()
        marked = any(s in ("stopped", "failed") for s in self.states)
        for index, current in enumerate(self.states):
            if current in ("queued", "waiting", "streaming"):
                self.states[index] = "skipped" if marked else state
                marked = True


class PanelPresenter:
    """Writes one section of a job and asks the panel to show it (the Presenter protocol).

    Runs on the background loop's thread; ``show(job)`` must only set widget traits.
    Text updates are coalesced by the job's throttle, and text held back is shown one
    interval later if no word follows; start, finish and fail always show.
    """

    def __init__(self, job: Job, index: int, show: Callable[[Job], None]) -> None:
        self.job = job
        self.index = index
        self.show = show
        self._parts: list[str] = []  # the section's text, joined only when shown
        self._fields: tuple[str, ...] | None = None  # a structured answer's field names
        self._partial: Any = None  # its PartialObject

    def expect_fields(self, names: Sequence[str]) -> None:
        """The answer is structured: the section shows its fields filling in, not JSON."""
        from ..protocol.json_text import PartialObject

        self._fields, self._partial = tuple(names), PartialObject()

    def _take_text(self) -> None:
        if self._parts and self._fields is not None and self._partial is not None:
            fields = self._partial.feed("".join(self._parts))
            self._parts = []
            self.job.texts[self.index] = fields_bundle(self._fields, fields, arriving=True)[1]
        elif self._parts:
            self.job.texts[self.index] += "".join(self._parts)
            self._parts = []

    def start(self, *, model: str, prompt: str, images: Sequence[Media]) -> None:
        self.job.states[self.index] = "waiting"
        self.show(self.job)

    def update(self, delta: str, text: str | None = None) -> None:
        if text is not None:
            self.job.texts[self.index], self._parts = "", [text]
            if self._fields is not None:
                self.expect_fields(self._fields)  # read the replaced text afresh
        else:
            self._parts.append(delta)
        self.job.states[self.index] = "streaming"
        if self.job.throttle.ready():
            self._take_text()
            self.show(self.job)
        elif self.job.flush is None:  # show it soon, even if no other word follows
            self._flush_later()

    def finish(self, description: Description) -> None:
        if description.data is not None:  # the fields as a table
            self.job.texts[self.index] = fields_bundle((), data_fields(description.data))[1]
        else:
            self.job.texts[self.index] = description.text
        self.job.states[self.index] = "done"
        self.job.cancel_flush()
        self.show(self.job)

    def fail(self, error: BaseException, partial_text: str) -> None:
        self.job.texts[self.index] = partial_text
        stopped = isinstance(error, asyncio.CancelledError)
        self.job.states[self.index] = "stopped" if stopped else "failed"
        self.job.cancel_flush()
        self.show(self.job)

    def _flush_later(self) -> None:
        loop = asyncio.get_running_loop()
        self.job.flush = loop.call_later(self.job.throttle.interval, self._flush)

    def _flush(self) -> None:
        self.job.flush = None
        if self.job.states[self.index] != "streaming" or not self.job.throttle.pending:
            return
        if self.job.throttle.ready():
            self._take_text()
            self.show(self.job)
        else:  # the timer fired a little early
            self._flush_later()


# -- what is shown (pure functions) -----------------------------------------------------------


def answer_output(job: Job) -> dict[str, Any]:
    """The answer area's one output: Markdown and plain text of every section."""
    if not job.each:
        markdown, plain = _section(job.texts[0], job.states[0], job.model)
    else:
        parts_md, parts_plain = [], []
        for number, (chosen, text, state) in enumerate(
            zip(job.files, job.texts, job.states, strict=True), 1
        ):
            md, pl = _section(text, state, job.model)
            parts_md.append(f"**{number}. {escape_markdown(chosen.name)}**\n\n{md}")
            parts_plain.append(f"{number}. {chosen.name}\n{pl}")
        markdown, plain = "\n\n".join(parts_md), "\n\n".join(parts_plain)
    return {
        "output_type": "display_data",
        "data": {"text/markdown": markdown, "text/plain": plain},
        "metadata": {},
    }


def _section(text: str, state: str, model: str) -> tuple[str, str]:
    if state == "queued":
        return "*(waiting its turn)*", "(waiting its turn)"
    if state == "waiting":
        return f"*Asking {escape_markdown(model)}…*", f"Asking {model}…"
    if state == "streaming":
        return close_fences(text + CURSOR), text + CURSOR
    if state == "done":
        return text, text
    mark_md, mark_plain = _MARKS[state]
    if not text:
        return mark_md, mark_plain
    return f"{close_fences(text)}\n\n{mark_md}", f"{text}\n\n{mark_plain}"


def progress_text(job: Job) -> str:
    """The status line while a job runs: model, which image, characters so far, seconds.

    Once the last answer is in (before the footer replaces this line) it says "finishing".
    """
    parts = [job.model]
    active = ("queued", "waiting", "streaming")
    index = next((i for i, s in enumerate(job.states) if s in active), None)
    if job.each and index is not None:
        parts.append(f"image {index + 1} of {len(job.files)}")
    if index is None:
        parts.append("finishing")
    elif job.states[index] == "streaming":
        parts.append(f"{len(job.texts[index]):,} characters")
    else:
        parts.append("asking")
    parts.append(f"{job.elapsed():.1f} s")
    return " · ".join(parts)


def summary_text(job: Job, outcome: str) -> str:
    """The status line once a job ended: ``done``, ``stopped`` or ``failed``."""
    if outcome == "done" and len(job.results) == 1:
        return job.results[0].footer()
    model = job.results[0].model if job.results and job.results[0].model else job.model
    if outcome != "done":
        return f"{model} · {outcome} after {job.elapsed():.1f} s"
    inp = _total(d.usage.input_tokens if d.usage else None for d in job.results)
    out = _total(d.usage.output_tokens if d.usage else None for d in job.results)
    count = len(job.results)
    return f"{model} · {count} answers · {inp} tokens in, {out} out · {job.elapsed():.1f} s"


def _total(values: Any) -> str:
    values = list(values)
    return "?" if any(v is None for v in values) else str(sum(values))


def error_text(exc: BaseException) -> str:
    """One line: the error's type and message (API errors carry status and request id)."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def limits_html(max_bytes: int, fallback: bool = False) -> str:
    """The panel's note on size limits, in plain words; ``fallback`` for the plain button."""
    if fallback:
        text = (
            "The drop-and-paste picker could not load in this notebook app, so this is the "
            f"plain file button. Images up to {format_size(max_bytes)} each. Files chosen at "
            f"once should add up to less than {format_size(JUPYTER_MESSAGE_LIMIT)}: Jupyter "
            "drops a larger choice without telling the panel. Choose fewer at a time."
        )
    else:
        text = (
            f"Choose, drop or paste images of up to {format_size(max_bytes)} each. Photos "
            "larger than 2048 pixels are made smaller in your browser before they are sent, "
            "unless you tick Keep originals."
        )
    return f'<div style="line-height:1.4;margin:2px 0">{html.escape(text)}</div>'


def chosen_text(names: Sequence[str], not_used: Sequence[str] = (), shown: int = 4) -> str:
    """What the picker says is chosen: ``Chosen: 2 images: cat.jpeg, red.png``, then the files
    of the last choice that were not used (``; 1 file not used: corrupt.jpg``); "" for none."""
    if not names and not not_used:
        return ""
    text = f"Chosen: {_listed(names, shown)}" if names else "Nothing chosen"
    if not_used:
        files = "1 file" if len(not_used) == 1 else f"{len(not_used)} files"
        text += f"; {files} not used: {', '.join(not_used[:shown])}"
        text += f" and {len(not_used) - shown} more" if len(not_used) > shown else ""
    return text


def preparing_text(names: Sequence[str], shown: int = 4) -> str:
    """What the picker says while a new choice is on its way: ``Preparing: huge.bmp…``."""
    return f"Preparing: {_listed(names, shown)}…"


def _listed(names: Sequence[str], shown: int) -> str:
    listed = ", ".join(names[:shown])
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    count = f"{len(names)} images: " if len(names) > 1 else ""
    return f"{count}{listed}{more}"


def error_html(lines: Sequence[str]) -> str:
    """The error area's HTML: each line escaped, in the theme's error colours."""
    if not lines:
        return ""
    body = "<br>".join(html.escape(line) for line in lines)
    style = (
        "white-space:pre-wrap;padding:4px 8px;margin:2px 0;"
        "color:var(--jp-content-font-color1);background:var(--jp-rendermime-error-background);"
        "border-left:4px solid var(--jp-error-color1)"
    )
    return f'<div class="reka-nb-error" style="{style}">{body}</div>'


def format_size(size: int) -> str:
    """Bytes for people: ``20 MB``, ``12.3 MB``, ``950 KB`` (powers of 1,024)."""
    for unit, scale in (("MB", 1024 * 1024), ("KB", 1024)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{size:,} bytes"
