"""Tokens and cost added up per model: for a session, or for a run over many images (no I/O)."""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from .models import format_usd
from .stream import Usage

__all__ = ["ModelUsage", "UsageTotals"]


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
        """Count one answer."""
        with self._lock:
            now = self._models.get(model) or ModelUsage(model)
            self._models[model] = replace(
                now,
                requests=now.requests + 1,
                input_tokens=now.input_tokens + ((usage and usage.input_tokens) or 0),
                output_tokens=now.output_tokens + ((usage and usage.output_tokens) or 0),
                cost=now.cost + (cost or 0),
                unpriced=now.unpriced + (cost is None),
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
            f"<UsageTotals {self.requests} answers, {self.input_tokens:,} tokens in, "
            f"{self.output_tokens:,} out, {cost}>"
        )

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.table())

    def _repr_html_(self) -> str:
        rows = self._table_rows()
        if not rows:
            return "<p>No answers yet.</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.COLUMNS)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        return (
            f"<table class='reka-usage'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )
