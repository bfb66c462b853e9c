"""How often a run's structured answers are right: ``Results.score(truth)`` gives a `Score`.

One field is scored: a ``labels=`` run's label (or labels), or a schema's field (``field=``;
the only one when the schema has one). Strings match without regard to case or surrounding
spaces, other values by their text (``"true"`` in a CSV matches ``True``); a multi-label
answer is right when it has exactly the true labels. Failed rows are not scored (they are
counted as ``failed``). Free-text answers have no right answer to compare with, and are
refused. pandas (``confusion``, ``per_label``) and matplotlib (``plot()``) are imported only
when used.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidRequestError
from ..images.markup import WRAP_STYLE
from .truth import read_truth

if TYPE_CHECKING:
    import pandas
    from matplotlib.figure import Figure

    from ..protocol.schema import Schema

__all__ = ["Score", "ScoredRow", "normalise", "score_rows", "scored_field"]


def need_pandas(what: str, instead: str | None = None) -> Any:
    """pandas, imported now; without it, an ImportError saying what needs it (and what to use
    ``instead``, which needs nothing)."""
    try:
        import pandas
    except ImportError:
        other = f" (or use {instead}, which needs nothing)" if instead else ""
        raise ImportError(f"{what} needs pandas: pip install pandas{other}") from None
    return pandas


def normalise(value: Any) -> Any:
    """What two answers are compared by: strings folded, lists as sets, others as text."""
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(normalise(v) for v in value)
    return str(value).strip().casefold()


def scored_field(
    schema: Schema | None, field: str | None
) -> tuple[str, tuple[Any, ...] | None, bool]:
    """(the field scored, its labels or None, whether an answer is a list of them)."""
    if schema is None:
        raise InvalidRequestError(
            "only structured answers can be scored: ask with labels=[...] or schema=... "
            "(free-text answers have no right answer to compare with)"
        )
    fields = {f.name: f for f in schema.fields}
    if field is None:
        if len(fields) != 1:
            raise InvalidRequestError(
                f"the schema has the fields {', '.join(fields)}: name the one to score (field=...)"
            )
        field = next(iter(fields))
    if field not in fields:
        raise InvalidRequestError(
            f"the schema has no field {field!r}; its fields: {', '.join(fields)}"
        )
    chosen = fields[field]
    labels = chosen.categories
    many = chosen.kind.startswith("list")
    if labels is None and schema.labels is not None:
        labels = schema.labels
    return field, labels, many


@dataclass(frozen=True)
class ScoredRow:
    """One image: its true answer, the answer given (None when it failed), and whether they
    match (None when it failed)."""

    source: str
    truth: Any
    answer: Any
    correct: bool | None


def _as_truth(value: Any, many: bool) -> Any:
    if many and isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_labels(
    truth: Mapping[int, Any], sources: Mapping[int, str], labels: Any, many: bool
) -> None:
    """A true answer that is not one of the labels is an error (a typo would score as wrong)."""
    if labels is None:
        return
    known = {normalise(label) for label in labels}
    for index, value in truth.items():
        values = value if many else [value]
        for one in values:
            if normalise(one) not in known:
                raise InvalidRequestError(
                    f"the true answer {one!r} for {sources[index]} is not one of the labels: "
                    f"{', '.join(map(str, labels))}"
                )


def truth_for(
    truth: Any, sources: Mapping[int, str], total: int, schema: Schema | None, field: str | None
) -> tuple[str, tuple[Any, ...] | None, bool, dict[int, Any]]:
    """The truth lined up with the items and checked against the field's labels."""
    name, labels, many = scored_field(schema, field)
    lined = {i: _as_truth(v, many) for i, v in read_truth(truth, sources, total).items()}
    _check_labels(lined, sources, labels, many)
    return name, labels, many, lined


def score_rows(
    rows: Iterable[tuple[int, str, Any, bool]],
    truth: Mapping[int, Any],
    *,
    field: str,
    labels: tuple[Any, ...] | None,
    many: bool,
    model: str | None = None,
    total: int | None = None,
) -> Score:
    """Score (index, source, field value, answered) rows against ``truth`` (by index)."""
    scored = []
    for index, source, value, answered in rows:
        right = truth[index]
        if not answered:
            scored.append(ScoredRow(source, right, None, None))
        else:
            scored.append(ScoredRow(source, right, value, normalise(value) == normalise(right)))
    return Score(field, labels, many, scored, model=model, total=total)


class Score:
    """How often one field of a run's answers matches the truth.

    ``accuracy`` is the fraction (0-1) of answered images whose answer is right (None when
    none was answered); ``correct``, ``answered``, ``failed`` count images. For labels,
    ``confusion`` (true labels down, answers across) and ``per_label`` (precision, recall and
    support of each label) are DataFrames, and ``plot()`` draws the confusion matrix.
    """

    def __init__(
        self,
        field: str,
        labels: tuple[Any, ...] | None,
        many: bool,
        rows: Sequence[ScoredRow],
        *,
        model: str | None = None,
        total: int | None = None,
    ) -> None:
        self.field = field
        self.labels = labels
        self.multi_label = many
        self.rows = list(rows)
        self.model = model
        self.total = len(self.rows) if total is None else total
        self.correct = sum(1 for r in self.rows if r.correct)
        self.answered = sum(1 for r in self.rows if r.correct is not None)
        self.failed = len(self.rows) - self.answered

    @property
    def accuracy(self) -> float | None:
        return None if not self.answered else self.correct / self.answered

    def _categories(self) -> list[Any]:
        if self.labels is not None:
            return list(self.labels)
        seen: dict[Any, Any] = {}
        for r in self.rows:
            for value in (r.truth, r.answer):
                if value is not None and not isinstance(value, (list, dict)):
                    seen.setdefault(normalise(value), value)
        return list(seen.values())

    @property
    def confusion(self) -> pandas.DataFrame:
        """Counts of (true answer, answer given) over the answered images: a row per true
        label, a column per label answered (pandas)."""
        pandas = need_pandas("Score.confusion")

        if self.multi_label:
            raise InvalidRequestError(
                "a multi-label answer has no confusion matrix (see per_label instead)"
            )
        categories = self._categories()
        keys = [normalise(c) for c in categories]
        counts = [[0] * len(keys) for _ in keys]
        for r in self.rows:
            if r.correct is None:
                continue
            counts[keys.index(normalise(r.truth))][keys.index(normalise(r.answer))] += 1
        frame = pandas.DataFrame(counts, index=categories, columns=categories)
        frame.index.name, frame.columns.name = "truth", "answer"
        return frame

    def per_label_rows(self) -> list[dict[str, Any]]:
        """Precision, recall and support of each label, as plain dicts (no pandas)."""
        out = []
        for label in self._categories():
            key = normalise(label)
            tp = fp = fn = support = 0
            for r in self.rows:
                true = self._set(r.truth)
                if key in true:
                    support += 1
                if r.correct is None:
                    continue
                given = self._set(r.answer)
                tp += key in true and key in given
                fp += key in given and key not in true
                fn += key in true and key not in given
            precision = tp / (tp + fp) if tp + fp else float("nan")
            recall = tp / (tp + fn) if tp + fn else float("nan")
            out.append(
                {"label": label, "precision": precision, "recall": recall, "support": support}
            )
        return out

    def _set(self, value: Any) -> frozenset[Any]:
        if value is None:
            return frozenset()
        normal = normalise(value)
        return normal if isinstance(normal, frozenset) else frozenset([normal])

    @property
    def per_label(self) -> pandas.DataFrame:
        """Precision, recall and support (true images) of each label (pandas)."""
        pandas = need_pandas("Score.per_label")

        frame = pandas.DataFrame(
            self.per_label_rows(), columns=["label", "precision", "recall", "support"]
        )
        return frame.set_index("label")

    def plot(self, theme: str = "auto") -> Figure:
        """The confusion matrix (single labels) or each label's precision and recall, as a
        matplotlib Figure that follows ``theme`` (``auto``, ``light`` or ``dark``)."""
        from .plots import confusion_axes, new_figure, recall_axes

        figure, colours = new_figure(theme, size=(4.8, 4.0))
        ax = figure.add_subplot()
        title = f"{self.model}: " if self.model else ""
        title += f"{self.field}, accuracy {_percent(self.accuracy)}"
        if self.multi_label or (self.labels is None and not self._categories()):
            recall_axes(ax, self.per_label_rows(), colours, title)
        else:
            matrix = self.confusion
            confusion_axes(
                ax, [str(c) for c in matrix.index], matrix.values.tolist(), colours, title
            )
        figure.tight_layout()
        return figure

    def summary(self) -> str:
        """One line: accuracy, right of answered, failed."""
        line = f"{self.field}: accuracy {_percent(self.accuracy)} "
        line += f"({self.correct} of {self.answered} right"
        if self.failed:
            line += f", {self.failed} failed"
        if self.total > len(self.rows):
            line += f", {self.total - len(self.rows)} not asked"
        return line + ")"

    def __repr__(self) -> str:
        who = f" {self.model}" if self.model else ""
        return f"<Score{who} {self.summary()}>"

    def _repr_html_(self) -> str:
        left = "text-align:left;vertical-align:top"
        right = "text-align:right;vertical-align:top"
        who = f"{self.model}: " if self.model else ""
        out = [
            '<table class="reka-nb-score">',
            f'<caption style="{WRAP_STYLE}">{html.escape(who + self.summary())}</caption>',
            f'<thead><tr><th style="{left}">label</th><th style="{right}">precision</th>'
            f'<th style="{right}">recall</th><th style="{right}">support</th></tr></thead><tbody>',
        ]
        for row in self.per_label_rows():
            out.append(
                f'<tr><td style="{left}">{html.escape(str(row["label"]))}</td>'
                f'<td style="{right}">{_fraction(row["precision"])}</td>'
                f'<td style="{right}">{_fraction(row["recall"])}</td>'
                f'<td style="{right}">{row["support"]}</td></tr>'
            )
        out.append("</tbody></table>")
        return "".join(out)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _fraction(value: float) -> str:
    return "–" if value != value else f"{value:.2f}"
