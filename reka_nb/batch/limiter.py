"""Rate limiting shared by every request to one account: a token bucket that also obeys
the server's pauses (``Retry-After``, ``x-ratelimit-reset``) for every worker at once.

The engine needs only the small ``Limiter`` protocol: ``acquire()`` before each request and
``pause(seconds)`` when the server says to wait. ``RateLimiter`` is the in-process one; a
cluster runner passes its own (say, a Ray actor behind the same two methods).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .machine_limit import MachineSchedule

__all__ = ["Limiter", "RateLimiter", "shared_limiter"]


@runtime_checkable
class Limiter(Protocol):
    """What the engine asks of a rate limiter."""

    async def acquire(self) -> None:
        """Return when one more request may be sent."""
        ...

    async def pause(self, seconds: float) -> None:
        """The server asked to wait: no request may start for ``seconds`` from now."""
        ...


class RateLimiter:
    """A token bucket at the lowest ``requests_per_minute`` of the runs using it, that
    also holds every worker while a server pause lasts.

    Requests are spaced evenly (no burst), so a server counting requests in any window
    never sees more than the rate. Safe across threads and event loops: the state sits
    under a lock and the waiting is done with ``asyncio.sleep`` in the caller's loop.
    With a ``machine`` schedule, the slots are reserved there, shared with every other
    process on this machine using the same account.
    """

    def __init__(
        self,
        requests_per_minute: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        machine: MachineSchedule | None = None,
    ) -> None:
        self._machine = machine
        self._lock = threading.Lock()
        self._clock = clock
        self._rates: list[float] = [] if requests_per_minute is None else [requests_per_minute]
        self._next_slot = 0.0
        self._paused_until = 0.0
        self.pauses = 0  # how many server pauses it obeyed (for reports)

    def __repr__(self) -> str:
        rate = self.requests_per_minute
        return f"<RateLimiter {'unlimited' if rate is None else f'{rate:g}/min'}>"

    @property
    def requests_per_minute(self) -> float | None:
        """The rate in force: the lowest of the runs using the limiter, or None."""
        with self._lock:
            return min(self._rates) if self._rates else None

    @contextmanager
    def limit(self, requests_per_minute: float | None) -> Iterator[None]:
        """Apply a run's rate while the run lasts (None adds no limit)."""
        if requests_per_minute is None:
            yield
            return
        with self._lock:
            self._rates.append(requests_per_minute)
        try:
            yield
        finally:
            with self._lock:
                self._rates.remove(requests_per_minute)

    async def acquire(self) -> None:
        while True:
            shared: float | None = None  # the interval to reserve on the machine schedule
            with self._lock:
                now = self._clock()
                reserved = False
                if now < self._paused_until:
                    wait = self._paused_until - now
                elif not self._rates:
                    return
                elif self._machine is not None and self._machine.usable:
                    shared, wait = 60.0 / min(self._rates), 0.0
                else:
                    interval = 60.0 / min(self._rates)
                    slot = max(now, self._next_slot)
                    self._next_slot = slot + interval
                    wait, reserved = slot - now, True
            if shared is not None:
                assert self._machine is not None
                at = await asyncio.to_thread(self._machine.reserve, shared)
                if at is None:
                    continue  # the shared file failed: this process's own schedule from now
                wait, reserved = at - time.time(), True
            if wait > 0:
                await asyncio.sleep(wait)
            if reserved:
                with self._lock:
                    if self._clock() >= self._paused_until:
                        return

    async def pause(self, seconds: float) -> None:
        self.pause_now(seconds)
        if self._machine is not None and seconds > 0:
            await asyncio.to_thread(self._machine.pause, seconds)  # every process waits

    def pause_now(self, seconds: float) -> None:
        """``pause`` without awaiting (the state change is immediate)."""
        if seconds <= 0:
            return
        with self._lock:
            until = self._clock() + seconds
            if until > self._paused_until:
                self._paused_until = until
                self.pauses += 1
            self._next_slot = max(self._next_slot, self._paused_until)


_shared: dict[tuple[str, str], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_limiter(base_url: str, api_key: str | None) -> RateLimiter:
    """The process-wide limiter of one account: one per (base URL, hash of the key), whose
    slots are shared with the other processes of this machine (``machine_limit``)."""
    from .machine_limit import machine_schedule

    digest = hashlib.sha256((api_key or "").encode()).hexdigest()[:16]
    with _shared_lock:
        limiter = _shared.get((base_url, digest))
        if limiter is None:
            machine = machine_schedule(base_url, api_key)
            limiter = _shared[(base_url, digest)] = RateLimiter(machine=machine)
        return limiter
