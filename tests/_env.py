"""The environment a test's child process (a kernel, the CLI, a script) starts from."""

from __future__ import annotations

import os

__all__ = ["child_environment"]


def child_environment() -> dict[str, str]:
    """This process's environment without the REKA_* settings, but for the transport the test
    runs on (REKA_NB_TRANSPORT, set by the ``transport`` fixture), so the child asks on it too."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    if "REKA_NB_TRANSPORT" in os.environ:
        env["REKA_NB_TRANSPORT"] = os.environ["REKA_NB_TRANSPORT"]
    return env
