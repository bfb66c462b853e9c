"""The package's surface: __all__, light import, version, ruff."""

from __future__ import annotations

import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import reka_nb

ROOT = Path(__file__).resolve().parents[1]


def test_all_is_sorted_complete_and_importable() -> None:
    assert reka_nb.__all__ == sorted(reka_nb.__all__)
    public = {
        name
        for name, value in vars(reka_nb).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public <= set(reka_nb.__all__)
    for name in reka_nb.__all__:
        assert getattr(reka_nb, name) is not None


def test_import_is_light() -> None:
    code = (
        "import sys, reka_nb; "
        "heavy = ('IPython', 'ipywidgets', 'numpy', 'matplotlib', 'ipykernel', 'av'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_adds_nothing_heavy_to_httpx_and_pillow() -> None:
    """asyncio, concurrent.futures and urllib.request come with the parts that use them
    (benchmarks/bench_import.py measures the time)."""
    code = (
        "import sys, httpx, PIL.Image; before = set(sys.modules); import reka_nb; "
        "print(sorted(m for m in set(sys.modules) - before if not m.startswith('reka_nb')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_matches_metadata() -> None:
    from importlib.metadata import version

    assert reka_nb.__version__ == version("reka-nb")


def test_typed_marker_ships() -> None:
    assert (Path(reka_nb.__file__).parent / "py.typed").exists()


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed")
def test_ruff_clean() -> None:
    for args in (["check"], ["format", "--check"]):
        proc = subprocess.run(["ruff", *args, "."], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("mypy") is None, reason="mypy is not installed")
def test_mypy_clean() -> None:
    proc = subprocess.run(
        ["mypy", "reka_nb", "--ignore-missing-imports", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
