"""Schema forms without pydantic: llm's concise string, dataclasses, ``TypedDict`` and labels.

Each turns into a JSON Schema object in the strict shape structured-output APIs ask for:
every object lists all its properties as ``required`` (a field with a default or
``NotRequired`` too, as the openai SDK does for pydantic models; ``X | None`` may be null) and
sets ``additionalProperties`` to false. A type that cannot be asked for is a
`ConfigurationError` naming the field, as is a type that refers to itself (a JSON answer
cannot be infinitely deep).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from .._exceptions import ConfigurationError

__all__ = [
    "CONCISE_TYPES",
    "concise_schema",
    "is_typed_dict",
    "label_schema",
    "python_type_schema",
    "strict_object",
]

#: The types of llm's concise syntax (``"caption, people int, tags list[str]"``).
CONCISE_TYPES: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "bool": {"type": "boolean"},
    "list[str]": {"type": "array", "items": {"type": "string"}},
    "list[int]": {"type": "array", "items": {"type": "integer"}},
    "list[float]": {"type": "array", "items": {"type": "number"}},
}

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
_SPACE_IN_TYPE = re.compile(r"\s*([\[\]])\s*")


def strict_object(properties: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """An object schema with every property required and no others allowed."""
    out: dict[str, Any] = {"type": "object"}
    if title:
        out["title"] = title
    out["properties"] = properties
    out["required"] = list(properties)
    out["additionalProperties"] = False
    return out


def concise_schema(text: str) -> dict[str, Any]:
    """llm's concise syntax: ``"name, age int, tags list[str]: the tags"`` to a JSON Schema.

    Fields are split on newlines when there are any (so descriptions may hold commas),
    otherwise on commas. Each is ``name [type][: description]``; no type means ``str``.
    """
    lines = text.splitlines() if "\n" in text.strip() else text.split(",")
    properties: dict[str, Any] = {}
    for raw in lines:
        part = raw.strip()
        if not part:
            continue
        head, colon, description = part.partition(":")
        head = _SPACE_IN_TYPE.sub(r"\1", head.strip())
        name, _, kind = head.partition(" ")
        kind = kind.strip() or "str"
        if not _NAME.match(name):
            raise ConfigurationError(
                f"schema field {name!r} is not a usable name: use letters, digits, _ and -"
            )
        if name in properties:
            raise ConfigurationError(f"schema field {name!r} is given twice")
        if kind not in CONCISE_TYPES:
            known = ", ".join(CONCISE_TYPES)
            raise ConfigurationError(
                f"schema field {name!r} has an unknown type {kind!r}: the types are {known} "
                "(nest with a JSON Schema dict)"
            )
        prop = dict(CONCISE_TYPES[kind])
        if colon and description.strip():
            prop["description"] = description.strip()
        properties[name] = prop
    if not properties:
        raise ConfigurationError("the schema string names no fields")
    return strict_object(properties)


def label_schema(labels: Sequence[str], *, multi_label: bool = False) -> dict[str, Any]:
    """The one-field schema of ``labels=``: ``label`` (one of them) or ``labels`` (a list)."""
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise ConfigurationError(f"labels must be a list of strings, not {type(labels).__name__}")
    field = "labels" if multi_label else "label"
    if not labels:
        raise ConfigurationError(f"field {field!r}: the list of labels is empty")
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise ConfigurationError(
                f"field {field!r}: every label must be a non-empty string, not {label!r}"
            )
    _check_unique(list(labels), field)
    one = {"type": "string", "enum": list(labels)}
    prop = {"type": "array", "items": one} if multi_label else one
    return strict_object({field: prop})


def _check_unique(values: list[Any], where: str) -> None:
    seen: list[Any] = []
    for value in values:
        if any(value == s and type(value) is type(s) for s in seen):
            raise ConfigurationError(f"field {where!r}: the enum lists {value!r} twice")
        seen.append(value)


def is_typed_dict(obj: object) -> bool:
    """True for a class made with ``TypedDict`` (typing's or typing_extensions')."""
    return isinstance(obj, type) and issubclass(obj, dict) and hasattr(obj, "__required_keys__")


def python_type_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema of a dataclass or ``TypedDict`` class (nested ones too)."""
    return _Converter().object_of(cls, where=cls.__name__, stack=())


_PRIMITIVES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    datetime.date: {"type": "string", "format": "date"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.time: {"type": "string", "format": "time"},
}
_LISTS = (list, tuple, set, frozenset, Sequence, typing.List, typing.Sequence)  # noqa: UP006


class _Converter:
    """Python annotations to JSON Schema; ``stack`` holds the classes being converted."""

    def object_of(self, cls: type, *, where: str, stack: tuple[type, ...]) -> dict[str, Any]:
        if cls in stack:
            raise ConfigurationError(
                f"field {where!r}: {cls.__name__} refers to itself; a recursive schema cannot "
                "be asked for (give a fixed depth instead)"
            )
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception as exc:
            raise ConfigurationError(
                f"the types of {cls.__name__} cannot be read: {type(exc).__name__}: {exc}"
            ) from None
        if dataclasses.is_dataclass(cls):
            names = [f.name for f in dataclasses.fields(cls)]
        else:
            names = list(hints)
        properties: dict[str, Any] = {}
        for name in names:
            path = f"{where}.{name}" if stack else name
            properties[name] = self.of(hints[name], where=path, stack=(*stack, cls))
        return strict_object(properties, title=cls.__name__)

    def of(self, hint: Any, *, where: str, stack: tuple[type, ...]) -> dict[str, Any]:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin is typing.Annotated:
            return self.of(args[0], where=where, stack=stack)
        if _is_required_marker(origin):
            return self.of(args[0], where=where, stack=stack)
        if hint in _PRIMITIVES:
            return dict(_PRIMITIVES[hint])
        if origin is typing.Literal:
            _check_unique(list(args), where)
            return {"enum": list(args)}
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return {"enum": [member.value for member in hint]}
        if origin in (typing.Union, types.UnionType):
            options = [self.of(a, where=where, stack=stack) for a in args]
            rest = [o for o in options if o != {"type": "null"}]
            if len(rest) == 1 and len(options) == 2:
                return _nullable(rest[0])
            return {"anyOf": options}
        if hint in _LISTS or origin in _LISTS:
            if origin is tuple and args and args[-1] is not Ellipsis:
                raise ConfigurationError(
                    f"field {where!r}: a fixed-length tuple cannot be asked for; use list[...]"
                )
            if not args:
                return {"type": "array"}
            return {"type": "array", "items": self.of(args[0], where=where, stack=stack)}
        if origin is dict or hint is dict:
            if args and args[0] is not str:
                raise ConfigurationError(f"field {where!r}: JSON object keys are strings")
            if not args:
                return {"type": "object"}
            values = self.of(args[1], where=where, stack=stack)
            return {"type": "object", "additionalProperties": values}
        if isinstance(hint, type) and (dataclasses.is_dataclass(hint) or is_typed_dict(hint)):
            return self.object_of(hint, where=where, stack=stack)
        if isinstance(hint, type) and hasattr(hint, "model_json_schema"):
            raise ConfigurationError(
                f"field {where!r}: a pydantic model inside a dataclass or TypedDict cannot be "
                "converted here; make the outer class a pydantic model too"
            )
        name = getattr(hint, "__name__", None) or repr(hint)
        raise ConfigurationError(
            f"field {where!r} has type {name}, which a JSON answer cannot hold: use str, int, "
            "float, bool, a list, a Literal, an Enum, a dataclass or a TypedDict"
        )


def _is_required_marker(origin: Any) -> bool:
    name = getattr(origin, "_name", None) or getattr(origin, "__name__", "")
    return name in ("Required", "NotRequired", "ReadOnly")


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` that also accepts null."""
    kind = prop.get("type")
    if kind == "null":
        return prop
    if isinstance(kind, str) and set(prop) <= {"type", "format", "items"}:
        return {**prop, "type": [kind, "null"]}
    if "enum" in prop and set(prop) == {"enum"}:
        return prop if None in prop["enum"] else {"enum": [*prop["enum"], None]}
    return {"anyOf": [prop, {"type": "null"}]}
