"""A deterministic instance of a JSON Schema: what the offline server answers when asked for one.

Types, ``enum`` and ``const``, required and optional properties, arrays (``minItems``,
``maxItems``, ``uniqueItems``), nesting, local ``$ref``s, ``anyOf``/``oneOf``/``allOf``,
number bounds and ``multipleOf``, string lengths, patterns (from a few candidates) and the
common string formats are honoured. The first plain string field carries ``note``, which says
that no model ran. A schema that refers to itself stops growing after a few levels. An
``enum`` gives its first value, or the one ``choose`` picks from its values when given one
(see ``_choices``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

try:  # Python 3.11+
    from re import _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_parse

__all__ = ["FORMATS", "instance_for"]

#: The value given for each string ``format``.
FORMATS = {
    "date": "2024-05-01",
    "date-time": "2024-05-01T12:00:00Z",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "offline@example.com",
    "idn-email": "offline@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/offline",
    "iri": "https://example.com/offline",
    "uri-reference": "https://example.com/offline",
    "iri-reference": "https://example.com/offline",
    "url": "https://example.com/offline",
    "uri-template": "https://example.com/{id}",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "json-pointer": "/offline",
    "relative-json-pointer": "0",
    "regex": "^offline$",
}
_MAX_DEPTH = 6


Chooser = Callable[[Sequence[Any]], Any]


def instance_for(schema: Any, note: str, choose: Chooser | None = None) -> Any:
    """A value valid for ``schema``; its first plain string field is ``note``; each ``enum``
    gives ``choose(values)`` (its first value without ``choose``)."""
    return _Maker(schema, note, choose).make(schema, "value", 0)


class _Maker:
    def __init__(self, root: Any, note: str, choose: Chooser | None = None) -> None:
        self.root = root
        self.note: str | None = note
        self.choose = choose

    def pick(self, values: list[Any]) -> Any:
        return values[0] if self.choose is None else self.choose(values)

    def resolve(self, node: Any, depth: int) -> Any:
        while isinstance(node, dict) and isinstance(node.get("$ref"), str) and depth < 64:
            target: Any = self.root
            for part in node["$ref"].lstrip("#").strip("/").split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            depth += 1
        return node

    def make(self, node: Any, name: str, depth: int) -> Any:
        node = self.resolve(node, depth)
        if node is True or not isinstance(node, dict):
            return self.string({}, name)
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return self.pick(node["enum"])
        for key in ("anyOf", "oneOf"):
            options = node.get(key)
            if isinstance(options, list) and options:
                chosen = next((o for o in options if not _is_null(self.resolve(o, 0))), options[0])
                rest = {k: v for k, v in node.items() if k != key}
                return self.make({**rest, **self.resolve(chosen, 0)}, name, depth)
        if isinstance(node.get("allOf"), list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                merged = _merge(merged, self.resolve(part, 0))
            return self.make(merged, name, depth)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in node else "array" if "items" in node else "string"
        if kind == "object":
            return self.object(node, depth)
        if kind == "array":
            return self.array(node, name, depth)
        if kind == "integer":
            return int(self.number(node, 1, integer=True))
        if kind == "number":
            return self.number(node, 1.5, integer=False)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(node, name)

    def object(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = node.get("properties") or {}
        required = [r for r in node.get("required") or () if isinstance(r, str)]
        names = list(properties) if depth < _MAX_DEPTH else []
        names += [r for r in required if r not in names]
        return {n: self.make(properties.get(n, {}), n, depth + 1) for n in names}

    def array(self, node: dict[str, Any], name: str, depth: int) -> list[Any]:
        low = int(node.get("minItems") or 0)
        high = node.get("maxItems")
        count = max(low, 1 if depth < _MAX_DEPTH else 0)
        if isinstance(high, int):
            count = min(count, high)
        prefix = node.get("prefixItems") or []
        items = node.get("items", {})
        if isinstance(items, list):  # draft 7's tuple form
            prefix, items = items, node.get("additionalItems", {})
        out = [self.make(p, name, depth + 1) for p in prefix[:count]]
        item = self.resolve(items if isinstance(items, dict) else {}, 0)
        choices = item.get("enum") if isinstance(item.get("enum"), list) else None
        first = choices.index(self.pick(choices)) if choices else 0
        while len(out) < count:
            index = len(out)
            if choices and node.get("uniqueItems"):
                out.append(choices[(first + index) % len(choices)])
            else:
                value = self.make(item, name, depth + 1)
                if node.get("uniqueItems") and index:
                    value = _vary(value, index)
                out.append(value)
        return out

    def number(self, node: dict[str, Any], start: float, *, integer: bool) -> float:
        low, high = node.get("minimum"), node.get("maximum")
        xlow, xhigh = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        step = 1 if integer else 0.5
        value: float = start
        if isinstance(low, (int, float)) and value < low:
            value = math.ceil(low) if integer else low
        if isinstance(xlow, (int, float)) and value <= xlow:
            value = math.floor(xlow) + 1 if integer else xlow + step
        if isinstance(high, (int, float)) and value > high:
            value = math.floor(high) if integer else high
        if isinstance(xhigh, (int, float)) and value >= xhigh:
            floor = low if isinstance(low, (int, float)) else xlow
            if integer:
                value = math.ceil(xhigh) - 1
            elif isinstance(floor, (int, float)):
                value = (xhigh + floor) / 2
            else:
                value = xhigh - step
        multiple = node.get("multipleOf")
        if isinstance(multiple, (int, float)) and multiple > 0:
            value = math.ceil(value / multiple) * multiple
            if isinstance(high, (int, float)) and value > high:
                value -= multiple
            if integer:
                value = round(value)
        return value

    def string(self, node: dict[str, Any], name: str) -> str:
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in FORMATS:
            return FORMATS[fmt]
        candidates = [f"offline {name}", "offline", "a", "A", "0", "a0", ""]
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            example = _example(pattern)
            if example is not None:
                candidates.insert(0, example)
        note = self.note
        if note is not None:
            candidates.insert(0, note)
        low = int(node.get("minLength") or 0)
        high = node.get("maxLength")
        for index, text in enumerate(candidates):
            if isinstance(high, int):
                text = text[:high]
            text = text + "x" * max(0, low - len(text))
            if isinstance(pattern, str):
                try:
                    if re.search(pattern, text) is None:
                        continue
                except re.error:
                    pass
            if note is not None and index == 0:
                self.note = None  # the note goes in once, in the first string that takes it
            return text
        return "x" * low


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null"


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {**a, **b}
    if "properties" in a or "properties" in b:
        out["properties"] = {**(a.get("properties") or {}), **(b.get("properties") or {})}
    if "required" in a or "required" in b:
        out["required"] = [*(a.get("required") or []), *(b.get("required") or [])]
    return out


def _vary(value: Any, index: int) -> Any:
    """A different value of the same type, for ``uniqueItems``."""
    if isinstance(value, bool):
        return value if index == 0 else not value
    if isinstance(value, (int, float)):
        return value + index
    if isinstance(value, str):
        return f"{value} {index + 1}"
    return value


_CATEGORY_CHAR = {"DIGIT": "0", "WORD": "a", "SPACE": " ", "NOT_DIGIT": "a", "NOT_WORD": "-"}


def _example(pattern: str) -> str | None:
    """A short string the regular expression matches (simple patterns), or None."""
    try:
        parsed = sre_parse.parse(pattern)
        return _emit(list(parsed))
    except Exception:  # an unusual pattern: the fixed candidates are tried instead
        return None


def _emit(items: list[Any]) -> str:
    out = []
    for op, arg in items:
        name = getattr(op, "name", str(op))
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_one_of(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            out.append(_emit(list(sub)) * max(low, 0))
        elif name == "SUBPATTERN":
            out.append(_emit(list(arg[-1])))
        elif name == "BRANCH":
            out.append(_emit(list(arg[1][0])))
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        else:
            raise ValueError(name)
    return "".join(out)


def _one_of(items: list[Any]) -> str:
    op, arg = items[0]
    name = getattr(op, "name", str(op))
    if name == "NEGATE":
        return "~"
    if name == "LITERAL":
        return chr(arg)
    if name == "RANGE":
        return chr(arg[0])
    if name == "CATEGORY":
        return _CATEGORY_CHAR.get(getattr(arg, "name", str(arg)).removeprefix("CATEGORY_"), "a")
    raise ValueError(name)
