"""reka-nb compare, in real subprocesses against the offline server (varied labels): the summary
table on stdout, --json, --truth from a CSV, --csv with every answer, and the usage errors."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from reka_nb.testing import OfflineServer, image_digest, offline_choice, reference_choice

ROOT = Path(__file__).resolve().parents[2]
COUNT = 6
LABELS = ["damaged", "intact", "unclear"]
PROMPT = "Damaged?"
MODELS = ["reka-core", "reka-edge"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "shots"
    out.mkdir()
    for i in range(COUNT):
        buffer = io.BytesIO()
        Image.new("RGB", (10 + i, 8), (200, 90, 90)).save(buffer, "PNG")
        (out / f"s{i}.png").write_bytes(buffer.getvalue())
    return out


def env_for(server: OfflineServer, tmp_path: Path, model_info: str = "off") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_CACHE=str(tmp_path / "cache"),
        REKA_NB_MODEL_INFO=model_info,
        PYTHONPATH=str(ROOT),
    )
    return env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reka_nb", "compare", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def chosen(folder: Path, model: str) -> list[str]:
    return [
        offline_choice(model, LABELS, [image_digest(p.read_bytes())], PROMPT)
        for p in sorted(folder.iterdir())
    ]


def reference(folder: Path) -> list[str]:
    return [
        reference_choice(LABELS, [image_digest(p.read_bytes())], PROMPT)
        for p in sorted(folder.iterdir())
    ]


def test_the_summary_table_with_truth_and_the_csv(
    server: OfflineServer, folder: Path, tmp_path: Path
) -> None:
    server.varied_choices = True
    truth = tmp_path / "labels.csv"
    names = [p.name for p in sorted(folder.iterdir())]
    right = reference(folder)
    truth.write_text(
        "image,label\n" + "".join(f"{n},{t}\n" for n, t in zip(names, right, strict=True))
    )
    out = tmp_path / "out.csv"
    env = env_for(server, tmp_path)
    proc = run(
        str(folder), "-p", PROMPT, "--models", ",".join(MODELS), "--labels", ",".join(LABELS),
        "--truth", str(truth), "--csv", str(out), env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 + len(MODELS)
    assert lines[0].split() == [
        "model", "answered", "failed", "cost", "mean_seconds", "p95_seconds", "input_tokens",
        "output_tokens", "accuracy",
    ]  # fmt: skip
    for line, model in zip(lines[1:], MODELS, strict=True):
        cells = line.split()
        accuracy = sum(a == t for a, t in zip(chosen(folder, model), right, strict=True)) / COUNT
        # no prices without the model list: cost "-"
        assert cells[:4] == [model, str(COUNT), "0", "-"]
        assert cells[-1] == f"{accuracy:.3f}"
    with out.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [(r["model"], r["label"]) for r in rows] == [
        (m, chosen(folder, m)[i]) for i in range(COUNT) for m in MODELS
    ]
    assert [r["correct"] for r in rows] == [
        str(chosen(folder, m)[i] == right[i]) for i in range(COUNT) for m in MODELS
    ]
    # the same again: every answer from the cache, nothing sent
    before = len(server.chat_requests())
    again = run(
        str(folder), "-p", PROMPT, "--models", ",".join(MODELS), "--labels", ",".join(LABELS),
        "--json", env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert len(server.chat_requests()) == before == COUNT * len(MODELS)
    summary = json.loads(again.stdout)
    assert [row["model"] for row in summary] == MODELS
    core, edge = (chosen(folder, m) for m in MODELS)
    same = sum(a == b for a, b in zip(core, edge, strict=True)) / COUNT
    assert [row["agreement"] for row in summary] == [same, same]
    assert [row["mean_seconds"] for row in summary] == [None, None]  # nothing asked
    assert [row["cost"] for row in summary] == [None, None]


def test_prices_from_the_model_list_give_the_cost(
    server: OfflineServer, folder: Path, tmp_path: Path
) -> None:
    proc = run(
        str(folder), "--models", "reka-core,reka-edge", "--json",
        env=env_for(server, tmp_path, model_info="on"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert all(row["cost"] > 0 for row in rows)
    assert "agreement" not in rows[0] and "accuracy" not in rows[0]  # free text
    core, edge = rows
    assert core["cost"] / edge["cost"] == pytest.approx(25, rel=0.01)  # $10 vs $0.40 in


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--models", "reka-core"), "compare needs two or more models, not 1"),
        (
            ("--models", "reka-core,reka-edge", "--labels", "a,b", "--truth", "missing.csv"),
            "cannot read the truth CSV missing.csv",
        ),
        (
            ("--models", "reka-core,reka-edge", "--truth", "missing.csv"),
            "only structured answers can be scored",
        ),
    ],
)
def test_usage_errors_exit_2_with_nothing_sent(
    server: OfflineServer, folder: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    proc = run(str(folder), *args, env=env_for(server, tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"reka-nb: error: {message}")
    assert server.requests == []


def test_models_is_required(server: OfflineServer, folder: Path, tmp_path: Path) -> None:
    proc = run(str(folder), env=env_for(server, tmp_path))
    assert proc.returncode == 2
    assert "the following arguments are required: --models" in proc.stderr
