"""The command line as a newcomer meets it, in real subprocesses: pipes, --version, mistakes,
the offline switch, image URLs, and ``python -m reka_nb.testing``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from reka_nb.testing import OfflineServer
from reka_nb.testing.__main__ import client_url

ROOT = Path(__file__).resolve().parents[1]
CAT = "docs/images/cat.jpeg"


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(extra)
    return env


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reka_nb", *args],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def read_then_close(args: list[str], nbytes: int, **env: str) -> tuple[int, str]:
    """Run the command, read ``nbytes`` of its output and close the pipe, as ``| head`` does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "reka_nb", *args],
        cwd=ROOT,
        env=environment(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = proc.stdout.read(nbytes)
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    proc.stderr.close()
    assert head
    return proc.wait(timeout=60), stderr


def test_a_closed_pipe_while_streaming_ends_quietly() -> None:
    status, stderr = read_then_close(
        ["describe", CAT, "--offline"], 20, REKA_NB_OFFLINE_DELAY="0.02"
    )
    assert stderr == ""
    assert status == 141  # what a shell reports for a Unix tool ended by SIGPIPE


def test_a_closed_pipe_after_a_list_ends_quietly() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdout.close()"],  # a reader that never reads
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    models = subprocess.run(
        [sys.executable, "-m", "reka_nb", "models", "--offline"],
        cwd=ROOT,
        env=environment(),
        stdout=proc.stdin,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    proc.stdin.close()
    proc.wait(timeout=60)
    assert models.stderr == ""
    assert models.returncode in (0, 141)  # 0 when the list fitted in the pipe before it closed


def test_version() -> None:
    from reka_nb import __version__

    proc = run("--version")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"reka-nb {__version__}\n", "")


def test_an_unknown_option_shows_the_subcommands_usage_and_a_near_miss() -> None:
    proc = run("describe", CAT, "--offline", "--temprature", "0.2")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: reka-nb describe ")
    assert proc.stderr.endswith(
        "reka-nb describe: error: unrecognized arguments: --temprature 0.2 "
        "(did you mean --temperature?)\n"
    )
    proc = run("models", "--bogus")
    assert proc.stderr.startswith("usage: reka-nb models ")
    assert proc.stderr.endswith("reka-nb models: error: unrecognized arguments: --bogus\n")


def test_no_key_says_what_to_do_on_a_command_line() -> None:
    proc = run("describe", CAT)
    assert proc.returncode == 2
    assert proc.stderr == (
        "reka-nb: error: no Reka API key: set the REKA_API_KEY environment variable (keys are "
        "made at https://platform.reka.ai), or add --offline to try the built-in offline "
        "server, which runs no model\n"
    )
    assert "api_key=" not in proc.stderr


def test_a_question_given_as_an_image_suggests_p() -> None:
    proc = run("describe", CAT, "What is it?", "--offline")
    assert proc.returncode == 2
    assert proc.stderr.startswith("reka-nb: error: image 2 of 2: no such file: 'What is it?'")
    assert proc.stderr.endswith('; to ask a question, pass it with -p: -p "What is it?"\n')
    assert proc.stdout == ""


def test_jsonl_needs_a_file_and_dash_is_standard_output(tmp_path: Path) -> None:
    alone = run("describe", "--each", CAT, "--offline", "--jsonl")
    assert (alone.returncode, alone.stdout) == (2, "")
    assert alone.stderr == (
        "reka-nb: error: --jsonl needs the name of the file to write the lines to "
        "(or - for standard output)\n"
    )
    command = ["describe", "--each", str(ROOT / CAT), "--offline", "--jsonl", "-", "--no-cache"]
    dash = subprocess.run(
        [sys.executable, "-m", "reka_nb", *command],
        cwd=tmp_path,
        env=environment(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dash.returncode == 0, dash.stderr
    (line,) = dash.stdout.splitlines()
    assert json.loads(line)["image"] == str(ROOT / CAT)
    assert list(tmp_path.iterdir()) == []  # no file named "-"


def test_json_with_each_is_a_usage_error() -> None:
    proc = run("describe", "--each", "docs/images/", "--json", "--offline")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "reka-nb: error: --json prints one answer as a JSON object; --each already prints each "
        "answer as a JSON line (--jsonl FILE writes them to a file)\n"
    )


def test_a_mistyped_folder_and_an_empty_folder_are_both_usage_errors(tmp_path: Path) -> None:
    mistyped = run("describe", "--each", "no_such_dir/", "--offline")
    assert (mistyped.returncode, mistyped.stdout) == (2, "")
    assert mistyped.stderr == (
        f"reka-nb: error: no such file or folder: 'no_such_dir/' (current directory: {ROOT})\n"
    )
    (tmp_path / "notes.txt").write_text("no images here")
    empty = run("describe", "--each", str(tmp_path), "--offline")
    assert (empty.returncode, empty.stdout) == (2, "")
    assert empty.stderr.startswith(
        f"reka-nb: error: the folder '{tmp_path}' has no image files (looked for .jpg, .jpeg, "
    )


def test_a_folder_without_each_suggests_each() -> None:
    proc = run("describe", "docs/images", "--offline")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (
        "reka-nb: error: 'docs/images' is a directory, not an image file; to ask about each "
        "image in it, add --each: reka-nb describe --each docs/images\n"
    )


def test_a_plain_http_image_url_is_refused_before_sending() -> None:
    proc = run("describe", "http://example.com/cat.jpeg", "--offline")
    assert proc.returncode == 2
    assert proc.stderr == (
        "reka-nb: error: plain http:// image URL 'http://example.com/cat.jpeg': Reka fetches "
        "only https:// URLs, so send an https:// URL (or download the image and pass its path)\n"
    )


@pytest.mark.parametrize("value", ["1", "true", "Yes", " on "])
def test_offline_switch_on(value: str) -> None:
    proc = run("models", REKA_NB_OFFLINE=value)
    assert proc.returncode == 0, proc.stderr
    assert "reka-flash" in listed_models(proc.stdout)


@pytest.mark.parametrize("value", ["0", "false", "No", "off", ""])
def test_offline_switch_off(value: str) -> None:
    proc = run("models", REKA_NB_OFFLINE=value)  # online, without a key: nothing is sent
    assert proc.returncode == 2
    assert proc.stderr.startswith("reka-nb: error: no Reka API key")


def test_offline_switch_refuses_anything_else() -> None:
    proc = run("models", REKA_NB_OFFLINE="banana")
    assert proc.returncode == 2
    assert proc.stderr == (
        "reka-nb: error: REKA_NB_OFFLINE must be 1, true, yes or on (offline) or 0, false, "
        "no, off or empty (online), not 'banana'\n"
    )


# -- python -m reka_nb.testing ----------------------------------------------------------------


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reka_nb.testing", *args],
        cwd=ROOT,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_offline_server_on_a_busy_port_says_so_in_one_line() -> None:
    with OfflineServer() as busy:
        port = busy.port
        proc = serve("--port", str(port))
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert stderr == (
        f"python -m reka_nb.testing: error: cannot listen on 127.0.0.1:{port}: "
        "Address already in use\n"
    )


def test_offline_server_prints_a_base_url_the_cli_accepts() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = serve("--host", "localhost", "--port", str(port))
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        exports = dict(
            proc.stdout.readline().removeprefix("export ").strip().split("=", 1) for _ in range(2)
        )
        models = run("models", **exports)  # what the printed lines tell a user to export
    finally:
        proc.terminate()
        proc.communicate(timeout=60)
    url = f"http://127.0.0.1:{port}/v1"
    assert first == f"reka_nb offline server running at {url}\n"
    assert exports["REKA_BASE_URL"] == url
    assert models.returncode == 0, models.stderr
    assert "reka-flash" in listed_models(models.stdout)


def test_a_wildcard_bind_is_reached_through_loopback() -> None:
    assert client_url("0.0.0.0", 8080) == "http://127.0.0.1:8080/v1"
    assert client_url("::1", 8080) == "http://[::1]:8080/v1"
    assert client_url("127.0.0.2", 8080) == "http://127.0.0.2:8080/v1"
    assert client_url("192.168.1.5", 8080) is None  # clients refuse plain http to it


def listed_models(table: str) -> list[str]:
    """The model ids of ``reka-nb models``' table: a header, a rule, then a model a line."""
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["model", "name"] and set(lines[1]) <= {"-", " "}
    return [line.split()[0] for line in lines[2:]]
