"""URLs in text meant for people: ``data:`` payloads shortened, queries (tokens) left out."""

from __future__ import annotations

import re

__all__ = ["short_url", "shorten_data_urls"]

_DATA_URL_B64 = re.compile(
    r"(data:[^,;\s\"'()]*(?:;[^,;\s\"'()]*)*;base64,)([A-Za-z0-9+/_-]+=*)", re.IGNORECASE
)


def shorten_data_urls(text: str) -> str:
    """Replace the base64 payload of every ``data:`` URL in text with ``…(N bytes)``.

    N is the decoded size. Use on anything printed: request bodies, logs, error reports.
    """

    def short(match: re.Match[str]) -> str:
        size = len(match.group(2).rstrip("=")) * 3 // 4
        return f"{match.group(1)}…({size:,} bytes)"

    return _DATA_URL_B64.sub(short, text)


def short_url(url: str, limit: int = 80) -> str:
    """A URL for messages: no query or fragment (they may hold tokens), at most ``limit``."""
    cut = re.search(r"[?#]", url)
    text = url[: cut.start()] + "?…" if cut else url
    return text if len(text) <= limit else text[: limit - 1] + "…"
