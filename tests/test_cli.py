"""The reka-nb command in a real subprocess: output, exit statuses, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[1]
CAT = "docs/images/cat.jpeg"
CAT_LINE = "Image 1: JPEG, 451×300 px, 35,042 bytes."


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "reka_nb", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def server_env(server: OfflineServer) -> dict[str, str]:
    return {"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}


def test_offline_describe_streams_and_exits_0() -> None:
    proc = run("describe", CAT, "--offline")
    assert proc.returncode == 0, proc.stderr
    assert CAT_LINE in proc.stdout
    assert proc.stdout.startswith("This is reka_nb's offline server")
    assert proc.stdout.endswith("\n") and proc.stderr == ""


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("reka-nb")
    assert exe.exists()
    proc = subprocess.run(
        [str(exe), "models", "--offline"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "reka-flash" in proc.stdout.split()


def test_json_and_options(server: OfflineServer) -> None:
    proc = run(
        "describe",
        CAT,
        CAT,
        "-p",
        "Two cats?",
        "-m",
        "reka-core",
        "--json",
        "--no-stream",
        "--max-tokens",
        "500",
        "-t",
        "0.3",
        "--top-p",
        "0.9",
        "--seed",
        "1",
        "--stop",
        "zzz",
        env=server_env(server),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["model"] == "reka-core" and data["finish_reason"] == "stop"
    assert "Image 2: JPEG" in data["text"] and "Prompt: Two cats?" in data["text"]
    assert data["request_id"] == server.requests[-1].request_id
    body = server.requests[-1].body
    assert body["stream"] is False
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"], body["stop"]) == (
        500,
        0.3,
        0.9,
        1,
        ["zzz"],
    )


def test_models_json(server: OfflineServer) -> None:
    proc = run("models", "--json", env=server_env(server))
    assert proc.returncode == 0
    models = json.loads(proc.stdout)
    assert "reka-edge" in [m["id"] for m in models]
    flash = next(m for m in models if m["id"] == "reka-flash")  # every field, as sent
    assert flash["pricing"] == {"prompt": "0.0000008", "completion": "0.000002"}
    assert flash["input_modalities"] == ["text", "image", "video", "audio"]


def test_no_key_says_how_and_mentions_offline() -> None:
    proc = run("describe", CAT)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "REKA_API_KEY" in proc.stderr and "--offline" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("describe", "missing.png", "--offline"), "missing.png"),
        (("describe", "README.md", "--offline"), "not an image"),
        (("describe", CAT, "--offline", "-t", "9"), "temperature must be a number"),
        (("describe", CAT, "--offline", "--max-tokens", "many"), "invalid int value"),
        (("describe",), "the following arguments are required: IMAGE"),
        (("fly",), "invalid choice"),
    ],
)
def test_usage_and_input_errors_exit_2(args: tuple[str, ...], fragment: str) -> None:
    proc = run(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_api_error_exits_1_with_status_and_request_id(server: OfflineServer) -> None:
    server.queue(Fault.status(400))
    proc = run("describe", CAT, env=server_env(server))
    assert proc.returncode == 1
    rid = server.requests[-1].request_id
    assert proc.stderr.strip().startswith("reka-nb: BadRequestError: Reka rejected the request")
    assert f"(HTTP 400, request id {rid})" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wrong_key_exits_1(server: OfflineServer) -> None:
    proc = run("models", env={"REKA_BASE_URL": server.base_url, "REKA_API_KEY": "wrong-key-zz"})
    assert proc.returncode == 1
    assert "AuthenticationError" in proc.stderr and "wrong-key-zz" not in proc.stderr


def test_break_mid_stream_keeps_partial_and_exits_1(server: OfflineServer) -> None:
    server.queue(Fault.break_after(5))
    proc = run("describe", CAT, env=server_env(server))
    assert proc.returncode == 1
    assert proc.stdout.startswith("This is reka_nb's")
    assert "The answer stopped after" in proc.stderr
    assert "the connection closed before the answer was complete" in proc.stderr
    assert "incomplete chunked read" not in proc.stderr  # httpx's words stay on __cause__
