"""reka_nb in a plain Python process, outside IPython, as a script or a REPL meets it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python(code: str, **env: str) -> str:
    """Run ``code`` in a new interpreter (no REKA_ settings but ``env``); return its stdout."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    environment.update(PYTHONPATH=str(ROOT), **env)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_dir_lists_the_names_imported_on_first_use() -> None:
    out = python(
        "import reka_nb\n"
        "names = dir(reka_nb)\n"
        "print(sorted(set(reka_nb.__all__) - set(names)))\n"
        "print([n for n in ('describe_many', 'uploader', 'prepare_image') if n in names])\n"
        "print('describe_many' in vars(reka_nb))\n"
    )
    assert out == "[]\n['describe_many', 'uploader', 'prepare_image']\nFalse\n"


def test_print_models_is_a_text_table() -> None:
    out = python("import reka_nb\nreka_nb.use_offline_server()\nprint(reka_nb.models())\n")
    lines = out.splitlines()
    assert lines[0].startswith("model    ") and lines[0].endswith("$/1M in  $/1M out")
    assert set(lines[1]) == {"-", " "}
    assert lines[3].split()[:3] == ["reka-flash", "Reka", "Flash"]
    assert "ModelList(" not in out


def test_an_offline_delay_set_after_the_server_started_applies() -> None:
    out = python(
        "import os, reka_nb\n"
        "server = reka_nb.use_offline_server()\n"
        "reka_nb.describe('docs/images/cat.jpeg', show=False)\n"
        "print(server.token_delay)\n"
        "os.environ['REKA_NB_OFFLINE_DELAY'] = '0.01'\n"
        "answer = reka_nb.describe('docs/images/cat.jpeg', show=False)\n"
        "print(server.token_delay, answer.elapsed > 0.01 * 10)\n"
        "os.environ['REKA_NB_OFFLINE_DELAY'] = 'slow'\n"
        "try:\n"
        "    reka_nb.describe('docs/images/cat.jpeg', show=False)\n"
        "except reka_nb.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    assert out == (
        "0.0\n"
        "0.01 True\n"
        "REKA_NB_OFFLINE_DELAY must be seconds between words, from 0 to 60, not 'slow'\n"
    )


def test_the_default_client_closes_its_connections_at_exit() -> None:
    """describe() without a client, then exit: no socket is left for Python to warn about."""
    code = (
        "import os\n"
        "from reka_nb.testing import OfflineServer\n"
        "server = OfflineServer().start()\n"
        "os.environ.update(REKA_BASE_URL=server.base_url, REKA_API_KEY=server.api_key)\n"
        "import reka_nb\n"
        "print(reka_nb.describe('docs/images/cat.jpeg', show=False).text[:8])\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
    environment.update(PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-W", "always::ResourceWarning", "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "This is \n", "")
