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
    without_folders(notebook, path.parent.parent)
    nbformat.write(notebook, path)
    print(f"saved {path} ({len(notebook.cells)} cells)")


def without_folders(notebook: nbformat.NotebookNode, root: Path) -> None:
    """Replace the absolute path of the repository in saved outputs with "…": the committed
    notebook carries no folder of the machine that ran it (an error message may name the
    current directory)."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for key in ("text", "evalue"):
                if isinstance(output.get(key), str):
                    output[key] = output[key].replace(str(root), "…")
            if "traceback" in output:
                output["traceback"] = [line.replace(str(root), "…") for line in output.traceback]
            for mime, value in output.get("data", {}).items():
                if isinstance(value, str):
                    output["data"][mime] = value.replace(str(root), "…")


if __name__ == "__main__":
    refresh(HERE / "quickstart.ipynb")
