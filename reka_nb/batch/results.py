"""What a run over many images returns: one ``Result`` per item, in input order.

``Results.records()`` gives plain dicts with exactly the columns of ``to_pandas()``, so a
caller (a CLI writing JSON lines, a cluster runner) needs no pandas; pandas is imported only
by ``to_pandas()``.

Structured runs (a schema) add one column per schema field, after ``image``: typed in
``to_pandas()`` (``batch/columns.py``), plain JSON values in ``records()``. A field named like
one of the table's own columns (``text``, ``model``, ``error``, ...) is the column
``field_<name>`` instead, so neither is lost (see ``field_columns``).
"""

from __future__ import annotations

import base64
import html
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, overload

from ..answer import Description, field_text
from ..images.inputs import ReadAgain, thumbnail_again
from ..images.markup import ERROR_STYLE, WRAP_STYLE, file_name, thumbnail_img
from ..protocol.models import format_usd
from ..protocol.stream import Usage
from .wording import counted

if TYPE_CHECKING:
    import pandas

    from ..protocol.schema import Schema
    from .score import Score

__all__ = [
    "COLUMNS",
    "HTML_ROWS",
    "THUMBNAIL",
    "Result",
    "Results",
    "field_columns",
    "results_table",
]

#: The longest side of a row's thumbnail, in pixels.
THUMBNAIL = 64
#: Rows of the HTML table of a notebook (a table of thousands of thumbnails helps no one).
HTML_ROWS = 100

#: The columns of ``Results.to_pandas()`` and the keys of each ``Results.records()`` row.
COLUMNS = (
    "image",
    "text",
    "model",
    "input_tokens",
    "output_tokens",
    "finish_reason",
    "request_id",
    "cached",
    "seconds",
    "error",
)


ThumbnailMaker = Callable[[], "tuple[bytes, str] | None"]


def field_columns(schema: Schema | None) -> dict[str, str]:
    """Each schema field's column name: the field's own name, or ``field_<name>`` when that
    is one of the table's columns (``COLUMNS``) or another field's column."""
    if schema is None:
        return {}
    taken = set(COLUMNS) | set(schema.field_names)
    out: dict[str, str] = {}
    for name in schema.field_names:
        column = name
        if name in COLUMNS:
            column = f"field_{name}"
            while column in taken:
                column = f"field_{column}"
            taken.add(column)
        out[name] = column
    return out


def _columns(schema: Schema | None) -> list[str]:
    """The table's columns: ``image``, the fields' columns, then the rest of ``COLUMNS``."""
    return [COLUMNS[0], *field_columns(schema).values(), *COLUMNS[1:]]


@dataclass(frozen=True, init=False, eq=False)
class Result:
    """One item's outcome: its answer (``description``) or what went wrong (``error``).

    ``item`` is what was given, ``source`` its short name (a path, a URL, ``#3``),
    ``index`` its position in the input, ``seconds`` the time it took, ``thumbnail`` a small
    JPEG or PNG of its first image (bytes, mime type) for tables, made when first read if it
    was given as a function (``images.deferred_thumbnail``) or as ``images.READ_AGAIN``: a run
    whose table is never shown makes none. The answer holds no image bytes, and a row's
    fields are slots, so a run's memory grows little with the number of its images and not
    with their size.
    """

    __slots__ = ("_thumbnail", "description", "error", "index", "item", "seconds", "source")

    index: int
    item: Any
    source: str
    description: Description | None
    error: BaseException | None
    seconds: float
    _thumbnail: tuple[bytes, str] | ThumbnailMaker | ReadAgain | None

    def __init__(
        self,
        index: int,
        item: Any,
        source: str,
        description: Description | None = None,
        error: BaseException | None = None,
        seconds: float = 0.0,
        thumbnail: tuple[bytes, str] | ThumbnailMaker | ReadAgain | None = None,
    ) -> None:
        setattr_ = object.__setattr__  # frozen: set once, here
        setattr_(self, "index", index)
        setattr_(self, "item", item)
        setattr_(self, "source", source)
        setattr_(self, "description", description)
        setattr_(self, "error", error)
        setattr_(self, "seconds", seconds)
        setattr_(self, "_thumbnail", thumbnail)

    def _compared(self) -> tuple[Any, ...]:
        return (self.index, self.item, self.source, self.description, self.error, self.seconds)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._compared())

    @property  # type: ignore[misc]
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]
        """The fields by name (``vars(result)``), the thumbnail as it was given."""
        return {name: getattr(self, name) for name in _RESULT_FIELDS}

    @property
    def thumbnail(self) -> tuple[bytes, str] | None:
        """Bytes and mime type of the row's thumbnail (None without one), made at first read
        when it was given as a function or as ``READ_AGAIN`` (from the row's ``item``); then
        kept (two threads at once make it twice)."""
        value = self._thumbnail
        if value is None or isinstance(value, tuple):
            return value
        made = thumbnail_again(self.item, THUMBNAIL) if isinstance(value, ReadAgain) else value()
        object.__setattr__(self, "_thumbnail", made)
        return made

    @property
    def ok(self) -> bool:
        return self.description is not None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles; an item that cannot (an open file, a live object) goes as its name."""
        item = self.item
        try:
            pickle.dumps(item)
        except Exception:
            item = self.source
        fields = (self.description, self.error, self.seconds, self.thumbnail)
        return (Result, (self.index, item, self.source, *fields))

    @property
    def text(self) -> str | None:
        return None if self.description is None else self.description.text

    @property
    def cached(self) -> bool:
        return bool(self.description is not None and self.description.cached)

    def __repr__(self) -> str:
        if self.description is not None:
            text = self.description.text
            text = text if len(text) <= 50 else text[:47] + "..."
            what = f"text={text!r}"
            if self.cached:
                what += ", cached=True"
        else:
            what = f"error={type(self.error).__name__}: {self.error}"
        return f"Result({self.index}, {self.source!r}, {what})"

    def record(self, schema: Schema | None = None) -> dict[str, Any]:
        """This row as a dict with exactly the ``COLUMNS`` keys (and, with ``schema``, its
        fields' columns after ``image``, plain JSON values)."""
        d = self.description
        usage = d.usage if d is not None else None
        if schema is not None:
            from .columns import field_values

            names = field_columns(schema)
            values = field_values(schema, None if d is None else d.data)
            row = {"image": self.source, **{names[k]: v for k, v in values.items()}}
            row.update(self.record())
            return row
        return {
            "image": self.source,
            "text": None if d is None else d.text,
            "model": None if d is None else d.model,
            "input_tokens": None if usage is None else usage.input_tokens,
            "output_tokens": None if usage is None else usage.output_tokens,
            "finish_reason": None if d is None else d.finish_reason,
            "request_id": getattr(self.error, "request_id", None) if d is None else d.request_id,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
        }


_RESULT_FIELDS = ("index", "item", "source", "description", "error", "seconds", "_thumbnail")


class Results(Sequence[Result]):
    """The outcome of ``describe_many``: a sequence of ``Result`` in input order.

    ``complete`` is False when the run stopped early (interrupted, out of credits); it then
    holds the items that finished. ``errors`` lists the failed items, ``usage`` the tokens
    this run spent (answers from the cache cost nothing), ``to_pandas()`` a DataFrame.
    """

    def __init__(
        self,
        results: Sequence[Result],
        *,
        total: int | None = None,
        retry: Callable[[set[int]], Results] | None = None,
        stopped: str | None = None,
        schema: Schema | None = None,
    ) -> None:
        self._results = sorted(results, key=lambda r: r.index)
        self.total = len(self._results) if total is None else total
        self._retry = retry
        self.stopped = stopped  # why the run ended early (max_cost), or None
        self.schema = schema  # a structured run's schema: a column per field

    @overload
    def __getitem__(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: slice) -> list[Result]: ...

    def __getitem__(self, index: int | slice) -> Result | list[Result]:
        return self._results[index]

    def __len__(self) -> int:
        return len(self._results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self._results)

    @property
    def complete(self) -> bool:
        """True when every item given has a result."""
        return len(self._results) == self.total

    @property
    def errors(self) -> list[Result]:
        """The items that failed, in input order."""
        return [r for r in self._results if r.error is not None]

    @property
    def texts(self) -> list[str | None]:
        """Each item's answer text (None where it failed)."""
        return [r.text for r in self._results]

    @property
    def usage(self) -> Usage:
        """Tokens this run spent, summed over the answers asked (not those from the cache)."""
        inp = out = 0
        for r in self._results:
            if r.description is None or r.cached or r.description.usage is None:
                continue
            inp += r.description.usage.input_tokens or 0
            out += r.description.usage.output_tokens or 0
        return Usage(input_tokens=inp, output_tokens=out)

    @property
    def cost(self) -> Decimal | None:
        """US dollars this run spent (exact): the answers asked whose cost is known (answers
        from the cache cost nothing); None when answers were asked but none has a price."""
        asked = [r.description for r in self._results if r.description is not None and not r.cached]
        costs = [d.cost for d in asked if d.cost is not None]
        if asked and not costs:
            return None
        return sum(costs, Decimal(0))

    @property
    def cached_count(self) -> int:
        return sum(r.cached for r in self._results)

    @property
    def data(self) -> list[Any]:
        """Each item's structured answer (``Description.data``; None where it failed)."""
        return [None if r.description is None else r.description.data for r in self._results]

    def records(self) -> list[dict[str, Any]]:
        """One dict per row, with exactly the columns of ``to_pandas()`` (no pandas needed):
        the ``COLUMNS``, and a structured run's fields after ``image``."""
        return [r.record(self.schema) for r in self._results]

    def to_pandas(self) -> pandas.DataFrame:
        """A DataFrame with the ``COLUMNS``; pandas is imported here, and only here.

        The token columns are pandas' nullable integers (``Int64``): a failed row has
        ``<NA>`` there and the others keep whole numbers."""
        from .score import need_pandas

        pandas = need_pandas("Results.to_pandas()", instead="Results.records()")
        if self.schema is None:
            frame = pandas.DataFrame(self.records(), columns=list(COLUMNS))
        else:
            from .columns import schema_columns

            records = [r.record() for r in self._results]
            frame = pandas.DataFrame(records, columns=list(COLUMNS))
            typed = schema_columns(self.schema, self.data)
            for name, column in field_columns(self.schema).items():
                frame[column] = typed[name].values
            frame = frame[_columns(self.schema)]
        # nullable integers: a failed row's missing count must not turn 70 into 70.0
        return frame.astype({"input_tokens": "Int64", "output_tokens": "Int64"})

    def __getstate__(self) -> dict[str, Any]:
        """Results pickle (for worker processes, for saving a run). The way to ask again goes
        with them when it can be pickled (its images, its settings; never the key); when it
        cannot, ``retry_failed`` of the copy says why."""
        state = dict(self.__dict__)
        if self._retry is not None:
            try:
                pickle.dumps(self._retry)
            except Exception as exc:  # an open file among the images, a limiter object...
                state["_retry"] = None
                state["_no_retry"] = f"{type(exc).__name__}: {exc}"
        return state

    def retry_failed(self) -> Results:
        """Ask again for the failed items, and go on with those a stopped run never asked
        (``max_cost``, out of credits, an interrupt); return these results with them filled
        in. The answers already here are kept, not asked again."""
        if not self.errors and self.complete:
            return self
        why = getattr(self, "_no_retry", None)
        if self._retry is None and why is not None:
            raise RuntimeError(
                "these results were unpickled without the way to ask again, which could not "
                f"be pickled ({why}): run describe_many again on the failed items "
                "(Results.errors lists them)"
            )
        if self._retry is None:
            raise RuntimeError("these results do not know how they were made: run them again")
        again = self._retry({r.index for r in self._results if r.error is None})
        by_index = {r.index: r for r in self._results}
        by_index.update({r.index: r for r in again})
        return Results(
            list(by_index.values()),
            total=self.total,
            retry=self._retry,
            stopped=again.stopped,
            schema=self.schema,
        )

    def score(self, truth: Any, field: str | None = None) -> Score:
        """How often the answers are right: a `Score` (``accuracy`` 0-1; with labels a
        ``confusion`` matrix, ``per_label`` precision and recall, and ``plot()``).

        ``truth``: the right answers, as a list in the images' order, a dict or pandas
        Series by image (or a Series by position), or the path of a CSV file with image,label
        columns. ``field`` names the schema field to score (a labels run: its label). Failed
        rows are counted, not scored."""
        from .columns import field_values
        from .score import score_rows, truth_for

        sources = {r.index: r.source for r in self._results}
        name, labels, many, lined = truth_for(truth, sources, self.total, self.schema, field)
        assert self.schema is not None
        rows = []
        for r in self._results:
            d = r.description
            value = None if d is None else field_values(self.schema, d.data)[name]
            rows.append((r.index, r.source, value, d is not None))
        model = next((r.description.model for r in self._results if r.description), None)
        return score_rows(
            rows, lined, field=name, labels=labels, many=many, model=model, total=self.total
        )

    def summary(self) -> str:
        """One line: answers, cached, errors, tokens."""
        usage = self.usage
        parts = [f"{len(self) - len(self.errors)} of {self.total} answered"]
        if self.cached_count:
            parts.append(f"{self.cached_count} from the cache")
        parts.append(f"{len(self.errors)} failed")
        parts.append(f"{counted(usage.input_tokens or 0, 'token')} in, {usage.output_tokens:,} out")
        cost = self.cost
        if cost is not None:
            parts.append(format_usd(cost))
        if self.stopped:
            parts.append(self.stopped)
        return " · ".join(parts)

    def __repr__(self) -> str:
        return f"<Results {self.summary()}>"

    def _repr_html_(self) -> str:
        shown = self._results[:HTML_ROWS]
        caption = self.summary()
        if len(shown) < len(self._results):
            caption += f" · the first {len(shown)} rows (to_pandas() has them all)"
        return results_table(shown, caption=caption, schema=self.schema)


def results_table(
    rows: Sequence[Result],
    caption: str = "",
    thumbnails: bool = True,
    schema: Schema | None = None,
) -> str:
    """An HTML table: a thumbnail per row, the source, the answer (a structured run: a column
    per field) or the error, tokens.

    Text columns are left-aligned under left-aligned headers and numbers right-aligned under
    right-aligned ones (JupyterLab right-aligns every cell otherwise); long words wrap; an
    error row uses the theme's error colours (see ``images.markup``).
    """
    left = "text-align:left;vertical-align:top"
    right = "text-align:right;vertical-align:top;white-space:nowrap"
    name = f"{left};min-width:10em;{WRAP_STYLE}"  # a file name breaks only when it must
    out = ['<table class="reka-nb-results">']
    if caption:
        out.append(f'<caption style="{WRAP_STYLE}">{html.escape(caption)}</caption>')
    names = field_columns(schema)
    heads = "".join(f'<th style="{left}">{html.escape(c)}</th>' for c in names.values())
    heads = heads or f'<th style="{left}">answer</th>'
    out.append(
        f'<thead><tr><th></th><th style="{name}">image</th>'
        f"{heads}"
        f'<th style="{right}">tokens in/out</th><th style="{right}">seconds</th></tr></thead>'
        "<tbody>"
    )
    for r in rows:
        thumb = _thumbnail_tag(r) if thumbnails else ""
        row = ""
        if r.description is not None:
            if schema is not None:
                from .columns import field_values

                values = field_values(schema, r.description.data)
                cells = [_cell_html(values[field]) for field in names]
                answer = f'</td><td style="{left};{WRAP_STYLE}">'.join(cells)
            else:
                answer = html.escape(r.description.text)
            if r.cached:
                answer += " <em>(cached)</em>"
            u = r.description.usage
            tokens = "" if u is None else f"{u.input_tokens}/{u.output_tokens}"
        else:
            row = ' class="reka-nb-error"'
            answer = (
                f"<strong>{html.escape(type(r.error).__name__)}</strong>: "
                f"{html.escape(str(r.error))}"
            )
            tokens = ""
        answer_style = f"{left};{WRAP_STYLE}" + (f";{ERROR_STYLE}" if r.error is not None else "")
        span = f' colspan="{len(names)}"' if r.description is None and len(names) > 1 else ""
        out.append(
            f'<tr{row}><td style="text-align:center;vertical-align:top">{thumb}</td>'
            f'<td style="{name}">{html.escape(r.source)}</td>'
            f'<td style="{answer_style}"{span}>{answer}</td><td style="{right}">{tokens}</td>'
            f'<td class="reka-nb-seconds" style="{right}">{r.seconds:.2f}</td></tr>'
        )
    out.append("</tbody></table>")
    return "".join(out)


def _cell_html(value: Any) -> str:
    """One field's value in the table, written as the key/value display writes it."""
    return html.escape(field_text(value))


def _thumbnail_tag(r: Result, side: int = THUMBNAIL) -> str:
    if r.thumbnail is None:
        return ""
    data, mime = r.thumbnail
    b64 = base64.b64encode(data).decode("ascii")
    return thumbnail_img(f"data:{mime};base64,{b64}", file_name(r.source), side, r.source)
