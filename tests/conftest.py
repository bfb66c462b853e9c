"""Shared fixtures: one offline server for the session, reset before each test that uses it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config

from reka_nb.client.transports import fast_installed
from reka_nb.testing import OfflineServer

#: The transports of asyncio clients that the client and batch tests run on: httpx's own
#: pool, and httpx over aiohttp's where the fast extra is installed (the test extra has it).
TRANSPORTS = ["httpx", "aiohttp"] if fast_installed() else ["httpx"]

_SETTINGS = (
    "REKA_API_KEY",
    "REKA_BASE_URL",
    "REKA_MODEL",
    "REKA_NB_OFFLINE",
    "REKA_NB_OFFLINE_DELAY",
    "REKA_NB_MAX_VIDEO_MB",
    "REKA_NB_TRANSPORT",
)


@pytest.fixture(autouse=True)
def _clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's REKA_* variables, and offline mode never leaks between tests.

    The answer cache of each test is a folder of its own, never the user's.
    """
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REKA_NB_CACHE", str(tmp_path / "reka-nb-cache"))
    yield
    from reka_nb.client import offline_mode as _offline

    _offline._active = False


@pytest.fixture(autouse=True)
def _no_model_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """Questions here make exactly the requests they show: a client does not first ask
    GET /models by itself (REKA_NB_MODEL_INFO=off). Tests of that lookup turn it on."""
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "off")


@pytest.fixture(scope="module")
def shell() -> Iterator[InteractiveShell]:
    """IPython's shell, one per process as in a kernel, with the extension loaded and no
    history file (for the magics and displays tests)."""
    config = Config()
    config.HistoryManager.enabled = False
    ip = InteractiveShell.instance(config=config)
    ip.run_line_magic("load_ext", "reka_nb")
    yield ip


@pytest.fixture(scope="session")
def offline_server() -> Iterator[OfflineServer]:
    with OfflineServer() as server:
        yield server


@pytest.fixture
def server(offline_server: OfflineServer) -> Iterator[OfflineServer]:
    offline_server.reset()
    yield offline_server
    offline_server.check_errors()


@pytest.fixture
def env(server: OfflineServer, monkeypatch: pytest.MonkeyPatch) -> OfflineServer:
    """The offline server, named by REKA_BASE_URL and REKA_API_KEY as a user would."""
    monkeypatch.setenv("REKA_BASE_URL", server.base_url)
    monkeypatch.setenv("REKA_API_KEY", server.api_key)
    return server


@pytest.fixture
def varied(env: OfflineServer) -> OfflineServer:
    """``env`` whose models choose labels differently (``varied_choices``; reset after)."""
    env.varied_choices = True
    return env


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each transport in turn, named by REKA_NB_TRANSPORT: every asyncio client the test makes
    without choosing one (describe_many's, the CLI's --each, in subprocesses too) uses it."""
    monkeypatch.setenv("REKA_NB_TRANSPORT", request.param)
    return str(request.param)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A case of the sync client alone is run once: no transport choice reaches it."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        params = params.params if params is not None else {}
        if params.get("kind") == "sync" and params.get("transport", TRANSPORTS[0]) != TRANSPORTS[0]:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_report_header() -> str:
    return (
        f"reka_nb tests: offline server on 127.0.0.1 (cwd {os.getcwd()}); "
        f"asyncio transports: {', '.join(TRANSPORTS)}"
    )
