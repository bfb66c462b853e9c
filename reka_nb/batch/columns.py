"""One typed column per schema field, for a table of structured answers.

``field_values`` gives one row's fields as plain values (no pandas: JSON lines, CSV);
``schema_columns`` builds pandas columns for many rows at once: ``int`` -> nullable
``Int64``, ``float`` -> ``float64``, ``bool`` -> nullable ``boolean``, ``str`` -> ``string``,
a string enum (labels) -> ``category`` with exactly its categories in order, lists, objects
and anything else -> ``object``. A row without data (a failed item: None) is null in every
field. pandas is imported only by ``schema_columns``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

    from ..protocol.schema import Schema, SchemaField

__all__ = ["field_values", "schema_columns", "schema_frame"]

_DTYPES = {"int": "Int64", "float": "float64", "bool": "boolean", "str": "string"}


def _plain(value: Any) -> Any:
    """A nested pydantic model as a dict (lists of them too); anything else as it is."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _by_key(rows: Sequence[Any]) -> bool:
    """True when every row with data is a dict (read by key), False for model instances."""
    return all(row is None or isinstance(row, Mapping) for row in rows)


def _values(rows: Sequence[Any], name: str, by_key: bool, plain: bool) -> list[Any]:
    """Field ``name`` of every row (nested models as dicts when ``plain``), None for a row
    without data."""
    if by_key:
        return [None if row is None else row.get(name) for row in rows]
    values = [None if row is None else getattr(row, name, None) for row in rows]
    return [_plain(v) for v in values] if plain else values


def field_values(fields: Schema | Sequence[SchemaField], data: Any) -> dict[str, Any]:
    """One row's fields as plain JSON values (None for all of them when ``data`` is None)."""
    by_key = _by_key([data])
    return {f.name: _values([data], f.name, by_key, True)[0] for f in _fields_of(fields)}


def _fields_of(fields: Schema | Sequence[SchemaField]) -> Sequence[SchemaField]:
    return fields.fields if hasattr(fields, "fields") else fields  # type: ignore[union-attr,return-value]


def schema_columns(
    fields: Schema | Sequence[SchemaField], rows: Sequence[Any]
) -> dict[str, pandas.Series]:
    """A typed pandas Series per field, over ``rows`` of ``.data`` (dicts, pydantic model
    instances, or None for a failed row), in field order."""
    import pandas

    by_key = _by_key(rows)
    out: dict[str, pandas.Series] = {}
    index = pandas.RangeIndex(len(rows))
    for field in _fields_of(fields):
        name = field.name
        values = _values(rows, name, by_key, field.kind not in _DTYPES)
        if field.categories is not None and field.kind == "str":
            array: Any = pandas.Categorical(values, categories=list(field.categories))
        elif field.kind in _DTYPES:
            try:
                array = pandas.array(values, dtype=_DTYPES[field.kind])
            except (TypeError, ValueError):  # data that was never checked: kept as it is
                array = None
        else:
            array = None
        if array is None:
            out[name] = pandas.Series(values, index=index, name=name, dtype=object)
        else:
            out[name] = pandas.Series(array, index=index, name=name, copy=False)
    return out


def schema_frame(fields: Schema | Sequence[SchemaField], rows: Sequence[Any]) -> pandas.DataFrame:
    """`schema_columns` as a DataFrame (one column per field, one row per item)."""
    import pandas

    columns = schema_columns(fields, rows)
    return pandas.DataFrame(columns, index=pandas.RangeIndex(len(rows)))
