"""The process-wide switch that points every client at an in-process offline server."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from .._exceptions import ConfigurationError

if TYPE_CHECKING:
    from ..offline import OfflineServer

__all__ = [
    "OFFLINE_SERVER",
    "ensure_server",
    "is_active",
    "server_name",
    "stop_offline_server",
    "use_offline_server",
]

#: What the answer cache records as the server of the in-process offline server's answers: one
#: name whatever port it got, and not a URL, so no real server's answers are ever mistaken for it.
OFFLINE_SERVER = "reka-nb offline server"

_lock = threading.Lock()
_server: OfflineServer | None = None
_active = False
_delay_text = ""  # the REKA_NB_OFFLINE_DELAY the server was last given


def use_offline_server(token_delay: float | None = None) -> OfflineServer:
    """Point every client of this process (without an explicit base_url) at the offline server.

    The server runs no model: its answers say so and report what it measured from the
    request. Returns the running server; ``token_delay`` sets seconds between streamed words.
    """
    global _active
    server = ensure_server()
    if token_delay is not None:
        server.token_delay = token_delay
    _active = True
    return server


def stop_offline_server() -> None:
    """Stop the in-process offline server and turn offline mode off."""
    global _server, _active
    with _lock:
        server, _server, _active = _server, None, False
    if server is not None:
        server.stop()


def is_active() -> bool:
    """True after use_offline_server() (REKA_NB_OFFLINE is checked by the settings)."""
    return _active


def ensure_server() -> OfflineServer:
    """The in-process offline server, started on first use.

    ``REKA_NB_OFFLINE_DELAY`` set or changed after it started applies from the next request.
    """
    global _server, _delay_text
    with _lock:
        text = os.environ.get("REKA_NB_OFFLINE_DELAY", "")
        if _server is None:
            from ..offline import OfflineServer

            _server = OfflineServer(token_delay=_delay_from_environment()).start()
        elif text != _delay_text:
            _server.token_delay = _delay_from_environment()
        _delay_text = text
        return _server


def server_name(base_url: str) -> str:
    """The server ``base_url`` names, for the answer cache: ``OFFLINE_SERVER`` for the
    in-process offline server (whose port changes with every process), else the URL itself."""
    server = _server
    if server is not None and server.running and base_url.rstrip("/") == server.base_url:
        return OFFLINE_SERVER
    return base_url


def _delay_from_environment() -> float:
    text = os.environ.get("REKA_NB_OFFLINE_DELAY", "").strip() or "0"
    try:
        delay = float(text)
    except ValueError:
        delay = -1.0
    if not 0 <= delay < 60:
        raise ConfigurationError(
            f"REKA_NB_OFFLINE_DELAY must be seconds between words, from 0 to 60, not {text!r}"
        )
    return delay
