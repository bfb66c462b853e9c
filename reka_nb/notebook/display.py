"""The notebook display of an answer: the images asked about, and one output updated in place.

``NotebookPresenter`` first shows the images asked about as a strip of thumbnails (at most
256 px), an output of its own sent once, so it stays above the answer from the waiting state
to the end and the byte budget goes to the text. Below it, one output shows a waiting state
(the model asked), then the text as it streams, then the complete Markdown with a footer
(model, tokens, seconds). Updates go through one display id (``display(..., display_id=True)``
then ``update``): no ``clear_output``, no growing list of outputs. The first token is shown at
once; after that updates are coalesced: evenly spaced, never more than ``rate`` messages in
any second (counting the waiting state, the first token and the final answer), and fewer when
the text is long, so that the bytes sent stay under ``max_bytes_per_second`` (Jupyter drops
iopub traffic above 1,000 messages/s or 1 MB/s). A failure keeps the partial text and marks
where it stopped; the error itself is the cell's error, shown once. Text held back by the
coalescing is shown by a timer once an update is due again, so a pause in the answer never
hides words that already arrived (ipykernel sends a display update from that thread with the
cell's parent, like the rest).

The returned ``Description`` is marked as shown, so that a bare ``describe(...)`` on a cell's
last line does not show the answer a second time as the cell's result (``shown_once``).

``REKA_NB_DISPLAY=final`` is for nbval, which records only the first version of an updated
output: the strip of thumbnails is the live output, the answer streams into it and it returns
to the thumbnails at the end, and the final answer is published as an ordinary output below
(without images there is nothing to stream into, and only the final answer is published). A
notebook saved this way shows what a live run leaves: the images, then the finished answer.
"""

from __future__ import annotations

import base64
import html
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._exceptions import ConfigurationError
from ..answer import Description, data_fields, fields_table
from ..images import THUMBNAIL_SIDE, Media
from ..images.markup import WRAP_STYLE, file_name, thumbnail_img
from .markdown import CURSOR, close_fences, escape_markdown, wrap_long_words
from .shown import shown_once
from .throttle import Throttle

__all__ = [
    "MODES",
    "NotebookPresenter",
    "can_update_displays",
    "display_mode",
    "failed_bundle",
    "final_bundle",
    "images_bundle",
    "notebook_presenter",
    "shown_once",
    "streaming_bundle",
    "waiting_bundle",
]

MODES = ("live", "final")
#: Bytes a second the updates of one answer may use: half of Jupyter's default iopub limit.
DEFAULT_BYTES_PER_SECOND = 500_000

Bundle = dict[str, str]


def can_update_displays() -> bool:
    """True inside a Jupyter kernel (a frontend can update outputs); False in a terminal."""
    ipython = sys.modules.get("IPython")
    zmqshell = sys.modules.get("ipykernel.zmqshell")
    if ipython is None or zmqshell is None:
        return False
    shell = ipython.get_ipython()
    return isinstance(shell, zmqshell.ZMQInteractiveShell) and shell.kernel is not None


def notebook_presenter(raw: bool = False) -> NotebookPresenter | None:
    """A NotebookPresenter where a frontend can update outputs, else None (for _answer's hook)."""
    return NotebookPresenter(raw=raw) if can_update_displays() else None


def display_mode() -> str:
    """``REKA_NB_DISPLAY`` read now: ``live`` (the default) or ``final`` (for nbval)."""
    mode = os.environ.get("REKA_NB_DISPLAY", "").strip().lower() or "live"
    if mode not in MODES:
        raise ConfigurationError(f"REKA_NB_DISPLAY must be 'live' or 'final', not {mode!r}")
    return mode


# -- what is shown (pure functions) -----------------------------------------------------------


def waiting_bundle(model: str, images: Sequence[Media]) -> Bundle:
    """Before the first token: the model asked and what about (shown by images_bundle)."""
    about = _about(images)
    return {
        "text/plain": f"Asking {model}{about}…",
        "text/markdown": f"*Asking **{escape_markdown(model)}**{about}…*",
    }


def images_bundle(images: Sequence[Media]) -> Bundle:
    """The images (and videos) asked about as a strip of thumbnails, for above the answer:
    each fits a box of at most 256 px keeping its aspect ratio (the strip aligns them at the
    top instead of stretching them to the tallest one), on a checkerboard so a transparent
    or black image shows on a dark background, with its number and name below it."""
    plain = " ".join(f"[{image.kind} {n}: {image.source}]" for n, image in enumerate(images, 1))
    tags = "".join(_figure(number, image) for number, image in enumerate(images, 1))
    strip = "display:flex;flex-wrap:wrap;align-items:flex-start;gap:8px"
    return {
        "text/plain": plain,
        "text/html": f'<div class="reka-nb-strip" style="{strip}">{tags}</div>',
    }


def _figure(number: int, image: Media) -> str:
    """One thumbnail and its caption (number and name, wrapped when long)."""
    tag = _video_tag(number, image) if image.kind == "video" else _thumbnail_tag(number, image)
    caption = html.escape(f"{number}. {_name(image)}")
    box = (
        f"margin:0;display:flex;flex-direction:column;align-items:flex-start;gap:2px;"
        f"max-width:{THUMBNAIL_SIDE + 6}px"  # the thumbnail with its frame and border
    )
    return (
        f'<figure style="{box}">{tag}'
        f'<figcaption style="font-size:0.85em;{WRAP_STYLE}">{caption}</figcaption></figure>'
    )


def _about(images: Sequence[Media]) -> str:
    """`` about 2 images``, `` about 1 video``, `` about 1 image and 1 video`` (or nothing)."""
    counts = [(sum(1 for i in images if i.kind == kind), kind) for kind in ("image", "video")]
    said = [f"{n} {kind}{'s' if n != 1 else ''}" for n, kind in counts if n]
    return f" about {' and '.join(said)}" if said else ""


def _name(image: Media) -> str:
    """What a thumbnail's alt text and caption call it: the file's name (a URL's last part)."""
    url = image.url if image.data is None else None
    return file_name(url or image.source)


def _thumbnail_tag(number: int, image: Media) -> str:
    title = f"image {number}: {image.source}"
    alt = _name(image)
    if image.data is None:  # a remote URL: the browser fetches it, the notebook stays small
        return thumbnail_img(image.url or "", alt, THUMBNAIL_SIDE, title)
    try:
        thumb = image.thumbnail(THUMBNAIL_SIDE)
    except Exception:  # a thumbnail is a courtesy: never fail the call for it
        thumb = None
    if thumb is None:
        return f'<span title="{html.escape(title, quote=True)}">[image {number}]</span>'
    data, mime = thumb
    src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return thumbnail_img(src, alt, THUMBNAIL_SIDE, title)


def _video_tag(number: int, video: Media) -> str:
    """A poster frame when a decoder is installed, else a placeholder: duration and size."""
    summary = video.summary() if hasattr(video, "summary") else "video"
    label = f"video {number}: {summary}"
    try:
        poster = video.thumbnail(THUMBNAIL_SIDE)
    except Exception:  # a poster is a courtesy: never fail the call for it
        poster = None
    if poster is None:
        quoted = html.escape(label, quote=True)
        return f'<span title="{quoted}">[▶ {quoted}]</span>'
    data, mime = poster
    src = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    return thumbnail_img(src, label, THUMBNAIL_SIDE, label)


def streaming_bundle(text: str, raw: bool = False) -> Bundle:
    """The text so far with a cursor; an open code fence is closed so the rest renders."""
    if raw:
        return {"text/plain": text + CURSOR}
    return {
        "text/plain": text + CURSOR,
        "text/markdown": wrap_long_words(close_fences(text + CURSOR)),
    }


def fields_bundle(
    names: Sequence[str], fields: Mapping[str, Any], *, arriving: bool = False
) -> tuple[str, str]:
    """(plain, markdown) of a key/value table (``answer.fields_table``); while ``arriving``,
    a field not yet read shows the cursor."""
    return fields_table(names, fields, CURSOR if arriving else "")


def streaming_fields_bundle(
    names: Sequence[str], fields: Mapping[str, Any], raw: bool = False
) -> Bundle:
    """The fields of a structured answer read so far (never its raw braces)."""
    plain, markdown = fields_bundle(names, fields, arriving=True)
    if raw:
        return {"text/plain": plain}
    return {"text/plain": plain, "text/markdown": markdown}


def final_bundle(description: Description, raw: bool = False, timing: bool = True) -> Bundle:
    """The complete answer, rendered as Markdown (a structured one as a key/value table), and
    a footer: model, tokens, seconds."""
    footer = description.footer() if timing else _untimed(description).footer()
    if getattr(description, "data", None) is not None:
        plain_table, markdown_table = fields_bundle((), data_fields(description.data))
        plain = f"{plain_table}\n\n{footer}"
        if raw:
            return {"text/plain": plain}
        return {
            "text/plain": plain,
            "text/markdown": f"{markdown_table}\n\n---\n\n*{escape_markdown(footer)}*",
        }
    text = description.text
    plain = f"{text}\n\n{footer}" if text else footer
    if raw:
        return {"text/plain": plain}
    body = close_fences(text)
    markdown = (
        f"{body}\n\n---\n\n*{escape_markdown(footer)}*" if text else f"*{escape_markdown(footer)}*"
    )
    return {"text/plain": plain, "text/markdown": wrap_long_words(markdown)}


def failed_bundle(text: str, error: BaseException, raw: bool = False) -> Bundle:
    """The partial text and a mark where it stopped: interrupted, or the error's type.

    The error's message is not repeated here: it is the cell's error, shown right below.
    """
    if isinstance(error, KeyboardInterrupt):
        mark = "— interrupted"
    else:
        mark = f"— stopped: {type(error).__name__}"
    plain = f"{text}\n\n{mark}" if text else mark
    if raw:
        return {"text/plain": plain}
    body = close_fences(text)
    markdown = f"{body}\n\n**{escape_markdown(mark)}**" if text else f"**{escape_markdown(mark)}**"
    return {"text/plain": plain, "text/markdown": wrap_long_words(markdown)}


def _untimed(description: Description) -> Description:
    return Description(
        "",
        model=description.model,
        usage=description.usage,
        finish_reason=description.finish_reason,
        model_info=description.model_info,
    )


def bundle_size(bundle: Bundle) -> int:
    """Bytes of a bundle as JSON: what one display message costs on the wire, near enough."""
    return len(json.dumps(bundle, ensure_ascii=False).encode("utf-8"))


# -- the presenter ----------------------------------------------------------------------------


class NotebookPresenter:
    """Shows one answer in one notebook output, updated in place (the Presenter protocol).

    ``rate`` caps updates a second after the first token; ``raw`` shows plain text instead
    of Markdown; ``thumbnails`` shows the images above the answer. ``mode`` is ``live``
    or ``final`` (default: ``REKA_NB_DISPLAY``). ``messages`` and ``bytes`` count what was
    published.
    """

    def __init__(
        self,
        rate: float = 10.0,
        raw: bool = False,
        thumbnails: bool = True,
        *,
        max_bytes_per_second: float = DEFAULT_BYTES_PER_SECOND,
        mode: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes_per_second <= 0:
            raise ValueError(f"max_bytes_per_second must be above 0, not {max_bytes_per_second}")
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be 'live' or 'final', not {mode!r}")
        self.raw = raw
        self.thumbnails = thumbnails
        self.mode = mode or display_mode()
        self.max_bytes_per_second = max_bytes_per_second
        self._throttle = Throttle(rate, clock)
        self._per_second = max(2, int(rate))
        self._recent: deque[float] = deque()  # times of the messages of the last second
        self._clock = clock
        self._handle: Any = None
        self._live: Bundle | None = None  # what the updated output shows first and last
        self._parts: list[str] = []  # the text so far, joined only when shown
        self._length = 0
        self._shown_length: int | None = None  # how much of it the output shows
        self._quiet_until = 0.0  # no update before this time: the byte budget
        self.messages = 0
        self.bytes = 0
        # Held-back text is flushed by a timer; only on the real clock (tests drive fake ones).
        self._trailing = clock is time.monotonic
        self._lock = threading.Lock()  # the timer thread and the caller publish in turn
        self._timer: threading.Timer | None = None
        self._settled = False
        self._fields: tuple[str, ...] | None = None  # a structured answer's field names
        self._partial: Any = None  # its PartialObject, fed what arrived since last shown
        self._fed = 0

    def start(self, *, model: str, prompt: str, images: Sequence[Media]) -> None:
        with self._lock:
            strip = images_bundle(images) if self.thumbnails and images else None
            self._handle = None
            self._parts, self._length, self._shown_length = [], 0, None
            self._settled = False
            self._fields, self._partial, self._fed = None, None, 0
            if self.mode == "final":  # the strip is the live output (nothing live without one)
                self._live = strip
            else:
                if strip is not None:
                    self._publish(strip, new=True)
                self._live = waiting_bundle(model, images)
            if self._live is not None:
                self._publish(self._live)

    def expect_fields(self, names: Sequence[str]) -> None:
        """The answer is structured: show its fields filling in, not the JSON text."""
        from ..protocol.json_text import PartialObject

        with self._lock:
            self._fields, self._partial, self._fed = tuple(names), PartialObject(), 0

    def update(self, delta: str, text: str | None = None) -> None:
        """Take new text (``text``, when given, replaces the whole text so far)."""
        with self._lock:
            if text is not None:
                self._parts, self._length = [text], len(text)
            else:
                self._parts.append(delta)
                self._length += len(delta)
            if self._live is None:
                return
            if self._shown_length is None:  # the first token: at once
                self._throttle.ready()
            elif not self._room() or not self._throttle.ready():
                self._flush_later()
                return
            self._show_text()

    def _text(self) -> str:
        """The text so far: joined here, at most once per update shown (not per token)."""
        if len(self._parts) > 1:
            self._parts[:] = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    def _show_text(self) -> None:
        self._shown_length = self._length
        text = self._text()
        if self._fields is not None and self._partial is not None:
            if len(text) < self._fed:  # the text was replaced: read it again
                from ..protocol.json_text import PartialObject

                self._partial, self._fed = PartialObject(), 0
            fields = self._partial.feed(text[self._fed :])
            self._fed = len(text)
            bundle = streaming_fields_bundle(self._fields, fields, self.raw)
        else:
            bundle = streaming_bundle(text, self.raw)
        size = self._publish(bundle)
        self._quiet_until = self._clock() + size / self.max_bytes_per_second

    def _flush_later(self) -> None:
        """Show the held-back text when an update is due again, unless more text comes first."""
        if not self._trailing or self._timer is not None:
            return
        now = self._clock()
        slot = 1.0 - (now - self._recent[0]) if len(self._recent) >= self._per_second - 1 else 0
        delay = max(self._throttle.remaining(), self._quiet_until - now, slot, 0.01)
        self._timer = threading.Timer(delay, self._flush)
        self._timer.daemon = True
        self._timer.start()

    def _flush(self) -> None:
        with self._lock:
            self._timer = None
            if self._settled or not self.pending:
                return
            if self._room() and self._throttle.ready():
                self._show_text()
            else:
                self._flush_later()

    def _room(self) -> bool:
        """Room for an update now: the byte budget allows it, and one message of the second's
        ``rate`` stays free for the final answer, which is never held back."""
        now = self._clock()
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        return now >= self._quiet_until and len(self._recent) < self._per_second - 1

    @property
    def pending(self) -> bool:
        """True when text has arrived that the output does not show yet."""
        return self._shown_length != self._length

    def finish(self, description: Description) -> None:
        self._settle(final_bundle(description, self.raw))
        check = shown_once()
        if check is not None:
            description.mark_shown(check)

    def fail(self, error: BaseException, partial_text: str) -> None:
        self._settle(failed_bundle(partial_text or self._text(), error, self.raw))

    def _settle(self, bundle: Bundle) -> None:
        """The last state: in place, or (final mode) as a new output below the thumbnails."""
        with self._lock:
            self._settled = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self.mode == "final":
                if self._live is not None:
                    self._publish(self._live)
                self._publish(bundle, new=True)
            else:
                self._publish(bundle)

    def _publish(self, bundle: Bundle, new: bool = False) -> int:
        from IPython.display import display

        if new:
            display(bundle, raw=True)
        elif self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        size = bundle_size(bundle)
        self._recent.append(self._clock())
        self.messages += 1
        self.bytes += size
        return size
