"""Stop means stop: Ctrl-C or the notebook's stop button, at any moment of a run.

A stop cancels every request in flight and sends nothing more; every answer received before it
is kept (``exc.results``, ``reka_nb.last_results``, the cache); it is said in one line. Checked
where a user meets it: a real kernel interrupted through its kernel manager (SIGINT), terminal
IPython and a plain Python process given SIGINT, against the offline server's request log.
Each stop is repeated at random moments, so the races are exercised, not one lucky timing.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _env import child_environment
from jupyter_client import KernelManager
from PIL import Image

from reka_nb import describe_many
from reka_nb.testing import OfflineServer, image_digest

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "docs" / "images" / "cat.jpeg"
COUNT = 15
LATENCY = 0.3  # seconds before each answer: 15 images at concurrency 2 take about 2.5 s
STOPPED = re.compile(
    rf"interrupted after (\d+) of {COUNT}; finished answers in reka_nb\.last_results"
)
#: How long a stop may take, from the signal to the caller regaining control (the rule is a
#: second; the rest is room for a loaded machine).
STOP_SECONDS = 1.5
#: A request the client sent just before the signal may reach the server a little after it.
IN_TRANSIT = 0.25


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("photos")
    for i in range(COUNT):
        (out / f"img{i:02}.png").write_bytes(png(10 + i))
    return out


def names_by_digest(folder: Path) -> dict[str, str]:
    """Each image's SHA-256 (as the server logs it) to its path (as a Result names it)."""
    return {image_digest(path.read_bytes()): str(path) for path in folder.iterdir()}


def delays(count: int, low: float, high: float) -> list[float]:
    """``count`` random moments (the seed is in the test's failure message)."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    return [round(rng.uniform(low, high), 2) for _ in range(count)]


def wait_for_requests(server: OfflineServer, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(server.chat_requests()) < count:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.01)


def check_stopped(server: OfflineServer, stopped_at: float, kept: set[str], folder: Path) -> None:
    """Nothing was sent after the stop, and every answer surely received before it is kept."""
    assert server.wait_idle()
    sent = server.chat_requests()
    time.sleep(1.0)  # a run left going would send more here
    assert len(server.chat_requests()) == len(sent)
    late = [round(r.received - stopped_at, 2) for r in sent if r.received > stopped_at + IN_TRANSIT]
    assert late == [], "requests sent after the stop"
    names = names_by_digest(folder)
    answered = {names[r.images[0]] for r in sent if r.status == 200}
    # An answer starts LATENCY after its request arrives and takes a few ms: one that started
    # well before the stop was received by the client, and must be kept.
    received = {
        names[r.images[0]]
        for r in sent
        if r.status == 200 and r.received + LATENCY + 0.15 < stopped_at
    }
    assert received <= kept <= answered


# -- a real kernel ----------------------------------------------------------------------------


class Kernel:
    """ipykernel through jupyter_client, as nbclient and JupyterLab drive it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(env=env, cwd=str(ROOT))
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=120)

    def run(
        self, code: str, when_sent: Callable[[], None] | None = None
    ) -> tuple[list[dict], dict, float]:
        """(every iopub message of the cell, the reply, when the kernel went idle)."""
        msg_id = self.kc.execute(code)
        if when_sent is not None:
            when_sent()
        messages = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "status":
                if msg["content"]["execution_state"] == "idle":
                    idle = time.monotonic()
                    break
                continue
            if msg["msg_type"] != "execute_input":
                messages.append(msg)
        reply = self.kc.get_shell_msg(timeout=120)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=120)
        return messages, reply["content"], idle

    def printed(self, code: str) -> str:
        messages, reply, _ = self.run(code)
        assert reply["status"] == "ok", reply
        return "".join(m["content"]["text"] for m in messages if m["msg_type"] == "stream")

    def stop(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def module_kernel(
    offline_server: OfflineServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Kernel]:
    env = child_environment()
    env.update(
        REKA_BASE_URL=offline_server.base_url,
        REKA_API_KEY=offline_server.api_key,
        REKA_NB_MODEL_INFO="off",
        REKA_NB_CACHE=str(tmp_path_factory.mktemp("kernel-cache")),
    )
    k = Kernel(env)
    assert k.printed("%load_ext reka_nb\nimport json, sys, time, reka_nb") == ""
    yield k
    k.stop()


@pytest.fixture
def kernel(module_kernel: Kernel, transport: str, tmp_path: Path) -> Kernel:
    """The module's kernel, asking on this test's transport with an answer cache of its own."""
    cache = str(tmp_path / "kernel-cache")
    code = f"import os\nos.environ.update(REKA_NB_TRANSPORT={transport!r}, REKA_NB_CACHE={cache!r})"
    assert module_kernel.printed(code) == ""
    return module_kernel


SLOW_DISPLAY = """
class SlowDisplay:
    '''A progress display that takes its time: most stops land inside it.'''
    def start(self, total): pass
    def update(self, result): time.sleep(0.25)
    def close(self, results, error=None): pass
"""

REPORT = """
e = sys.last_value
kept = getattr(e, "results", None) or []
print(json.dumps({
    "kept": [r.source for r in kept],
    "ok": [r.source for r in kept if r.ok],
    "last": [r.source for r in reka_nb.last_results or []],
}))
"""


@pytest.mark.parametrize("display", ["notebook", "slow"])
def test_a_stop_in_a_kernel_cancels_everything_and_keeps_every_answer(
    kernel: Kernel, server: OfflineServer, folder: Path, display: str
) -> None:
    kernel.printed(SLOW_DISPLAY)
    show = "True" if display == "notebook" else "SlowDisplay()"
    moments = delays(4, 0.0, 1.8)
    for trial, delay in enumerate(moments):
        why = f"stop {trial} of {moments}, {delay} s after the first request"
        server.reset()
        server.latency = LATENCY
        prompt = f"{display} {trial} {delay}?"
        code = f"r = reka_nb.describe_many(r'{folder}', {prompt!r}, concurrency=2, show={show})"
        stop: list[float] = []

        def interrupt() -> None:
            wait_for_requests(server, 1)
            time.sleep(delay)  # noqa: B023 (each trial's own moment)
            kernel.km.interrupt_kernel()
            stop.append(time.monotonic())  # noqa: B023

        messages, reply, idle = kernel.run(code, interrupt)
        kept = json.loads(kernel.printed(REPORT))
        check_stopped(server, stop[0], set(kept["kept"]), folder)
        assert kept["kept"] == kept["ok"] == kept["last"], why
        assert idle - stop[0] < STOP_SECONDS, why
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", why
        line = f"interrupted after {len(kept['kept'])} of {COUNT}; finished answers in "
        line += "reka_nb.last_results"
        (error,) = [m for m in messages if m["msg_type"] == "error"]
        assert error["content"]["traceback"] == [f"KeyboardInterrupt: {line}"], why
        assert not [m for m in messages if m["msg_type"] == "stream"], why
        if display == "notebook":
            shown = [
                m for m in messages if m["msg_type"] in ("display_data", "update_display_data")
            ]
            assert shown[-1]["content"]["data"]["text/plain"].endswith(f" · {line}"), why
        # The cache holds exactly the kept answers: asking again asks only for the rest.
        server.reset()
        again = json.loads(
            kernel.printed(
                f"a = reka_nb.describe_many(r'{folder}', {prompt!r}, show=False)\n"
                "print(json.dumps([r.source for r in a if r.cached]))"
            )
        )
        assert again == kept["kept"], why
        assert len(server.chat_requests()) == COUNT - len(kept["kept"]), why


@pytest.mark.parametrize("call", ["reka_nb.describe", "reka_nb.RekaClient().describe"])
def test_a_stop_in_describe_is_one_line_in_a_kernel(
    kernel: Kernel, server: OfflineServer, call: str
) -> None:
    server.token_delay = 0.1
    stop: list[float] = []

    def interrupt() -> None:
        wait_for_requests(server, 1)
        time.sleep(0.5)
        kernel.km.interrupt_kernel()
        stop.append(time.monotonic())

    messages, reply, idle = kernel.run(f"d = {call}(r'{CAT}', 'Tell me a long story')", interrupt)
    assert idle - stop[0] < STOP_SECONDS
    assert reply["ename"] == "KeyboardInterrupt"
    (error,) = [m for m in messages if m["msg_type"] == "error"]
    assert error["content"]["traceback"] == [
        "KeyboardInterrupt: interrupted; the text that arrived is kept above"
    ]
    assert not [m for m in messages if m["msg_type"] == "stream"]
    shown = [m for m in messages if m["msg_type"] in ("display_data", "update_display_data")]
    assert shown[-1]["content"]["data"]["text/plain"].endswith("\n\n— interrupted")
    assert server.wait_idle()
    assert len(server.chat_requests()) == 1


def test_each_magic_says_how_far_it_got(
    kernel: Kernel, server: OfflineServer, folder: Path
) -> None:
    server.latency = LATENCY
    stop: list[float] = []

    def interrupt() -> None:
        wait_for_requests(server, 3)
        kernel.km.interrupt_kernel()
        stop.append(time.monotonic())

    messages, reply, _ = kernel.run(f"%%reka --each -i {folder}\nHow far?", interrupt)
    assert reply["ename"] == "KeyboardInterrupt"
    (error,) = [m for m in messages if m["msg_type"] == "error"]
    (line,) = error["content"]["traceback"]
    match = STOPPED.fullmatch(line.removeprefix("KeyboardInterrupt: "))
    assert match
    kept = json.loads(kernel.printed(REPORT))
    assert int(match[1]) == len(kept["kept"])
    check_stopped(server, stop[0], set(kept["kept"]), folder)


# -- terminal IPython and plain Python ----------------------------------------------------------


def child_env(server: OfflineServer, cache: Path) -> dict[str, str]:
    env = child_environment()
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_MODEL_INFO="off",
        REKA_NB_CACHE=str(cache),
        PYTHONPATH=str(ROOT),
    )
    return env


def interrupted(
    command: list[str], server: OfflineServer, env: dict[str, str], after: int, delay: float
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run ``command``; SIGINT ``delay`` s after the server saw ``after`` chat requests."""
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        wait_for_requests(server, after)
        time.sleep(delay)
        child.send_signal(signal.SIGINT)
        stopped_at = time.monotonic()
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    return subprocess.CompletedProcess(command, child.returncode, out, err), stopped_at


SCRIPT = """
import json, sys, time, reka_nb
try:
    reka_nb.describe_many(sys.argv[1], sys.argv[2], concurrency=2)
except KeyboardInterrupt as exc:
    print(json.dumps({
        "seconds": time.monotonic(),
        "kept": [r.source for r in exc.results],
        "ok": [r.source for r in exc.results if r.ok],
        "last": [r.source for r in reka_nb.last_results or []],
        "line": str(exc),
    }), flush=True)
    sys.exit(130)
print("finished", flush=True)
"""


def test_ctrl_c_in_a_script_stops_the_run_and_keeps_every_answer(
    server: OfflineServer, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the terminal's tqdm bar on: a stop landing while it draws is a stop too."""
    cache = tmp_path / "cache"
    moments = delays(4, 0.0, 1.8)
    for trial, delay in enumerate(moments):
        why = f"stop {trial} of {moments}"
        server.reset()
        server.latency = LATENCY
        prompt = f"script {trial} {delay}?"
        command = [sys.executable, "-c", SCRIPT, str(folder), prompt]
        done, stopped_at = interrupted(command, server, child_env(server, cache), 1, delay)
        assert done.returncode == 130, (why, done.stderr)
        report = json.loads(done.stdout)
        check_stopped(server, stopped_at, set(report["kept"]), folder)
        assert report["kept"] == report["ok"] == report["last"], why
        assert report["seconds"] - stopped_at < STOP_SECONDS, why
        assert STOPPED.fullmatch(report["line"]), why
        assert int(STOPPED.fullmatch(report["line"])[1]) == len(report["kept"]), why
        server.reset()
        monkeypatch.setenv("REKA_BASE_URL", server.base_url)
        monkeypatch.setenv("REKA_API_KEY", server.api_key)
        monkeypatch.setenv("REKA_NB_CACHE", str(cache))
        again = describe_many(folder, prompt, show=False)
        assert [r.source for r in again if r.cached] == report["kept"], why
        assert len(server.chat_requests()) == COUNT - len(report["kept"]), why


def ipython(code: str) -> list[str]:
    return [sys.executable, "-m", "IPython", "--simple-prompt", "--no-banner", "-c", code]


def test_a_stop_in_terminal_ipython_is_one_line(
    server: OfflineServer, folder: Path, tmp_path: Path
) -> None:
    server.latency = LATENCY
    env = child_env(server, tmp_path / "cache")
    code = f"import reka_nb; reka_nb.describe_many(r'{folder}', 'Terminal?', concurrency=2)"
    done, _ = interrupted(ipython(code), server, env, 3, 0.1)
    lines = [line for line in done.stdout.splitlines() + done.stderr.splitlines() if line]
    errors = [line for line in lines if "KeyboardInterrupt" in line]
    assert len(errors) == 1, done
    assert STOPPED.fullmatch(errors[0].removeprefix("KeyboardInterrupt: ")), done
    assert "Traceback" not in done.stdout + done.stderr
    assert "reka_nb/" not in done.stdout + done.stderr
    assert server.wait_idle()


def test_a_stop_in_describe_in_terminal_ipython_is_one_line(
    server: OfflineServer, tmp_path: Path
) -> None:
    server.token_delay = 0.1
    env = child_env(server, tmp_path / "cache")
    code = f"import reka_nb; reka_nb.describe(r'{CAT}', 'Tell me a long story')"
    done, _ = interrupted(ipython(code), server, env, 1, 0.8)
    out = done.stdout + done.stderr
    assert "[interrupted]" in done.stdout, done
    assert [line for line in out.splitlines() if "KeyboardInterrupt" in line] == [
        "KeyboardInterrupt: interrupted; the text that arrived is kept above"
    ], done
    assert "Traceback" not in out and "httpx" not in out and "reka_nb/" not in out
    assert server.wait_idle()
