"""``python -m reka_nb.testing``: the offline server from a shell (``reka_nb.offline``)."""

from __future__ import annotations

from ..offline.__main__ import client_url, main

__all__ = ["client_url", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
