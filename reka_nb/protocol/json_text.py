"""JSON out of what a model wrote: tolerant of prose and code fences, and of a growing prefix.

`extract_json` finds the JSON value in a finished answer (the whole text, a fenced block, or
the first object after leading prose) or raises `SchemaError` saying why there is none.
`parse_partial` reads the prefix of an answer still arriving and returns the fields complete
so far, for a display that fills in while the answer streams; it never raises, and one call
costs time linear in the text. `PartialObject` does the same for text that arrives in pieces,
starting each time after the last complete top-level field, so a whole stream costs about
linear time too.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from .._exceptions import SchemaError

__all__ = ["PartialObject", "extract_json", "parse_partial"]

_DECODER = json.JSONDecoder(strict=False)  # raw newlines inside strings are common
_FENCE = re.compile(r"```[ \t]*(?:json5?|JSON)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WS = re.compile(r"[ \t\n\r]*")
_OPENERS = re.compile(r"[{\[]")
_LITERALS = (
    ("true", True),
    ("false", False),
    ("null", None),
    ("NaN", float("nan")),
    ("Infinity", float("inf")),
    ("-Infinity", float("-inf")),
)
_AFTER = frozenset(" \t\n\r,]}")  # what may follow a complete number
_MAX_STARTS = 64  # positions tried after leading prose: bounded, so a long answer stays cheap
_QUOTE_LIMIT = 200


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= _QUOTE_LIMIT else text[:_QUOTE_LIMIT] + "…")


def extract_json(text: str) -> Any:
    """The JSON value in a model's answer: the text itself, inside a code fence, or after
    leading prose (the first object or array that parses). Raises `SchemaError` (with
    ``raw_text``) for an empty answer, one without JSON (such as a refusal) or broken JSON."""
    stripped = text.strip()
    if not stripped:
        raise SchemaError("The answer was empty: no JSON came back", raw_text=text, reason="empty")
    try:
        return _DECODER.decode(stripped)
    except json.JSONDecodeError as exc:
        first_error = exc
    for match in _FENCE.finditer(stripped):
        try:
            return _DECODER.decode(match.group(1).strip())
        except json.JSONDecodeError:
            continue
    return _from_prose(stripped, text, first_error)


def _from_prose(body: str, raw: str, error: json.JSONDecodeError) -> Any:
    """The first object (or array) in ``body`` that parses, trailing prose ignored."""
    starts = 0
    first: json.JSONDecodeError | None = None
    skip_to = 0  # openers inside a value that failed to parse are parts of it, not answers
    for match in _OPENERS.finditer(body):
        if match.start() < skip_to:
            continue
        if starts == _MAX_STARTS:
            break
        starts += 1
        try:
            value, _ = _DECODER.raw_decode(body, match.start())
        except json.JSONDecodeError as exc:
            first = first or exc
            skip_to = max(skip_to, exc.pos)
            continue
        if isinstance(value, (dict, list)):
            return value
    if first is None and not starts:
        raise SchemaError(
            f"The answer holds no JSON object: {_quote(raw)}", raw_text=raw, reason="no_json"
        )
    bad = first or error
    raise SchemaError(
        f"The answer is not valid JSON: {bad.msg} at character {bad.pos}",
        raw_text=raw,
        problems=[f"{bad.msg} at character {bad.pos}"],
        reason="invalid_json",
    )


class _End(Exception):
    """The prefix ended (or broke) inside a value."""


class _Partial:
    """One pass over a prefix of JSON text; values cut off by its end are left out, except
    strings, lists and objects, which keep what arrived of them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)
        self.checkpoint: tuple[int, dict[str, Any]] | None = None

    def space(self, pos: int) -> int:
        return _WS.match(self.text, pos).end()  # type: ignore[union-attr]

    def value(self, pos: int, depth: int) -> tuple[Any, int, bool]:
        """(value, end, complete); raises `_End` when nothing usable is there."""
        pos = self.space(pos)
        if pos >= self.n or depth > 200:
            raise _End
        ch = self.text[pos]
        if ch == "{":
            return self.object(pos + 1, depth)
        if ch == "[":
            return self.array(pos + 1, depth)
        if ch == '"':
            return self.string(pos + 1)
        for word, literal in _LITERALS:
            if self.text.startswith(word, pos):
                return literal, pos + len(word), True
        match = _NUMBER.match(self.text, pos)
        if match is None or match.end() >= self.n or self.text[match.end()] not in _AFTER:
            raise _End  # more digits may follow, or this is not a number
        number = match.group()
        parsed = float(number) if any(c in number for c in ".eE") else int(number)
        return parsed, match.end(), True

    def string(self, pos: int) -> tuple[str, int, bool]:
        try:
            value, end = scanstring(self.text, pos, False)
            return value, end, True
        except json.JSONDecodeError:
            pass
        raw = self.text[pos:]
        cut = len(raw) - len(raw.rstrip("\\"))
        if cut % 2:  # a lone backslash: its escape has not arrived yet
            raw = raw[:-1]
        escape = raw.rfind("\\u")
        if escape >= 0 and len(raw) - escape < 6 and not _escaped(raw, escape):
            raw = raw[:escape]
        try:
            value, _ = scanstring(raw + '"', 0, False)
        except json.JSONDecodeError:
            raise _End from None
        if value and "\ud800" <= value[-1] <= "\udbff":  # half of a pair: wait for the rest
            value = value[:-1]
        return value, self.n, False

    def array(self, pos: int, depth: int) -> tuple[list[Any], int, bool]:
        items: list[Any] = []
        pos = self.space(pos)
        if pos < self.n and self.text[pos] == "]":
            return items, pos + 1, True
        while True:
            try:
                item, pos, done = self.value(pos, depth + 1)
            except _End:
                return items, self.n, False
            if done or isinstance(item, (str, list, dict)):
                items.append(item)
            if not done:
                return items, self.n, False
            pos = self.space(pos)
            if pos >= self.n:
                return items, self.n, False
            if self.text[pos] == "]":
                return items, pos + 1, True
            if self.text[pos] != ",":
                return items, self.n, False
            pos += 1

    def object(
        self, pos: int, depth: int, fields: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], int, bool]:
        """The object from ``pos`` (after its brace, or after a comma of it when ``fields``
        holds the pairs before); at depth 0, ``checkpoint`` keeps where the last complete
        pair ended, so that a longer prefix can start there."""
        fields = {} if fields is None else fields
        pos = self.space(pos)
        if pos < self.n and self.text[pos] == "}":
            return fields, pos + 1, True
        while True:
            pos = self.space(pos)
            if pos >= self.n or self.text[pos] != '"':
                return fields, self.n, False
            try:
                key, pos, done = self.string(pos + 1)
            except _End:
                return fields, self.n, False
            pos = self.space(pos)
            if not done or pos >= self.n or self.text[pos] != ":":
                return fields, self.n, False
            try:
                value, pos, done = self.value(pos + 1, depth + 1)
            except _End:
                return fields, self.n, False
            if done or isinstance(value, (str, list, dict)):
                fields[key] = value
            if not done:
                return fields, self.n, False
            pos = self.space(pos)
            if pos >= self.n:
                return fields, self.n, False
            if self.text[pos] == "}":
                return fields, pos + 1, True
            if self.text[pos] != ",":
                return fields, self.n, False
            pos += 1
            if depth == 0:
                self.checkpoint = (pos, dict(fields))


def _escaped(raw: str, index: int) -> bool:
    """True when the backslash at ``index`` is itself escaped (an odd run before it)."""
    run = len(raw[:index]) - len(raw[:index].rstrip("\\"))
    return run % 2 == 1


def parse_partial(text: str) -> dict[str, Any]:
    """The fields of the JSON object that ``text`` begins (after any prose or fence opening),
    as far as it has arrived: complete values, and strings, lists and objects cut short with
    what they hold so far. Numbers and literals still arriving are left out. Never raises."""
    start = text.find("{")
    if start < 0:
        return {}
    try:
        value, _, _ = _Partial(text).object(start + 1, 0)
    except (_End, RecursionError, ValueError):
        return {}
    return value


class PartialObject:
    """`parse_partial` for an answer that arrives in pieces: ``feed(delta)`` returns the fields
    so far. Top-level fields already complete are not read again."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._text = ""
        self._start: int | None = None  # where the object's pairs begin (after its brace)
        self._done: dict[str, Any] = {}
        self._closed = False
        self.fields: dict[str, Any] = {}

    @property
    def text(self) -> str:
        """Everything fed so far."""
        if self._parts:
            self._text += "".join(self._parts)
            self._parts.clear()
        return self._text

    def feed(self, delta: str) -> dict[str, Any]:
        """Add ``delta``; the fields as far as the text has arrived (a new dict each time)."""
        self._parts.append(delta)
        if self._closed:
            return dict(self.fields)
        text = self.text
        if self._start is None:
            brace = text.find("{")
            if brace < 0:
                return {}
            self._start = brace + 1
        parser = _Partial(text)
        try:
            fields, _, closed = parser.object(self._start, 0, dict(self._done))
        except (_End, RecursionError, ValueError):
            return dict(self.fields)
        if parser.checkpoint is not None:
            self._start, self._done = parser.checkpoint
        self._closed = closed
        self.fields = fields
        return dict(fields)
