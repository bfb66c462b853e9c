"""One question, one path: every per-question option and refusal has the same outcome through
describe, adescribe, describe_many, adescribe_many, %%reka, %%reka --each and the CLI.

Each case is asked through each surface that offers it; the outcome is either the error (its
type where the surface keeps it, and its message) with no chat request sent, or the chat
request's body as the offline server received it (without ``stream``, which a run over many
images turns off).
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image

import reka_nb
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[1]
CAT = ROOT / "docs" / "images" / "cat.jpeg"


@dataclass(frozen=True)
class Outcome:
    """What a surface made of a question: an error (type, message), or the body sent."""

    error: str | None = None
    message: str | None = None
    body: dict[str, Any] | None = field(default=None, compare=True, hash=False)


@dataclass
class Case:
    """One question: its images (files), prompt, options, environment and expected result."""

    name: str
    images: list[Path]
    options: dict[str, Any]
    environ: dict[str, str]
    error: type[Exception] | None
    surfaces: tuple[str, ...]
    cli_options: tuple[str, ...] = ()
    magic_options: str = ""


def noisy_png(side: int = 64) -> bytes:
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    image = Image.open(CAT)
    exif = Image.Exif()
    exif[0x010F] = "ParityCam"  # Make
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


ALL = ("describe", "adescribe", "describe_many", "adescribe_many", "magic", "magic_each", "cli")
PYTHON = ("describe", "adescribe", "describe_many", "adescribe_many")
ONE_QUESTION = ("describe", "adescribe", "describe_many", "adescribe_many", "magic", "cli")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    from _clips import make_clip

    made = {
        "png": noisy_png(8),
        "big": noisy_png(64),
        "exif": jpeg_with_exif(),
        "bad": b"this is not an image at all",
        "clip": make_clip("mp4"),
    }
    out = {}
    for name, data in made.items():
        suffix = {"exif": ".jpg", "clip": ".mp4"}.get(name, ".png")
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(data)
        out[name] = path
    for i in range(3):
        out[f"p{i}"] = tmp_path / f"p{i}.png"
        out[f"p{i}"].write_bytes(noisy_png(6 + i))
    return out


def cases(f: dict[str, Path]) -> list[Case]:
    three = [f["p0"], f["p1"], f["p2"]]
    sampling = {"temperature": 0.5, "max_tokens": 20, "seed": 7}
    sampling_cli = ("-t", "0.5", "--max-tokens", "20", "--seed", "7")
    sampling_magic = "-t 0.5 --max-tokens 20 --seed 7"
    return [
        Case("answered", [f["png"]], sampling, {}, None, ALL, sampling_cli, sampling_magic),
        # A list is one question with several images: --each asks each image on its own.
        Case("several images", three, {}, {}, None, ONE_QUESTION),
        Case(
            "max_images", three, {}, {"REKA_NB_MAX_IMAGES": "2"}, reka_nb.ImageError, ONE_QUESTION
        ),
        Case(
            "max_request_bytes",
            [f["big"]],
            {},
            {"REKA_NB_MAX_REQUEST_BYTES": "2000"},
            reka_nb.ImageError,
            ALL,
        ),
        Case("metadata dropped", [f["exif"]], {}, {}, None, ALL),
        Case(
            "keep_metadata",
            [f["exif"]],
            {"keep_metadata": True},
            {},
            None,
            ALL,
            ("--keep-metadata",),
            "--keep-metadata",
        ),
        Case(
            "video limit",
            [f["clip"]],
            {},
            {"REKA_NB_MAX_VIDEO_MB": "0.001"},
            reka_nb.VideoError,
            ALL,
        ),
        Case("a video", [f["clip"]], {}, {}, None, ALL),
        Case(
            "model that takes no images",
            [f["png"]],
            {"model": "reka-flash-3"},
            {"REKA_NB_MODEL_INFO": "on"},
            reka_nb.InvalidRequestError,
            ALL,  # the CLI looks the list up when REKA_NB_MODEL_INFO=on is set
            ("-m", "reka-flash-3"),
            "-m reka-flash-3",
        ),
        Case(
            "unknown param", [f["png"]], {"colour": "blue"}, {}, reka_nb.InvalidRequestError, PYTHON
        ),
        Case(
            "bad param",
            [f["png"]],
            {"temperature": 5.0},
            {},
            reka_nb.InvalidRequestError,
            ALL,
            ("-t", "5"),
            "-t 5",
        ),
        Case("bad image", [f["bad"]], {}, {}, reka_nb.ImageError, ALL),
        Case(
            "labels",
            [f["png"]],
            {"labels": ["cat", "dog"]},
            {},
            None,
            ALL,
            ("--labels", "cat,dog"),
            "--labels cat,dog",
        ),
        Case(
            "a schema of fields",
            [f["png"]],
            {"schema": "caption, people int"},
            {},
            None,
            ALL,
            ("--schema", "caption, people int"),
            '--schema "caption, people int"',
        ),
        # The magics say a bad option value as a UsageError (its message is the same).
        Case(
            "unusable schema",
            [f["png"]],
            {"schema": "people number"},
            {},
            reka_nb.ConfigurationError,
            (*PYTHON, "cli"),
            ("--schema", "people number"),
        ),
    ]


def _error(exc: BaseException) -> Outcome:
    return Outcome(type(exc).__name__, str(exc))


def _body(server: OfflineServer) -> Outcome:
    chats = [r for r in server.requests if r.is_chat]
    assert len(chats) == 1, [r.path for r in server.requests]
    body = dict(chats[0].body)
    body.pop("stream", None)
    body.pop("stream_options", None)
    return Outcome(body=body)


def _image(case: Case) -> Any:
    return [str(p) for p in case.images] if len(case.images) > 1 else str(case.images[0])


def ask(surface: str, case: Case, server: OfflineServer, shell: InteractiveShell) -> Outcome:
    """Ask ``case`` through ``surface``; the error, or the body the server received."""
    server.reset()
    image = _image(case)
    prompt = "What is it?"
    options = {**case.options}
    try:
        if surface == "describe":
            reka_nb.describe(image, prompt, show=False, **options)
        elif surface == "adescribe":
            asyncio.run(reka_nb.adescribe(image, prompt, show=False, **options))
        elif surface in ("describe_many", "adescribe_many"):
            run: Callable[..., Any] = reka_nb.describe_many
            if surface == "adescribe_many":
                run = lambda *a, **k: asyncio.run(reka_nb.adescribe_many(*a, **k))  # noqa: E731
            results = run([image], prompt, show=False, cache=False, **options)
            if results[0].error is not None:
                return _error(results[0].error)
        elif surface in ("magic", "magic_each"):
            return _magic(surface, case, prompt, server, shell)
        elif surface == "cli":
            return _cli(case, prompt, server)
    except reka_nb.RekaError as exc:
        return _error(exc)
    return _body(server)


def _magic(
    surface: str, case: Case, prompt: str, server: OfflineServer, shell: InteractiveShell
) -> Outcome:
    shell.user_ns["_parity_images"] = [str(p) for p in case.images]
    each = " --each" if surface == "magic_each" else ""
    cell = f"%%reka -i _parity_images{each} --no-stream {case.magic_options}\n{prompt}"
    result = shell.run_cell(cell, store_history=False)
    error = result.error_in_exec
    if isinstance(error, UsageError):  # a bad option value: the message is describe()'s
        return Outcome("InvalidRequestError", str(error))
    if error is not None:
        return _error(error)
    answer = shell.user_ns["_reka"]
    if each and answer[0].error is not None:
        return _error(answer[0].error)
    return _body(server)


def _cli(case: Case, prompt: str, server: OfflineServer) -> Outcome:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    clean.update({"REKA_BASE_URL": server.base_url, "REKA_API_KEY": server.api_key}, **case.environ)
    clean["REKA_NB_CACHE"] = "off"
    args = ["describe", *map(str, case.images), "-p", prompt, "--no-stream", *case.cli_options]
    proc = subprocess.run(
        [sys.executable, "-m", "reka_nb", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        assert proc.stderr.startswith("reka-nb: error: "), proc.stderr
        return Outcome(None, proc.stderr.removeprefix("reka-nb: error: ").strip())
    return _body(server)


def _same(got: Outcome, want: Outcome, surface: str) -> None:
    if want.body is not None:
        assert got.body == want.body, surface
        return
    assert got.message == want.message, surface
    if got.error is not None:  # the CLI prints the message alone
        assert got.error == want.error, surface


def test_every_surface_asks_the_same_question(
    env: OfflineServer,
    shell: InteractiveShell,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = []
    for case in cases(files):
        with monkeypatch.context() as patch:
            for name, value in case.environ.items():
                patch.setenv(name, value)
            want = ask("describe", case, env, shell)
            if case.error is None:
                assert want.body is not None, (case.name, want)
            else:
                assert want.error == case.error.__name__, (case.name, want)
                assert not [r for r in env.requests if r.is_chat], case.name  # nothing sent
            for surface in case.surfaces[1:]:
                got = ask(surface, case, env, shell)
                _same(got, want, f"{case.name}: {surface}")
                if case.error is not None:
                    assert not [r for r in env.requests if r.is_chat], (case.name, surface)
                checked.append((case.name, surface))
    assert len(checked) == sum(len(c.surfaces) - 1 for c in cases(files))


def test_keep_metadata_changes_the_body_the_same_way_everywhere(
    env: OfflineServer, shell: InteractiveShell, files: dict[str, Path]
) -> None:
    by_case = {c.name: c for c in cases(files)}
    kept = ask("describe_many", by_case["keep_metadata"], env, shell)
    dropped = ask("describe_many", by_case["metadata dropped"], env, shell)
    assert kept.body is not None and dropped.body is not None
    assert kept.body != dropped.body  # the EXIF travels only when asked for


def test_a_model_without_images_refuses_the_whole_run_up_front(
    env: OfflineServer, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    with pytest.raises(reka_nb.InvalidRequestError) as refused:
        reka_nb.describe_many(
            [str(files["p0"]), str(files["bad"])], model="reka-flash-3", show=False, cache=False
        )
    assert str(refused.value).startswith("model 'reka-flash-3' does not take image input")
    assert [r.path for r in env.requests] == ["/v1/models"]  # the list; no question


def test_the_cli_refuses_a_model_without_images_with_only_the_list_asked(
    env: OfflineServer, files: dict[str, Path]
) -> None:
    case = Case("refused", [files["png"]], {}, {"REKA_NB_MODEL_INFO": "on"}, None, ("cli",))
    case = Case(**{**case.__dict__, "cli_options": ("-m", "reka-flash-3")})
    got = _cli(case, "What is it?", env)
    assert got.message is not None
    assert got.message.startswith("model 'reka-flash-3' does not take image input")
    assert [r.path for r in env.requests] == ["/v1/models"]  # the list; no question


def test_the_cli_sends_one_request_unless_model_info_is_set(
    env: OfflineServer, files: dict[str, Path]
) -> None:
    case = Case("one request", [files["png"]], {}, {}, None, ("cli",))
    assert _cli(case, "What is it?", env).body is not None
    assert [r.path for r in env.requests] == ["/v1/chat/completions"]
