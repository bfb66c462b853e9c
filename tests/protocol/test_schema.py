"""make_schema: every accepted form to one JSON Schema, fields, fingerprint and request parts."""

from __future__ import annotations

import datetime
import enum
import json
import pickle
import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, TypedDict

import pytest
from pydantic import BaseModel

import reka_nb
from reka_nb import ConfigurationError, RekaError, SchemaError
from reka_nb.protocol.schema import INSTRUCTIONS_LEAD, Schema, SchemaField, make_schema

CONCISE = "caption, people int, tags list[str], outdoor bool"
CONCISE_SCHEMA = {
    "type": "object",
    "properties": {
        "caption": {"type": "string"},
        "people": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "outdoor": {"type": "boolean"},
    },
    "required": ["caption", "people", "tags", "outdoor"],
    "additionalProperties": False,
}
CONCISE_FIELDS = (
    SchemaField("caption", "str"),
    SchemaField("people", "int"),
    SchemaField("tags", "list[str]"),
    SchemaField("outdoor", "bool"),
)


class Receipt(BaseModel):
    store: str
    total: float
    date: str | None = None


class Item(BaseModel):
    name: str
    price: float


class Order(BaseModel):
    items: list[Item]
    paid: bool


class Node(BaseModel):
    name: str
    children: list[Node]


@dataclass
class Photo:
    caption: str
    people: int
    tags: list[str]
    outdoor: bool


class PhotoDict(TypedDict):
    caption: str
    people: int
    tags: list[str]
    outdoor: bool


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclass
class Box:
    width: float
    colour: Colour
    kind: Literal["a", "b"]
    note: Optional[str]  # noqa: UP045 - the old spelling is accepted too
    taken: datetime.date
    extra: list[int] = field(default_factory=list)


@dataclass
class Shelf:
    boxes: list[Box]


@dataclass
class Loop:
    name: str
    next: Loop | None


# -- the forms -----------------------------------------------------------------------------------


def test_concise_string() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    assert schema.json_schema == CONCISE_SCHEMA
    assert schema.fields == CONCISE_FIELDS
    assert (schema.name, schema.form, schema.model) == ("answer", "concise", None)


def test_concise_all_types_and_descriptions_on_lines() -> None:
    schema = make_schema("a\nb int: how many, roughly\nc float\nd list[int]\ne list[float]\n")
    assert schema is not None
    props = schema.json_schema["properties"]
    assert props == {
        "a": {"type": "string"},
        "b": {"type": "integer", "description": "how many, roughly"},
        "c": {"type": "number"},
        "d": {"type": "array", "items": {"type": "integer"}},
        "e": {"type": "array", "items": {"type": "number"}},
    }
    assert [f.kind for f in schema.fields] == ["str", "int", "float", "list[int]", "list[float]"]


def test_concise_spaces_inside_list_type() -> None:
    schema = make_schema("tags list[ str ]")
    assert schema is not None
    assert schema.fields == (SchemaField("tags", "list[str]"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "caption, when date",
            "schema field 'when' has an unknown type 'date': the types are str, int, float, "
            "bool, list[str], list[int], list[float] (nest with a JSON Schema dict)",
        ),
        ("a, a int", "schema field 'a' is given twice"),
        (" , ", "the schema string names no fields"),
        ("bad!name", "schema field 'bad!name' is not a usable name: use letters, digits, _ and -"),
        (
            "n integer",
            "schema field 'n' has an unknown type 'integer': the types are str, int, float, "
            "bool, list[str], list[int], list[float] (nest with a JSON Schema dict)",
        ),
    ],
)
def test_concise_errors_name_the_field(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_schema(text)
    assert str(info.value) == message


def test_pydantic_model() -> None:
    schema = make_schema(Receipt)
    assert schema is not None
    assert (schema.name, schema.form, schema.model) == ("Receipt", "pydantic", Receipt)
    assert schema.json_schema == {
        "properties": {
            "store": {"title": "Store", "type": "string"},
            "total": {"title": "Total", "type": "number"},
            "date": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "default": None,
                "title": "Date",
            },
        },
        "required": ["store", "total", "date"],
        "title": "Receipt",
        "type": "object",
        "additionalProperties": False,
    }
    assert schema.fields == (
        SchemaField("store", "str"),
        SchemaField("total", "float"),
        SchemaField("date", "str"),
    )


def test_pydantic_nested_models_are_inlined() -> None:
    schema = make_schema(Order)
    assert schema is not None
    document = schema.json_schema
    assert "$defs" not in json.dumps(document) and "$ref" not in json.dumps(document)
    items = document["properties"]["items"]["items"]
    assert items["properties"] == {
        "name": {"title": "Name", "type": "string"},
        "price": {"title": "Price", "type": "number"},
    }
    assert items["required"] == ["name", "price"]
    assert items["additionalProperties"] is False
    assert schema.fields == (SchemaField("items", "list"), SchemaField("paid", "bool"))


def test_recursive_pydantic_model_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_schema(Node)
    assert str(info.value) == (
        "field 'children' refers back to its own type (#/$defs/Node); a recursive schema "
        "cannot be asked for (give a fixed depth instead)"
    )


def test_pydantic_field_of_unsupported_type_is_named() -> None:
    from collections.abc import Callable

    from pydantic import ConfigDict

    class Bad(BaseModel):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        name: str
        hook: Callable[[], None]

    with pytest.raises(ConfigurationError) as info:
        make_schema(Bad)
    assert str(info.value).startswith("field 'hook' of Bad has a type a JSON answer cannot hold")


def test_dataclass_and_typeddict_match_the_concise_form() -> None:
    for cls, form in ((Photo, "dataclass"), (PhotoDict, "typeddict")):
        schema = make_schema(cls)
        assert schema is not None
        assert schema.form == form
        assert schema.json_schema == {"title": cls.__name__, **CONCISE_SCHEMA}
        assert schema.fields == CONCISE_FIELDS


def test_dataclass_with_enum_literal_optional_date_and_nesting() -> None:
    schema = make_schema(Shelf)
    assert schema is not None
    box = schema.json_schema["properties"]["boxes"]["items"]
    assert box == {
        "type": "object",
        "title": "Box",
        "properties": {
            "width": {"type": "number"},
            "colour": {"enum": ["red", "green"]},
            "kind": {"enum": ["a", "b"]},
            "note": {"type": ["string", "null"]},
            "taken": {"type": "string", "format": "date"},
            "extra": {"type": "array", "items": {"type": "integer"}},
        },
        "required": ["width", "colour", "kind", "note", "taken", "extra"],
        "additionalProperties": False,
    }
    flat = make_schema(Box)
    assert flat is not None
    assert [(f.name, f.kind, f.categories) for f in flat.fields] == [
        ("width", "float", None),
        ("colour", "str", ("red", "green")),
        ("kind", "str", ("a", "b")),
        ("note", "str", None),
        ("taken", "str", None),
        ("extra", "list[int]", None),
    ]


def test_recursive_dataclass_is_refused() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_schema(Loop)
    assert str(info.value) == (
        "field 'next': Loop refers to itself; a recursive schema cannot be asked for "
        "(give a fixed depth instead)"
    )


def test_dataclass_field_of_unsupported_type_is_named() -> None:
    @dataclass
    class Bad:
        name: str
        blob: bytes

    with pytest.raises(ConfigurationError) as info:
        make_schema(Bad)
    assert str(info.value) == (
        "field 'blob' has type bytes, which a JSON answer cannot hold: use str, int, float, "
        "bool, a list, a Literal, an Enum, a dataclass or a TypedDict"
    )


def test_json_schema_dict_keeps_its_order_and_inlines_refs() -> None:
    document = {
        "title": "Receipt",
        "type": "object",
        "properties": {
            "total": {"type": "number"},
            "store": {"$ref": "#/$defs/name", "description": "the shop"},
            "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
        },
        "required": ["store"],
        "$defs": {
            "name": {"type": "string"},
            "line": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
    schema = make_schema(document)
    assert schema is not None
    assert (schema.name, schema.form) == ("Receipt", "json_schema")
    assert schema.json_schema["properties"] == {
        "total": {"type": "number"},
        "store": {"type": "string", "description": "the shop"},
        "lines": {"type": "array", "items": document["$defs"]["line"]},  # type: ignore[index]
    }
    assert schema.fields == (
        SchemaField("total", "float", required=False),
        SchemaField("store", "str", required=True),
        SchemaField("lines", "list", required=False),
    )


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"type": "object", "properties": {"size": {"enum": ["s", "m", "s"]}}},
            "field 'size': the enum lists 's' twice",
        ),
        (
            {"type": "object", "properties": {"when": {"type": "date"}}},
            "field 'when': not a usable JSON Schema: 'date' is not valid under any of the given "
            "schemas",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "object", "properties": {"b": {"type": 3}}}},
            },
            "field 'a.b': not a usable JSON Schema: 3 is not valid under any of the given schemas",
        ),
        (
            {"type": "object", "properties": {"n": {"$ref": "#/$defs/n"}}, "$defs": {}},
            "field 'n': $ref '#/$defs/n' is not a definition in the schema (only local "
            "#/$defs/... references can be used)",
        ),
        (
            {
                "type": "object",
                "properties": {"tree": {"$ref": "#/$defs/t"}},
                "$defs": {"t": {"type": "object", "properties": {"kids": {"$ref": "#/$defs/t"}}}},
            },
            "field 'tree.kids' refers back to its own type (#/$defs/t); a recursive schema "
            "cannot be asked for (give a fixed depth instead)",
        ),
        (
            {"type": "array", "items": {"type": "string"}},
            "the top level of a schema must be an object with properties "
            '({"type": "object", "properties": {...}}), so that each field is a column',
        ),
        (
            {"type": "object", "properties": {}},
            "the schema has no fields (its properties are empty)",
        ),
    ],
)
def test_unusable_json_schema_dicts(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_schema(document)
    assert str(info.value) == message


# -- labels ------------------------------------------------------------------------------------


def test_labels_are_a_one_field_enum() -> None:
    schema = make_schema(labels=["damaged", "intact", "unclear"])
    assert schema is not None
    assert (schema.name, schema.form) == ("label", "labels")
    assert schema.json_schema == {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["damaged", "intact", "unclear"]}},
        "required": ["label"],
        "additionalProperties": False,
    }
    assert schema.fields == (SchemaField("label", "str", True, ("damaged", "intact", "unclear")),)
    assert schema.labels == ("damaged", "intact", "unclear")
    assert schema.check('{"label": "intact"}') == {"label": "intact"}


def test_multi_label_is_a_list_of_the_enum() -> None:
    schema = make_schema(labels=("cat", "dog"), multi_label=True)
    assert schema is not None
    assert schema.name == "labels"
    assert schema.json_schema["properties"] == {
        "labels": {"type": "array", "items": {"type": "string", "enum": ["cat", "dog"]}}
    }
    assert schema.fields == (SchemaField("labels", "list[str]", True, ("cat", "dog")),)
    assert schema.check('{"labels": ["dog", "cat"]}') == {"labels": ["dog", "cat"]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": []}, "field 'label': the list of labels is empty"),
        ({"labels": [], "multi_label": True}, "field 'labels': the list of labels is empty"),
        ({"labels": ["a", "b", "a"]}, "field 'label': the enum lists 'a' twice"),
        ({"labels": ["a", ""]}, "field 'label': every label must be a non-empty string, not ''"),
        ({"labels": ["a", 3]}, "field 'label': every label must be a non-empty string, not 3"),
        ({"labels": "a,b"}, "labels must be a list of strings, not str"),
        ({"multi_label": True}, "multi_label=True needs labels=[...]"),
        ({"schema": "a", "labels": ["x"]}, "give schema= or labels=, not both"),
        (
            {"schema": 3},
            "schema= takes a pydantic model class, a dataclass, a TypedDict, a JSON Schema dict "
            "or a string such as 'caption, people int'; not int",
        ),
        (
            {"schema": int},
            "schema class int is not a pydantic model, a dataclass or a TypedDict",
        ),
    ],
)
def test_unusable_labels_and_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_schema(**kwargs)
    assert str(info.value) == message


def test_nothing_asked_is_none() -> None:
    assert make_schema() is None
    assert make_schema(None, labels=None) is None


# -- fingerprint and request parts -----------------------------------------------------------------


def test_fingerprint_ignores_key_order_and_required_order() -> None:
    a = {
        "type": "object",
        "properties": {"x": {"type": "integer"}, "y": {"type": ["string", "null"]}},
        "required": ["x", "y"],
    }
    b = {
        "required": ["y", "x"],
        "properties": {"y": {"type": ["null", "string"]}, "x": {"type": "integer"}},
        "type": "object",
    }
    sa, sb = make_schema(a), make_schema(b)
    assert sa is not None and sb is not None
    assert sa.fingerprint == sb.fingerprint
    assert len(sa.fingerprint) == 64
    assert [f.name for f in sa.fields] == ["x", "y"]
    assert [f.name for f in sb.fields] == ["y", "x"]


def test_fingerprint_changes_with_the_schema() -> None:
    prints = {
        make_schema("a").fingerprint,  # type: ignore[union-attr]
        make_schema("a int").fingerprint,  # type: ignore[union-attr]
        make_schema("a, b").fingerprint,  # type: ignore[union-attr]
        make_schema(labels=["a", "b"]).fingerprint,  # type: ignore[union-attr]
        make_schema(labels=["b", "a"]).fingerprint,  # type: ignore[union-attr]
        make_schema(labels=["a", "b"], multi_label=True).fingerprint,  # type: ignore[union-attr]
    }
    assert len(prints) == 6


def test_fingerprint_is_the_same_in_another_process() -> None:
    import subprocess

    code = (
        "from reka_nb.protocol.schema import make_schema;"
        "print(make_schema('caption, people int, tags list[str], outdoor bool').fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == make_schema(CONCISE).fingerprint  # type: ignore[union-attr]


def test_response_format_body_part() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    assert schema.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": CONCISE_SCHEMA, "strict": True},
    }
    part = schema.response_format()
    part["json_schema"]["schema"]["properties"].clear()  # a copy: the schema is unchanged
    assert schema.json_schema == CONCISE_SCHEMA


def test_response_format_name_is_made_acceptable() -> None:
    schema = make_schema({"title": "My receipt: v2!", "type": "object", "properties": {"a": {}}})
    assert schema is not None
    assert schema.response_format()["json_schema"]["name"] == "My_receipt_v2"


def test_instructions_carry_the_schema_verbatim() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    text = schema.instructions()
    lead, _, rest = text.partition("\n")
    assert lead == INSTRUCTIONS_LEAD
    assert json.loads(rest) == CONCISE_SCHEMA
    assert rest == json.dumps(CONCISE_SCHEMA, ensure_ascii=False)


def test_same_schema_object_for_the_same_form() -> None:
    assert make_schema(CONCISE) is make_schema(CONCISE)
    assert make_schema(Receipt) is make_schema(Receipt)
    schema = make_schema(Receipt)
    assert make_schema(schema) is schema
    assert isinstance(schema, Schema)


def test_a_used_schema_pickles_for_worker_processes() -> None:
    concise = make_schema(CONCISE)
    receipt = make_schema(Receipt)
    assert concise is not None and receipt is not None
    concise.check('{"caption": "x", "people": 1, "tags": [], "outdoor": true}')
    receipt.check('{"store": "A", "total": 1}')
    for schema in (concise, receipt):
        again = pickle.loads(pickle.dumps(schema))
        assert (again.fingerprint, again.fields, again.json_schema, again.model) == (
            schema.fingerprint,
            schema.fields,
            schema.json_schema,
            schema.model,
        )
    again = pickle.loads(pickle.dumps(concise))
    with pytest.raises(SchemaError):
        again.check('{"caption": 1}')
    assert pickle.loads(pickle.dumps(receipt)).check('{"store": "A", "total": 2}') == Receipt(
        store="A", total=2
    )


def test_repr_names_the_fields() -> None:
    assert repr(make_schema(CONCISE)) == (
        "<Schema answer (concise): caption str, people int, tags list[str], outdoor bool>"
    )


# -- SchemaError -------------------------------------------------------------------------------


def test_schema_error_is_exported_and_pickles() -> None:
    assert reka_nb.SchemaError is SchemaError
    assert "SchemaError" in reka_nb.__all__
    error = SchemaError("bad", raw_text="{oops", problems=["x"], reason="invalid_json")
    assert isinstance(error, RekaError)
    again = pickle.loads(pickle.dumps(error))
    assert (str(again), again.raw_text, again.problems, again.reason) == (
        "bad",
        "{oops",
        ["x"],
        "invalid_json",
    )
    assert again._render_traceback_() == ["SchemaError: bad"]


def test_pydantic_and_validators_are_imported_only_when_used() -> None:
    import subprocess

    code = (
        "import sys, reka_nb\n"
        "assert not {'jsonschema', 'fastjsonschema', 'pydantic'} & set(sys.modules), 'import'\n"
        "from reka_nb.protocol.schema import make_schema\n"
        "s = make_schema('caption, people int')\n"
        "assert s.check('{\"caption\": \"x\", \"people\": 1}') == {'caption': 'x', 'people': 1}\n"
        "s = make_schema(labels=['a', 'b'])\n"
        "assert s.check('{\"label\": \"a\"}') == {'label': 'a'}\n"
        "print(sorted({'jsonschema', 'fastjsonschema', 'pydantic'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['fastjsonschema', 'jsonschema']"
