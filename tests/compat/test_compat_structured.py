"""Structured answers through the OpenAI-style Client and AsyncClient, against the offline
server over real sockets: the same request as describe(), the same checks and errors, the
repair turn, the refused response_format, and OpenAI's own ``json_schema`` response_format."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from reka_nb import (
    AsyncClient,
    ConfigurationError,
    InvalidRequestError,
    Reka,
    SchemaError,
    Usage,
    describe,
)
from reka_nb.client.structured import forget_refusals
from reka_nb.compat.types import ParsedChatCompletionMessage
from reka_nb.protocol.schema import make_schema
from reka_nb.testing import Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
NOTE = "No model ran: reka_nb's offline server made this answer from the schema."
CAT_NOTE = f"{NOTE} Image 1: JPEG, 451×300 px, 35,042 bytes."
KINDS = ["sync", "async"]


class Receipt(BaseModel):
    store: str
    total: float
    date: str | None = None


@pytest.fixture(autouse=True)
def _fresh_refusals() -> Iterator[None]:
    forget_refusals()
    yield
    forget_refusals()


def create(kind: str, client_kw: dict[str, Any] | None = None, **kw: Any) -> Any:
    """create() on a Client or AsyncClient configured from the environment."""
    from reka_nb import Client

    client_kw = {"backoff": 0.01, **(client_kw or {})}
    if kind == "sync":
        with Client(provider=Reka, **client_kw) as client:
            return client.chat.completions.create(**kw)

    async def main() -> Any:
        async with AsyncClient(provider=Reka, **client_kw) as client:
            return await client.chat.completions.create(**kw)

    return asyncio.run(main())


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


def bodies(server: OfflineServer) -> list[dict[str, Any]]:
    """Each chat request's body, without ``stream`` (describe() streams, create() need not)."""
    return [{k: v for k, v in r.body.items() if k != "stream"} for r in server.chat_requests()]


@pytest.mark.parametrize("kind", KINDS)
def test_a_schema_sends_what_describe_sends_and_parses_the_answer(
    kind: str, env: OfflineServer
) -> None:
    mine = describe(CAT, "Read this receipt.", schema=Receipt, show=False, stream=False)
    result = create(kind, messages=user("Read this receipt."), image=CAT, schema=Receipt)
    described, created = bodies(env)
    assert created == described
    assert created["response_format"] == make_schema(Receipt).response_format()
    message = result.choices[0].message
    assert isinstance(message, ParsedChatCompletionMessage)
    assert message.parsed == Receipt(store=CAT_NOTE, total=1.5, date="offline date")
    assert message.content == mine.text
    assert result.choices[0].finish_reason == "stop"
    assert result.model_dump()["choices"][0]["message"] == {
        "content": mine.text,
        "role": "assistant",
        "parsed": {"store": CAT_NOTE, "total": 1.5, "date": "offline date"},
    }
    assert json.loads(result.to_json())["choices"][0]["message"]["parsed"]["total"] == 1.5
    plain = create(kind, messages=user("Hi"))  # a call without a schema: as before
    assert plain.choices[0].message.model_dump() == {
        "content": plain.choices[0].message.content,
        "role": "assistant",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_labels_multi_label_concise_and_openais_json_schema(kind: str, env: OfflineServer) -> None:
    one = create(kind, messages=user("Damaged?"), labels=["damaged", "intact"])
    assert one.choices[0].message.parsed == {"label": "damaged"}
    assert one.choices[0].message.content == '{"label": "damaged"}'
    many = create(kind, messages=user("Tags?"), labels=["cat", "dog"], multi_label=True)
    assert many.choices[0].message.parsed == {"labels": ["cat"]}
    concise = create(kind, messages=user("Count."), schema="people int, outdoor bool")
    assert concise.choices[0].message.parsed == {"people": 1, "outdoor": True}
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    given = {"type": "json_schema", "json_schema": {"name": "count", "schema": schema}}
    native = create(kind, messages=user("N?"), response_format=given)
    assert native.choices[0].message.parsed == {"n": 1}
    sent = [b.get("response_format") for b in bodies(env)]
    assert sent == [
        make_schema(labels=["damaged", "intact"]).response_format(),
        make_schema(labels=["cat", "dog"], multi_label=True).response_format(),
        make_schema("people int, outdoor bool").response_format(),
        make_schema(schema).response_format(),
    ]


@pytest.mark.parametrize("kind", KINDS)
def test_a_failed_answer_is_repaired_as_describe_repairs_it(kind: str, env: OfflineServer) -> None:
    env.queue(Fault.wrong_type())
    mine = describe(CAT, "Count.", schema="caption, people int", show=False, stream=False)
    env.queue(Fault.wrong_type())
    result = create(kind, messages=user("Count."), image=CAT, schema="caption, people int")
    first, second, again, repaired = bodies(env)
    assert (again, repaired) == (first, second)
    assert repaired["messages"][:-2] == first["messages"]
    assert repaired["messages"][-2] == {
        "role": "assistant",
        "content": json.dumps({"caption": 12345, "people": 1}),
    }
    assert repaired["messages"][-1]["content"].startswith(
        "The answer does not match the schema: field 'caption' should be of type 'string'"
    )
    assert result.choices[0].message.parsed == mine.data == {"caption": CAT_NOTE, "people": 1}
    usage = result.usage
    assert Usage(usage.prompt_tokens, usage.completion_tokens) == mine.usage
    plain = create(kind, messages=user("Count."), image=CAT, schema="caption, people int")
    assert plain.usage.prompt_tokens < usage.prompt_tokens  # one attempt's tokens only


@pytest.mark.parametrize("kind", KINDS)
def test_what_still_fails_is_a_schema_error(kind: str, env: OfflineServer) -> None:
    env.queue(Fault.wrong_type(), Fault.wrong_type())
    with pytest.raises(SchemaError) as caught:
        create(kind, messages=user("Count."), schema="caption, people int")
    assert caught.value.raw_text == json.dumps({"caption": 12345, "people": 1})
    assert str(caught.value) == (
        "The answer does not match the schema: field 'caption' should be of type 'string', "
        "got 12345."
    )
    assert len(env.chat_requests()) == 2
    assert caught.value.usage is not None and caught.value.usage.output_tokens > 0
    env.queue(Fault.invalid_json())
    with pytest.raises(SchemaError, match="The answer is not valid JSON"):
        create(kind, messages=user("Count."), schema="caption", schema_retries=0)
    assert len(env.chat_requests()) == 3


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_response_format_is_asked_again_in_the_instructions_and_remembered(
    kind: str, env: OfflineServer
) -> None:
    schema = make_schema(labels=["cat", "dog"])
    ask = {"messages": user("Which?"), "labels": ["cat", "dog"], "model": "reka-edge-2603"}
    result = create(kind, **ask)
    assert result.choices[0].message.parsed == {"label": "cat"}
    refused, again = env.chat_requests()
    assert refused.status == 400 and refused.body["response_format"] == schema.response_format()
    assert again.status == 200 and "response_format" not in again.body
    assert again.body["messages"] == [
        {"role": "system", "content": schema.instructions()},
        *refused.body["messages"],
    ]
    create(kind, **ask)  # remembered for the process: not sent again
    assert len(env.chat_requests()) == 3 and "response_format" not in env.chat_requests()[-1].body
    native = create(kind, client_kw={"api": "native"}, messages=user("Which?"), labels=["a", "b"])
    assert native.choices[0].message.parsed == {"label": "a"}
    last = env.chat_requests()[-1].body
    assert "response_format" not in last
    assert last["messages"][0] == {
        "role": "system",
        "content": make_schema(labels=["a", "b"]).instructions(),
    }


@pytest.mark.parametrize("kind", KINDS)
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
def test_an_unusable_schema_is_refused_as_describe_refuses_it(
    kind: str, env: OfflineServer, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError) as described:
        describe(CAT, "?", show=False, **kw)
    with pytest.raises(ConfigurationError) as created:
        create(kind, messages=user("?"), image=CAT, **kw)
    assert type(created.value) is type(described.value)
    assert str(created.value) == str(described.value)
    assert message in str(created.value)
    assert env.requests == []


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"schema": "caption", "stream": True},
            "stream=True with a schema is not supported: a structured answer is checked (and "
            "asked again when it does not fit) whole, so call create() without stream=True",
        ),
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format of type 'json_schema' needs {'json_schema': {'name': ..., "
            "'schema': {...}}}, the JSON Schema as a dict",
        ),
        (
            {
                "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
                "labels": ["a"],
            },
            "response_format and schema= (or labels=) both ask for a structured answer: give one",
        ),
        (
            {"response_format": {"type": "json_object"}},
            "response_format={'type': 'json_object'} is not supported: structured output is not "
            "supported without a schema: pass schema= (fields, a model class or a JSON Schema), "
            "labels=, or response_format={'type': 'json_schema', 'json_schema': {'name': ..., "
            "'schema': {...}}}",
        ),
    ],
)
def test_what_create_cannot_do_with_a_schema_is_refused_before_sending(
    kind: str, env: OfflineServer, kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        create(kind, messages=user("?"), **kw)
    assert str(caught.value) == message
    assert env.requests == []
