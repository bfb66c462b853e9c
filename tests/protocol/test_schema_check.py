"""Schema.check / Schema.validate: the data of an answer, or a SchemaError a repair turn quotes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from reka_nb import SchemaError
from reka_nb.protocol.schema import make_schema
from reka_nb.protocol.schema_check import MAX_PROBLEMS, _fast

CONCISE = "caption, people int, tags list[str], outdoor bool"
GOOD = {"caption": "a beach", "people": 2, "tags": ["sea"], "outdoor": True}


class Receipt(BaseModel):
    store: str
    total: float
    date: str | None = None


@dataclass
class Photo:
    caption: str
    people: int


def _error(schema_form: Any, text: str) -> SchemaError:
    schema = make_schema(schema_form)
    assert schema is not None
    with pytest.raises(SchemaError) as info:
        schema.check(text)
    return info.value


def test_dict_data_for_every_form_but_pydantic() -> None:
    for form in (CONCISE, {"type": "object", "properties": {"caption": {"type": "string"}}}):
        schema = make_schema(form)
        assert schema is not None
        data = schema.check("```json\n" + json.dumps(GOOD) + "\n```")
        assert data == GOOD
        assert type(data) is dict
    photo = make_schema(Photo)
    assert photo is not None
    assert photo.check('{"caption": "x", "people": 1}') == {"caption": "x", "people": 1}


def test_pydantic_data_is_a_model_instance() -> None:
    schema = make_schema(Receipt)
    assert schema is not None
    data = schema.check('Here you are: {"store": "Corner shop", "total": 12.5}')
    assert data == Receipt(store="Corner shop", total=12.5, date=None)
    assert isinstance(data, Receipt)


def test_wrong_type_and_missing_field_are_named() -> None:
    text = '{"caption": "x", "people": "many", "tags": [1]}'
    error = _error(CONCISE, text)
    assert str(error) == (
        "The answer does not match the schema: 'outdoor' is a required property; field "
        "'people' should be of type 'integer', got 'many'; field 'tags[0]' should be of type "
        "'string', got 1."
    )
    assert error.problems == [
        "'outdoor' is a required property",
        "field 'people' should be of type 'integer', got 'many'",
        "field 'tags[0]' should be of type 'string', got 1",
    ]
    assert (error.raw_text, error.reason) == (text, "invalid")


def test_extra_field_and_bool_for_int_are_refused() -> None:
    error = _error(CONCISE, json.dumps({**GOOD, "people": True, "mood": "calm"}))
    assert error.problems == [
        "Additional properties are not allowed ('mood' was unexpected)",
        "field 'people' should be of type 'integer', got True",
    ]


def test_label_outside_the_list() -> None:
    schema = make_schema(labels=["damaged", "intact"])
    assert schema is not None
    with pytest.raises(SchemaError) as info:
        schema.check('{"label": "broken"}')
    error = info.value
    assert str(error) == (
        "The answer does not match the schema: field 'label' should be one of "
        "['damaged', 'intact'], got 'broken'."
    )


def test_pydantic_problems() -> None:
    error = _error(Receipt, '{"total": "twelve"}')
    assert error.problems == [
        "'store' is a required property",
        "field 'total': Input should be a valid number, unable to parse string as a number, "
        "got 'twelve'",
    ]
    assert error.raw_text == '{"total": "twelve"}'


def test_many_problems_are_counted_not_all_listed() -> None:
    schema = make_schema(", ".join(f"f{i} int" for i in range(8)))
    assert schema is not None
    with pytest.raises(SchemaError) as info:
        schema.validate({f"f{i}": "x" for i in range(8)})
    assert len(info.value.problems) == 8
    assert str(info.value).endswith(f"; and {8 - MAX_PROBLEMS} more.")


def test_integral_float_is_an_integer_as_json_schema_says() -> None:
    schema = make_schema("n int")
    assert schema is not None
    assert schema.validate({"n": 3.0}) == {"n": 3.0}


def test_formats_are_checked() -> None:
    schema = make_schema(
        {"type": "object", "properties": {"when": {"type": "string", "format": "date"}}}
    )
    assert schema is not None
    assert _fast(schema) is not None
    assert schema.validate({"when": "2024-05-01"}) == {"when": "2024-05-01"}
    with pytest.raises(SchemaError) as info:
        schema.validate({"when": "yesterday"})
    assert info.value.problems == ["field 'when' should be a date string, got 'yesterday'"]


def test_repair_prompt_quotes_the_problem() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    with pytest.raises(SchemaError) as info:
        schema.check('{"caption": "x"}')
    assert schema.repair_prompt(info.value) == (
        "The answer does not match the schema: 'people' is a required property; 'tags' is a "
        "required property; 'outdoor' is a required property. Answer again with only the "
        "corrected JSON object, valid against the JSON Schema."
    )


def test_keywords_of_newer_drafts_are_left_to_jsonschema() -> None:
    schema = make_schema(
        {
            "type": "object",
            "properties": {"pair": {"type": "array", "prefixItems": [{"type": "integer"}]}},
            "unevaluatedProperties": False,
        }
    )
    assert schema is not None
    assert _fast(schema) is None
    assert schema.validate({"pair": [1, "x"]}) == {"pair": [1, "x"]}
    with pytest.raises(SchemaError) as info:
        schema.validate({"pair": ["x"], "extra": 1})
    assert info.value.problems == [
        "Unevaluated properties are not allowed ('extra' was unexpected)",
        "field 'pair[0]' should be of type 'integer', got 'x'",
    ]


def test_no_json_reaches_the_check_as_a_schema_error() -> None:
    error = _error(CONCISE, "I can't help with that.")
    assert (error.reason, error.raw_text) == ("no_json", "I can't help with that.")


# -- the fast path agrees with jsonschema ---------------------------------------------------------

SCHEMAS = [
    make_schema(CONCISE),
    make_schema(labels=["a", "b", "c"], multi_label=True),
    make_schema(
        {
            "type": "object",
            "properties": {
                "n": {"type": ["integer", "null"], "minimum": 0, "maximum": 10},
                "s": {"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^[a-z]+$"},
                "k": {"anyOf": [{"type": "number"}, {"type": "boolean"}]},
                "o": {
                    "type": "object",
                    "properties": {"x": {"const": 1}},
                    "required": ["x"],
                    "additionalProperties": False,
                },
                "l": {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
            },
            "required": ["n", "s"],
        }
    ),
]
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.floats(-5, 20) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=8,
)
_keys = st.sampled_from(
    ["caption", "people", "tags", "outdoor", "labels", "n", "s", "k", "o", "l", "x"]
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(SCHEMAS))), st.dictionaries(_keys, _json, max_size=6))
def test_accepts_exactly_what_jsonschema_accepts(index: int, value: dict[str, Any]) -> None:
    schema = SCHEMAS[index]
    assert schema is not None
    assert _fast(schema) is not None
    expected = Draft202012Validator(schema.json_schema).is_valid(value)
    try:
        schema.validate(value)
        accepted = True
    except SchemaError as exc:
        accepted = False
        assert exc.problems
    assert accepted == expected
