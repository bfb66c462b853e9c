"""One background asyncio event loop for the process, run by a daemon thread.

The upload panel runs its requests there rather than on the kernel's loop: the answer keeps
streaming while a cell computes, and Stop cancels the request's task at whatever it is
awaiting (connecting, the first byte, the next word), which closes the connection at once.
A thread blocked in a socket read could not be woken that way.
"""

from __future__ import annotations

import asyncio
import threading

__all__ = ["background_loop", "existing_loop", "in_background_thread"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The running background loop, started on first use."""
    global _loop, _thread
    with _lock:
        if _loop is None or _thread is None or not _thread.is_alive():
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            thread = threading.Thread(
                target=_serve, args=(loop, ready), name="reka-nb-background", daemon=True
            )
            thread.start()
            ready.wait()
            _loop, _thread = loop, thread
        return _loop


def existing_loop() -> asyncio.AbstractEventLoop | None:
    """The background loop if it is running, without starting one."""
    with _lock:
        if _loop is not None and _thread is not None and _thread.is_alive():
            return _loop
        return None


def in_background_thread() -> bool:
    """True when called from the background loop's thread (where blocking on it would hang)."""
    return _thread is not None and threading.current_thread() is _thread


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    loop.run_forever()
