"""What an answer is (Description) and how one is shown while it arrives (Presenter).

This sits below the clients and the notebook: the clients return Descriptions and the notebook
display renders them. Which presenter shows an answer is chosen above (``reka_nb.auto``) and
handed down; where nobody chose one, answers go to stdout.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from .protocol.costs import UsageTotals
from .protocol.models import Model, format_usd
from .protocol.stream import Completion, Usage

if TYPE_CHECKING:
    from .images import Media

__all__ = [
    "DEFAULT_PROMPT",
    "SESSION_USAGE",
    "Description",
    "Presenter",
    "StdoutPresenter",
    "data_fields",
    "escape_markdown",
    "field_text",
    "fields_table",
]

SESSION_USAGE = UsageTotals()
"""Every answer of this process, added up per model (``reka_nb.usage()``, ``%reka usage``)."""

DEFAULT_PROMPT = "What can you see in the image?"
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def escape_markdown(text: str) -> str:
    """Text shown literally in Markdown (model names, file names, footers, field values)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def data_fields(data: Any) -> dict[str, Any]:
    """A structured answer's fields by name (a model instance's, or a dict's)."""
    if hasattr(data, "model_dump"):
        return dict(data.model_dump(mode="json"))
    return dict(data) if isinstance(data, Mapping) else {}


def field_text(value: Any) -> str:
    """A field's value as the key/value table and the results table show it: lists joined by
    commas, objects as JSON, ``true``/``false`` as JSON writes them, nothing for null."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, list):
        return ", ".join(field_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def fields_table(
    names: Sequence[str], fields: Mapping[str, Any], missing: str = ""
) -> tuple[str, str]:
    """(plain, markdown) of a key/value table of a structured answer: each field (``names``
    first, in order, then any other in ``fields``) and its value; a field not in ``fields``
    shows ``missing`` (the notebook's cursor while the answer arrives)."""
    names = list(names) or list(fields)
    names += [n for n in fields if n not in names]
    width = max((len(n) for n in names), default=0)
    plain_rows, md_rows = [], []
    for name in names:
        value = field_text(fields[name]) if name in fields else missing
        plain_rows.append(f"{name.ljust(width)}  {value}")
        cell = escape_markdown(value).replace("\n", " ")
        md_rows.append(f"| **{escape_markdown(name)}** | {cell} |")
    markdown = "| field | value |\n|:--|:--|\n" + "\n".join(md_rows)
    return "\n".join(plain_rows), markdown


class Description(str):
    """An answer: it is the text (a str), and carries what the server said about it.

    Its fields are slots, not a dict per answer: a run of many answers keeps thousands."""

    __slots__ = (
        "_message",
        "_shown_check",
        "cached",
        "data",
        "elapsed",
        "finish_reason",
        "images",
        "model",
        "model_info",
        "prompt",
        "request_id",
        "usage",
    )

    model: str | None
    usage: Usage | None
    finish_reason: str | None
    request_id: str | None
    elapsed: float | None
    prompt: str
    images: tuple[Media, ...]
    _shown_check: Callable[[], bool] | None
    model_info: Model | None
    cached: bool
    data: Any

    def __new__(
        cls,
        text: str,
        *,
        model: str | None = None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        request_id: str | None = None,
        elapsed: float | None = None,
        prompt: str = "",
        images: Sequence[Media] = (),
        message: Mapping[str, Any] | None = None,
        model_info: Model | None = None,
        cached: bool = False,
        data: Any = None,
    ) -> Description:
        self = super().__new__(cls, text)
        self.model = model
        self.usage = usage
        self.finish_reason = finish_reason
        self.request_id = request_id
        self.elapsed = elapsed
        self.prompt = prompt
        self.images = tuple(images)
        self.message = message  # type: ignore[assignment] # the user turn sent (follow-ups)
        self.model_info = model_info  # what the server said of the model asked: its prices
        self.cached = cached  # True when the answer came from the answer cache, not the server
        self.data = data  # a structured answer's fields: a model instance, or a dict
        self._shown_check = None
        return self

    @classmethod
    def from_completion(cls, completion: Completion, **extra: Any) -> Description:
        return cls(
            completion.text,
            model=completion.model,
            usage=completion.usage,
            finish_reason=completion.finish_reason,
            request_id=completion.request_id,
            **extra,
        )

    @property
    def message(self) -> dict[str, Any]:
        """The user turn sent, for follow-up questions (empty for an answer kept without
        its images: a run over many keeps no dict for each)."""
        return {} if self._message is None else self._message

    @message.setter
    def message(self, value: Mapping[str, Any] | None) -> None:
        self._message = dict(value) if value else None

    @property
    def text(self) -> str:
        """The answer as a plain str."""
        return str.__str__(self)

    def __repr__(self) -> str:
        if getattr(self, "data", None) is not None:  # its fields, not the JSON text
            data = repr(self.data)
            what = "data=" + (data if len(data) <= 80 else data[:77] + "...")
        else:
            what = repr(self.text if len(self) <= 60 else self.text[:57] + "...")
        return (
            f"Description({what}, model={self.model!r}, finish_reason={self.finish_reason!r}, "
            f"request_id={self.request_id!r})"
        )

    def _repr_markdown_(self) -> str:
        """The answer shown again (a later cell, ``display``): the text, or for a structured
        answer the key/value table its first display showed."""
        if getattr(self, "data", None) is not None:
            return fields_table((), data_fields(self.data))[1]
        return self.text

    def mark_shown(self, check: Callable[[], bool]) -> None:
        """Called by the presenter that showed this answer. While ``check()`` is True (IPython
        is about to show it as the result of the cell that showed it), it is not shown again."""
        self._shown_check = check

    @property
    def _ipython_display_(self) -> Callable[[], None] | None:
        """IPython looks this up before formatting an object: a method that shows nothing when
        the answer is already on screen (``mark_shown``), else None (formatted as usual)."""
        check = self._shown_check
        if check is not None and check():
            return _show_nothing
        return None

    def __getstate__(self) -> dict[str, Any]:
        # _shown_check belongs to this process's shell: not pickled
        return {name: getattr(self, name) for name in _STATE}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        """From a pickle of this version or of one that kept the fields in a dict."""
        self._shown_check = None
        for name in _STATE:
            setattr(self, name, state.get(name, _DEFAULTS.get(name)))

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        """IPython's text/plain: the text, or a structured answer's fields, one per line."""
        data = getattr(self, "data", None)
        p.text(self.text if data is None else fields_table((), data_fields(data))[0])

    @property
    def cost(self) -> Decimal | None:
        """US dollars: the tokens used times the model's prices, when both are known (exact)."""
        return None if self.model_info is None else self.model_info.cost(self.usage)

    def footer(self) -> str:
        """One line: model, tokens in/out, cost, seconds; "cached" for an answer from the cache."""
        parts = [self.model or "unknown model"]
        if self.usage is not None:
            inp = "?" if self.usage.input_tokens is None else self.usage.input_tokens
            out = "?" if self.usage.output_tokens is None else self.usage.output_tokens
            parts.append(f"{inp} tokens in, {out} out")
        cost = self.cost
        if cost is not None:
            parts.append(format_usd(cost))
        if self.elapsed is not None:
            parts.append(f"{self.elapsed:.1f} s")
        if self.finish_reason not in (None, "stop"):
            parts.append(f"finish: {self.finish_reason}")
        if self.cached:
            parts.append("cached")
        return " · ".join(parts)


#: The fields a pickled answer keeps, and the value of one a pickle lacks.
_STATE = ("message", *(name for name in Description.__slots__ if not name.startswith("_")))
_DEFAULTS: dict[str, Any] = {"prompt": "", "images": (), "cached": False}


def _show_nothing() -> None:
    """The display of an answer that is already on screen."""


class Presenter(Protocol):
    """Shows an answer while it arrives (the terminal, or a notebook display).

    ``update`` gets each piece of new text, not the whole text so far: a presenter that needs
    the whole text keeps it (joining it only when it shows it), so a long answer costs the
    same per word as a short one. A presenter may also have ``expect_fields(names)``: called
    after ``start`` for a structured answer, so it can show the fields filling in.
    """

    def start(self, *, model: str, prompt: str, images: Sequence[Media]) -> None: ...

    def update(self, delta: str) -> None: ...

    def finish(self, description: Description) -> None: ...

    def fail(self, error: BaseException, partial_text: str) -> None: ...


class StdoutPresenter:
    """Streams text to stdout as it arrives: terminals, scripts and plain IPython."""

    def __init__(self, stream: Any = None) -> None:
        self._out = stream
        self._wrote = False

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text)
        out.flush()

    def start(self, *, model: str, prompt: str, images: Sequence[Media]) -> None:
        if self._wrote:  # an answer asked again (a repair turn) starts on a line of its own
            self._write("\n")
        self._wrote = False

    def update(self, delta: str, text: str | None = None) -> None:
        self._write(delta)
        self._wrote = True

    def finish(self, description: Description) -> None:
        if not self._wrote and description.text:
            self._write(description.text)
            self._wrote = True
        if self._wrote:
            self._write("\n")
        self._wrote = False

    def fail(self, error: BaseException, partial_text: str) -> None:
        if self._wrote:
            self._write(" [interrupted]\n" if isinstance(error, KeyboardInterrupt) else " […]\n")
        self._wrote = False
