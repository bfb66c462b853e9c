"""nbval runs the notebooks here against an offline server started for the session.

The kernel nbval starts inherits this process's environment, so the server's URL and key
(and ``REKA_NB_DISPLAY=final``, see docs/notebook.md) are put into it while the first cell of
each notebook is set up, and taken out again afterwards. ``REKA_NB_NOTEBOOK_KEY``, when set,
replaces the key given to the kernel: the suite uses it to check that a wrong key fails nbval.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from reka_nb.testing import OfflineServer, kernel_env

_server: OfflineServer | None = None
_REMOVED = ("REKA_MODEL", "REKA_NB_OFFLINE", "REKA_NB_OFFLINE_DELAY")


#: The notebooks nbval checks. Other notebooks here, such as the executed copy that
#: ``jupyter nbconvert --execute`` writes (quickstart.nbconvert.ipynb), are not collected.
CHECKED = ("quickstart.ipynb",)
HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path.suffix == ".ipynb" and collection_path.parent == HERE:
        return collection_path.name not in CHECKED
    return None


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "nbval_sanitize_with", None) is None:
        config.option.nbval_sanitize_with = str(Path(__file__).with_name("sanitize.cfg"))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _server is not None:
        _server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    global _server
    if _server is None:
        _server = OfflineServer().start()
    env = kernel_env(_server, api_key=os.environ.get("REKA_NB_NOTEBOOK_KEY"))
    saved = {name: os.environ.get(name) for name in (*env, *_REMOVED)}
    os.environ.update(env)
    for name in _REMOVED:
        os.environ.pop(name, None)
    try:
        return (yield)  # the kernel starts here, with this environment
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
