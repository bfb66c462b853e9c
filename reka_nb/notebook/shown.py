"""An answer shown once: the result of the cell that displayed it is not displayed again.

``describe()`` as a cell's last line returns the Description it already showed while it
streamed; IPython would show it again as ``Out[n]``. The check given to ``mark_shown`` is true
only while IPython's display hook formats the result of that same cell.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["shown_once"]


def _in_displayhook(shell: Any) -> bool:
    """True while IPython's display hook is formatting a cell's result (on this thread)."""
    from IPython.core.displayhook import DisplayHook

    codes = {DisplayHook.__call__.__code__, type(shell.displayhook).__call__.__code__}
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code in codes:
            return True
        frame = frame.f_back
    return False


class _CellCount:
    """Counts the cells a shell runs (IPython's ``pre_run_cell`` event), from first use on."""

    def __init__(self, shell: Any) -> None:
        self.count = 0
        shell.events.register("pre_run_cell", self.next)

    def next(self, *info: Any) -> None:
        self.count += 1


_cell_counts: weakref.WeakKeyDictionary[Any, _CellCount] = weakref.WeakKeyDictionary()


def shown_once() -> Callable[[], bool] | None:
    """For ``Description.mark_shown``: a check that is True only while IPython's display hook
    shows the result of the cell running now, which must not show its answer a second time.
    The same answer evaluated in a later cell, or passed to ``display()``, is shown as usual.
    None outside IPython."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return None
    counter = _cell_counts.get(shell)
    if counter is None:
        counter = _cell_counts[shell] = _CellCount(shell)
    cell = counter.count

    def check() -> bool:
        return counter.count == cell and _in_displayhook(shell)

    return check
