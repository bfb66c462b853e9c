"""extract_json (prose, fences, refusals) and parse_partial (a growing prefix of an answer)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reka_nb import SchemaError
from reka_nb.protocol.json_text import PartialObject, extract_json, parse_partial

OBJECT = {"store": "Corner shop", "total": 12.5, "items": ["milk", "bread"], "paid": True}
TEXT = json.dumps(OBJECT)


@pytest.mark.parametrize(
    "answer",
    [
        TEXT,
        f"  {TEXT}\n",
        f"```json\n{TEXT}\n```",
        f"```\n{TEXT}\n```",
        f"Here is the receipt:\n```json\n{TEXT}\n```\nAnything else?",
        f"Sure! The answer is {TEXT}",
        f"Sure! The answer is {TEXT} - I hope that helps [really].",
        f"Notes [draft] and {{braces}} first, then {TEXT}",
        f"```json\n{TEXT}",  # a fence that never closes
        f'{{"store": "Corner shop" "total": 1}} Sorry, corrected: {TEXT}',
    ],
)
def test_json_found_around_prose_and_fences(answer: str) -> None:
    assert extract_json(answer) == OBJECT


def test_raw_newlines_inside_strings_are_accepted() -> None:
    assert extract_json('{"caption": "two\nlines"}') == {"caption": "two\nlines"}


@pytest.mark.parametrize(
    ("answer", "reason", "message"),
    [
        ("", "empty", "The answer was empty: no JSON came back"),
        ("  \n ", "empty", "The answer was empty: no JSON came back"),
        (
            "I'm sorry, but I can't help with that request.",
            "no_json",
            "The answer holds no JSON object: \"I'm sorry, but I can't help with that request.\"",
        ),
        (
            '{"store": "Corner shop", "total": 12.5,',
            "invalid_json",
            "The answer is not valid JSON: Expecting property name enclosed in double quotes at "
            "character 39",
        ),
        (
            '{"store": "Corner shop", "items": ["milk", {"n": 1}], "total": 12.5,',
            "invalid_json",
            "The answer is not valid JSON: Expecting property name enclosed in double quotes at "
            "character 68",
        ),
        (
            'Here: {"store": "Corner shop" "total": 1}',
            "invalid_json",
            "The answer is not valid JSON: Expecting ',' delimiter at character 30",
        ),
    ],
)
def test_no_json_is_a_schema_error_keeping_the_text(answer: str, reason: str, message: str) -> None:
    with pytest.raises(SchemaError) as info:
        extract_json(answer)
    assert info.value.reason == reason
    assert str(info.value) == message
    assert info.value.raw_text == answer


def test_long_refusal_is_quoted_short() -> None:
    answer = "No. " * 200
    with pytest.raises(SchemaError) as info:
        extract_json(answer)
    assert (
        str(info.value) == f"The answer holds no JSON object: {('No. ' * 50)[:200]!r}"[:-1] + "…'"
    )
    assert info.value.raw_text == answer


# -- partial ------------------------------------------------------------------------------------


def test_partial_fields_fill_in_as_the_text_grows() -> None:
    text = (
        '```json\n{"caption": "a cat \\u00e9 \\"q\\"", "people": 3, "tags": ["x", "y"], "ok": true}'
    )
    seen = [parse_partial(text[:n]) for n in range(len(text) + 1)]
    assert seen[0] == {}
    assert seen[len('```json\n{"caption": "a c')] == {"caption": "a c"}
    assert seen[len('```json\n{"caption": "a cat \\u00')] == {"caption": "a cat "}
    assert seen[len('```json\n{"caption": "a cat \\u00e9 \\')] == {"caption": "a cat é "}
    assert seen[len('```json\n{"caption": "a cat \\u00e9 \\"q\\"", "people": 3')] == {
        "caption": 'a cat é "q"'
    }
    assert seen[len('```json\n{"caption": "a cat \\u00e9 \\"q\\"", "people": 3,')] == {
        "caption": 'a cat é "q"',
        "people": 3,
    }
    assert seen[len('```json\n{"caption": "a cat \\u00e9 \\"q\\"", "people": 3, "tags": ["x"')][
        "tags"
    ] == ["x"]
    assert seen[-2] == {"caption": 'a cat é "q"', "people": 3, "tags": ["x", "y"], "ok": True}
    assert seen[-1] == seen[-2]


def test_partial_leaves_out_numbers_and_literals_still_arriving() -> None:
    assert parse_partial('{"a": 12') == {}
    assert parse_partial('{"a": 12.5e') == {}
    assert parse_partial('{"a": tr') == {}
    assert parse_partial('{"a": true') == {"a": True}
    assert parse_partial('{"a": null,') == {"a": None}
    assert parse_partial('{"a": [1, 2') == {"a": [1]}
    assert parse_partial('{"a": {"b": {"c": "d') == {"a": {"b": {"c": "d"}}}
    assert parse_partial('{"a": "x", "b') == {"a": "x"}
    assert parse_partial('{"a": "x", "b":') == {"a": "x"}


def test_partial_waits_for_both_halves_of_a_surrogate_pair() -> None:
    assert parse_partial('{"e": "ok \\ud83d') == {"e": "ok "}
    assert parse_partial('{"e": "ok \\ud83d\\ude00') == {"e": "ok 😀"}


def test_partial_of_prose_or_garbage_is_empty_or_what_came_before() -> None:
    assert parse_partial("I'm sorry, I can't") == {}
    assert parse_partial('{"a": 1, oops "b": 2}') == {"a": 1}
    assert parse_partial("{" * 5000) == {}


# -- the property ---------------------------------------------------------------------------------

_leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_values = st.recursive(
    _leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _consistent(partial: Any, final: Any) -> bool:
    """``partial`` is what a prefix of ``final``'s text may show: the same, or a start of it."""
    if isinstance(final, dict):
        return isinstance(partial, dict) and all(
            k in final and _consistent(v, final[k]) for k, v in partial.items()
        )
    if isinstance(final, list):
        return (
            isinstance(partial, list)
            and len(partial) <= len(final)
            and all(_consistent(p, f) for p, f in zip(partial, final, strict=False))
        )
    if isinstance(final, str):
        return isinstance(partial, str) and final.startswith(partial)
    return partial == final or (partial != partial and final != final)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(), _values, max_size=5), st.booleans(), st.booleans())
def test_every_prefix_parses_into_a_subset_of_the_final_fields(
    value: dict[str, Any], ascii_only: bool, indent: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, indent=2 if indent else None)
    for n in range(len(text) + 1):
        partial = parse_partial(text[:n])
        assert set(partial) <= set(value)
        assert _consistent(partial, value), (text[:n], partial)
    assert parse_partial(text) == value


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(st.text(max_size=5), _values, max_size=6),
    st.lists(st.integers(1, 7), min_size=1, max_size=400),
    st.sampled_from(["", "Here you are:\n```json\n"]),
)
def test_fed_in_pieces_it_shows_what_parse_partial_shows(
    value: dict[str, Any], steps: list[int], lead: str
) -> None:
    text = lead + json.dumps(value)
    partial, at, i = PartialObject(), 0, 0
    while at < len(text):
        step = steps[i % len(steps)]
        i += 1
        shown = partial.feed(text[at : at + step])
        at += step
        assert shown == parse_partial(text[:at])
    assert partial.fields == value
    assert partial.text == text
    assert partial.feed(" trailing prose") == value


def test_pieces_after_the_object_closed_change_nothing() -> None:
    partial = PartialObject()
    assert partial.feed("Sure: ") == {}
    assert partial.feed('{"a": "x", "b": 1') == {"a": "x"}
    assert partial.feed("2}") == {"a": "x", "b": 12}
    assert partial.feed(' {"c": 3}') == {"a": "x", "b": 12}
