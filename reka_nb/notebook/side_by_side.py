"""``%%reka --models a,b``: one question asked of several models at once, their answers
streaming side by side, one column per model, in one output updated in place.

Everything is checked before a question is sent: the names (two or more, different, and
known to the model list when one is known: a typo gets the near miss), the key, the images
and each model's inputs (``Question.learn``: a model that cannot take the input is refused by
name). Then each model's ``Question`` goes the one path (``answer_question``) on an
``AsyncRekaClient`` in the background event loop (``background.py``), all at once. The
presenters of the columns only record what arrives; this thread shows it: at most ``RATE``
updates a second, within a byte budget, as HTML columns (text/plain: the same columns in
monospaced text). Each column ends with a footer (tokens, cost, seconds) or its own error, so
one model failing loses nothing of the others. A stop (Ctrl-C, the stop button) cancels every
stream at once, which closes their connections; the text that arrived stays in its column.

Where no frontend updates outputs (a terminal), the columns are printed once, at the end.
With ``REKA_NB_DISPLAY=final`` (nbval) the strip of thumbnails is the live output, returning
to the thumbnails at the end, and the finished columns are an output of their own below.
"""

from __future__ import annotations

import asyncio
import html
import textwrap
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError

from .._exceptions import one_line
from ..answer import Description
from ..batch.options import closest
from ..client.aio import AsyncRekaClient, answer_question
from ..client.question import Question, ask
from ..images.markup import ERROR_STYLE, WRAP_STYLE
from ..protocol.models import ModelList
from .background import background_loop
from .display import (
    DEFAULT_BYTES_PER_SECOND,
    bundle_size,
    can_update_displays,
    data_fields,
    display_mode,
    fields_bundle,
    images_bundle,
)
from .markdown import CURSOR

__all__ = [
    "RATE",
    "Board",
    "Column",
    "ColumnPresenter",
    "ask_side_by_side",
    "board_bundle",
    "check_models",
    "split_models",
]

RATE = 10.0
"""Updates a second at most while the answers stream in."""
STOP_WAIT = 1.0
"""Seconds a stop waits for the cancelled streams to say where they stopped."""
PLAIN_WIDTH = 100
"""Characters of a line of the text/plain columns, separators included."""

Bundle = dict[str, str]
Results = dict[str, Any]  # model -> Description, or the error that ended its answer


# -- the names --------------------------------------------------------------------------------


def split_models(value: str) -> list[str]:
    """The names of ``--models a,b``: two or more, each once (else a UsageError)."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    if len(names) < 2:
        raise UsageError(f"--models needs two or more models separated by commas, not {value!r}")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise UsageError(f"--models names {name!r} twice; name each model once")
        seen.add(name)
    return names


def check_models(names: Sequence[str], known: ModelList | None) -> None:
    """Refuse a name the model list does not hold, with the near miss (when a list is known:
    local servers list none, and then the server answers for each model in its column)."""
    if not known:
        return
    ids = known.ids
    for name in names:
        if known.get(name) is None:
            hint = closest(name, ids)
            near = f" (did you mean {hint}?)" if hint else ""
            raise UsageError(
                f"--models: there is no model {name!r}{near}; %reka models lists the models "
                "your key can use"
            )


# -- what is shown (pure functions) -----------------------------------------------------------


@dataclass
class Column:
    """One model's answer as it arrives: ``state`` is waiting, streaming, done, failed or
    interrupted."""

    model: str
    parts: list[str] = field(default_factory=list)  # the text so far, joined when shown
    state: str = "waiting"
    description: Description | None = None
    error: BaseException | None = None
    fields: tuple[str, ...] | None = None  # a structured answer's field names

    @property
    def text(self) -> str:
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def copy(self) -> Column:
        return Column(
            self.model, [self.text], self.state, self.description, self.error, self.fields
        )

    @property
    def ended(self) -> bool:
        return self.state in ("done", "failed", "interrupted")

    def footer(self) -> str:
        """Tokens, cost and seconds (the model is the column's heading); the error's line."""
        if self.state == "interrupted":
            return "— interrupted"
        if self.state == "failed":
            error = self.error
            name = "error" if error is None else type(error).__name__
            message = "" if error is None else str(error)
            return f"— stopped: {name}: {message}" if message else f"— stopped: {name}"
        if self.description is None:
            return ""
        parts = self.description.footer().split(" · ")[1:]  # the first one is the model
        return " · ".join(parts)

    def body(self) -> tuple[str, str | None]:
        """(the text to show, an HTML table for a structured answer's fields, or None)."""
        if self.state == "waiting":
            return "Asking…", None
        described = self.description
        if self.state == "done" and described is not None:
            if described.data is None:
                return described.text, None
            plain, _ = fields_bundle((), data_fields(described.data))
            return plain, _fields_html(data_fields(described.data))
        if self.fields is not None:
            from ..protocol.json_text import PartialObject

            read = PartialObject().feed(self.text)
            arriving = self.state == "streaming"
            plain, _ = fields_bundle(self.fields, read, arriving=arriving)
            return plain, _fields_html(read, self.fields, arriving=arriving)
        return self.text + (CURSOR if self.state == "streaming" else ""), None


def _fields_html(
    fields: Mapping[str, Any], names: Sequence[str] = (), *, arriving: bool = False
) -> str:
    """A structured answer's fields as a small key/value table."""
    order = list(names) or list(fields)
    order += [n for n in fields if n not in order]
    rows = []
    for name in order:
        one = {name: fields[name]} if name in fields else {}
        value = fields_bundle((name,), one, arriving=arriving)[0][len(name) + 2 :]
        rows.append(
            f'<tr><th style="text-align:left;padding-right:8px">{html.escape(name)}</th>'
            f'<td style="text-align:left">{html.escape(value)}</td></tr>'
        )
    return f'<table class="reka-nb-fields">{"".join(rows)}</table>'


def board_bundle(columns: Sequence[Column], raw: bool = False) -> Bundle:
    """The columns: HTML side by side (text/plain: the same in monospaced columns)."""
    plain = plain_columns(columns)
    if raw:
        return {"text/plain": plain}
    return {"text/plain": plain, "text/html": html_columns(columns)}


def html_columns(columns: Sequence[Column]) -> str:
    """One grid cell per model: its name, the text as written (pre-wrapped), the footer."""
    cells = []
    for column in columns:
        text, table = column.body()
        body = table if table is not None else html.escape(text)
        style = "font-style:italic;opacity:0.75;" if column.state == "waiting" else ""
        footer = html.escape(column.footer())
        footer_style = "font-size:0.85em;opacity:0.8"
        if column.state == "failed":
            footer_style = f"font-size:0.85em;{ERROR_STYLE}"
        cells.append(
            f'<div class="reka-nb-column" data-model="{html.escape(column.model, quote=True)}" '
            f'data-state="{column.state}" style="min-width:0;padding:6px 8px;'
            'border:1px solid var(--jp-border-color1,rgba(128,128,128,0.5));border-radius:4px">'
            f'<div class="reka-nb-model" style="font-weight:bold;margin-bottom:4px">'
            f"{html.escape(column.model)}</div>"
            f'<div class="reka-nb-text" style="white-space:pre-wrap;{WRAP_STYLE};{style}">'
            f"{body}</div>"
            f'<div class="reka-nb-footer" style="margin-top:6px;{footer_style}">{footer}</div>'
            "</div>"
        )
    grid = (
        f"display:grid;grid-template-columns:repeat({len(columns)},minmax(0,1fr));"
        "gap:10px;align-items:start"
    )
    return f'<div class="reka-nb-side-by-side" style="{grid}">{"".join(cells)}</div>'


def plain_columns(columns: Sequence[Column], width: int = PLAIN_WIDTH) -> str:
    """The columns in monospaced text: headings, a rule, each text wrapped to its column,
    then the footers, separated by `` │ ``."""
    count = len(columns)
    inner = max(12, (width - 3 * (count - 1)) // count)
    blocks = []
    for column in columns:
        text, _ = column.body()
        lines = _wrap(text, inner)
        footer = column.footer()
        if footer:
            lines += ["", *_wrap(footer, inner)]
        blocks.append(lines)
    height = max(len(block) for block in blocks)
    rows = [
        " │ ".join(column.model[:inner].ljust(inner) for column in columns).rstrip(),
        "─┼─".join("─" * inner for _ in columns),
    ]
    for index in range(height):
        cells = [block[index] if index < len(block) else "" for block in blocks]
        rows.append(" │ ".join(cell.ljust(inner) for cell in cells).rstrip())
    return "\n".join(rows)


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines += textwrap.wrap(paragraph, width, break_long_words=True) or [""]
    return lines


# -- while the answers arrive -----------------------------------------------------------------


class Board:
    """The columns, written by the presenters (the event loop's thread) and read by the thread
    that shows them; ``changed`` is set at each change."""

    def __init__(self, models: Sequence[str]) -> None:
        self.columns = [Column(model) for model in models]
        self.lock = threading.Lock()
        self.changed = threading.Event()
        self.all_ended = threading.Event()

    def snapshot(self) -> list[Column]:
        with self.lock:
            self.changed.clear()
            return [column.copy() for column in self.columns]

    def edit(self, index: int, change: Callable[[Column], None]) -> None:
        with self.lock:
            change(self.columns[index])
            if all(column.ended for column in self.columns):
                self.all_ended.set()
        self.changed.set()

    def end(self, index: int, *, description: Description | None = None, error: Any = None) -> None:
        """A column's question ended: answered, failed, or stopped (``KeyboardInterrupt``)."""

        def ended(column: Column) -> None:
            if description is not None:
                column.state, column.description = "done", description
                column.parts = [description.text]
            elif isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
                column.state, column.error = "interrupted", KeyboardInterrupt()
            else:
                column.state, column.error = "failed", error

        self.edit(index, ended)

    def stop_unended(self) -> None:
        """A stop: every column still going says it was interrupted, keeping its text."""
        with self.lock:
            for column in self.columns:
                if not column.ended:
                    column.state, column.error = "interrupted", KeyboardInterrupt()
            self.all_ended.set()
        self.changed.set()


class ColumnPresenter:
    """The Presenter of one column: records what arrives (it never shows anything itself)."""

    def __init__(self, board: Board, index: int) -> None:
        self.board = board
        self.index = index

    def start(self, *, model: str, prompt: str, images: Sequence[Any]) -> None:
        def started(column: Column) -> None:  # a repair turn's answer starts afresh
            column.parts, column.state = [], "waiting"

        self.board.edit(self.index, started)

    def expect_fields(self, names: Sequence[str]) -> None:
        def structured(column: Column) -> None:
            column.fields = tuple(names)

        self.board.edit(self.index, structured)

    def update(self, delta: str, text: str | None = None) -> None:
        def grown(column: Column) -> None:
            if text is not None:
                column.parts = [text]
            else:
                column.parts.append(delta)
            column.state = "streaming"

        self.board.edit(self.index, grown)

    def finish(self, description: Description) -> None:
        pass  # the column ends in Board.end, with the answer's cost and seconds

    def fail(self, error: BaseException, partial_text: str) -> None:
        def kept(column: Column) -> None:
            if partial_text:
                column.parts = [partial_text]

        self.board.edit(self.index, kept)


@dataclass
class _Output:
    """Where the columns go: one display updated in place (``live``), or printed at the end.
    In ``final`` mode the live output is the strip of thumbnails (None without images)."""

    live: bool
    raw: bool
    mode: str
    strip: Bundle | None
    handle: Any = None
    last: float = 0.0
    quiet_until: float = 0.0
    sent: list[int] = field(default_factory=list)

    def begin(self, columns: Sequence[Column]) -> None:
        if not self.live:
            return
        if self.mode == "final":
            if self.strip is not None:
                self._show(self.strip)
            return
        if self.strip is not None:
            _display(self.strip)
        self._show(board_bundle(columns, self.raw))

    def due(self) -> float:
        """Seconds until an update may be sent (0: now)."""
        now = time.monotonic()
        return max(0.0, self.last + 1.0 / RATE - now, self.quiet_until - now)

    def update(self, columns: Sequence[Column]) -> None:
        if self.live and (self.mode == "live" or self.strip is not None):
            self._show(board_bundle(columns, self.raw))

    def end(self, columns: Sequence[Column]) -> None:
        bundle = board_bundle(columns, self.raw)
        if not self.live:
            print(bundle["text/plain"])
        elif self.mode == "final":
            if self.strip is not None:
                self._show(self.strip)
            _display(bundle)
        else:
            self._show(bundle)

    def _show(self, bundle: Bundle) -> None:
        if self.handle is None:
            self.handle = _display(bundle, display_id=True)
        else:
            self.handle.update(bundle, raw=True)
        size = bundle_size(bundle)
        self.sent.append(size)
        self.last = time.monotonic()
        self.quiet_until = self.last + size / DEFAULT_BYTES_PER_SECOND


def _display(bundle: Bundle, **options: Any) -> Any:
    from IPython.display import display

    return display(bundle, raw=True, **options)


# -- the run ----------------------------------------------------------------------------------


def ask_side_by_side(
    client: AsyncRekaClient,
    models: Sequence[str],
    images: Any,
    prompt: str,
    *,
    stream: bool = True,
    cache: bool = False,
    raw: bool = False,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
) -> Results:
    """Ask ``prompt`` about ``images`` of every model at once and show the answers side by
    side; return each model's Description (or the error that ended its answer).

    Raises UsageError for an unknown name and the question's own errors (no key, a bad
    image, a model that cannot take the input) before anything is sent; raises the first
    model's error when no model answered, and a one-line KeyboardInterrupt on a stop.
    """
    settings = client.settings(models[0])
    settings.require_key()
    loop = background_loop()
    known = asyncio.run_coroutine_threadsafe(_model_list(client, models[0]), loop).result()
    check_models(models, known)
    board = Board(models)
    questions: list[Question] = []
    for index, model in enumerate(models):
        question = ask(
            client,
            images or None,
            prompt,
            model=model,
            show=ColumnPresenter(board, index),
            system=system,
            **dict(params or {}),
        )
        question.learn(None if known is None else known.get(model), known)
        questions.append(question)
    live = can_update_displays()
    strip = images_bundle(questions[0].images) if live and questions[0].images else None
    output = _Output(live, raw, display_mode() if live else "live", strip)
    output.begin(board.snapshot())
    run = asyncio.run_coroutine_threadsafe(
        _answer_all(client, questions, board, cache, stream), loop
    )
    try:
        while not board.all_ended.is_set() and not run.done():
            board.changed.wait(0.1)
            if board.changed.is_set() and not board.all_ended.is_set():
                time.sleep(output.due())
                output.update(board.snapshot())
        run.result()  # raises only a failure of the run itself, not of a model's answer
    except KeyboardInterrupt as exc:
        run.cancel()
        board.all_ended.wait(STOP_WAIT)
        board.stop_unended()
        output.end(board.snapshot())
        raise one_line(exc, "interrupted; the text that arrived is kept above") from None
    columns = board.snapshot()
    output.end(columns)
    results: Results = {
        c.model: c.error if c.description is None else c.description for c in columns
    }
    if all(c.description is None for c in columns):
        error = columns[0].error
        if isinstance(error, BaseException):
            raise error
    return results


async def _model_list(client: AsyncRekaClient, model: str) -> ModelList | None:
    """The model list as questions find it (``model_info``: in memory, on disk, or one lookup
    within its deadline, unless the lookup is off): None when none is known."""
    await client.model_info(model)
    known: ModelList | None = client.known_models(client.settings(model))
    return known


async def _answer_all(
    client: AsyncRekaClient,
    questions: Sequence[Question],
    board: Board,
    cache: bool,
    stream: bool,
) -> None:
    """Every question at once; each column ends with its answer or its own error."""

    async def one(index: int, question: Question) -> None:
        try:
            description = await answer_question(client, question, cache=cache, stream=stream)
        except asyncio.CancelledError:
            board.end(index, error=KeyboardInterrupt())
            raise
        except Exception as exc:  # this model's failure: shown in its column
            board.end(index, error=exc)
        else:
            board.end(index, description=description)

    await asyncio.gather(*(one(i, q) for i, q in enumerate(questions)))
