"""Coalescing of display updates: the first at once, then at most N a second (no I/O)."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["Throttle"]


class Throttle:
    """Says when an update is due: the first one always, then one per ``1 / rate`` seconds.

    Frontends choke on one message per token (Jupyter drops iopub traffic above
    1,000 messages/s), and people cannot read faster than a few updates a second anyway.
    """

    def __init__(self, rate: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be above 0 updates a second, not {rate}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._last: float | None = None
        self.pending = False  # something arrived that is not shown yet

    def ready(self) -> bool:
        """Call when something new arrived; True when it should be shown now."""
        now = self._clock()
        if self._last is None or now - self._last >= self.interval:
            self._last = now
            self.pending = False
            return True
        self.pending = True
        return False

    def remaining(self) -> float:
        """Seconds until an update would be due (0 when it is due now)."""
        if self._last is None:
            return 0.0
        return max(0.0, self.interval - (self._clock() - self._last))
