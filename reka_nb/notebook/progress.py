"""The notebook display of a describe_many run: one output, updated in place.

It shows done/total as a bar, requests a second, the time left, errors, answers from the
cache, tokens so far, and the rows of the results table as they finish (the latest ones when
there are many). At the end the rows go: the Results table shown after the run holds each row
once, in input order (a run stopped by an error keeps its rows, in input order). Updates are
coalesced (at most ``rate`` a second); the last one always shows the final state. With
``REKA_NB_DISPLAY=final`` (nbval, which records only the first version of a display) the
display goes back to its first version at the end and the final counts, without timings,
follow as an ordinary output, so a saved notebook compares equal on the next run.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from ..batch.progress import ProgressStats, stop_message
from ..batch.results import HTML_ROWS, Result, Results, results_table
from ..batch.wording import counted
from ..images.markup import ERROR_STYLE, WRAP_STYLE
from .display import display_mode
from .throttle import Throttle

if TYPE_CHECKING:
    from ..protocol.schema import Schema

__all__ = ["NotebookProgress", "progress_bundle"]

#: Rows shown while the run goes on (the latest ones); the final Results shows them all.
LIVE_ROWS = 20


def progress_bundle(
    stats: ProgressStats,
    rows: list[Result],
    *,
    timing: bool = True,
    error: BaseException | None = None,
    finished: bool = False,
    schema: Schema | None = None,
) -> dict[str, str]:
    """The text/plain and text/html of the progress display (pure: no I/O).

    While the run goes on it shows the latest ``rows``; once it has ended it shows them only
    when it stopped on an error (in input order: no Results table follows then), since the
    Results table shown at the end holds every row once. A structured run's rows (``schema``)
    show a column per field, as that table does.
    """
    parts = [f"{stats.done:,}/{counted(stats.total, 'image')}"]
    if timing:
        parts.append(stats.speed())
        left = None if finished else stats.left()
        if left is not None:
            parts.append(left)
    parts.extend(stats.counts())
    line = " · ".join(parts)
    what = stop_message(error, stats.done, stats.total)
    if what is not None:
        line += f" · {what}"
    if finished:
        shown = sorted(rows, key=lambda r: r.index)[:HTML_ROWS] if error is not None else []
    else:
        shown = rows[-LIVE_ROWS:]
    accent = (
        "var(--jp-error-color1,#d32f2f)" if error is not None else "var(--jp-brand-color1,#1976d2)"
    )
    bar = (
        f'<progress max="{max(stats.total, 1)}" value="{stats.done}" '
        f'style="width:100%;accent-color:{accent}"></progress>'
    )
    table = results_table(shown, thumbnails=True, schema=schema) if shown else ""
    more = ""
    if len(rows) > len(shown) and not finished:
        more = f"<div><em>showing the latest {len(shown)} of {len(rows)} rows</em></div>"
    style = WRAP_STYLE if error is None else f"{WRAP_STYLE};{ERROR_STYLE}"
    text = f'<div style="{style}">{html.escape(line)}</div>'
    body = f'<div class="reka-nb-progress">{bar}{text}{more}{table}</div>'
    return {"text/plain": line, "text/html": body}


class NotebookProgress:
    """A ``Progress`` for notebooks: one display id, updated at most ``rate`` times a second."""

    def __init__(self, rate: float = 4.0) -> None:
        self.stats = ProgressStats()
        self._rows: list[Result] = []
        self._throttle = Throttle(rate)
        self._handle: Any = None
        self._timing = display_mode() == "live"
        self._schema: Schema | None = None

    def start(self, total: int) -> None:
        from IPython.display import display

        self.stats = ProgressStats(total)
        self._rows = []
        self._schema = None
        bundle = progress_bundle(self.stats, [], timing=False)
        self._handle = display(bundle, raw=True, display_id=True)

    def expect_schema(self, schema: Schema) -> None:
        """The run is structured: its rows show a column per field, not the JSON text."""
        self._schema = schema

    def update(self, result: Result) -> None:
        self.stats.add(result)
        self._rows.append(result)
        if self._throttle.ready():
            bundle = progress_bundle(
                self.stats, self._rows, timing=self._timing, schema=self._schema
            )
            self._publish(bundle)

    def close(self, results: Results | None, error: BaseException | None = None) -> None:
        if results is not None and error is not None:
            # a stop landing while an update was drawn may have cut that update short: the
            # results, not the updates seen, say how far the run got
            self.stats.done = max(self.stats.done, len(results))
        if self._timing:
            final = progress_bundle(
                self.stats, self._rows, error=error, finished=True, schema=self._schema
            )
            self._publish(final)
            return
        # nbval records only the first version of a display: return to it, and show the
        # final counts (no timings, no rows: the results table follows) as an output of its own.
        from IPython.display import display

        self._publish(progress_bundle(ProgressStats(self.stats.total), [], timing=False))
        final = progress_bundle(self.stats, [], timing=False, error=error, finished=True)
        display(final, raw=True)

    def _publish(self, bundle: dict[str, str]) -> None:
        if self._handle is not None:
            self._handle.update(bundle, raw=True)


def notebook_progress() -> NotebookProgress | None:
    """The notebook display where a kernel's frontend can update it, else None."""
    from .display import can_update_displays

    return NotebookProgress() if can_update_displays() else None
