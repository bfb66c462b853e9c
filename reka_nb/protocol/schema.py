"""One `Schema` from every accepted form: what to send, how to check the answer, the fields.

``make_schema(schema, labels=..., multi_label=...)`` takes a pydantic model class (pydantic is
imported only then), a dataclass, a ``TypedDict``, a JSON Schema dict, llm's concise string
(``"caption, people int, tags list[str], outdoor bool"``) or a list of labels, and gives one
normalised JSON Schema (local ``$ref``s inlined), the top-level fields with their types, a
fingerprint for the cache key (the order of keys does not matter), the ``response_format``
body part, the fallback instructions that carry the schema in the prompt, and the check of
an answer (`check`, in ``schema_check``). An unusable schema is a `ConfigurationError` naming
the field, raised here, before anything is sent. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._exceptions import ConfigurationError, SchemaError
from .schema_forms import concise_schema, is_typed_dict, label_schema, python_type_schema

__all__ = [
    "INSTRUCTIONS_LEAD",
    "Schema",
    "SchemaField",
    "make_schema",
]

#: The first words of the fallback instructions (the JSON Schema follows them).
INSTRUCTIONS_LEAD = (
    "Answer with one JSON object and nothing else: no prose before or after it, no code fence. "
    "The object must be valid against this JSON Schema:"
)

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


@dataclass(frozen=True)
class SchemaField:
    """One top-level field: its name, its ``kind`` (``str``, ``int``, ``float``, ``bool``,
    ``list[str]``, ``list[int]``, ``list[float]``, ``list``, ``object`` or ``any``), whether
    the schema requires it, and for a string enum (labels) its ``categories`` in order."""

    name: str
    kind: str
    required: bool = True
    categories: tuple[Any, ...] | None = None


@dataclass(frozen=True, eq=False)
class Schema:
    """A usable schema. Make it with `make_schema`; ``form`` says which form it came from
    (``pydantic``, ``dataclass``, ``typeddict``, ``json_schema``, ``concise``, ``labels``)."""

    name: str
    form: str
    fields: tuple[SchemaField, ...]
    fingerprint: str
    model: type | None = field(default=None, repr=False)
    _text: str = field(default="", repr=False)
    _validator: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def json_schema(self) -> dict[str, Any]:
        """The normalised JSON Schema (a fresh copy each time)."""
        return json.loads(self._text)  # type: ignore[no-any-return]

    @property
    def field_names(self) -> tuple[str, ...]:
        """The top-level field names, in order."""
        return tuple(f.name for f in self.fields)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """The labels of a ``labels=`` schema, None for any other form."""
        return self.fields[0].categories if self.form == "labels" else None

    def response_format(self) -> dict[str, Any]:
        """The request body's ``response_format``: strict JSON Schema output."""
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.json_schema, "strict": True},
        }

    def instructions(self) -> str:
        """Instructions that put the JSON Schema verbatim in the prompt, for a model that does
        not take ``response_format``."""
        return f"{INSTRUCTIONS_LEAD}\n{self._text}"

    def repair_prompt(self, error: SchemaError) -> str:
        """The next user turn after an answer that failed: what was wrong, and what to do."""
        said = str(error).rstrip()
        said += "" if said.endswith(".") else "."
        return (
            f"{said} Answer again with only the corrected JSON object, valid against the "
            "JSON Schema."
        )

    def check(self, text: str) -> Any:
        """The answer's data: a model instance for a pydantic schema, a dict otherwise.
        Raises `SchemaError` (``raw_text`` is ``text``) when it is not valid JSON for it."""
        from .schema_check import check_text

        return check_text(self, text)

    def validate(self, value: Any, raw_text: str = "") -> Any:
        """Check an already parsed JSON value; the data, or `SchemaError`."""
        from .schema_check import check_value

        return check_value(self, value, raw_text)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the validators (compiled code does not pickle; they are rebuilt)."""
        state = dict(vars(self))
        state["_validator"] = []
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        names = ", ".join(f"{f.name} {f.kind}" for f in self.fields)
        return f"<Schema {self.name} ({self.form}): {names}>"


def make_schema(
    schema: object = None, *, labels: Sequence[str] | None = None, multi_label: bool = False
) -> Schema | None:
    """The `Schema` of ``schema=`` or ``labels=`` (None when neither is given).

    Raises `ConfigurationError` for both at once, ``multi_label`` without labels, or a schema
    that cannot be used (unknown or unsupported type, recursion, enum duplicates, no labels).
    """
    if schema is not None and labels is not None:
        raise ConfigurationError("give schema= or labels=, not both")
    if labels is not None:
        label_schema(labels, multi_label=multi_label)  # raises for unusable labels
        return _cached("labels", tuple(labels), bool(multi_label))
    if multi_label:
        raise ConfigurationError("multi_label=True needs labels=[...]")
    if schema is None:
        return None
    if isinstance(schema, Schema):
        return schema
    if isinstance(schema, str):
        return _cached("concise", schema, False)
    if isinstance(schema, Mapping):
        try:
            text = json.dumps(schema)  # the fields keep their order; the fingerprint sorts
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"the schema dict is not JSON: {exc}") from None
        return _cached("json_schema", text, False)
    if isinstance(schema, type):
        return _cached("class", schema, False)
    raise ConfigurationError(
        "schema= takes a pydantic model class, a dataclass, a TypedDict, a JSON Schema dict or "
        f"a string such as 'caption, people int'; not {type(schema).__name__}"
    )


@functools.lru_cache(maxsize=256)
def _cached(kind: str, key: Any, multi_label: bool) -> Schema:
    model = None
    if kind == "labels":
        raw, form = label_schema(list(key), multi_label=multi_label), "labels"
        name = "labels" if multi_label else "label"
    elif kind == "concise":
        raw, form, name = concise_schema(key), "concise", "answer"
    elif kind == "json_schema":
        raw, form = json.loads(key), "json_schema"
        name = str(raw.get("title") or "answer")
    elif hasattr(key, "model_json_schema") and hasattr(key, "model_validate"):
        raw, form, name, model = _pydantic_schema(key), "pydantic", key.__name__, key
    elif isinstance(key, type) and dataclasses.is_dataclass(key):
        raw, form, name = python_type_schema(key), "dataclass", key.__name__
    elif is_typed_dict(key):
        raw, form, name = python_type_schema(key), "typeddict", key.__name__
    else:
        raise ConfigurationError(
            f"schema class {key.__name__} is not a pydantic model, a dataclass or a TypedDict"
        )
    normal = _normalise(raw, strict=form == "pydantic")
    _check_usable(normal)
    text = json.dumps(normal, ensure_ascii=False)
    return Schema(
        name=_wire_name(name),
        form=form,
        fields=_fields(normal),
        fingerprint=_fingerprint(normal, _wire_name(name)),
        model=model,
        _text=text,
    )


def _wire_name(name: str) -> str:
    """A ``json_schema.name`` structured-output APIs accept: ``[A-Za-z0-9_-]``, 1-64."""
    return _NAME_CHARS.sub("_", name).strip("_")[:64] or "answer"


def _pydantic_schema(model: type) -> dict[str, Any]:
    """The model's JSON Schema; an unsupported field type is named."""
    try:
        return model.model_json_schema()  # type: ignore[attr-defined,no-any-return]
    except Exception as exc:
        fields = getattr(model, "model_fields", {})
        from pydantic import TypeAdapter

        for name, info in fields.items():
            try:
                TypeAdapter(info.annotation).json_schema()
            except Exception:
                raise ConfigurationError(
                    f"field {name!r} of {model.__name__} has a type a JSON answer cannot hold "
                    f"({type(exc).__name__})"
                ) from None
        raise ConfigurationError(
            f"{model.__name__} cannot give a JSON Schema: {type(exc).__name__}: {exc}"
        ) from None


def _normalise(schema: dict[str, Any], *, strict: bool) -> dict[str, Any]:
    """Local ``$ref``s inlined (a cycle is a `ConfigurationError`); with ``strict``, every
    object requires all its properties and allows no others, as the openai SDK sends them."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        for name, value in (schema.get(key) or {}).items():
            defs[f"#/{key}/{name}"] = value
    out = _inline(schema, defs, (), "", strict)
    out.pop("$defs", None)
    out.pop("definitions", None)
    return out  # type: ignore[no-any-return]


def _inline(
    node: Any, defs: dict[str, Any], stack: tuple[str, ...], where: str, strict: bool
) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs, stack, where, strict) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref == "#" or ref in stack:
            what = where or "the top level"
            raise ConfigurationError(
                f"field {what!r} refers back to its own type ({ref}); a recursive schema cannot "
                "be asked for (give a fixed depth instead)"
            )
        if ref not in defs:
            raise ConfigurationError(
                f"field {where or 'the top level'!r}: $ref {ref!r} is not a definition in the "
                "schema (only local #/$defs/... references can be used)"
            )
        target = _inline(defs[ref], defs, (*stack, ref), where, strict)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **_inline(rest, defs, stack, where, strict)}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("$defs", "definitions"):
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                name: _inline(sub, defs, stack, f"{where}.{name}" if where else name, strict)
                for name, sub in value.items()
            }
        else:
            out[key] = _inline(value, defs, stack, where, strict)
    if strict and isinstance(out.get("properties"), dict):
        out["required"] = list(out["properties"])
        out.setdefault("additionalProperties", False)
    return out


def _check_usable(schema: dict[str, Any]) -> None:
    """A valid JSON Schema, an object with properties at the top, enums without repeats."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError as InvalidSchema

    try:
        Draft202012Validator.check_schema(schema)
    except InvalidSchema as exc:
        where = _field_of(list(exc.path))
        raise ConfigurationError(
            f"field {where!r}: not a usable JSON Schema: {exc.message}"
        ) from None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ConfigurationError(
            "the top level of a schema must be an object with properties "
            '({"type": "object", "properties": {...}}), so that each field is a column'
        )
    if not schema["properties"]:
        raise ConfigurationError("the schema has no fields (its properties are empty)")
    _check_enums(schema, "")


def _field_of(path: list[Any]) -> str:
    names = [str(path[i + 1]) for i, p in enumerate(path[:-1]) if p == "properties"]
    return ".".join(names) or "the top level"


def _check_enums(node: Any, where: str) -> None:
    if isinstance(node, list):
        for item in node:
            _check_enums(item, where)
        return
    if not isinstance(node, dict):
        return
    enum = node.get("enum")
    if isinstance(enum, list):
        seen: set[str] = set()
        for value in enum:
            key = json.dumps(value, sort_keys=True)
            if key in seen:
                raise ConfigurationError(
                    f"field {where or 'the top level'!r}: the enum lists {value!r} twice"
                )
            seen.add(key)
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            for name, sub in value.items():
                _check_enums(sub, f"{where}.{name}" if where else name)
        elif key != "enum":
            _check_enums(value, where)


def _fields(schema: dict[str, Any]) -> tuple[SchemaField, ...]:
    required = set(schema.get("required") or ())
    out = []
    for name, prop in schema["properties"].items():
        kind, categories = _kind(prop)
        out.append(SchemaField(name, kind, name in required, categories))
    return tuple(out)


def _non_null(prop: Any) -> Any:
    """``prop`` without the null it may also accept (``X | None``)."""
    if not isinstance(prop, dict):
        return {}
    kind = prop.get("type")
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        return {**prop, "type": rest[0]} if len(rest) == 1 else prop
    for key in ("anyOf", "oneOf"):
        options = prop.get(key)
        if isinstance(options, list):
            rest = [o for o in options if o != {"type": "null"}]
            if len(rest) == 1 and len(options) == 2:
                return _non_null(rest[0])
    return prop


def _kind(prop: Any) -> tuple[str, tuple[Any, ...] | None]:
    """(kind, categories) of one property."""
    prop = _non_null(prop)
    kind = prop.get("type")
    enum = prop.get("enum")
    if isinstance(enum, list):
        values = [v for v in enum if v is not None]
        if values and all(isinstance(v, str) for v in values):
            return "str", tuple(values)
        if kind is None:
            return "any", None
    if kind in _SCALARS:
        return _SCALARS[kind], None
    if kind == "array":
        item, categories = _kind(prop.get("items") or {})
        if item in ("str", "int", "float"):
            return f"list[{item}]", categories
        return "list", None
    if kind == "object":
        return "object", None
    return "any", None


def _canonical(node: Any) -> Any:
    """``node`` with the lists whose order means nothing (``required``, ``type``) sorted."""
    if isinstance(node, list):
        return [_canonical(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("required", "type") and isinstance(value, list):
            out[key] = sorted(str(v) for v in value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _canonical(sub) for name, sub in value.items()}
        else:
            out[key] = _canonical(value)
    return out


def _fingerprint(schema: dict[str, Any], name: str) -> str:
    """SHA-256 of the name and the canonical schema: key order does not change it."""
    text = json.dumps([name, _canonical(schema)], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
