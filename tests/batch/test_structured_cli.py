"""reka-nb describe --schema / --labels / --csv, in real subprocesses against the offline
server: the answer's fields in --json and in each JSON line, a CSV column per field."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from _env import child_environment
from PIL import Image

from reka_nb.testing import Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
NOTE = "No model ran: reka_nb's offline server made this answer from the schema."
REST = [
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


def make_folder(tmp_path: Path, count: int) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (10 + i, 8), (90, 90, 200)).save(buffer, "PNG")
        (folder / f"img{i}.png").write_bytes(buffer.getvalue())
    return folder


def env_for(server: OfflineServer, tmp_path: Path) -> dict[str, str]:
    env = child_environment()
    env.update(
        REKA_BASE_URL=server.base_url,
        REKA_API_KEY=server.api_key,
        REKA_NB_CACHE=str(tmp_path / "cache"),
        REKA_NB_MODEL_INFO="off",
        PYTHONPATH=str(ROOT),
    )
    return env


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reka_nb", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_concise_schema_fields_in_json(server: OfflineServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 1)
    done = run(
        "describe", str(folder / "img0.png"), "-p", "Count.", "--schema", "text, people int",
        "--json", env=env_for(server, tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert json.loads(out["text"]) == {"text": out["field_text"], "people": 1}
    assert out["field_text"].startswith(NOTE) and out["people"] == 1
    [request] = server.chat_requests()
    assert request.body["response_format"]["json_schema"]["schema"]["properties"] == {
        "text": {"type": "string"},
        "people": {"type": "integer"},
    }


def test_schema_file_labels_each_jsonl_and_csv(server: OfflineServer, tmp_path: Path) -> None:
    folder = make_folder(tmp_path, 3)
    env = env_for(server, tmp_path)
    done = run(
        "describe", str(folder), "--each", "--labels", "cat, dog", "--csv",
        str(tmp_path / "out.csv"), "--concurrency", "1", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["label"] for line in lines] == ["cat"] * 3
    assert list(lines[0]) == ["index", "image", "label", *REST]
    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["image", "label", *REST]
    assert [(Path(r["image"]).name, r["label"], r["error"]) for r in rows] == [
        ("img0.png", "cat", ""),
        ("img1.png", "cat", ""),
        ("img2.png", "cat", ""),
    ]
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["n", "tags"],
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
    server.queue(Fault.wrong_type(), Fault.wrong_type())  # the first image fails, repair too
    done = run(
        "describe", str(folder), "--each", "--schema", str(tmp_path / "schema.json"), "--csv",
        str(tmp_path / "fields.csv"), "--concurrency", "1", env=env,
    )  # fmt: skip
    assert done.returncode == 1
    assert "reka-nb: " in done.stderr and "SchemaError: The answer does not match" in done.stderr
    with open(tmp_path / "fields.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["image", "n", "tags", *REST]
    assert (rows[0]["n"], rows[0]["tags"]) == ("", "")
    assert [r["n"] for r in rows] == ["", "1", "1"]
    tags = [json.loads(r["tags"]) for r in rows[1:]]
    assert tags == [
        [f"{NOTE} Image 1: PNG, 11×8 px, 77 bytes."],
        [f"{NOTE} Image 1: PNG, 12×8 px, 78 bytes."],
    ]
    assert rows[0]["error"].startswith("SchemaError: The answer does not match the schema: ")


def test_an_unusable_schema_exits_2_with_nothing_sent(
    server: OfflineServer, tmp_path: Path
) -> None:
    folder = make_folder(tmp_path, 1)
    env = env_for(server, tmp_path)
    done = run("describe", str(folder / "img0.png"), "--schema", "n number", env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("reka-nb: error: schema field 'n' has an unknown type 'number'")
    missing = run(
        "describe", str(folder / "img0.png"), "--schema", str(tmp_path / "x.json"), env=env
    )
    assert missing.returncode == 2
    assert (
        missing.stderr
        == f"reka-nb: error: --schema {tmp_path / 'x.json'}: No such file or directory\n"
    )
    bad = run("describe", str(folder), "--csv", "t.csv", env=env)
    assert bad.returncode == 2 and bad.stderr == "reka-nb: error: --csv goes with --each\n"
    assert server.requests == []
