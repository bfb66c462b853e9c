"""What ``compare`` returns: each model's ``Results`` over the same images, and how they differ.

A `Comparison` shows one row per image with a column per model (answers that disagree, or
that the truth calls wrong, are marked) and a summary per model: answered, failed, cost, mean
and 95th-percentile seconds, tokens, and accuracy (with a truth) or agreement with the other
models (without). Agreement and accuracy are measured only on structured answers (a label, a
schema's field, or all of a schema's fields together); free-text answers are shown side by
side with their cost and time. pandas and matplotlib are imported only by ``summary()``,
``to_pandas()`` and ``plot()``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..images.markup import ERROR_STYLE, WRAP_STYLE
from ..protocol.models import format_usd
from .results import HTML_ROWS, Result, Results, _thumbnail_tag
from .score import Score, need_pandas, normalise, score_rows
from .wording import counted

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from ..protocol.schema import Schema

__all__ = ["SUMMARY_COLUMNS", "Comparison", "percentile"]

#: The columns of ``Comparison.summary()``, before ``accuracy`` or ``agreement``.
SUMMARY_COLUMNS = (
    "answered",
    "failed",
    "cost",
    "mean_seconds",
    "p95_seconds",
    "input_tokens",
    "output_tokens",
)
_LEFT = "text-align:left;vertical-align:top"
_RIGHT = "text-align:right;vertical-align:top;white-space:nowrap"
_DIFFERS = "border-left:3px solid var(--jp-warn-color0,#d9822b)"
_SECONDS = ' class="reka-nb-seconds"'  # as in the results table: a cell of seconds


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of ``values`` (NaN for none)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


class Comparison:
    """Several models' answers to one question over the same images.

    ``results[model]`` is each model's `Results` (rows by image, in input order); ``models``
    their names in the order given; ``measure`` is ``accuracy`` (a truth was given),
    ``agreement`` (structured answers, no truth) or None (free text). ``stopped`` says why a
    capped run ended early.
    """

    def __init__(
        self,
        results: Mapping[str, Results],
        *,
        sources: Sequence[str],
        truth: Mapping[int, Any] | None = None,
        scored: tuple[str, Any, bool] | None = None,
        schema: Schema | None = None,
        stopped: str | None = None,
        prices: Mapping[str, Any] | None = None,
    ) -> None:
        self.results = dict(results)
        self._prices = dict(prices or {})  # model info for answers from the cache
        self.models = list(self.results)
        self.sources = list(sources)
        self.truth = None if truth is None else dict(truth)
        self.field = None if scored is None else scored[0]
        self._scored = scored
        self.schema = schema
        self.stopped = stopped
        self._values = {m: self._answers(r) for m, r in self.results.items()}

    # -- what is compared ---------------------------------------------------------------

    def _value(self, result: Result) -> Any:
        """What a row's answer is compared by: the scored field, all fields, or the text."""
        d = result.description
        assert d is not None
        if self.schema is None:
            return d.text
        from .columns import field_values

        values = field_values(self.schema, d.data)
        if self.field is not None:
            return values[self.field]
        return values

    def _answers(self, results: Results) -> dict[int, Any]:
        return {r.index: self._value(r) for r in results if r.description is not None}

    @property
    def measure(self) -> str | None:
        if self.truth is not None:
            return "accuracy"
        return "agreement" if self.schema is not None else None

    def _key(self, value: Any) -> Any:
        if isinstance(value, dict):
            return tuple(sorted((k, _hashable(normalise(v))) for k, v in value.items()))
        return _hashable(normalise(value))

    def differs(self, index: int) -> bool:
        """True when the models that answered image ``index`` gave different answers
        (structured answers only: free texts always differ)."""
        if self.schema is None:
            return False
        keys = {self._key(v[index]) for v in self._values.values() if index in v}
        return len(keys) > 1

    def agreement(self, model: str) -> float | None:
        """How often ``model`` agrees with the other models (0-1): over the images it and
        another model answered, the share of the others that gave the same answer. None for
        free text or no such image."""
        if self.schema is None:
            return None
        mine = self._values[model]
        shares = []
        for index, value in mine.items():
            others = [v[index] for m, v in self._values.items() if m != model and index in v]
            if others:
                same = sum(self._key(o) == self._key(value) for o in others)
                shares.append(same / len(others))
        return sum(shares) / len(shares) if shares else None

    @property
    def scores(self) -> dict[str, Score]:
        """Each model's `Score` against the truth (empty without a truth)."""
        if self.truth is None or self._scored is None:
            return {}
        name, labels, many = self._scored
        out = {}
        for model, results in self.results.items():
            answers = self._values[model]
            rows = [
                (i, self.sources[i], answers.get(i), i in answers)
                for i in sorted({r.index for r in results})
            ]
            out[model] = score_rows(
                rows,
                self.truth,
                field=name,
                labels=labels,
                many=many,
                model=model,
                total=len(self.sources),
            )
        return out

    def accuracy(self, model: str) -> float | None:
        """``model``'s accuracy against the truth (0-1; None without a truth)."""
        score = self.scores.get(model)
        return None if score is None else score.accuracy

    # -- tables -------------------------------------------------------------------------

    def summary_records(self) -> list[dict[str, Any]]:
        """The summary as plain dicts (no pandas), one per model, with ``model`` first."""
        scores = self.scores
        out = []
        for model, results in self.results.items():
            answers = [r.description for r in results if r.description is not None]
            seconds = [r.seconds for r in results if r.description is not None and not r.cached]
            info = self._prices.get(model)
            priced = [
                d.cost if d.cost is not None or info is None else info.cost(d.usage)
                for d in answers
            ]
            costs: list[Decimal] = [c for c in priced if c is not None]
            row: dict[str, Any] = {
                "model": model,
                "answered": len(answers),
                "failed": len(results.errors),
                "cost": float(sum(costs, Decimal(0))) if costs else math.nan,
                "mean_seconds": sum(seconds) / len(seconds) if seconds else math.nan,
                "p95_seconds": percentile(seconds, 0.95),
                "input_tokens": sum((d.usage.input_tokens or 0) for d in answers if d.usage),
                "output_tokens": sum((d.usage.output_tokens or 0) for d in answers if d.usage),
            }
            if self.measure == "accuracy":
                accuracy = scores[model].accuracy if model in scores else None
                row["accuracy"] = math.nan if accuracy is None else accuracy
            elif self.measure == "agreement":
                agreement = self.agreement(model)
                row["agreement"] = math.nan if agreement is None else agreement
            out.append(row)
        return out

    def table(self) -> str:
        """The summary as a plain-text table (no pandas), a line per model: cost in US
        dollars, seconds, tokens, and accuracy or agreement as a fraction 0-1."""
        records = self.summary_records()
        heads = ["model", *SUMMARY_COLUMNS] + ([self.measure] if self.measure else [])
        lines = [[_text(row.get(h), h) for h in heads] for row in records]
        widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(heads)]

        def joined(cells: Sequence[str]) -> str:
            parts = [
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            ]
            return "  ".join(parts).rstrip()

        return "\n".join([joined(heads), *(joined(line) for line in lines)])

    def records(self) -> list[dict[str, Any]]:
        """The long form as plain dicts (no pandas), a row per (image, model): the columns of
        each model's ``Results.records()``, then ``cost`` and, with a truth, ``correct``."""
        by_model = {m: {r.index: r for r in res} for m, res in self.results.items()}
        out = []
        for index in range(len(self.sources)):
            for model in self.models:
                row = by_model[model].get(index)
                if row is None:
                    continue
                record = row.record(self.schema)
                record["model"] = model
                cost = _spent(row)
                record["cost"] = None if math.isnan(cost) else cost
                if self.truth is not None:
                    answers = self._values[model]
                    record["correct"] = (
                        None
                        if index not in answers
                        else normalise(answers[index]) == normalise(self.truth[index])
                    )
                out.append(record)
        return out

    def summary(self) -> pandas.DataFrame:
        """A DataFrame indexed by model: answered, failed, cost (US dollars) and input_tokens,
        output_tokens of its answers (those from the cache at what they cost when asked, so
        models compare alike), mean_seconds and p95_seconds (answers asked now, not from the
        cache), and accuracy (0-1, with a truth) or agreement (0-1, structured answers
        without one)."""
        pandas = need_pandas("Comparison.summary()")

        frame = pandas.DataFrame(self.summary_records()).set_index("model")
        return frame.astype({"answered": "int64", "failed": "int64"})

    def to_pandas(self) -> pandas.DataFrame:
        """Long form: a row per (image, model): image, model, the answer's columns (a field
        per column for structured answers), cost (US dollars this run spent on it: 0 from the
        cache), seconds, error, and ``correct`` with a truth (a nullable boolean: <NA> where
        the model gave no answer)."""
        pandas = need_pandas("Comparison.to_pandas()")

        frames = []
        for order, (model, results) in enumerate(self.results.items()):
            frame = results.to_pandas()
            frame["model"] = model
            frame["cost"] = [_spent(r) for r in results]
            frame["_image"] = [r.index for r in results]
            frame["_model"] = order
            if self.truth is not None:
                answers = self._values[model]
                frame["correct"] = pandas.array(
                    [
                        None
                        if r.index not in answers
                        else normalise(answers[r.index]) == normalise(self.truth[r.index])
                        for r in results
                    ],
                    dtype="boolean",
                )
            frames.append(frame)
        out = pandas.concat(frames, ignore_index=True)
        out = out.sort_values(["_image", "_model"], kind="stable").drop(
            columns=["_image", "_model"]
        )
        columns = list(out.columns)
        columns.remove("model")
        columns.insert(1, "model")
        return out[columns].reset_index(drop=True)

    def caption(self) -> str:
        """One line: models, images, and what stopped the run."""
        line = f"{len(self.models)} models · {counted(len(self.sources), 'image')}"
        done = min(len(r) for r in self.results.values()) if self.results else 0
        if done < len(self.sources):
            line += f" · {done} of {len(self.sources)} asked of every model"
        if self.stopped:
            line += f" · {self.stopped}"
        return line

    def __repr__(self) -> str:
        lines = [f"<Comparison {self.caption()}"]
        for row in self.summary_records():
            parts = [f"{row['answered']} answered", f"{row['failed']} failed"]
            if not math.isnan(row["cost"]):
                parts.append(format_usd(Decimal(str(row["cost"]))))
            if not math.isnan(row["mean_seconds"]):
                parts.append(f"{row['mean_seconds']:.2f} s mean")
            measure = self.measure
            if measure is not None and not math.isnan(row[measure]):
                parts.append(f"{measure} {row[measure]:.0%}")
            lines.append(f"  {row['model']}: " + " · ".join(parts))
        return "\n".join(lines) + ">"

    def _repr_html_(self) -> str:
        head = [f'<th></th><th style="{_LEFT};min-width:10em">image</th>']
        if self.truth is not None:
            head.append(f'<th style="{_LEFT}">truth</th>')
        head += [f'<th style="{_LEFT}">{html.escape(m)}</th>' for m in self.models]
        out = [
            '<div class="reka-nb-comparison">',
            '<table class="reka-nb-compare">',
            f'<caption style="{WRAP_STYLE}">{html.escape(self.caption())}</caption>',
            f"<thead><tr>{''.join(head)}</tr></thead><tbody>",
        ]
        by_model = {m: {r.index: r for r in res} for m, res in self.results.items()}
        for index, source in enumerate(self.sources[:HTML_ROWS]):
            out.append(self._row_html(index, source, by_model))
        out.append("</tbody></table>")
        if len(self.sources) > HTML_ROWS:
            out.append(f"<p>the first {HTML_ROWS} images (to_pandas() has them all)</p>")
        out.append(self._summary_html())
        out.append("</div>")
        return "".join(out)

    def _row_html(
        self, index: int, source: str, by_model: Mapping[str, Mapping[int, Result]]
    ) -> str:
        rows = [by_model[m].get(index) for m in self.models]
        first = next((r for r in rows if r is not None), None)
        thumb = "" if first is None else _thumbnail_tag(first)
        differs = self.differs(index)
        mark = "≠" if differs else ""
        style = f"{_LEFT};{_DIFFERS}" if differs else _LEFT
        cells = [
            f'<td style="text-align:center;vertical-align:top">{thumb}</td>'
            f'<td style="{style};{WRAP_STYLE}" title="{"answers differ" if differs else ""}">'
            f"{html.escape(mark + ' ' if mark else '')}{html.escape(source)}</td>"
        ]
        if self.truth is not None:
            cells.append(f'<td style="{_LEFT}">{_show(self.truth.get(index))}</td>')
        for model, row in zip(self.models, rows, strict=True):
            cells.append(self._cell_html(model, index, row))
        kind = ' class="reka-nb-differs"' if differs else ""
        return f"<tr{kind}>{''.join(cells)}</tr>"

    def _cell_html(self, model: str, index: int, row: Result | None) -> str:
        if row is None:
            return f'<td style="{_LEFT}"><em>not asked</em></td>'
        if row.description is None:
            name = html.escape(type(row.error).__name__)
            error = f"<strong>{name}</strong>: {html.escape(str(row.error))}"
            return (
                f'<td class="reka-nb-error" style="{_LEFT};{WRAP_STYLE};{ERROR_STYLE}">{error}</td>'
            )
        value = self._values[model][index]
        text = _show(value)
        style = f"{_LEFT};{WRAP_STYLE}"
        if self.truth is not None and self._scored is not None:
            right = normalise(value) == normalise(self.truth[index])
            text = ("✓ " if right else "✗ ") + text
            if not right:
                style += f";{ERROR_STYLE}"
        if row.cached:
            text += " <em>(cached)</em>"
        return f'<td style="{style}">{text}</td>'

    def _summary_html(self) -> str:
        measure = self.measure
        heads = ["model", "answered", "failed", "cost", "mean s", "p95 s", "tokens in/out"]
        heads += [measure] if measure else []
        out = ['<table class="reka-nb-compare-summary"><thead><tr>']
        out += [
            f'<th style="{_LEFT if h == "model" else _RIGHT}">{html.escape(h)}</th>' for h in heads
        ]
        out.append("</tr></thead><tbody>")
        for row in self.summary_records():
            values = [
                html.escape(row["model"]),
                str(row["answered"]),
                str(row["failed"]),
                "–" if math.isnan(row["cost"]) else format_usd(Decimal(str(row["cost"]))),
                _seconds(row["mean_seconds"]),
                _seconds(row["p95_seconds"]),
                f"{row['input_tokens']:,}/{row['output_tokens']:,}",
            ]
            if measure:
                values.append("–" if math.isnan(row[measure]) else f"{row[measure]:.0%}")
            out.append("<tr>")
            out += [
                f'<td{_SECONDS if i in (4, 5) else ""} style="{_LEFT if i == 0 else _RIGHT}">'
                f"{v}</td>"
                for i, v in enumerate(values)
            ]
            out.append("</tr>")
        out.append("</tbody></table>")
        return "".join(out)

    # -- figures ------------------------------------------------------------------------

    def plot(self, theme: str = "auto") -> Figure:
        """A matplotlib Figure: each model's cost against its accuracy (or agreement; for
        free text, its mean seconds), and with labels and a truth a confusion matrix per
        model. ``theme``: ``auto`` (follows the notebook's light or dark), ``light``,
        ``dark``."""
        from .plots import confusion_axes, cost_axes, new_figure

        scores = self.scores
        matrices = scores if scores and not self._scored[2] else {}  # type: ignore[index]
        panels = 1 + len(matrices)
        columns = 2 if panels == 4 else min(panels, 3)
        rows = math.ceil(panels / columns)
        figure, colours = new_figure(theme, size=(4.6 * columns, 4.0 * rows))
        records = self.summary_records()
        measure = self.measure or "mean_seconds"
        points = [
            (
                r["model"],
                0.0 if math.isnan(r["cost"]) else r["cost"],
                None if math.isnan(r[measure]) else r[measure],
            )
            for r in records
        ]
        ax = figure.add_subplot(rows, columns, 1)
        if self.measure is None:
            cost_axes(ax, points, colours, "cost and time per model", "mean seconds", unit="s")
        else:
            cost_axes(ax, points, colours, f"cost and {measure} per model", measure)
        for k, (model, score) in enumerate(matrices.items(), start=2):
            matrix = score.confusion
            ax = figure.add_subplot(rows, columns, k)
            title = f"{model}: accuracy {_percent(score.accuracy)}"
            confusion_axes(
                ax, [str(c) for c in matrix.index], matrix.values.tolist(), colours, title
            )
        figure.tight_layout()
        return figure


def _hashable(value: Any) -> Any:
    return value if not isinstance(value, (list, dict)) else repr(value)


def _spent(result: Result) -> float:
    d = result.description
    if d is None or d.cached or d.cost is None:
        return 0.0 if d is not None and d.cached else math.nan
    return float(d.cost)


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return html.escape("; ".join(f"{k}: {_plain(v)}" for k, v in value.items()))
    return html.escape(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value)


def _text(value: Any, column: str) -> str:
    """A summary cell as text: dollars, seconds with two decimals, fractions with three."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if column == "cost":
        return format_usd(Decimal(str(value)))
    if column.endswith("seconds"):
        return f"{value:.2f}"
    if column in ("accuracy", "agreement"):
        return f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}" if column.endswith("tokens") else str(value)
    return str(value)


def _seconds(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.2f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
