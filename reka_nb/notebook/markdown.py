"""Small Markdown helpers shared by the notebook display and the upload panel (no I/O)."""

from __future__ import annotations

import re

__all__ = ["CURSOR", "close_fences", "escape_markdown"]

CURSOR = "▍"  # shown at the end of an answer that is still arriving
_OPENING = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")  # CommonMark: up to 3 spaces of indent
_CLOSING = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~])")
_LINE_END = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings


def close_fences(text: str) -> str:
    """Close a code fence left open, so a partial answer does not turn the rest into code.

    Fences follow CommonMark: a block opened by three or more backticks or tildes is closed
    only by a line of the same character, at least as many of them and nothing else; any
    other line inside (a fence of the other character too) is code. An open block is closed
    with the marker that opened it.
    """
    fence: str | None = None
    for line in _LINE_END.split(text):
        if fence is None:
            opening = _OPENING.fullmatch(line)
            # a backtick fence's info string cannot hold a backtick (it is inline code then)
            if opening is not None and not (opening.group(1)[0] == "`" and "`" in opening.group(2)):
                fence = opening.group(1)
        else:
            closing = _CLOSING.fullmatch(line)
            if (
                closing is not None
                and closing.group(1)[0] == fence[0]
                and len(closing.group(1)) >= len(fence)
            ):
                fence = None
    return text if fence is None else f"{text}\n{fence}"


def escape_markdown(text: str) -> str:
    """Text shown literally in Markdown (model names, file names, footers)."""
    return _MD_SPECIAL.sub(r"\\\1", text)
