"""Progress of a run: a tqdm bar, or whatever the caller hands down (in a notebook,
``reka_nb.auto`` hands down the notebook's display), so this package never imports it.

All calls come from the thread that called ``describe_many`` (or the event loop running
``adescribe_many``), never from a worker thread.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from .results import Result, Results
from .wording import counted

__all__ = [
    "Progress",
    "ProgressStats",
    "TerminalProgress",
    "make_progress",
    "stop_message",
]


def stop_message(error: BaseException | None, done: int, total: int) -> str | None:
    """Why a run ended early, for the end of its progress display; None when it did not.

    A stop (Ctrl-C, the notebook's stop button, a cancelled task) says how far the run got
    and where its finished answers are.
    """
    if error is None:
        return None
    if isinstance(error, (KeyboardInterrupt, asyncio.CancelledError)):
        return f"interrupted after {done} of {total}; finished answers in reka_nb.last_results"
    return f"stopped: {error}" if str(error) else f"stopped: {type(error).__name__}"


class Progress(Protocol):
    """Shown while a run goes on. A progress may also have ``expect_schema(schema)``: called
    after ``start`` for a structured run, so the rows it shows can show the fields."""

    def start(self, total: int) -> None: ...

    def update(self, result: Result) -> None: ...

    def close(self, results: Results | None, error: BaseException | None = None) -> None: ...


class ProgressStats:
    """Counts behind every progress display: done, errors, cached, tokens, rate, ETA.

    The rate counts requests only: answers from the cache arrive at once, so counting them
    would promise a speed the rest of the run cannot keep. They are counted apart.
    """

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
    def requests(self) -> int:
        """Items finished that were not answered from the cache (asked, or failed)."""
        return self.done - self.cached

    @property
    def rate(self) -> float:
        """Requests finished per second so far (answers from the cache not counted)."""
        elapsed = self.elapsed
        return self.requests / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the request rate so far: None before the first request and once
        every item is done."""
        rate = self.rate
        if self.done >= self.total or rate <= 0:
            return None
        return (self.total - self.done) / rate

    def counts(self) -> list[str]:
        """``1 error``, ``3 from the cache``, ``1,234 tokens in, 567 out``: the parts of a
        progress line after the rate, in words."""
        parts = [counted(self.errors, "error")]
        if self.cached:
            parts.append(f"{self.cached:,} from the cache")
        parts.append(f"{counted(self.input_tokens, 'token')} in, {self.output_tokens:,} out")
        return parts

    def speed(self) -> str:
        """``2.5 requests/s`` (``1 request/s`` reads as it should too)."""
        rate = self.rate
        return f"{rate:.1f} request{'' if f'{rate:.1f}' == '1.0' else 's'}/s"

    def left(self) -> str | None:
        """``about 4 s left`` (``under 1 s left``); None when unknown or nothing is left."""
        eta = self.eta
        if eta is None:
            return None
        return "under 1 s left" if eta < 0.5 else f"about {eta:.0f} s left"

    def postfix(self) -> str:
        """``2.5 requests/s, about 4 s left, 1 error, 3 from the cache, 1,234 tokens in, 567
        out``: what the terminal bar shows after the time so far."""
        left = self.left()
        return ", ".join([self.speed(), *([left] if left else []), *self.counts()])


_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"


class TerminalProgress:
    """A tqdm bar (on stderr): done/total, the time so far, then ``ProgressStats.postfix``:
    requests a second (not tqdm's own rate, which would count answers from the cache), the
    time left, errors, answers from the cache and tokens."""

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
            bar_format=_BAR_FORMAT,
            postfix=self.stats.postfix(),
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
        if error is None and results is not None and results.stopped:
            # no exception will say it: the line under the bar tells why it ended early
            left = results.total - len(results)
            rest = f"; {left} not asked: results.retry_failed() asks them" if left else ""
            print(f"reka: {results.stopped}{rest}", file=self._file or sys.stderr, flush=True)


def make_progress(show: bool | Progress) -> Progress | None:
    """The progress display of a run: none, the one given, or tqdm."""
    if show is False or show is None:
        return None
    return TerminalProgress() if show is True else show
