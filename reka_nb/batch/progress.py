"""Progress of a run: a tqdm bar, or whatever the caller hands down (in a notebook,
``reka_nb.auto`` hands down the notebook's display), so this package never imports it.

All calls come from the thread that called ``describe_many`` (or the event loop running
``adescribe_many``), never from a worker thread.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from .results import Result, Results

__all__ = [
    "Progress",
    "ProgressStats",
    "TerminalProgress",
    "make_progress",
]


class Progress(Protocol):
    """Shown while a run goes on."""

    def start(self, total: int) -> None: ...

    def update(self, result: Result) -> None: ...

    def close(self, results: Results | None, error: BaseException | None = None) -> None: ...


class ProgressStats:
    """Counts behind every progress display: done, errors, cached, tokens, rate, ETA."""

    def __init__(self, total: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = self.errors = self.cached = 0
        self.input_tokens = self.output_tokens = 0
        self._clock = clock
        self.started = clock()

    def add(self, result: Result) -> None:
        self.done += 1
        if result.error is not None:
            self.errors += 1
        if result.cached:
            self.cached += 1
        elif result.description is not None and result.description.usage is not None:
            self.input_tokens += result.description.usage.input_tokens or 0
            self.output_tokens += result.description.usage.output_tokens or 0

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    @property
    def rate(self) -> float:
        """Items finished per second so far."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far (None before the first item)."""
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 else None

    def postfix(self) -> str:
        """``errors=1, cached=3, tokens=1,234/567``."""
        parts = [f"errors={self.errors}"]
        if self.cached:
            parts.append(f"cached={self.cached}")
        parts.append(f"tokens={self.input_tokens:,}/{self.output_tokens:,}")
        return ", ".join(parts)


class TerminalProgress:
    """A tqdm bar (on stderr): done/total, answers a second, ETA, errors and tokens."""

    def __init__(self, file: Any = None) -> None:
        self._file = file
        self._bar: Any = None
        self.stats = ProgressStats()

    def start(self, total: int) -> None:
        from tqdm.auto import tqdm

        self.stats = ProgressStats(total)
        self._bar = tqdm(
            total=total,
            unit="image",
            desc="reka",
            file=self._file or sys.stderr,
            dynamic_ncols=True,
        )

    def update(self, result: Result) -> None:
        self.stats.add(result)
        if self._bar is not None:
            self._bar.set_postfix_str(self.stats.postfix(), refresh=False)
            self._bar.update(1)

    def close(self, results: Results | None, error: BaseException | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(show: bool | Progress) -> Progress | None:
    """The progress display of a run: none, the one given, or tqdm."""
    if show is False or show is None:
        return None
    return TerminalProgress() if show is True else show
