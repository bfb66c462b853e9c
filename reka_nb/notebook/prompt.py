"""The text side of the %reka magic: split options from the prompt, fill in ``{name}`` fields.

No IPython here, so the rules can be tested as plain functions:

- ``{name}``, ``{name.attr}``, ``{name[0]}``, ``{name[key]}`` become the variable's value
  (``str()``); a field that names no variable, fails to resolve, or whose value's ``str()``
  raises, is left exactly as written.
- ``{{`` and ``}}`` are literal braces, as in ``str.format``: ``{{name}}`` gives ``{name}``.
  A ``}}`` that closes a brace of JSON or code (``{"a": {"b": 1}}``) is left as written, so
  JSON and code pass through unchanged. Nothing here ever raises.
- Lines starting with ``# NBVAL_`` (nbval's markers) are not part of the prompt.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "FIELD",
    "drop_nbval_markers",
    "interpolate",
    "resolve_field",
    "split_options",
]

_NAME = r"[A-Za-z_]\w*"
_INDEX = r"\[(?:-?\d+|" + _NAME + r"|'[^'\[\]{}]*'|\"[^\"\[\]{}]*\")\]"
#: A field: a name followed by any number of ``.attr`` and ``[index]`` parts.
FIELD = re.compile(_NAME + r"(?:\." + _NAME + "|" + _INDEX + ")*")
_PART = re.compile(r"\.(" + _NAME + r")|\[(-?\d+|" + _NAME + r"|'[^']*'|\"[^\"]*\")\]")
_NBVAL = re.compile(r"^\s*#\s*NBVAL_")
_TOKEN = re.compile(r"""(?:[^\s"']|"[^"]*"|'[^']*')+""")
_NEGATIVE_NUMBER = re.compile(r"^-\d*\.?\d+$")

Namespaces = Sequence[Mapping[str, Any]]
_MISSING = object()


def drop_nbval_markers(text: str) -> str:
    """The text without the lines nbval reads as markers (``# NBVAL_SKIP`` and the like)."""
    if "NBVAL_" not in text:
        return text
    return "".join(line for line in text.splitlines(True) if not _NBVAL.match(line))


def resolve_field(field: str, namespaces: Namespaces) -> Any:
    """The value ``field`` names (``name``, ``name.attr``, ``name[0]``); raise LookupError if none.

    Index parts follow ``str.format``: digits are integer indexes, other words are string keys.
    Any error while resolving (a missing attribute, a property that raises) is a LookupError.
    """
    match = re.match(_NAME, field)
    if match is None or FIELD.fullmatch(field) is None:
        raise LookupError(field)
    name = match.group()
    value: Any = _MISSING
    for namespace in namespaces:
        if name in namespace:
            value = namespace[name]
            break
    if value is _MISSING:
        raise LookupError(field)
    try:
        for part in _PART.finditer(field, match.end()):
            attr, index = part.groups()
            if attr is not None:
                value = getattr(value, attr)
            elif index[0] in "'\"":
                value = value[index[1:-1]]
            elif index.lstrip("-").isdigit():
                value = value[int(index)]
            else:
                value = value[index]
    except Exception as exc:  # a field that does not resolve is left as written
        raise LookupError(field) from exc
    return value


def interpolate(text: str, namespaces: Namespaces) -> str:
    """Replace ``{field}`` with values from the namespaces; see the module docstring."""
    if "{" not in text and "}}" not in text:
        return text
    out: list[str] = []
    opened: list[bool] = []  # one per open brace: True for an escaped ``{{``
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == "{":
            if text.startswith("{{", i):
                out.append("{")
                opened.append(True)
                i += 2
                continue
            field = FIELD.match(text, i + 1)
            if field is not None and text.startswith("}", field.end()):
                try:
                    out.append(str(resolve_field(field.group(), namespaces)))
                except Exception:  # no such value, or a value whose ``str()`` raises
                    out.append(text[i : field.end() + 1])
                i = field.end() + 1
                continue
            out.append("{")
            opened.append(False)
            i += 1
        elif char == "}":
            double = text.startswith("}}", i)
            if opened and not opened[-1]:  # closes a brace of JSON or code
                opened.pop()
                out.append("}")
                i += 1
            elif double:  # closes an escaped ``{{``, or a lone ``}}``
                if opened:
                    opened.pop()
                out.append("}")
                i += 2
            else:
                out.append("}")
                i += 1
        else:
            j = _next_brace(text, i)
            out.append(text[i:j])
            i = j
    return "".join(out)


def _next_brace(text: str, start: int) -> int:
    positions = [p for p in (text.find("{", start), text.find("}", start)) if p >= 0]
    return min(positions) if positions else len(text)


def split_options(line: str, takes_value: Mapping[str, bool]) -> tuple[list[str], str]:
    """Split a magic line into its leading options (as argv) and the rest, verbatim.

    ``takes_value`` maps each option string (``-m``, ``--model``) to whether it takes a value.
    Options come first; the first word that is not an option (or follows ``--``) starts the
    rest, which is returned untouched, quotes and all. Unknown options are kept in argv so
    the parser can name them. An unbalanced quote in the options raises ValueError.
    """
    argv: list[str] = []
    pos, n = 0, len(line)
    want_value = False
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return argv, ""
        is_option = line[pos] == "-"
        if not want_value and not is_option:
            return argv, line[pos:].rstrip()
        match = _TOKEN.match(line, pos)
        if match is None:
            raise ValueError(f"unbalanced quote in the options: {line[pos:]!r}")
        raw = match.group()
        if not want_value:
            if raw == "--":
                return argv, line[match.end() :].strip()
            if _NEGATIVE_NUMBER.match(raw):  # a prompt that starts with a number like -5
                return argv, line[pos:].rstrip()
        try:
            words = shlex.split(raw)
        except ValueError as exc:
            raise ValueError(f"unbalanced quote in the options: {raw!r}") from exc
        argv.append(words[0] if words else "")
        pos = match.end()
        want_value = not want_value and _needs_value(raw, takes_value)


def _needs_value(option: str, takes_value: Mapping[str, bool]) -> bool:
    """True when the next word is this option's value (``-m`` yes, ``-m=x``/``-mx``/flags no)."""
    if "=" in option:
        return False
    if option in takes_value:
        return takes_value[option]
    return False  # unknown, or a short option with its value attached (-t0.2)
