"""instance_for: the offline server's answer for a JSON Schema is valid for it, and stable."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, Field

from reka_nb.offline._instance import instance_for

NOTE = "No model ran."


class Address(BaseModel):
    street: str
    postcode: str = Field(pattern=r"^[0-9]{5}$")


class Person(BaseModel):
    name: str
    age: int = Field(ge=18, le=120)
    email: str = Field(json_schema_extra={"format": "email"})
    home: Address
    others: list[Address] = Field(min_length=2)
    nickname: str | None = None


SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": {
        "type": "object",
        "properties": {
            "caption": {"type": "string"},
            "people": {"type": "integer"},
            "score": {"type": "number"},
            "outdoor": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["caption", "people", "score", "outdoor", "tags"],
        "additionalProperties": False,
    },
    "enums_and_const": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["damaged", "intact"]},
            "labels": {
                "type": "array",
                "items": {"enum": ["a", "b", "c"]},
                "minItems": 3,
                "uniqueItems": True,
            },
            "version": {"const": 2},
        },
        "required": ["label", "labels", "version"],
    },
    "formats": {
        "type": "object",
        "properties": {
            name: {"type": "string", "format": name}
            for name in ("date", "date-time", "time", "email", "uri", "uuid", "ipv4", "ipv6")
        },
    },
    "bounds": {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 3},
            "x": {"type": "number", "exclusiveMinimum": 5},
            "y": {"type": "number", "exclusiveMaximum": 0},
            "short": {"type": "string", "maxLength": 3},
            "long": {"type": "string", "minLength": 40},
            "code": {"type": "string", "pattern": "^[A-Z]$"},
            "many": {
                "type": "array",
                "items": {"type": "integer"},
                "minItems": 3,
                "uniqueItems": True,
            },
            "none": {"type": "array", "maxItems": 0},
        },
        "required": ["n", "x", "y", "short", "long", "code", "many", "none"],
    },
    "nested_refs_and_combinators": {
        "type": "object",
        "$defs": {
            "line": {
                "type": "object",
                "properties": {"text": {"type": "string"}, "qty": {"type": "integer"}},
                "required": ["text", "qty"],
                "additionalProperties": False,
            }
        },
        "properties": {
            "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 4}]},
            "either": {"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer"}]},
            "both": {
                "allOf": [
                    {"properties": {"a": {"type": "integer"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "boolean"}}, "required": ["b"]},
                ]
            },
            "nullable": {"type": ["null", "number"]},
        },
        "required": ["lines", "maybe", "either", "both", "nullable"],
    },
    "pydantic_with_defs": Person.model_json_schema(),
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_instance_is_valid_for_its_schema(name: str) -> None:
    schema = SCHEMAS[name]
    value = instance_for(schema, NOTE)
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert [e.message for e in validator.iter_errors(value)] == []
    assert instance_for(schema, NOTE) == value  # deterministic


def test_flat_instance_exactly() -> None:
    assert instance_for(SCHEMAS["flat"], NOTE) == {
        "caption": NOTE,
        "people": 1,
        "score": 1.5,
        "outdoor": True,
        "tags": ["offline tags"],
    }


def test_the_note_goes_in_the_first_plain_string_only() -> None:
    value = instance_for(SCHEMAS["pydantic_with_defs"], NOTE)
    assert value["name"] == NOTE
    assert value["home"]["street"] == "offline street"
    assert value["email"] == "offline@example.com"
    assert value["age"] == 18
    assert len(value["others"]) == 2
    assert value["home"]["postcode"] == "00000"


def test_enums_take_their_first_values() -> None:
    assert instance_for(SCHEMAS["enums_and_const"], NOTE) == {
        "label": "damaged",
        "labels": ["a", "b", "c"],
        "version": 2,
    }


def test_a_recursive_schema_stops_growing() -> None:
    tree = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "kids": {"type": "array", "items": {"$ref": "#"}},
        },
        "required": ["name", "kids"],
    }
    value = instance_for(tree, NOTE)
    assert Draft202012Validator(tree).is_valid(value)
    depth, node = 0, value
    while node["kids"]:
        node, depth = node["kids"][0], depth + 1
    assert 1 <= depth <= 6
