"""Run quickstart.ipynb against the offline server and save its outputs in place.

The saved outputs are what nbval compares in CI, so refresh them after changing a cell:

    python notebooks/refresh_outputs.py
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from reka_nb.testing import OfflineServer, kernel_env

HERE = Path(__file__).resolve().parent


def refresh(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata.pop("widgets", None)
    with OfflineServer() as server:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REKA_")}
        env.update(kernel_env(server))
        client = NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            store_widget_state=False,  # no uploads or widget models in the saved file
        )
        client.execute(env=env)  # cells tagged raises-exception may fail; any other stops it
    nbformat.write(notebook, path)
    print(f"saved {path} ({len(notebook.cells)} cells)")


if __name__ == "__main__":
    refresh(HERE / "quickstart.ipynb")
