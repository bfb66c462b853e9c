"""One account's request schedule shared by every process on this machine.

Two notebooks (or a notebook and the CLI) on one key each keep a ``RateLimiter``; alone, each
would send at its own rate, and together twice it. Each therefore reserves its request slots
from one row of a small SQLite file next to the answer cache (``limits.sqlite3``), keyed by a
hash of the base URL and the key (the key itself is never written): the next free slot and
until when the server asked everyone to wait. Reserving is one short write transaction.

A file that cannot be used (the cache is off, a read-only folder, damage) leaves each process
its own schedule, as before: a shared limit must never be the reason a run fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
import time
from pathlib import Path

__all__ = ["FILE_NAME", "MachineSchedule", "machine_schedule"]

FILE_NAME = "limits.sqlite3"
_BUSY_SECONDS = 5.0


def account_id(base_url: str, api_key: str | None) -> str:
    """The row's key: a hash of the base URL and the key, never the key."""
    return hashlib.sha256(f"{base_url}\0{api_key or ''}".encode()).hexdigest()


class MachineSchedule:
    """Slots of one account, reserved in a SQLite file that every process on the machine
    shares; times are wall-clock (``time.time()``), the one clock processes share."""

    def __init__(self, path: Path, account: str) -> None:
        self.path = path
        self.account = account
        self.usable = True
        self._local = threading.local()
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"<MachineSchedule {str(self.path)!r} {'on' if self.usable else 'off'}>"

    def _db(self) -> sqlite3.Connection:
        if self._pid != os.getpid():  # a forked child opens its own
            self._local, self._pid = threading.local(), os.getpid()
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(FileExistsError):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None)
            # A schedule, not a record: no fsync per slot, so a busy disk holds the lock for
            # microseconds, not for a flush (a lost row after a power cut costs nothing).
            db.execute("PRAGMA synchronous=OFF")
            db.execute(
                "CREATE TABLE IF NOT EXISTS slots (account TEXT PRIMARY KEY,"
                " next_slot REAL NOT NULL, paused_until REAL NOT NULL)"
            )
            self._local.db = db
        return db

    def _update(self, interval: float, pause_until: float) -> float | None:
        """In one transaction: the next slot (``interval`` after it becomes the next one),
        or only a pause when ``interval`` is 0. None when the file cannot be used."""
        if not self.usable:
            return None
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT next_slot, paused_until FROM slots WHERE account = ?",
                    (self.account,),
                ).fetchone()
                next_slot, paused = row if row is not None else (0.0, 0.0)
                paused = max(paused, pause_until)
                now = time.time()
                slot = max(now, next_slot, paused)
                next_slot = slot + interval if interval else max(next_slot, paused)
                db.execute(
                    "INSERT OR REPLACE INTO slots VALUES (?, ?, ?)",
                    (self.account, next_slot, paused),
                )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError):
            self.usable = False  # each process keeps its own schedule from now on
            return None
        return slot

    def reserve(self, interval: float) -> float | None:
        """The wall-clock time of this process's next request slot (None: use your own)."""
        return self._update(interval, 0.0)

    def pause(self, seconds: float) -> None:
        """The server asked to wait: no process sends for ``seconds`` from now."""
        self._update(0.0, time.time() + seconds)


def machine_schedule(base_url: str, api_key: str | None) -> MachineSchedule | None:
    """The shared schedule of an account, in the answer cache's folder; None when the cache
    is off (or its setting is refused), so there is no folder to share."""
    from .._exceptions import ConfigurationError
    from ..cache import cache_folder

    try:
        folder = cache_folder()
    except ConfigurationError:
        return None
    if folder is None:
        return None
    return MachineSchedule(folder / FILE_NAME, account_id(base_url, api_key))
