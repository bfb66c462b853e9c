"""The environment that points a notebook kernel at an offline server."""

from __future__ import annotations

from ._server import OfflineServer

__all__ = ["kernel_env"]


def kernel_env(server: OfflineServer, *, api_key: str | None = None) -> dict[str, str]:
    """Variables for a kernel's environment: the server's URL and key, and the nbval display.

    ``REKA_NB_DISPLAY=final`` makes each streamed answer also publish its final state as an
    output of its own, which is what nbval (recording only first versions) can compare.
    ``api_key`` replaces the server's key, e.g. to check that a wrong key fails a run.
    """
    return {
        "REKA_BASE_URL": server.base_url,
        "REKA_API_KEY": server.api_key if api_key is None else api_key,
        "REKA_NB_DISPLAY": "final",
    }
