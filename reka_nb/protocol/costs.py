"""Tokens and cost added up per model (a session, a run over many images), and the budget
that stops a run before its cost passes a limit (no I/O)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from decimal import Decimal, DecimalException
from typing import Any

from .models import Model, format_usd
from .stream import Usage

__all__ = ["Budget", "ModelUsage", "UsageTotals", "first_estimate"]


@dataclass(frozen=True)
class ModelUsage:
    """One model's totals. ``unpriced`` counts answers whose cost is unknown (no prices or
    no token counts): ``cost`` adds up the others."""

    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced: int = 0

    def row(self) -> list[str]:
        cost = format_usd(self.cost) if self.requests > self.unpriced else "?"
        if self.unpriced and self.requests > self.unpriced:
            cost += f" (+{self.unpriced} unpriced)"
        return [
            self.model,
            f"{self.requests:,}",
            f"{self.input_tokens:,}",
            f"{self.output_tokens:,}",
            cost,
        ]


class UsageTotals:
    """Answers added one by one (from any thread); ``rows()`` gives the totals per model."""

    COLUMNS = ("model", "answers", "tokens in", "tokens out", "cost")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, ModelUsage] = {}

    def add(self, model: str, usage: Usage | None, cost: Decimal | None) -> None:
        """Count one answer; a cost that cannot be added (not finite, or past what ``decimal``
        holds) counts the answer as unpriced, so the totals stay usable."""
        with self._lock:
            now = self._models.get(model) or ModelUsage(model)
            total = _plus(now.cost, cost)
            self._models[model] = replace(
                now,
                requests=now.requests + 1,
                input_tokens=now.input_tokens + ((usage and usage.input_tokens) or 0),
                output_tokens=now.output_tokens + ((usage and usage.output_tokens) or 0),
                cost=now.cost if total is None else total,
                unpriced=now.unpriced + (total is None),
            )

    def rows(self) -> list[ModelUsage]:
        with self._lock:
            return list(self._models.values())

    def copy(self) -> UsageTotals:
        other = UsageTotals()
        for row in self.rows():
            other._models[row.model] = row
        return other

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rows())

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self.rows())

    @property
    def output_tokens(self) -> int:
        return sum(r.output_tokens for r in self.rows())

    @property
    def cost(self) -> Decimal | None:
        """US dollars of the priced answers; None when no answer had a known cost."""
        rows = self.rows()
        if not any(r.requests > r.unpriced for r in rows):
            return None
        return sum((r.cost for r in rows), Decimal(0))

    @property
    def unpriced(self) -> int:
        return sum(r.unpriced for r in self.rows())

    def _table_rows(self) -> list[list[str]]:
        rows = [r.row() for r in self.rows()]
        if len(rows) > 1:
            total = ModelUsage(
                "total",
                self.requests,
                self.input_tokens,
                self.output_tokens,
                self.cost or Decimal(0),
                self.unpriced,
            )
            rows.append(total.row())
        return rows

    def table(self) -> str:
        """A plain-text table, one line per model (and a total when there are several)."""
        rows = self._table_rows()
        if not rows:
            return "No answers yet."
        rows.insert(0, list(self.COLUMNS))
        widths = [max(len(row[i]) for row in rows) for i in range(len(self.COLUMNS))]
        lines = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        cost = "?" if self.cost is None else format_usd(self.cost)
        return (
            f"<UsageTotals {self.requests:,} answer{'' if self.requests == 1 else 's'}, "
            f"{self.input_tokens:,} token{'' if self.input_tokens == 1 else 's'} in, "
            f"{self.output_tokens:,} out, {cost}>"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.table())

    def _repr_html_(self) -> str:
        rows = self._table_rows()
        if not rows:
            return "<p>No answers yet.</p>"
        import html  # a table's markup only: not with import reka_nb

        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return (
            f"<table class='reka-usage'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )


#: Prompt tokens assumed for one image before any answer has shown what images cost.
IMAGE_TOKENS_GUESS = 1_000
#: Answer tokens assumed when ``max_tokens`` is not set (the native endpoint's default).
ANSWER_TOKENS_GUESS = 1_024


def first_estimate(
    model: Model,
    prompt: str,
    images: int,
    max_tokens: int | None,
    image_tokens: int | None = None,
) -> Decimal:
    """A generous cost of one question: the prompt at 4 characters a token, each image at
    ``image_tokens`` (the most an image has taken so far; ``IMAGE_TOKENS_GUESS`` before any
    answer) and the longest answer allowed."""
    inp, out = model.input_price, model.output_price
    assert inp is not None and out is not None, "a budget needs the model's prices"
    per_image = IMAGE_TOKENS_GUESS if image_tokens is None else image_tokens
    prompt_tokens = -(-len(prompt) // 4) + per_image * images
    return prompt_tokens * inp + (max_tokens or ANSWER_TOKENS_GUESS) * out


class Budget:
    """Decides whether one more request may start without the total passing ``limit``.

    Spent money is exact (each answer's cost); a request in flight holds its estimate, a
    worst case: ``first_estimate`` of its own question, with images at the most prompt tokens
    an image has taken so far (``image_tokens``), or the dearest answer so far if more. Before
    any answer nothing is known of what an image costs (a video, or a large image, can take
    100 times the guess), so the first question goes alone. When the spent and held money
    plus one more estimate would pass the limit, no request starts: with requests in flight
    it waits for them (their true cost may leave room), with none it stops for good and says
    why in ``stopped``. So the total passes the limit by at most one request's true cost.
    """

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.spent = Decimal(0)
        self.held = Decimal(0)
        self.in_flight = 0
        self._dearest: Decimal | None = None
        self._answered = False
        self.image_tokens: int | None = None
        self.stopped: str | None = None

    def start(self, first: Decimal) -> Decimal | None:
        """The estimate held for a new request (``first``: its worst case as far as is
        known), or None when it may not start now."""
        if self.stopped is not None:
            return None
        if not self._answered and self.in_flight:
            return None  # the first question goes alone: its answer shows what images cost
        estimate = first if self._dearest is None else max(first, self._dearest)
        if self.spent + self.held + estimate <= self.limit:
            self.held += estimate
            self.in_flight += 1
            return estimate
        if self.in_flight == 0:
            self.stopped = (
                f"stopped before max_cost ${_plain(self.limit)}: ${_plain(self.spent)} spent, "
                f"and the next answer may cost about {format_usd(estimate)}"
            )
        return None

    def finish(
        self,
        held: Decimal,
        cost: Decimal | None,
        answered: bool,
        input_tokens: int | None = None,
        images: int = 0,
    ) -> None:
        """A request ended: an answer's true cost replaces its estimate (the estimate when
        its tokens are unknown); a request that failed spent nothing. An answer's prompt
        tokens over its ``images`` bound what the next images may take."""
        self.held -= held
        self.in_flight -= 1
        if not answered:
            return
        self._answered = True
        if input_tokens is not None and images > 0:
            per_image = -(-input_tokens // images)
            self.image_tokens = max(self.image_tokens or 0, per_image)
        self.spent += held if cost is None else cost
        if cost is not None and (self._dearest is None or cost > self._dearest):
            self._dearest = cost


def _plus(total: Decimal, cost: Decimal | None) -> Decimal | None:
    """``total + cost``, or None when the cost is unknown or the sum is not a usable number."""
    if cost is None:
        return None
    try:
        result = total + cost
    except DecimalException:
        return None
    return result if result.is_finite() else None


def _plain(amount: Decimal) -> str:
    """An exact amount without exponent or trailing zeros: ``0.0009984``, ``2.5``."""
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
