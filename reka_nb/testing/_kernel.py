"""Notebook kernels pointed at an offline server: their environment, and a whole run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..offline._server import OfflineServer

__all__ = ["kernel_env", "run_notebook"]


def kernel_env(server: OfflineServer, *, api_key: str | None = None) -> dict[str, str]:
    """Variables for a kernel's environment: the server's URL and key, and the nbval display.

    ``REKA_NB_DISPLAY=final`` makes each streamed answer also publish its final state as an
    output of its own, which is what nbval (recording only first versions) can compare.
    ``REKA_NB_CACHE=off``: a notebook run asks anew rather than reading the user's answer
    cache (a notebook may still name a cache folder of its own).
    ``api_key`` replaces the server's key, e.g. to check that a wrong key fails a run.
    """
    return {
        "REKA_BASE_URL": server.base_url,
        "REKA_API_KEY": server.api_key if api_key is None else api_key,
        "REKA_NB_DISPLAY": "final",
        "REKA_NB_CACHE": "off",
    }


def run_notebook(notebook: Any, cwd: str | Path, *, timeout: float = 120) -> None:
    """Execute a notebook (an nbformat node, changed in place) against a fresh offline server.

    The kernel runs in ``cwd`` with the environment of :func:`kernel_env` and none of the
    caller's other ``REKA_*`` variables. Cells tagged ``raises-exception`` may fail; any other
    failure raises. Widget state is not stored, so uploads never reach the saved file.
    """
    from nbclient import NotebookClient  # a test dependency, not a runtime one

    with OfflineServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
        env.update(kernel_env(server))
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(cwd)}},
            store_widget_state=False,
            record_timing=False,
        )
        client.execute(env=env)
