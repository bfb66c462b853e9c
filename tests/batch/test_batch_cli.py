"""reka-nb describe --each and reka-nb cache, in real subprocesses against the offline server."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from _env import child_environment
from PIL import Image

from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = [
    "index",
    "image",
    "text",
    "model",
    "input_tokens",
    "output_tokens",
    "finish_reason",
    "request_id",
    "cached",
    "seconds",
    "error",
]


def png(width: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, 8), (90, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def make_folder(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(count):
        (folder / f"img{i}.png").write_bytes(png(10 + i))
    return folder


def env_for(server: OfflineServer, tmp_path: Path) -> dict[str, str]:
    env = child_environment()
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_CACHE=str(tmp_path / "cache"),
        PYTHONPATH=str(ROOT),
    )
    return env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reka_nb", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_each_prints_one_json_line_per_image_and_a_bar_on_stderr(
    server: OfflineServer, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 3)
    proc = run("describe", "--each", str(folder), "-p", "Size?", env=env_for(server, tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 3 and all(list(line) == COLUMNS for line in lines)
    by_index = sorted(lines, key=lambda line: line["index"])
    assert [Path(line["image"]).name for line in by_index] == ["img0.png", "img1.png", "img2.png"]
    assert all(f"PNG, {10 + i}×8 px" in line["text"] for i, line in enumerate(by_index))
    assert all(line["error"] is None and line["cached"] is False for line in lines)
    assert " 3/3 [" in proc.stderr and " requests/s, 0 errors, " in proc.stderr


def test_jsonl_lines_are_written_as_each_answer_finishes(
    server: OfflineServer, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 4)
    out = tmp_path / "out.jsonl"
    server.latency = 0.5
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reka_nb",
            "describe",
            "--each",
            str(folder),
            "-p",
            "Size?",
            "--jsonl",
            str(out),
            "--concurrency",
            "1",
        ],
        cwd=ROOT,
        env=env_for(server, tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while len(server.chat_requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # Half way (each answer takes 0.5 s, one at a time): the finished ones are in the file.
    written = out.read_text().splitlines()
    assert child.poll() is None
    assert 1 <= len(written) < 4, written
    assert json.loads(written[0])["index"] == 0
    stdout, stderr = child.communicate(timeout=30)
    assert child.returncode == 0, stderr
    assert stdout == ""
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["index"] for line in lines] == [0, 1, 2, 3]


def test_each_exits_1_after_finishing_the_rest_when_an_item_fails(
    server: OfflineServer, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 3)
    (folder / "img1.png").write_bytes(b"broken")
    proc = run("describe", "--each", str(folder / "*.png"), env=env_for(server, tmp_path))
    assert proc.returncode == 1
    lines = sorted(
        (json.loads(line) for line in proc.stdout.splitlines()), key=lambda x: x["index"]
    )
    assert [line["error"] is None for line in lines] == [True, False, True]
    assert lines[1]["error"].startswith("ImageError: ")
    assert f"reka-nb: {folder / 'img1.png'}: ImageError: " in proc.stderr
    assert len(server.chat_requests()) == 2


def test_each_stops_when_the_account_is_out_of_credits(
    server: OfflineServer, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 4)
    server.credits = 2
    proc = run(
        "describe", "--each", str(folder), "--concurrency", "1", env=env_for(server, tmp_path)
    )
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == 2
    assert "reka-nb: RateLimitError: Out of credits: Insufficient balance" in proc.stderr


def test_each_stops_at_a_refused_key_and_says_why(server: OfflineServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 12)
    env = {**env_for(server, tmp_path), "REKA_API_KEY": "a-wrong-key-0123456789"}
    proc = run("describe", "--each", str(folder), "--concurrency", "2", env=env)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "reka-nb: AuthenticationError: The API key is missing or wrong" in proc.stderr
    assert "a-wrong-key" not in proc.stderr and "Traceback" not in proc.stderr
    assert 1 <= len(server.chat_requests()) <= 2  # the requests in flight, not twelve


def test_rpm_and_concurrency_are_checked_before_anything_is_sent(
    server: OfflineServer, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 2)
    env = env_for(server, tmp_path)
    proc = run("describe", "--each", str(folder), "--concurrency", "0", env=env)
    assert proc.returncode == 2
    assert proc.stderr == "reka-nb: error: concurrency must be a whole number >= 1, not 0\n"
    proc = run("describe", str(folder / "img0.png"), "--jsonl", "x.jsonl", env=env)
    assert proc.returncode == 2 and proc.stderr == "reka-nb: error: --jsonl goes with --each\n"
    assert server.requests == []


def test_transport_is_chosen_with_each_and_a_misspelt_one_is_refused(
    server: OfflineServer, tmp_path: Path, transport: str
) -> None:
    folder = make_folder(tmp_path, 2)
    env = env_for(server, tmp_path)
    proc = run("describe", "--each", str(folder), "--transport", "aiohtp", env=env)
    assert proc.returncode == 2
    assert proc.stderr == (
        "reka-nb: error: --transport must be one of 'auto', 'httpx', 'aiohttp', not 'aiohtp' "
        "(did you mean 'aiohttp'?)\n"
    )
    proc = run("describe", str(folder / "img0.png"), "--transport", transport, env=env)
    assert proc.returncode == 2
    assert proc.stderr == "reka-nb: error: --transport goes with --each\n"
    assert server.requests == []
    proc = run("describe", "--each", str(folder), "--transport", transport, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["error"] for line in lines] == [None, None]
    assert len(server.chat_requests()) == 2


def test_cache_info_and_clear(server: OfflineServer, tmp_path: Path) -> None:
    env = env_for(server, tmp_path)
    folder = make_folder(tmp_path, 2)
    assert run("describe", "--each", str(folder), env=env).returncode == 0
    again = run("describe", "--each", str(folder), env=env)
    assert [json.loads(line)["cached"] for line in again.stdout.splitlines()] == [True, True]
    info = run("cache", "info", env=env)
    assert info.returncode == 0
    assert info.stdout.startswith(f"answer cache: {tmp_path / 'cache' / 'answers.sqlite3'}\n")
    assert "answers: 2\n" in info.stdout
    cleared = run("cache", "clear", env=env)
    assert cleared.stdout == "Deleted 2 stored answers.\n"
    off = run("cache", "info", env={**env, "REKA_NB_CACHE": "off"})
    assert off.stdout == "answer cache: off (REKA_NB_CACHE=off)\n"
    fresh = run("describe", "--each", str(folder), "--no-cache", env=env)
    assert [json.loads(line)["cached"] for line in fresh.stdout.splitlines()] == [False, False]
    assert len(server.chat_requests()) == 4


def test_describe_with_cache_says_cached_in_json(server: OfflineServer, tmp_path: Path) -> None:
    env = env_for(server, tmp_path)
    cat = "docs/images/cat.jpeg"
    first = run("describe", cat, "--cache", "--json", env=env)
    second = run("describe", cat, "--cache", "--json", env=env)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert json.loads(first.stdout)["text"] == json.loads(second.stdout)["text"]
    assert json.loads(second.stdout)["cached"] is True
    assert len(server.chat_requests()) == 1


def test_offline_answers_are_reused_by_the_next_run_whatever_the_port(tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 3)
    env = child_environment()
    env.update(REKA_NB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    runs = [run("describe", "--each", str(folder), "--offline", env=env) for _ in range(2)]
    assert [proc.returncode for proc in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    first, second = ([json.loads(line) for line in proc.stdout.splitlines()] for proc in runs)
    assert [line["cached"] for line in first] == [False, False, False]
    assert [line["cached"] for line in second] == [True, True, True]
    assert sorted(line["text"] for line in first) == sorted(line["text"] for line in second)
    info = run("cache", "info", env=env)
    assert "answers: 3\n" in info.stdout


def test_ctrl_c_never_leaves_a_cached_answer_out_of_the_jsonl_file(
    server: OfflineServer, tmp_path: Path
) -> None:
    """Ctrl-C at many moments of a run: each answer the cache holds is a line of the file."""
    folder = make_folder(tmp_path, 30)
    env = env_for(server, tmp_path)
    server.latency = 0.02
    for trial in range(6):
        run("cache", "clear", env=env)
        out = tmp_path / f"out{trial}.jsonl"
        command = ["describe", "--each", str(folder), "--jsonl", str(out), "--concurrency", "4"]
        child = subprocess.Popen(
            [sys.executable, "-m", "reka_nb", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not (out.exists() and out.read_text().count("\n") >= 1 + trial * 2):
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.005)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
        assert child.returncode == 130, stderr
        written = {json.loads(line)["image"] for line in out.read_text().splitlines()}
        again = run("describe", "--each", str(folder), "--concurrency", "8", env=env)
        cached = {
            line["image"] for line in map(json.loads, again.stdout.splitlines()) if line["cached"]
        }
        assert cached <= written, f"trial {trial}: cached but not written: {cached - written}"
