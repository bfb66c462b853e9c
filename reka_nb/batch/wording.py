"""Counts said in words, for progress lines and summaries: ``1 error``, ``2 errors``."""

from __future__ import annotations

__all__ = ["counted"]


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 image``, ``2 images``, ``1,234 tokens``: the count (with thousands separators) and
    the noun, plural unless the count is exactly 1."""
    word = noun if count == 1 else (plural or f"{noun}s")
    return f"{count:,} {word}"
