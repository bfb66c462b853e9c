"""Small Markdown helpers shared by the notebook display and the upload panel (no I/O)."""

from __future__ import annotations

import re

from ..answer import escape_markdown  # the key/value table of an answer escapes with it too

__all__ = ["CURSOR", "LONG_WORD", "close_fences", "escape_markdown", "wrap_long_words"]

CURSOR = "▍"  # shown at the end of an answer that is still arriving
_OPENING = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")  # CommonMark: up to 3 spaces of indent
_CLOSING = re.compile(r" {0,3}(`{3,}|~{3,})[ \t]*")
_LINE_END = re.compile(r"\r\n|\r|\n")  # CommonMark's line endings
#: A run of this many characters without a space (a URL, a hash) may be wider than the output.
LONG_WORD = 40
_LONG = re.compile(rf"\S{{{LONG_WORD},}}")
_WRAPPER = '<div style="overflow-wrap:anywhere;word-break:break-word">\n\n{}\n\n</div>'


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


def wrap_long_words(markdown: str) -> str:
    """Markdown whose long unbroken words (URLs) wrap instead of widening the output.

    Answers without such a word are returned as they are; others go into an HTML block that
    lets them break anywhere (its blank lines keep the Markdown inside rendered as Markdown).
    Code blocks keep their lines: they scroll, as code should.
    """
    return _WRAPPER.format(markdown) if _LONG.search(markdown) else markdown
