"""JupyterLab in a subprocess for the browser test, isolated from the developer's setup.

The server runs with its own config, user-settings, workspaces, runtime and IPython folders
under a temporary directory, so neither personal settings nor a saved layout changes what
the test sees; extensions (jupyterlab_widgets) are still found in the Python environment's
data folder. News, update checks and the PyPI extension manager are off: nothing reaches out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]

# Settings a fresh JupyterLab reads from its user-settings folder: no news, no update check,
# and every cell kept in the DOM (windowing would detach cells scrolled out of view).
USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_root(dest: Path) -> Path:
    """Copy the repository's notebooks/ and docs/ into ``dest`` (saving never touches the repo)."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    for name in ("notebooks", "docs"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore, dirs_exist_ok=True)
    return dest


class JupyterLab:
    """A JupyterLab server on 127.0.0.1 (no token) in its own process group; a context manager."""

    def __init__(self, root_dir: Path, home: Path, env: Mapping[str, str]) -> None:
        self.root_dir = root_dir
        self.home = home
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "jupyterlab.log"
        self._env = dict(env)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            f"--ServerApp.root_dir={self.root_dir}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            f"--NotebookNotary.data_dir={self.home / 'data'}",
        ]

    def environment(self) -> dict[str, str]:
        """The server's environment: isolated Jupyter folders, and ``env`` on top."""
        dirs = {
            "JUPYTER_CONFIG_DIR": "config",
            "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "user-settings",
            "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
            "IPYTHONDIR": "ipython",
        }
        env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
        for name, sub in dirs.items():
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            env[name] = str(self.home / sub)
        (self.home / "data").mkdir(exist_ok=True)  # the notebook-signing key and database
        env["JUPYTER_PLATFORM_DIRS"] = "1"
        env.update(self._env)
        return env

    def write_settings(self) -> None:
        for rel, values in USER_SETTINGS.items():
            path = self.home / "user-settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values, indent=2), encoding="utf-8")

    def start(self, timeout: float = 60.0) -> JupyterLab:
        env = self.environment()
        self.write_settings()
        self._log = self.log_path.open("wb")
        self._proc = subprocess.Popen(
            self.command(),
            cwd=self.root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"JupyterLab exited with status {self._proc.returncode}:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError, ValueError):
                if "started" in self.api("/api/status"):
                    return
            time.sleep(0.2)
        raise TimeoutError(f"JupyterLab did not answer within {timeout} s:\n{self.log_tail()}")

    def api(self, path: str) -> Any:
        """GET a JSON resource of the server's REST API."""
        with urllib.request.urlopen(self.base_url + path, timeout=5) as response:
            return json.load(response)

    def kernel_states(self) -> list[str]:
        """The execution state of each running kernel ([] while the server cannot say).

        jupyter_server answers 500 to a listing that races a kernel's start, so errors
        count as "no kernel yet".
        """
        try:
            kernels = self.api("/api/kernels")
        except (OSError, ValueError):  # urllib's HTTPError and URLError are OSErrors
            return []
        return [kernel.get("execution_state", "") for kernel in kernels]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL), then any kernel left.

        On SIGTERM the server shuts its kernels down itself. Kernels run in sessions of their
        own, so after a SIGKILL they are found by their connection files in our runtime folder.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
            for pid in self._kernel_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _kernel_pids(self) -> list[int]:
        """Processes whose command line names a file in this server's runtime folder."""
        runtime = str(self.home / "runtime") + os.sep
        pids = []
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if runtime in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(entry.name))
        return pids

    def __enter__(self) -> JupyterLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def cell_sources(notebook: Path) -> list[tuple[str, str]]:
    """(cell_type, source) of each cell of a notebook file."""
    data = json.loads(notebook.read_text(encoding="utf-8"))
    return [
        (
            cell["cell_type"],
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"],
        )
        for cell in data["cells"]
    ]


def find_cell(cells: list[tuple[str, str]], test: Callable[[str], bool], what: str) -> int:
    """Index of the first code cell whose source passes ``test``."""
    for index, (kind, source) in enumerate(cells):
        if kind == "code" and test(source):
            return index
    raise LookupError(f"no code cell {what}")
