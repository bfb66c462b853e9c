"""Typed columns from structured answers: dtypes, failed rows as nulls, labels as categories."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import BaseModel

from reka_nb.batch.columns import field_values, schema_columns, schema_frame
from reka_nb.protocol.schema import make_schema

CONCISE = "caption, people int, tags list[str], outdoor bool, score float"


class Line(BaseModel):
    text: str


class Receipt(BaseModel):
    store: str
    total: float
    items: int | None
    lines: list[Line]


def test_each_type_gets_its_dtype_and_a_failed_row_is_null() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    rows = [
        {"caption": "a", "people": 2, "tags": ["x"], "outdoor": True, "score": 1},
        None,
        {"caption": "b", "people": 0, "tags": [], "outdoor": False, "score": 0.5},
    ]
    frame = schema_frame(schema, rows)
    assert list(frame.columns) == ["caption", "people", "tags", "outdoor", "score"]
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "caption": "string",
        "people": "Int64",
        "tags": "object",
        "outdoor": "boolean",
        "score": "float64",
    }
    assert frame["caption"].tolist() == ["a", pd.NA, "b"]
    assert frame["people"].tolist() == [2, pd.NA, 0]
    assert frame["tags"].tolist() == [["x"], None, []]
    assert frame["outdoor"].tolist() == [True, pd.NA, False]
    assert frame["score"].iloc[[0, 2]].tolist() == [1.0, 0.5]
    assert frame.iloc[1].isna().all()


def test_labels_are_categorical_with_exactly_those_categories() -> None:
    schema = make_schema(labels=["damaged", "intact", "unclear"])
    assert schema is not None
    columns = schema_columns(schema, [{"label": "intact"}, None, {"label": "damaged"}])
    label = columns["label"]
    assert isinstance(label.dtype, pd.CategoricalDtype)
    assert list(label.cat.categories) == ["damaged", "intact", "unclear"]
    assert label.tolist()[0] == "intact" and label.tolist()[2] == "damaged"
    assert label.isna().tolist() == [False, True, False]


def test_multi_labels_are_lists() -> None:
    schema = make_schema(labels=["cat", "dog"], multi_label=True)
    assert schema is not None
    frame = schema_frame(schema, [{"labels": ["dog"]}, None])
    assert str(frame["labels"].dtype) == "object"
    assert frame["labels"].tolist() == [["dog"], None]


def test_pydantic_rows_nested_models_become_dicts() -> None:
    schema = make_schema(Receipt)
    assert schema is not None
    rows = [Receipt(store="A", total=3, items=None, lines=[Line(text="milk")]), None]
    frame = schema_frame(schema, rows)
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == {
        "store": "string",
        "total": "float64",
        "items": "Int64",
        "lines": "object",
    }
    assert frame["lines"].tolist() == [[{"text": "milk"}], None]
    assert frame["items"].isna().all()
    assert field_values(schema, rows[0]) == {
        "store": "A",
        "total": 3.0,
        "items": None,
        "lines": [{"text": "milk"}],
    }


def test_field_values_of_a_failed_row_are_none() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    assert field_values(schema, None) == dict.fromkeys(schema.field_names)


def test_no_rows_gives_empty_typed_columns() -> None:
    schema = make_schema(CONCISE)
    assert schema is not None
    frame = schema_frame(schema, [])
    assert len(frame) == 0
    assert str(frame["people"].dtype) == "Int64"


@pytest.mark.parametrize(("kind", "dtype"), [("int", "Int64"), ("bool", "boolean")])
def test_unchecked_data_of_the_wrong_type_is_kept_as_objects(kind: str, dtype: str) -> None:
    schema = make_schema(f"v {kind}")
    assert schema is not None
    assert str(schema_frame(schema, [{"v": None}])["v"].dtype) == dtype
    column = schema_frame(schema, [{"v": "many"}])["v"]
    assert str(column.dtype) == "object"
    assert column.tolist() == ["many"]
