"""The package's layers hold: imports run one way (pyproject's [tool.importlinter] contract)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reka_nb"


def lint_imports(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contract on the reka_nb found in package_parent."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
            "--config",
            str(ROOT / "pyproject.toml"),
            "--no-cache",
        ],
        cwd=package_parent,
        env={"PYTHONPATH": str(package_parent), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def upward_copy(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the package with one import added to one module."""
    copy = tmp_path / "reka_nb"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{line}\n")
    return tmp_path


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    parent = upward_copy(tmp_path, "protocol/sse.py", "from ..client.sync import RekaClient")
    result = lint_imports(parent)
    assert result.returncode == 1
    assert "reka_nb.protocol.sse -> reka_nb.client.sync" in result.stdout
    assert "Contracts: 1 kept, 1 broken." in result.stdout


def test_a_lazy_upward_import_breaks_it_too(tmp_path: Path) -> None:
    parent = upward_copy(
        tmp_path, "client/sync.py", "def _late() -> None:\n    from ..notebook import display"
    )
    result = lint_imports(parent)
    assert result.returncode == 1
    assert "reka_nb.client.sync -> reka_nb.notebook.display" in result.stdout


def test_siblings_of_one_layer_stay_apart(tmp_path: Path) -> None:
    parent = upward_copy(tmp_path, "cli.py", "from .notebook import magics")
    result = lint_imports(parent)
    assert result.returncode == 1
    assert "reka_nb.cli -> reka_nb.notebook.magics" in result.stdout


def test_a_new_top_level_module_must_be_placed_in_a_layer(tmp_path: Path) -> None:
    parent = upward_copy(tmp_path, "__init__.py", "")
    (parent / "reka_nb" / "_stray.py").write_text('"""Not in any layer."""\n')
    result = lint_imports(parent)
    assert result.returncode == 1
    assert "reka_nb._stray" in result.stdout
