"""One rate limit for a whole Ray cluster: a named actor hands out request slots.

Ray Data's own HTTP processor applies its rate per worker, so N actors send N times the
rate. Here every request of every actor on every node first asks one ``PermitDesk`` actor
for a slot. The desk spaces slots evenly (``60 / requests_per_minute`` seconds apart, no
burst) and holds everyone while a server pause lasts (a 429's ``Retry-After``, an exhausted
``x-ratelimit-remaining``), so the account sees one paced stream of requests.

Two details keep the pace exact although replies from an actor arrive with some jitter: the
desk answers each request ``LEAD`` seconds *before* its slot, with the slot's wall-clock
time, and the caller sleeps to that moment itself; a caller that reaches its slot more than
one interval late (its process was busy) takes a new slot rather than bunch with the next
ones; and a pause that begins while a request waits at the desk moves that request to a slot
after the pause. Slots are wall-clock times,
so the nodes' clocks must agree (NTP keeps them within milliseconds).

The desk is restarted by Ray when its process dies (``max_restarts``), and calls to it are
retried on the new one (``max_task_retries``): the callers keep their handle, which attaches to
the restarted desk, so a killed desk costs a moment's pacing, never the dataset.

Ray is imported only inside the functions that need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from typing import Any

__all__ = ["LEAD", "MAX_LATE", "MIN_TOLERANCE", "PermitDesk", "RayLimiter", "desk_name", "get_desk"]

#: Seconds a caller keeps asking a desk that Ray is restarting before it gives up.
DESK_PATIENCE = 60.0

#: Seconds before its slot at which the desk hands a slot out (absorbs reply jitter).
LEAD = 1.0
#: A slot reached later than one interval (and at least this many seconds) is given up.
MIN_TOLERANCE = 0.05
#: Slots a request gives up at most before it goes anyway (a machine too busy to keep time).
MAX_LATE = 3


class PermitDesk:
    """The cluster's rate limit, as an async Ray actor (see the module's docstring).

    Each ``acquire`` passes the caller's ``requests_per_minute`` (None: no pace, only the
    pauses); runs sharing one key should pass the same number.
    """

    def __init__(self) -> None:
        self._next = 0.0  # wall-clock time of the next free slot
        self._paused_until = 0.0
        self.granted = 0
        self.pauses = 0

    async def acquire(self, requests_per_minute: float | None) -> float:
        """Wait until shortly before this request's slot; return the slot (``time.time()``)."""
        while True:
            now = time.time()
            slot = max(now, self._paused_until)
            if requests_per_minute is not None:
                slot = max(slot, self._next)
                self._next = slot + 60.0 / requests_per_minute
            wait = slot - LEAD - now
            if wait > 0:
                await asyncio.sleep(wait)
            if slot >= self._paused_until:  # no pause began over this slot while it waited
                self.granted += 1
                return slot

    def pause(self, seconds: float) -> float:
        """No slot before ``seconds`` from now, for every caller; returns the pause's end."""
        until = time.time() + max(0.0, float(seconds))
        if until > self._paused_until:
            self._paused_until = until
            self.pauses += 1
        self._next = max(self._next, self._paused_until)
        return self._paused_until

    def stats(self) -> dict[str, int]:
        """Slots granted and pauses obeyed so far (since the desk last started)."""
        return {"granted": self.granted, "pauses": self.pauses}

    def pid(self) -> int:
        """The desk's process id (to tell a restarted desk from the first)."""
        return os.getpid()


async def _ask_desk(call: Any, *args: Any) -> Any:
    """``await call.remote(*args)``, waiting out a desk Ray is restarting (its process was
    killed): the handle attaches to the new desk by itself."""
    from ray.exceptions import RayActorError

    unavailable: tuple[type[BaseException], ...] = (RayActorError,)
    with contextlib.suppress(ImportError):
        from ray.exceptions import ActorUnavailableError

        unavailable += (ActorUnavailableError,)
    deadline = time.monotonic() + DESK_PATIENCE
    while True:
        try:
            return await call.remote(*args)
        except unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


class RayLimiter:
    """The engine's ``Limiter`` on top of a ``PermitDesk`` actor (one per map actor)."""

    def __init__(self, desk: Any, requests_per_minute: float | None) -> None:
        self._desk = desk
        self.requests_per_minute = requests_per_minute
        self.late = 0  # slots given up because this process reached them too late

    def __repr__(self) -> str:
        rate = self.requests_per_minute
        return f"<RayLimiter {'unlimited' if rate is None else f'{rate:g}/min'}, cluster-wide>"

    async def acquire(self) -> None:
        rate = self.requests_per_minute
        # A request sent more than one interval after its slot would bunch with the next ones
        # (this process was busy, a reply came late): it takes a new slot instead.
        tolerance = None if rate is None else max(60.0 / rate, MIN_TOLERANCE)
        for _ in range(MAX_LATE):
            slot = await _ask_desk(self._desk.acquire, rate)
            delay = slot - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if tolerance is None or time.time() - slot <= tolerance:
                return
            self.late += 1

    async def pause(self, seconds: float) -> None:
        await _ask_desk(self._desk.pause, seconds)


def desk_name(base_url: str, api_key: str | None) -> str:
    """The desk's actor name: one per (base URL, key). The key enters only as part of a
    SHA-256 digest, never as itself."""
    digest = hashlib.sha256(f"{base_url}\n{api_key or ''}".encode()).hexdigest()[:24]
    return f"reka_nb-permits-{digest}"


#: The desks this driver made, by (Ray job, name). Ray ends an actor once its creator's handle
#: is gone, and a handle found by name does not count, so the first handle is kept for the job:
#: a desk then outlives the dataset that made it, and the next dataset on the same key shares it.
_desks: dict[tuple[str, str], Any] = {}


def get_desk(name: str) -> Any:
    """The named ``PermitDesk`` of this Ray job, made on first use (from the driver) and kept
    for the job; Ray restarts it whenever its process dies, and retries the calls it was
    answering."""
    import ray

    job = ray.get_runtime_context().get_job_id()
    desk = _desks.get((job, name))
    if desk is None:
        actor: Any = ray.remote(PermitDesk)
        desk = _desks[(job, name)] = actor.options(
            name=name,
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=10_000,
            max_restarts=-1,
            max_task_retries=-1,
        ).remote()
    return desk
