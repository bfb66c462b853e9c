"""The package's layers hold: imports run one way (pyproject's [tool.importlinter] contract),
no modules import each other (type-only imports too), and docs/architecture.md names them all."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

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


def contract_list(name: str) -> list[str]:
    """One list of the import-linter section of pyproject.toml (``layers = [...]``)."""
    text = (ROOT / "pyproject.toml").read_text()
    body = re.search(rf"^{name} = \[\n(.*?)^\]", text, re.S | re.M)
    assert body is not None, name
    return re.findall(r'^\s*"([^"]+)",', body.group(1), re.M)


def test_the_contract_has_at_most_nine_layers_and_the_offline_server_its_own() -> None:
    layers = contract_list("layers")
    assert 0 < len(layers) <= 9, layers
    assert contract_list("source_modules") == ["reka_nb.offline"]
    tops = {p.stem for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()}
    others = {f"reka_nb.{n}" for n in tops if not n.startswith("__") and n != "offline"}
    assert set(contract_list("forbidden_modules")) == others


def test_the_offline_server_imports_nothing_else(tmp_path: Path) -> None:
    parent = upward_copy(tmp_path, "offline/_faults.py", "from .._exceptions import RekaError")
    result = lint_imports(parent)
    assert result.returncode == 1
    assert "reka_nb.offline._faults -> reka_nb._exceptions" in result.stdout


def import_cycles() -> list[list[str]]:
    """Groups of modules that import each other, counting imports made only for type checks."""
    graph = grimp.build_graph("reka_nb", exclude_type_checking_imports=False)
    imports = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        order[module] = low[module] = len(order)
        stack.append(module)
        for other in imports[module]:
            if other not in order:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in stack:
                low[module] = min(low[module], order[other])
        if low[module] == order[module]:
            group = []
            while True:
                other = stack.pop()
                group.append(other)
                if other == module:
                    break
            if len(group) > 1 or module in imports[module]:
                cycles.append(sorted(group))

    for module in sorted(imports):
        if module not in order:
            visit(module)
    return cycles


def test_no_import_cycles_even_counting_type_checking_imports() -> None:
    assert import_cycles() == []


def test_a_type_only_import_cycle_is_found(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    parent = upward_copy(
        tmp_path,
        "protocol/sse.py",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import stream",
    )
    stream = parent / "reka_nb" / "protocol" / "stream.py"
    stream.write_text(stream.read_text() + "\nfrom . import sse  # noqa\n")
    monkeypatch.syspath_prepend(str(parent))
    for name in [m for m in sys.modules if m == "reka_nb" or m.startswith("reka_nb.")]:
        monkeypatch.delitem(sys.modules, name)
    assert ["reka_nb.protocol.sse", "reka_nb.protocol.stream"] in import_cycles()


def test_the_architecture_document_names_every_module() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    modules = [
        path.relative_to(PACKAGE).as_posix()
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "__init__.py"
    ]
    missing = [m for m in modules if f"`{m}`" not in text]
    assert missing == [], f"docs/architecture.md does not name {missing}"
