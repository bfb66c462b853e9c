"""The offline server's structured answers, over real sockets: response_format, a schema in the
instructions, the model that refuses response_format, and the faults for repair tests."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from PIL import Image
from pydantic import BaseModel

from reka_nb import SchemaError
from reka_nb.offline import Fault, OfflineServer
from reka_nb.offline._structured import NOTE, REFUSAL
from reka_nb.protocol.json_text import parse_partial
from reka_nb.protocol.schema import make_schema

CONCISE = "caption, people int, tags list[str], outdoor bool"
SCHEMA = make_schema(CONCISE)
assert SCHEMA is not None


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 3), (0, 90, 200)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


PNG = _png()
PNG_BYTES = len(base64.b64decode(PNG.split(",", 1)[1]))
NOTE_WITH_IMAGE = f"{NOTE} Image 1: PNG, 4×3 px, {PNG_BYTES} bytes."
EXPECTED = {"caption": NOTE_WITH_IMAGE, "people": 1, "tags": ["offline tags"], "outdoor": True}


def body(model: str = "reka-flash", *, native: bool = False, **extra: Any) -> dict[str, Any]:
    image: Any = PNG if native else {"url": PNG}
    content = [{"type": "image_url", "image_url": image}, {"type": "text", "text": "Describe."}]
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def asked(model: str = "reka-flash", **extra: Any) -> dict[str, Any]:
    return body(model, response_format=SCHEMA.response_format(), **extra)


def content(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


@pytest.fixture
def client(server: OfflineServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as c:
        yield c
    server.check_errors()


# -- response_format ---------------------------------------------------------------------------


def test_response_format_gets_a_valid_instance(client: httpx.Client) -> None:
    text = content(client.post("/chat/completions", json=asked()))
    assert json.loads(text) == EXPECTED
    assert text == json.dumps(EXPECTED, ensure_ascii=False)
    assert SCHEMA.check(text) == EXPECTED


def test_response_format_streamed_fills_in_field_by_field(client: httpx.Client) -> None:
    with client.stream("POST", "/chat/completions", json=asked(stream=True)) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    text, shown = "", []
    for event in events[:-1]:
        text += json.loads(event)["choices"][0]["delta"].get("content", "")
        shown.append(parse_partial(text))
    assert json.loads(text) == EXPECTED
    keys_seen = [tuple(fields) for fields in shown]
    assert ("caption",) in keys_seen and ("caption", "people") in keys_seen
    assert ("caption", "people", "tags") in keys_seen
    assert shown[-1] == EXPECTED
    captions = [f["caption"] for f in shown if "caption" in f]
    assert captions[0] != captions[-1] and all(NOTE_WITH_IMAGE.startswith(c) for c in captions)


def test_native_endpoint_answers_the_same_json(client: httpx.Client) -> None:
    native_body = body(native=True, response_format=SCHEMA.response_format())
    response = client.post("/chat", json=native_body)
    text = response.json()["responses"][0]["message"]["content"]
    assert json.loads(text) == EXPECTED


def test_pydantic_schema_sent_as_the_openai_sdk_sends_it(server: OfflineServer) -> None:
    class Receipt(BaseModel):
        store: str
        total: float
        date: str | None = None

    sdk = openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0)
    try:
        completion = sdk.chat.completions.parse(
            model="reka-flash",
            messages=[{"role": "user", "content": "Read this receipt."}],
            response_format=Receipt,
        )
    finally:
        sdk.close()
    parsed = completion.choices[0].message.parsed
    assert parsed == Receipt(store=NOTE, total=1.5, date="offline date")
    sent = server.chat_requests()[-1].body["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == "Receipt"
    server.check_errors()


def test_text_and_json_object_formats(client: httpx.Client) -> None:
    plain = content(client.post("/chat/completions", json=body(response_format={"type": "text"})))
    assert plain.startswith("This is reka_nb's offline server: no model ran")
    json_object = body(response_format={"type": "json_object"})
    assert json.loads(content(client.post("/chat/completions", json=json_object))) == {
        "answer": NOTE_WITH_IMAGE
    }


def test_every_request_gets_the_same_instance(client: httpx.Client) -> None:
    first = content(client.post("/chat/completions", json=asked()))
    assert content(client.post("/chat/completions", json=asked())) == first


def test_nested_schema_with_enums_and_formats(client: httpx.Client) -> None:
    schema = {
        "type": "object",
        "properties": {
            "store": {"type": "string"},
            "when": {"type": "string", "format": "date"},
            "kind": {"type": "string", "enum": ["food", "fuel"]},
            "lines": {
                "type": "array",
                "minItems": 2,
                "items": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}, "qty": {"type": "integer"}},
                    "required": ["text", "qty"],
                    "additionalProperties": False,
                },
            },
        },
        "required": ["store", "when", "kind", "lines"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}}
    value = json.loads(content(client.post("/chat/completions", json=body(response_format=fmt))))
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    assert list(validator.iter_errors(value)) == []
    assert value == {
        "store": NOTE_WITH_IMAGE,
        "when": "2024-05-01",
        "kind": "food",
        "lines": [{"text": "offline text", "qty": 1}, {"text": "offline text", "qty": 1}],
    }


@pytest.mark.parametrize(
    ("response_format", "message", "param"),
    [
        (
            "json",
            "Invalid 'response_format': Input should be a valid dictionary",
            "response_format",
        ),
        (
            {"type": "xml"},
            "Invalid 'response_format.type': Input should be 'text', 'json_object', 'json_schema'",
            "response_format.type",
        ),
        (
            {"type": "json_schema"},
            "Missing required parameter: 'response_format.json_schema'",
            "response_format.json_schema",
        ),
        (
            {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
            "Missing required parameter: 'response_format.json_schema.name'",
            "response_format.json_schema.name",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "x", "schema": "{}"}},
            "Invalid 'response_format.json_schema.schema': Input should be a JSON Schema object",
            "response_format.json_schema.schema",
        ),
    ],
)
def test_bad_response_format_is_400(
    client: httpx.Client, server: OfflineServer, response_format: Any, message: str, param: str
) -> None:
    response = client.post("/chat/completions", json=body(response_format=response_format))
    assert response.status_code == 400
    assert response.json() == {
        "error": {"type": "validation_error", "message": message, "param": param, "details": None}
    }
    assert server.chat_requests()[-1].status == 400


# -- the model that does not take response_format ----------------------------------------------


def test_model_without_response_format_in_its_metadata(client: httpx.Client) -> None:
    entries = {m["id"]: m for m in client.get("/models").json()["data"]}
    assert "response_format" not in entries["reka-edge-2603"]["supported_parameters"]
    for model in ("reka-core", "reka-flash", "reka-edge", "reka-flash-3"):
        assert "response_format" in entries[model]["supported_parameters"]
    response = client.post("/chat/completions", json=asked("reka-edge-2603"))
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "validation_error",
            "message": "Model 'reka-edge-2603' does not support 'response_format'",
            "param": "response_format",
            "details": None,
        }
    }


def test_the_schema_in_the_instructions_is_honoured_instead(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": SCHEMA.instructions()},
        *body("reka-edge-2603")["messages"],
    ]
    request = {"model": "reka-edge-2603", "messages": messages}
    assert SCHEMA.check(content(client.post("/chat/completions", json=request))) == EXPECTED


def test_the_schema_in_the_user_text_and_a_repair_turn(client: httpx.Client) -> None:
    first = body("reka-edge-2603")
    first["messages"][0]["content"][1]["text"] = "Describe. " + SCHEMA.instructions()
    repair = {
        "model": "reka-edge-2603",
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": '{"caption": "x"}'},
            {"role": "user", "content": "The answer does not match the schema. Answer again."},
        ],
    }
    assert SCHEMA.check(content(client.post("/chat/completions", json=first))) == EXPECTED
    assert SCHEMA.check(content(client.post("/chat/completions", json=repair))) == EXPECTED


def test_without_model_metadata_any_model_takes_response_format() -> None:
    with OfflineServer(model_metadata=False) as server:
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as c:
            assert json.loads(content(c.post("/chat/completions", json=asked("reka-edge-2603"))))
        server.check_errors()


# -- faults ---------------------------------------------------------------------------------------


def test_invalid_json_once_then_a_good_answer(client: httpx.Client, server: OfflineServer) -> None:
    server.queue(Fault.invalid_json())
    broken = content(client.post("/chat/completions", json=asked()))
    assert broken == json.dumps(EXPECTED, ensure_ascii=False)[:-1] + ","
    with pytest.raises(SchemaError) as info:
        SCHEMA.check(broken)
    assert (info.value.reason, info.value.raw_text) == ("invalid_json", broken)
    assert SCHEMA.check(content(client.post("/chat/completions", json=asked()))) == EXPECTED
    assert [r.fault for r in server.chat_requests()] == ["invalid_json", None]


def test_missing_field(client: httpx.Client, server: OfflineServer) -> None:
    server.queue(Fault.missing_field())
    text = content(client.post("/chat/completions", json=asked()))
    assert json.loads(text) == {k: v for k, v in EXPECTED.items() if k != "caption"}
    with pytest.raises(SchemaError) as info:
        SCHEMA.check(text)
    assert info.value.problems == ["'caption' is a required property"]


def test_wrong_type(client: httpx.Client, server: OfflineServer) -> None:
    server.queue(Fault.wrong_type())
    text = content(client.post("/chat/completions", json=asked()))
    assert json.loads(text) == {**EXPECTED, "caption": 12345}
    with pytest.raises(SchemaError) as info:
        SCHEMA.check(text)
    assert info.value.problems == ["field 'caption' should be of type 'string', got 12345"]


def test_refusal(client: httpx.Client, server: OfflineServer) -> None:
    server.queue(Fault.refusal())
    with client.stream("POST", "/chat/completions", json=asked(stream=True)) as response:
        text = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content", "")
            for line in response.iter_lines()
            if line.startswith("data: ") and line != "data: [DONE]"
        )
    assert text == REFUSAL
    with pytest.raises(SchemaError) as info:
        SCHEMA.check(text)
    assert info.value.reason == "no_json"


def test_structured_faults_leave_plain_answers_alone(
    client: httpx.Client, server: OfflineServer
) -> None:
    server.queue(Fault.refusal())
    text = content(client.post("/chat/completions", json=body()))
    assert text.startswith("This is reka_nb's offline server: no model ran")
    assert server.chat_requests()[-1].fault == "refusal"


def test_a_scripted_reply_wins_over_the_instance(
    client: httpx.Client, server: OfflineServer
) -> None:
    server.reply = 'Sure! ```json\n{"caption": "c", "people": 2, "tags": [], "outdoor": false}\n```'
    text = content(client.post("/chat/completions", json=asked()))
    assert SCHEMA.check(text) == {"caption": "c", "people": 2, "tags": [], "outdoor": False}


def test_fault_reprs() -> None:
    assert [repr(f) for f in (Fault.invalid_json(), Fault.missing_field())] == [
        "Fault.invalid_json()",
        "Fault.missing_field()",
    ]
    assert [repr(f) for f in (Fault.wrong_type(), Fault.refusal())] == [
        "Fault.wrong_type()",
        "Fault.refusal()",
    ]
