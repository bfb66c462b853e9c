"""Every code block of README.md runs, against the offline server, and prints what it should.

Blocks are taken from the README as written; each is recognised by its first line and run
where a reader would run it: shell lines in bash, Python in a fresh interpreter, the notebook
example and the magics in a real kernel (nbclient). The outputs' shapes are compared: how
many lines, what they start with, which outputs a cell shows. A block the test does not know
fails the test, so a new example cannot go unrun.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

import reka_nb
from reka_nb.testing import OfflineServer

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = [
    (m.group(1), m.group(2))
    for m in re.finditer(r"^```(\w*)\n(.*?)^```", README, re.MULTILINE | re.DOTALL)
]
INTRO = "This is reka_nb's offline server: no model ran"


def block(first_line: str) -> str:
    (found,) = [code for _, code in BLOCKS if code.startswith(first_line)]
    return found


KNOWN = (
    "pip install . && reka-nb describe",
    "import reka_nb\nfrom PIL import Image",
    "import reka_nb\n\nresults = reka_nb.describe_many(",
    "reka_nb.models()",
    'reka_nb.describe("clip.mp4"',
    "%reka -i clip.mp4",
    "import ray, reka_nb.ray as rr",  # run by tests/ray/test_ray.py, where Ray runs
    "import ray, reka_nb, reka_nb.ray as rr",  # likewise
    "%load_ext reka_nb",
    "%%reka -i docs/images/cat.jpeg",
    "%%reka --models reka-flash,reka-edge",
    "reka-nb describe docs/images/cat.jpeg",
    "from reka_nb import RekaClient, AsyncRekaClient",
    "RekaError\n",
    "from reka_nb import Client, Reka",
    "export REKA_BASE_URL=http://127.0.0.1:11434/v1",
    "from reka_nb import RekaClient, StreamInterrupted",
    "from pydantic import BaseModel\n\nimport reka_nb",
    "import reka_nb\n\ncmp = reka_nb.compare(",
)


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(extra)
    return env


def shell(line: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_block_is_known() -> None:
    firsts = [code for _, code in BLOCKS]
    for code in firsts:
        assert sum(code.startswith(known) for known in KNOWN) == 1, code.splitlines()[0]
    assert len(firsts) == len(KNOWN)


def test_setup_commands() -> None:
    first, second = block("pip install . && reka-nb describe").splitlines()
    install, command = first.split(" && ")
    assert install == "pip install ."
    proc = shell(command)
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith(INTRO) and line.endswith("Prompt: What can you see in the image?")
    install, command = second.split(" && ")
    assert install == 'pip install -e ".[test]"'
    assert command == "python -m pytest --nbval"
    # the whole suite cannot run inside itself: check what it collects instead
    proc = shell(command + " --collect-only -q -p no:cacheprovider")
    assert proc.returncode == 0, proc.stdout[-2000:]
    items = [line for line in proc.stdout.splitlines() if "::" in line]
    notebooks = {line.split("::")[0] for line in items if ".ipynb" in line}
    assert notebooks == {"notebooks/quickstart.ipynb"}
    assert any(line.startswith("tests/test_readme.py::") for line in items)


def test_command_line_examples() -> None:
    lines = block("reka-nb describe docs/images/cat.jpeg").splitlines()
    assert len(lines) == 4
    outputs = []
    for line in lines:
        proc = shell(line)
        assert proc.returncode == 0, (line, proc.stderr)
        assert proc.stderr == ""
        outputs.append(proc.stdout)
    assert outputs[0].startswith(INTRO)
    assert outputs[0].endswith("Prompt: What is the cat doing?\n")
    assert outputs[1].startswith('{"text": "This is reka_nb') and outputs[1].count("\n") == 1
    table = outputs[2].splitlines()  # the models table: a header, a rule, a model a line
    assert table[0].split()[:3] == ["model", "name", "inputs"]
    assert "reka-flash" in [line.split()[0] for line in table[2:]]
    assert outputs[3] == f"reka-nb {reka_nb.__version__}\n"


def test_client_example_prints_three_lines() -> None:
    proc = python(block("from reka_nb import RekaClient, AsyncRekaClient"), REKA_NB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    streamed, complete, models = proc.stdout.splitlines()
    assert streamed.startswith(INTRO) and streamed.endswith("Prompt: Hello")
    assert complete.startswith(INTRO) and complete.endswith("Prompt: Hi")
    assert models.startswith("['reka-core', 'reka-flash'")


def test_openai_style_example_prints_the_answer_on_one_line() -> None:
    proc = python(block("from reka_nb import Client, Reka"), REKA_NB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith(INTRO)
    assert line.endswith("Prompt: What can you see in the image ?")
    assert "Image 1: JPEG, 451×300 px" in line


def test_offline_testing_example() -> None:
    proc = python(block("from reka_nb import RekaClient, StreamInterrupted"))
    assert proc.returncode == 0, proc.stderr
    partial, requests = proc.stdout.splitlines()
    assert partial == (
        "This is reka_nb's offline server: [the connection closed before the answer was complete]"
    )
    assert requests == "[('/v1/chat/completions', 503), ('/v1/chat/completions', 200)]"


def test_local_model_example_runs_against_a_local_server() -> None:
    code = block("export REKA_BASE_URL=http://127.0.0.1:11434/v1")
    with OfflineServer(api_key="local", models=("llava:7b",)) as server:
        proc = shell(code.replace("http://127.0.0.1:11434/v1", server.base_url))
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith(INTRO) and "Model: llava:7b." in line


def test_error_tree_matches_the_exceptions() -> None:
    parents: list[type] = []
    seen = []
    for line in block("RekaError\n").splitlines():
        match = re.match(r"^((?:│   |    )*)(?:├── |└── )?(\w+)", line)
        assert match is not None, line
        depth = len(match.group(1)) // 4 + (1 if match.group(0) != match.group(2) else 0)
        cls = getattr(reka_nb, match.group(2))
        del parents[depth:]
        if parents:
            assert cls.__bases__[0] is parents[-1], line
        parents.append(cls)
        seen.append(cls)
    everything = {
        value
        for value in vars(reka_nb).values()
        if isinstance(value, type) and issubclass(value, reka_nb.RekaError)
    }
    assert set(seen) == everything


def test_notebook_examples_in_a_kernel() -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = [
        nbformat.v4.new_code_cell(block(first))
        for first in (
            "import reka_nb\nfrom PIL import Image",
            "%load_ext reka_nb",
            "%%reka -i docs/images/cat.jpeg",
            "%%reka --models reka-flash,reka-edge",
        )
    ]
    client = NotebookClient(nb, timeout=120, kernel_name="python3")
    client.execute(cwd=str(ROOT), env=environment(REKA_NB_OFFLINE="1"))
    example, load, magic, side_by_side = (cell.outputs for cell in nb.cells)
    # two answers shown (each: the thumbnails, then the answer); the last asks quietly
    assert [o.output_type for o in example] == ["display_data"] * 4
    assert example[0].data["text/plain"] == "[image 1: cat.jpeg]"
    assert example[1].data["text/plain"].startswith(INTRO)
    assert example[2].data["text/plain"] == "[image 1: PIL image] [image 2: PIL image]"
    assert "Prompt: What differs between these?" in example[3].data["text/plain"]
    assert load == []
    assert [o.output_type for o in magic] == ["display_data"] * 2
    assert (
        'Prompt: What is the cat doing? Answer as JSON: {"activity": "..."}'
        in (magic[1].data["text/plain"])
    )
    # the thumbnails, then the two answers side by side, as the display was left
    assert [o.output_type for o in side_by_side] == ["display_data"] * 2
    columns = side_by_side[1].data["text/html"]
    assert columns.count('data-state="done"') == 2
    assert "Model: reka-flash." in columns and "Model: reka-edge." in columns


@pytest.mark.parametrize("name", ["notebook", "test"])
def test_extras_named_in_the_readme_exist(name: str) -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert f'".[{name}]"' in README
    wanted = {"notebook": {"jupyterlab", "ipykernel", "numpy", "matplotlib"}, "test": {"pytest"}}
    assert wanted[name] <= {re.split(r"[<>=\[ ]", r)[0] for r in extras[name]}


def run_in(folder: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Python code run in ``folder`` against the in-process offline server."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=folder,
        env=environment(REKA_NB_OFFLINE="1", **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_many_images_example(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.jpeg", "b.jpeg"):
        (photos / name).write_bytes((ROOT / "docs" / "images" / "cat.jpeg").read_bytes())
    code = block("import reka_nb\n\nresults = reka_nb.describe_many(")
    check = "\nframe = results.to_pandas()\nprint(list(frame['image']), list(frame['error']))"
    proc = run_in(tmp_path, code + check, REKA_NB_CACHE="off")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "['photos/a.jpeg', 'photos/b.jpeg'] [None, None]"


def test_models_and_cost_example() -> None:
    code = "import reka_nb\n" + block("reka_nb.models()")
    check = "\nprint(repr(answer.cost), answer.cost > 0)\nprint(reka_nb.usage())"
    proc = run_in(ROOT, code + check, REKA_NB_MODEL_INFO="on")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-2].startswith("Decimal('") and lines[-2].endswith("') True")
    assert lines[-1].startswith("<UsageTotals 1 answer, ") and lines[-1].endswith(">")


def test_video_examples(tmp_path: Path) -> None:
    from _clips import make_clip

    (tmp_path / "clip.mp4").write_bytes(make_clip("mp4"))
    (tmp_path / "clip.webm").write_bytes(make_clip("webm"))
    proc = run_in(tmp_path, "import reka_nb\n" + block('reka_nb.describe("clip.mp4"'))
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    assert line.startswith(INTRO) and "Video 1: MP4, 2.0 s" in line
    magic, command = block("%reka -i clip.mp4").splitlines()
    ipython = [sys.executable, "-m", "IPython", "--no-banner", "--ext", "reka_nb", "-c", magic]
    env = environment(REKA_NB_OFFLINE="1")
    proc = subprocess.run(ipython, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert INTRO in proc.stdout and "Video 1: MP4, 2.0 s" in proc.stdout
    proc = subprocess.run(
        ["bash", "-c", command + " --offline"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(INTRO) and "Video 1: WebM, 2.0 s" in proc.stdout


def test_compare_example() -> None:
    code = block("import reka_nb\n\ncmp = reka_nb.compare(")
    code += (
        "print(cmp.summary()['accuracy'].tolist(), list(cmp.summary().index))\n"
        "print(len(cmp.to_pandas()), type(cmp.plot()).__name__, len(cmp.plot().axes))\n"
        "print(cmp.results['reka-edge'].score(['intact']).per_label['support'].tolist())\n"
    )
    proc = python(code, REKA_NB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    # the offline server's models all answer the first label unless told to vary
    assert proc.stdout.splitlines() == [
        "[0.0, 0.0] ['reka-flash', 'reka-edge']",
        "2 Figure 3",
        "[0, 1, 0]",
    ]


def test_structured_answers_example() -> None:
    code = block("from pydantic import BaseModel\n\nimport reka_nb")
    code += (
        "print(repr(r.data))\n"
        "import json\n"
        "print(json.loads(r.text) == r.data.model_dump(), r.data.total)\n"
        "column = shots.to_pandas()['label']\n"
        "print(column.tolist(), list(column.cat.categories))\n"
    )
    proc = python(code, REKA_NB_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    streamed, data, same, labels = proc.stdout.splitlines()
    note = "No model ran: reka_nb's offline server made this answer from the schema."
    assert streamed.startswith(f'{{"store": "{note} Image 1: JPEG, 451×300 px')
    assert data.startswith(f'Receipt(store="{note} Image 1: ')
    assert data.endswith("total=1.5, date='offline date')")
    assert same == "True 1.5"
    assert labels == "['damaged'] ['damaged', 'intact', 'unclear']"
