"""Structured answers through describe() and adescribe(), against the offline server over real
sockets: how the schema is asked, the repair turn, the refused response_format, the cache."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import reka_nb
from reka_nb import ConfigurationError, RekaClient, SchemaError, Usage, adescribe, describe
from reka_nb.client.structured import forget_refusals
from reka_nb.protocol.schema import INSTRUCTIONS_LEAD, make_schema
from reka_nb.testing import Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
NOTE = "No model ran: reka_nb's offline server made this answer from the schema."
CAT_NOTE = f"{NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes."


class Receipt(BaseModel):
    store: str
    total: float
    date: str | None = None


@pytest.fixture(autouse=True)
def _fresh_refusals() -> Iterator[None]:
    forget_refusals()
    yield
    forget_refusals()


def chat(server: OfflineServer) -> list[Any]:
    return server.chat_requests()


def test_pydantic_schema_gives_an_instance_and_sends_response_format(env: OfflineServer) -> None:
    r = describe(CAT, "Read this receipt.", schema=Receipt, show=False)
    assert r.data == Receipt(store=CAT_NOTE, total=1.5, date="offline date")
    assert json.loads(r.text) == {"store": CAT_NOTE, "total": 1.5, "date": "offline date"}
    [request] = chat(env)
    assert request.body["response_format"] == make_schema(Receipt).response_format()
    assert request.body["response_format"]["json_schema"]["name"] == "Receipt"
    assert request.body["response_format"]["json_schema"]["strict"] is True
    assert request.body["messages"][-1]["content"][-1] == {
        "type": "text",
        "text": "Read this receipt.",
    }


def test_concise_and_dict_schemas_give_dicts_and_adescribe_does_the_same(
    env: OfflineServer,
) -> None:
    r = describe(CAT, "Count.", schema="caption, people int, outdoor bool", show=False)
    assert r.data == {"caption": CAT_NOTE, "people": 1, "outdoor": True}
    schema = {
        "type": "object",
        "properties": {"colour": {"type": "string", "enum": ["red", "grey"]}},
        "required": ["colour"],
    }
    a = asyncio.run(adescribe(CAT, "Colour?", schema=schema, show=False))
    assert a.data == {"colour": "red"}
    s = describe(CAT, "Colour?", schema=schema, stream=False, show=False)
    assert s.data == a.data and s.text == a.text


def test_labels_and_multi_label(env: OfflineServer) -> None:
    one = describe(CAT, "Damaged?", labels=["damaged", "intact", "unclear"], show=False)
    assert one.data == {"label": "damaged"}
    many = describe(CAT, "Tags?", labels=["cat", "dog"], multi_label=True, show=False)
    assert many.data == {"labels": ["cat"]}
    assert chat(env)[-1].body["response_format"]["json_schema"]["name"] == "labels"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"schema": "caption, people integer"}, "integer"),
        ({"labels": []}, "label"),
        ({"labels": ["a", "a"]}, "'a'"),
        ({"schema": "x", "labels": ["a"]}, "give schema= or labels=, not both"),
        ({"multi_label": True}, "multi_label=True needs labels=[...]"),
        ({"schema": "x", "schema_retries": -1}, "schema_retries must be 0 or more, not -1"),
    ],
)
def test_an_unusable_schema_is_refused_before_anything_is_sent(
    env: OfflineServer, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        describe(CAT, "?", show=False, **kw)
    assert env.requests == []


def replayed_usage(server: OfflineServer, body: dict[str, Any], fault: Fault | None) -> Usage:
    """The usage the server gives for ``body`` (with ``fault`` spoiling it, as it did)."""
    if fault is not None:
        server.queue(fault)
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        params = {"response_format": body["response_format"]} if "response_format" in body else {}
        return client.complete(body["messages"], model=body["model"], **params).usage


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("fault", "problem"),
    [
        (Fault.invalid_json(), "The answer is not valid JSON: "),
        (Fault.missing_field(), "The answer does not match the schema: "),
        (Fault.wrong_type(), "The answer does not match the schema: field 'caption' should be"),
        (Fault.refusal(), "The answer holds no JSON object: "),
    ],
)
def test_a_failed_answer_is_repaired_in_the_same_conversation(
    env: OfflineServer, fault: Fault, problem: str, stream: bool
) -> None:
    env.queue(fault)
    r = describe(CAT, "Count.", schema="caption, people int", stream=stream, show=False)
    assert r.data == {"caption": CAT_NOTE, "people": 1}
    first, second = chat(env)
    assert first.fault is not None and second.fault is None
    sent = second.body["messages"]
    assert sent[:-2] == first.body["messages"]
    assert sent[-2]["role"] == "assistant"
    assert sent[-1]["role"] == "user" and sent[-1]["content"].startswith(problem)
    assert sent[-1]["content"].endswith(
        ". Answer again with only the corrected JSON object, valid against the JSON Schema."
    )
    assert second.body["response_format"] == first.body["response_format"]
    one = replayed_usage(env, first.body, fault)
    two = replayed_usage(env, second.body, None)
    assert sent[-2]["content"] == describe_text_of(env, first.body, fault)
    assert r.usage == Usage(
        one.input_tokens + two.input_tokens, one.output_tokens + two.output_tokens
    )


def describe_text_of(server: OfflineServer, body: dict[str, Any], fault: Fault) -> str:
    server.queue(fault)
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        return client.complete(
            body["messages"], model=body["model"], response_format=body["response_format"]
        ).text


def test_what_still_fails_is_a_schema_error_with_the_raw_text_and_is_not_cached(
    env: OfflineServer,
) -> None:
    env.queue(Fault.wrong_type(), Fault.wrong_type())
    with pytest.raises(SchemaError) as caught:
        describe(CAT, "Count.", schema="caption, people int", show=False, cache=True)
    assert caught.value.raw_text == json.dumps({"caption": 12345, "people": 1})
    assert str(caught.value) == (
        "The answer does not match the schema: field 'caption' should be of type 'string', "
        "got 12345."
    )
    assert isinstance(caught.value, reka_nb.RekaError)
    assert len(chat(env)) == 2
    r = describe(CAT, "Count.", schema="caption, people int", show=False, cache=True)
    assert not r.cached and r.data == {"caption": CAT_NOTE, "people": 1}
    assert len(chat(env)) == 3  # nothing was stored for the failure


def test_no_repair_with_schema_retries_zero(env: OfflineServer) -> None:
    env.queue(Fault.invalid_json())
    with pytest.raises(SchemaError, match="The answer is not valid JSON"):
        describe(CAT, "Count.", schema="caption", schema_retries=0, show=False)
    assert len(chat(env)) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_a_refused_response_format_is_asked_again_in_the_instructions_and_remembered(
    env: OfflineServer, stream: bool
) -> None:
    schema = make_schema(labels=["cat", "dog"])
    ask = {"labels": ["cat", "dog"], "model": "reka-edge-2603", "stream": stream, "show": False}
    # a client of its own: no model list kept from earlier questions says what edge takes
    client = RekaClient(base_url=env.base_url, api_key=env.api_key, model_info=False)
    r = client.describe(CAT, "Which?", **ask)
    assert r.data == {"label": "cat"}
    refused, again = chat(env)
    assert refused.status == 400 and refused.body["response_format"] == schema.response_format()
    assert again.status == 200 and "response_format" not in again.body
    assert again.body["messages"][0] == {"role": "system", "content": schema.instructions()}
    assert schema.instructions().startswith(INSTRUCTIONS_LEAD + "\n{")
    assert again.body["messages"][1:] == refused.body["messages"]
    with RekaClient(base_url=env.base_url, api_key=env.api_key) as another:
        another.describe(CAT, "Which?", **ask)
    assert len(chat(env)) == 3 and "response_format" not in chat(env)[-1].body
    client.describe(CAT, "Which?", labels=["cat", "dog"], model="reka-flash", show=False)
    assert chat(env)[-1].body["response_format"] == schema.response_format()  # another model
    client.close()


def test_a_system_prompt_keeps_its_text_before_the_instructions(env: OfflineServer) -> None:
    schema = make_schema("caption")
    describe(CAT, "?", schema="caption", model="reka-edge-2603", system="Be brief.", show=False)
    sent = chat(env)[-1].body["messages"][0]
    assert sent == {"role": "system", "content": "Be brief.\n\n" + schema.instructions()}


def test_metadata_that_lists_no_response_format_sends_none(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REKA_NB_MODEL_INFO", "on")
    r = describe(CAT, "?", schema="caption", model="reka-edge-2603", show=False)
    assert r.data == {"caption": CAT_NOTE}
    [request] = chat(env)
    assert request.status == 200 and "response_format" not in request.body


def test_another_400_is_not_taken_for_a_refusal(env: OfflineServer) -> None:
    env.queue(Fault.status(400, "Invalid 'temperature'"))
    with pytest.raises(reka_nb.APIError, match="Invalid 'temperature'"):
        describe(CAT, "?", schema="caption", show=False)
    assert len(chat(env)) == 1


def test_the_schema_is_part_of_the_cache_key_in_any_key_order(env: OfflineServer) -> None:
    a = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    b = {"required": ["n"], "properties": {"n": {"type": "integer"}}, "type": "object"}
    first = describe(CAT, "N?", schema=a, show=False, cache=True)
    hit = describe(CAT, "N?", schema=b, show=False, cache=True)
    assert hit.cached and hit.data == first.data == {"n": 1}
    other = describe(CAT, "N?", schema="n float", show=False, cache=True)
    plain = describe(CAT, "N?", show=False, cache=True)
    assert not other.cached and not plain.cached and other.data == {"n": 1.5}
    assert plain.data is None and len(chat(env)) == 3


def test_a_repaired_answer_streams_to_stdout_on_a_line_of_its_own(
    env: OfflineServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.queue(Fault.invalid_json())
    r = describe(CAT, "Count.", schema="caption, people int")
    broken = chat(env)[1].body["messages"][-2]["content"]
    assert capsys.readouterr().out == f"{broken}\n{r.text}\n"


def test_a_structured_answer_reads_as_its_fields_in_every_repr(env: OfflineServer) -> None:
    """Shown again (Markdown, IPython's plain text) or printed with repr, a structured answer
    is its fields, not the JSON text; pickled and back, it still is."""
    import pickle

    from IPython.lib.pretty import pretty

    r = describe(CAT, "Read this receipt.", schema=Receipt, show=False)
    store = CAT_NOTE.replace("_", "\\_")
    assert r._repr_markdown_() == (
        "| field | value |\n|:--|:--|\n"
        f"| **store** | {store} |\n| **total** | 1.5 |\n| **date** | offline date |"
    )
    assert pretty(r) == f"store  {CAT_NOTE}\ntotal  1.5\ndate   offline date"
    data = repr(r.data)
    assert repr(r) == (
        f"Description(data={data[:77]}..., model='reka-flash', finish_reason='stop', "
        f"request_id={r.request_id!r})"
    )
    back = pickle.loads(pickle.dumps(r))
    assert back._repr_markdown_() == r._repr_markdown_() and pretty(back) == pretty(r)
    short = describe(CAT, "Which?", labels=["cat", "dog"], show=False)
    assert repr(short).startswith("Description(data={'label': 'cat'}, model='reka-flash', ")
    assert pretty(short) == "label  cat"
    plain = describe(CAT, "Hi", show=False)  # an answer without a schema: its text, as before
    assert plain._repr_markdown_() == plain.text == pretty(plain)
