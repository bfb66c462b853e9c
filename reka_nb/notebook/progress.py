"""The notebook display of a describe_many run: one output, updated in place.

It shows done/total as a bar, answers a second, the time left, errors, tokens so far, and the
rows of the results table as they finish (the latest ones when there are many). Updates are
coalesced (at most ``rate`` a second); the last one always shows the final state. With
``REKA_NB_DISPLAY=final`` (nbval, which records only the first version of a display) the
display goes back to its first version at the end and the final counts, without timings,
follow as an ordinary output, so a saved notebook compares equal on the next run.
"""

from __future__ import annotations

import html
from typing import Any

from ..batch.progress import ProgressStats, stop_message
from ..batch.results import Result, Results, results_table
from .display import display_mode
from .throttle import Throttle

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
) -> dict[str, str]:
    """The text/plain and text/html of the progress display (pure: no I/O)."""
    parts = [f"{stats.done}/{stats.total} images"]
    if timing:
        parts.append(f"{stats.rate:.1f}/s")
        eta = stats.eta
        if not finished and eta is not None:
            parts.append(f"about {eta:.0f} s left")
    parts.append(f"{stats.errors} errors")
    if stats.cached:
        parts.append(f"{stats.cached} from the cache")
    parts.append(f"{stats.input_tokens:,} tokens in, {stats.output_tokens:,} out")
    line = " · ".join(parts)
    what = stop_message(error, stats.done, stats.total)
    if what is not None:
        line += f" · {what}"
    shown = rows[-LIVE_ROWS:]
    color = "#b00" if error is not None else "#2a7"
    bar = (
        f'<progress max="{max(stats.total, 1)}" value="{stats.done}" '
        f'style="width:100%;accent-color:{color}"></progress>'
    )
    table = results_table(shown, thumbnails=True) if shown else ""
    more = ""
    if len(rows) > len(shown):
        more = f"<div><em>showing the latest {len(shown)} of {len(rows)} rows</em></div>"
    body = f'<div class="reka-nb-progress">{bar}<div>{html.escape(line)}</div>{more}{table}</div>'
    return {"text/plain": line, "text/html": body}


class NotebookProgress:
    """A ``Progress`` for notebooks: one display id, updated at most ``rate`` times a second."""

    def __init__(self, rate: float = 4.0) -> None:
        self.stats = ProgressStats()
        self._rows: list[Result] = []
        self._throttle = Throttle(rate)
        self._handle: Any = None
        self._timing = display_mode() == "live"

    def start(self, total: int) -> None:
        from IPython.display import display

        self.stats = ProgressStats(total)
        self._rows = []
        bundle = progress_bundle(self.stats, [], timing=False)
        self._handle = display(bundle, raw=True, display_id=True)

    def update(self, result: Result) -> None:
        self.stats.add(result)
        self._rows.append(result)
        if self._throttle.ready():
            self._publish(progress_bundle(self.stats, self._rows, timing=self._timing))

    def close(self, results: Results | None, error: BaseException | None = None) -> None:
        if results is not None and error is not None:
            # a stop landing while an update was drawn may have cut that update short: the
            # results, not the updates seen, say how far the run got
            self.stats.done = max(self.stats.done, len(results))
        if self._timing:
            final = progress_bundle(self.stats, self._rows, error=error, finished=True)
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
