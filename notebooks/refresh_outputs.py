"""Run quickstart.ipynb against the offline server and save its outputs in place.

The saved outputs are what nbval compares in CI, so refresh them after changing a cell:

    python notebooks/refresh_outputs.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat

from reka_nb.testing import run_notebook

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    run_notebook(notebook, path.parent)
    nbformat.write(notebook, path)
    print(f"saved {path} ({len(notebook.cells)} cells)")


if __name__ == "__main__":
    refresh(HERE / "quickstart.ipynb")
