"""Checking an answer against a `Schema`: the data, or a `SchemaError` a repair turn can quote.

A pydantic schema is checked by its model (the data is an instance of it). Every other form is
checked without pydantic, and the data is the dict, by two well-kept libraries:

- ``fastjsonschema`` compiles the schema to Python code once; it accepts a valid answer of a
  10-field schema in about 15 µs, where ``jsonschema`` takes about 25 times as long
  (benchmarks/bench_schema.py). It is used for schemas made only of the keywords both
  libraries read the same way (``_FAST_KEYWORDS``); string formats are then checked by its
  rules (a date such as 2024-13-40 has the right shape and passes).
- ``jsonschema``, the reference implementation (every draft, string formats), decides for any
  other schema, and for every answer fastjsonschema refused: it lists each problem, naming the
  field and the rule, for the error and the repair turn (and accepts, if it finds none). It
  also checks the schemas themselves (``schema.py``).
"""

from __future__ import annotations

from typing import Any, Protocol

from .._exceptions import SchemaError
from .json_text import extract_json


class Schema(Protocol):
    """What checking reads of a ``schema.Schema`` (named here so the two modules form no cycle)."""

    @property
    def model(self) -> Any: ...

    @property
    def _validator(self) -> list[Any]: ...

    @property
    def json_schema(self) -> dict[str, Any]: ...


__all__ = ["MAX_PROBLEMS", "check_text", "check_value"]

#: Problems listed in one error (the rest are counted).
MAX_PROBLEMS = 5
_VALUE_LIMIT = 80


def check_text(schema: Schema, text: str) -> Any:
    """The data of an answer's text (prose and code fences tolerated), or `SchemaError`."""
    return check_value(schema, extract_json(text), text)


def check_value(schema: Schema, value: Any, raw_text: str = "") -> Any:
    """The data of a parsed JSON value, or `SchemaError` listing what does not match."""
    if schema.model is not None:
        return _check_model(schema.model, value, raw_text)
    fast = _fast(schema)
    if fast is not None:
        try:
            fast(value)
            return value
        except Exception:  # JsonSchemaValueException: ask jsonschema what exactly is wrong
            pass
    validator = _validator(schema)
    errors = list(validator.iter_errors(value))
    if not errors:
        return value
    errors.sort(key=lambda e: [str(p) for p in e.absolute_path])
    problems = [_jsonschema_problem(e) for e in errors]
    raise _error(problems, raw_text)


def _validator(schema: Schema) -> Any:
    """The schema's jsonschema validator (built on first use, then kept)."""
    if not schema._validator:
        from jsonschema import Draft202012Validator

        validator = Draft202012Validator(
            schema.json_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        schema._validator.append(validator)
    return schema._validator[0]


#: Keywords fastjsonschema (draft 7) and jsonschema (2020-12) read the same way.
_FAST_KEYWORDS = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "enum", "const",
        "anyOf", "oneOf", "allOf", "not", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern", "minItems",
        "maxItems", "uniqueItems", "minProperties", "maxProperties", "title", "description",
        "default", "examples", "format",
    }
)  # fmt: skip
_NAMED = frozenset({"properties"})  # keywords whose keys are names, not keywords


def _fast_enough(node: Any) -> bool:
    if isinstance(node, list):
        return all(_fast_enough(item) for item in node)
    if not isinstance(node, dict):
        return True
    for key, value in node.items():
        if key not in _FAST_KEYWORDS:
            return False
        if key in ("enum", "const", "default", "examples"):
            continue
        if key in _NAMED and isinstance(value, dict):
            if not all(_fast_enough(sub) for sub in value.values()):
                return False
        elif key == "items" and isinstance(value, list):
            return False  # a tuple of schemas: prefixItems in 2020-12
        elif not _fast_enough(value):
            return False
    return True


def _fast(schema: Schema) -> Any:
    """The schema compiled by fastjsonschema, or None where jsonschema must decide."""
    if len(schema._validator) < 2:
        compiled = None
        document = schema.json_schema
        if _fast_enough(document):
            import fastjsonschema

            try:
                compiled = fastjsonschema.compile(document)
            except Exception:  # a schema it cannot compile: jsonschema decides alone
                compiled = None
        _validator(schema)
        schema._validator.append(compiled)
    return schema._validator[1]


def _where(path: Any) -> str:
    text = ""
    for item in path:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _VALUE_LIMIT else text[:_VALUE_LIMIT] + "…"


def _jsonschema_problem(error: Any) -> str:
    where = _where(error.absolute_path)
    if error.validator == "required" or error.validator == "additionalProperties":
        prefix = f"in {where}: " if where else ""
        return prefix + error.message
    if error.validator in ("type", "enum", "format", "const"):
        rule = {
            "type": f"should be of type {error.validator_value!r}",
            "enum": f"should be one of {error.validator_value!r}",
            "format": f"should be a {error.validator_value} string",
            "const": f"should be {error.validator_value!r}",
        }[error.validator]
        return f"field {where or 'the answer'!r} {rule}, got {_short(error.instance)}"
    message = error.message
    if len(message) > 200:
        message = message[:200] + "…"
    return f"field {where!r}: {message}" if where else message


def _check_model(model: type, value: Any, raw_text: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(value)  # type: ignore[attr-defined]
    except ValidationError as exc:
        problems = []
        for item in exc.errors(include_url=False):
            where = _where(item.get("loc", ()))
            if item.get("type") == "missing":
                problems.append(f"{where!r} is a required property")
            else:
                got = _short(item.get("input"))
                problems.append(f"field {where or 'the answer'!r}: {item['msg']}, got {got}")
        raise _error(problems, raw_text) from None


def _error(problems: list[str], raw_text: str) -> SchemaError:
    shown = problems[:MAX_PROBLEMS]
    more = len(problems) - len(shown)
    text = "; ".join(shown) + (f"; and {more} more" if more else "")
    return SchemaError(
        f"The answer does not match the schema: {text}.",
        raw_text=raw_text,
        problems=problems,
        reason="invalid",
    )
