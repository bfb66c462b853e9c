"""Which connection pool an asyncio client asks through: httpx's own, or httpx over aiohttp.

``httpx`` is the default of a client. ``aiohttp`` keeps httpx's API (and so every flow,
limit, retry and typed error of ``base.py``) but moves the bytes with aiohttp's pool, which
spends a fraction of the CPU per request at high concurrency (the ``fast`` extra installs
``httpx-aiohttp``; ``aiohttp_transport.py`` holds the transport, imported only when used).
``auto`` takes ``aiohttp`` when it is installed, else ``httpx``: the default of the runs over
many images (``describe_many``, Ray's ``describe_dataset``). ``REKA_NB_TRANSPORT`` names the
transport wherever none is passed. Sync clients always use httpx.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from .._exceptions import ConfigurationError

__all__ = [
    "ENV",
    "FAST_INSTALL",
    "TRANSPORTS",
    "check_transport",
    "chosen",
    "fast_installed",
    "limits",
    "make_transport",
    "pick",
]

#: The names a ``transport=`` option takes.
TRANSPORTS = ("auto", "httpx", "aiohttp")
#: The environment variable naming the transport wherever none is passed.
ENV = "REKA_NB_TRANSPORT"
FAST_INSTALL = "pip install 'reka-nb[fast]'"


def check_transport(name: Any, where: str = "transport") -> str | None:
    """``name`` when it is one of ``TRANSPORTS`` (or None: not chosen); else a
    ConfigurationError naming the choices, and the one meant when it is a near miss."""
    if name is None:
        return None
    if isinstance(name, str) and name.strip().lower() in TRANSPORTS:
        return name.strip().lower()
    hint = ""
    if isinstance(name, str):
        import difflib  # only for this error

        near = difflib.get_close_matches(name.strip().lower(), TRANSPORTS, n=1, cutoff=0.6)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        if name.strip().lower() == "fast":
            hint = " (the fast extra's transport is 'aiohttp')"
    raise ConfigurationError(
        f"{where} must be one of {', '.join(map(repr, TRANSPORTS))}, not {name!r}{hint}"
    )


def chosen(name: str | None, default: str) -> str:
    """The transport asked for: ``name``, else ``REKA_NB_TRANSPORT``, else ``default``."""
    if name is not None:
        return check_transport(name) or default
    value = os.environ.get(ENV, "").strip()
    return check_transport(value, ENV) if value else default  # type: ignore[return-value]


def fast_installed() -> bool:
    """Whether the ``fast`` extra (httpx-aiohttp, and so aiohttp) can be imported."""
    import importlib.util  # not with ``import reka_nb``: only when a transport is picked

    return all(importlib.util.find_spec(name) is not None for name in ("httpx_aiohttp", "aiohttp"))


def pick(name: str) -> str:
    """``httpx`` or ``aiohttp`` for a checked name (``auto``: aiohttp when installed); asking
    for ``aiohttp`` without the extra is a ConfigurationError saying how to install it."""
    if name == "auto":
        return "aiohttp" if fast_installed() else "httpx"
    if name == "aiohttp" and not fast_installed():
        raise ConfigurationError(
            f"transport='aiohttp' needs httpx-aiohttp, which is not installed: {FAST_INSTALL} "
            "(or use transport='httpx')"
        )
    return name


def limits(max_connections: int | None) -> httpx.Limits:
    """The pool's limits: httpx's defaults, or ``max_connections`` open and kept alive."""
    if max_connections is None:
        return httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


def make_transport(name: str, pool: httpx.Limits) -> httpx.AsyncBaseTransport | None:
    """The transport for a picked name: None for httpx's own (the client makes it)."""
    if name != "aiohttp":
        return None
    from .aiohttp_transport import AiohttpPool  # aiohttp is imported only when used

    return AiohttpPool(pool)
