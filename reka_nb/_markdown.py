"""Small Markdown helpers shared by the notebook display and the upload panel (no I/O)."""

from __future__ import annotations

import re

__all__ = ["CURSOR", "close_fences", "escape_markdown"]

CURSOR = "▍"  # shown at the end of an answer that is still arriving
_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")


def close_fences(text: str) -> str:
    """Close a code fence left open, so a partial answer does not turn the rest into code."""
    fences = _FENCE.findall(text)
    return f"{text}\n{fences[-1]}" if len(fences) % 2 else text


def escape_markdown(text: str) -> str:
    """Text shown literally in Markdown (model names, file names, footers)."""
    return _MD_SPECIAL.sub(r"\\\1", text)
