"""The offline server, judged over real sockets by httpx, the openai package and reka-api."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import http.client
import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from PIL import Image
from reka import ChatMessage, TypedMediaContent, TypedText
from reka.client import Reka
from reka.core.api_error import ApiError
from reka.errors.unprocessable_entity_error import UnprocessableEntityError

from reka_nb.offline import _handler as handler_module
from reka_nb.testing import DEFAULT_MODELS, TEST_API_KEY, Fault, OfflineServer, RecordedRequest

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "docs" / "images" / "cat.jpeg"
CAT_URL = "data:image/jpeg;base64," + base64.b64encode(CAT.read_bytes()).decode()
PROMPT = "What can you see in the image?"
INTRO_IMAGES = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)
INTRO_TEXT = "This is reka_nb's offline server: no model ran, so nothing here is a real answer."
WRONG_KEY = "sk-wrong-key-that-must-never-come-back-7f3a"


def cat_answer(model: str = "reka-flash") -> str:
    return (
        f"{INTRO_IMAGES} Model: {model}. Image 1: JPEG, 451×300 px, 35,042 bytes. Prompt: {PROMPT}"
    )


CAT_WORDS = len(cat_answer().split())
CAT_PROMPT_TOKENS = len(PROMPT.split()) + 64


def png_url(width: int = 3, height: int = 2) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def cat_body(native: bool = False, **extra: Any) -> dict[str, Any]:
    image: Any = CAT_URL if native else {"url": CAT_URL}
    content = [{"type": "image_url", "image_url": image}, {"type": "text", "text": PROMPT}]
    return {"model": "reka-flash", "messages": [{"role": "user", "content": content}], **extra}


def text_body(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "reka-core", "messages": [{"role": "user", "content": text}], **extra}


def path_for(native: bool) -> str:
    return "/chat" if native else "/chat/completions"


@pytest.fixture
def client(server: OfflineServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {server.api_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=10) as c:
        yield c


def read_events(response: httpx.Response) -> list[str]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[httpx.Response, list]:
    with client.stream("POST", path, json={**body, "stream": True}) as response:
        return response, read_events(response)


def openai_text(events: list[str]) -> str:
    return "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])


def words_of(events: list[str], native: bool) -> str:
    """The text carried by the (JSON) events of either endpoint, as a client reassembles it."""
    parsed = [json.loads(e) for e in events if e != "[DONE]"]
    if native:
        return parsed[-1]["responses"][0]["chunk"]["content"] if parsed else ""
    return "".join(p["choices"][0]["delta"].get("content", "") for p in parsed)


# -- the answer and the two wire shapes ------------------------------------------------------


def test_cat_fixture_is_what_the_answer_says() -> None:
    with Image.open(CAT) as image:
        assert (image.format, image.size) == ("JPEG", (451, 300))
    assert CAT.stat().st_size == 35_042


def test_openai_non_streaming_shape(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=cat_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"].startswith("req_")
    body = response.json()
    assert set(body) == {"id", "object", "created", "model", "choices", "usage"}
    assert body["object"] == "chat.completion" and body["model"] == "reka-flash"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": cat_answer()},
            "finish_reason": "stop",
        }
    ]
    total = CAT_PROMPT_TOKENS + CAT_WORDS
    assert body["usage"] == {
        "prompt_tokens": CAT_PROMPT_TOKENS,
        "completion_tokens": CAT_WORDS,
        "total_tokens": total,
    }


def test_openai_stream_shape(client: httpx.Client) -> None:
    response, events = stream(client, "/chat/completions", cat_body())
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["transfer-encoding"] == "chunked"
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert all(
        c["object"] == "chat.completion.chunk" and c["model"] == "reka-flash" for c in chunks
    )
    first, *middle, last = (c["choices"][0] for c in chunks)
    assert first == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "finish_reason": None,
    }
    deltas = [c["delta"]["content"] for c in middle]
    assert "".join(deltas) == cat_answer()
    assert deltas[:3] == ["This ", "is ", "reka_nb's "]
    assert len(deltas) == CAT_WORDS
    assert all(c["finish_reason"] is None for c in middle)
    assert last == {"index": 0, "delta": {}, "finish_reason": "stop"}
    assert chunks[-1]["usage"] == {
        "prompt_tokens": CAT_PROMPT_TOKENS,
        "completion_tokens": CAT_WORDS,
        "total_tokens": CAT_PROMPT_TOKENS + CAT_WORDS,
    }
    assert "usage" not in chunks[0]


def test_native_non_streaming_shape(client: httpx.Client) -> None:
    body = client.post("/chat", json=cat_body(native=True)).json()
    assert set(body) == {"id", "model", "responses", "usage"}
    assert body["model"] == "reka-flash"
    assert body["responses"] == [
        {"finish_reason": "stop", "message": {"role": "assistant", "content": cat_answer()}}
    ]
    assert body["usage"] == {"input_tokens": CAT_PROMPT_TOKENS, "output_tokens": CAT_WORDS}


def test_native_stream_sends_growing_snapshots_and_no_done(client: httpx.Client) -> None:
    response, events = stream(client, "/chat", cat_body(native=True))
    assert response.headers["content-type"] == "text/event-stream"
    parsed = [json.loads(e) for e in events]
    assert len(parsed) == CAT_WORDS
    texts = [p["responses"][0]["chunk"]["content"] for p in parsed]
    assert texts[0] == "This " and texts[1] == "This is " and texts[-1] == cat_answer()
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    assert all(p["responses"][0]["chunk"]["role"] == "assistant" for p in parsed)
    assert [p["responses"][0]["finish_reason"] for p in parsed] == [None] * (CAT_WORDS - 1) + [
        "stop"
    ]
    assert [p["usage"]["output_tokens"] for p in parsed] == list(range(1, CAT_WORDS + 1))
    assert {p["usage"]["input_tokens"] for p in parsed} == {CAT_PROMPT_TOKENS}
    assert len({p["id"] for p in parsed}) == 1


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize("streamed", [False, True])
def test_max_tokens_stops_with_length(client: httpx.Client, native: bool, streamed: bool) -> None:
    body = cat_body(native, max_tokens=3)
    expected = "This is reka_nb's "
    if streamed:
        _, events = stream(client, path_for(native), body)
        if native:
            last = json.loads(events[-1])
            assert len(events) == 3
            assert last["responses"][0]["chunk"]["content"] == expected
            assert last["responses"][0]["finish_reason"] == "length"
            assert last["usage"]["output_tokens"] == 3
        else:
            assert openai_text(events) == expected
            final = json.loads(events[-2])
            assert final["choices"][0]["finish_reason"] == "length"
            assert final["usage"]["completion_tokens"] == 3
    else:
        reply = client.post(path_for(native), json=body).json()
        if native:
            assert reply["responses"][0]["message"]["content"] == expected
            assert reply["responses"][0]["finish_reason"] == "length"
        else:
            assert reply["choices"][0]["message"]["content"] == expected
            assert reply["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("native", [False, True])
def test_stop_cuts_before_the_first_match(client: httpx.Client, native: bool) -> None:
    expected = INTRO_IMAGES + " "
    reply = client.post(path_for(native), json=cat_body(native, stop=["Image", "Model:"])).json()
    choice = reply["responses"][0] if native else reply["choices"][0]
    assert choice["message"]["content"] == expected
    assert choice["finish_reason"] == "stop"
    _, events = stream(client, path_for(native), cat_body(native, stop="server:"))
    if native:
        assert (
            json.loads(events[-1])["responses"][0]["chunk"]["content"]
            == "This is reka_nb's offline "
        )
    else:
        assert openai_text(events) == "This is reka_nb's offline "


def test_answer_reports_system_history_and_every_image(client: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png_url(3, 2)}}]},
        {"role": "assistant", "content": "A red square."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": "https://example.com/cat.jpg"},
                {"type": "text", "text": "And this"},
                {"type": "text", "text": "one?"},
            ],
        },
    ]
    reply = client.post("/chat/completions", json={"model": "reka-edge", "messages": messages})
    png_size = len(base64.b64decode(png_url(3, 2).split(",")[1]))
    assert reply.json()["choices"][0]["message"]["content"] == (
        f"{INTRO_IMAGES} Model: reka-edge. System: Be brief. Earlier messages: 2. "
        f"Image 1: PNG, 3×2 px, {png_size} bytes. "
        "Image 2: a URL, not fetched offline: https://example.com/cat.jpg Prompt: And this one?"
    )
    assert reply.json()["usage"]["prompt_tokens"] == 2 + 3 + 2 + 1 + 2 * 64


def test_text_only_answer_is_deterministic(client: httpx.Client) -> None:
    first = client.post("/chat", json=text_body("Hi  there")).json()
    second = client.post("/chat", json=text_body("Hi  there")).json()
    expected = f"{INTRO_TEXT} Model: reka-core. Prompt: Hi  there"
    assert first["responses"][0]["message"]["content"] == expected
    assert second["responses"][0]["message"]["content"] == expected
    assert first["id"] != second["id"]


def test_reply_replaces_the_text_and_keeps_whitespace(
    server: OfflineServer, client: httpx.Client
) -> None:
    server.reply = "  cat cat\n\ncat "
    _, events = stream(client, "/chat/completions", text_body())
    deltas = [json.loads(e)["choices"][0]["delta"]["content"] for e in events[1:-2]]
    assert deltas == ["  cat ", "cat\n\n", "cat "]
    reply = client.post("/chat", json=text_body(max_tokens=2)).json()
    assert reply["responses"][0]["message"]["content"] == "  cat cat\n\n"


# -- auth, routing and validation -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/chat/completions", "/chat", "/models"])
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": f"Bearer {WRONG_KEY}"}, {"X-Api-Key": WRONG_KEY}]
)
def test_missing_or_wrong_key_is_401(server: OfflineServer, path: str, headers: dict) -> None:
    with httpx.Client(base_url=server.base_url, headers=headers) as c:
        response = c.get(path) if path == "/models" else c.post(path, json=cat_body())
    assert response.status_code == 401
    assert response.headers["x-request-id"].startswith("req_")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "type": "authentication_error",
            "message": "Missing or invalid API key",
            "param": None,
            "details": None,
        }
    }
    assert WRONG_KEY not in response.text and WRONG_KEY not in str(response.headers)
    (record,) = server.requests
    assert record.auth_ok is False and record.status == 401
    assert record.body == (None if path == "/models" else cat_body())


@pytest.mark.parametrize("path", ["/chat/completions", "/chat", "/models"])
@pytest.mark.parametrize("style", ["bearer", "x-api-key"])
def test_both_key_headers_work_everywhere(server: OfflineServer, path: str, style: str) -> None:
    key = server.api_key
    headers = {"Authorization": f"Bearer {key}"} if style == "bearer" else {"X-Api-Key": key}
    with httpx.Client(base_url=server.base_url, headers=headers) as c:
        response = c.get(path) if path == "/models" else c.post(path, json=text_body())
    assert response.status_code == 200
    assert server.requests[0].auth_ok is True


def test_models_list(client: httpx.Client) -> None:
    body = client.get("/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == list(DEFAULT_MODELS)
    assert body["data"][0] == {
        "id": "reka-core",
        "object": "model",
        "created": 1714521600,
        "owned_by": "reka",
        "name": "Reka Core",
        "input_modalities": ["text", "image", "video", "audio"],
        "output_modalities": ["text"],
        "context_length": 128000,
        "max_output_length": 8192,
        "supported_sampling_parameters": ["max_tokens", "temperature", "top_p", "stop", "seed"],
        "supported_parameters": [
            "model",
            "messages",
            "stream",
            "max_tokens",
            "temperature",
            "top_p",
            "stop",
            "seed",
            "response_format",
        ],
        "pricing": {"prompt": "0.00001", "completion": "0.000025"},
    }


@pytest.mark.parametrize("native", [False, True])
def test_unknown_model_is_404(client: httpx.Client, native: bool) -> None:
    response = client.post(path_for(native), json={**cat_body(native), "model": "reka-foo"})
    assert response.status_code == 404
    assert response.json()["error"] == {
        "type": "not_found_error",
        "message": "Model 'reka-foo' not found",
        "param": "model",
        "details": None,
    }


def test_unknown_path_and_wrong_method(client: httpx.Client) -> None:
    missing = client.post("/completions", json={})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "Not found: /v1/completions"
    assert missing.headers["x-request-id"].startswith("req_")
    wrong = client.get("/chat/completions")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "POST"
    assert wrong.headers["x-request-id"].startswith("req_")
    assert wrong.json()["error"]["type"] == "method_not_allowed"
    assert client.post("/models").status_code == 405


def _message(**fields: Any) -> dict[str, Any]:
    return {"model": "reka-flash", "messages": [{"role": "user", **fields}]}


def _part(part: Any) -> dict[str, Any]:
    return _message(content=[part])


OPENAI_INVALID = [
    (
        {"messages": [{"role": "user", "content": "x"}]},
        "model",
        "Missing required parameter: 'model'",
    ),
    ({"model": "reka-flash"}, "messages", "Missing required parameter: 'messages'"),
    ({"model": 5, "messages": []}, "model", "Invalid 'model': Input should be a valid string"),
    (
        {"model": "reka-flash", "messages": []},
        "messages",
        "Invalid 'messages': List should have at least 1 item after validation, not 0",
    ),
    (
        {"model": "reka-flash", "messages": "hi"},
        "messages",
        "Invalid 'messages': Input should be a valid list",
    ),
    (
        {"model": "reka-flash", "messages": [{"role": "robot", "content": "x"}]},
        "messages[0].role",
        "Invalid 'messages[0].role': Input should be 'user', 'assistant' or 'system'",
    ),
    (
        _message(content=5),
        "messages[0].content",
        "Invalid 'messages[0].content': Input should be a string or a list of content parts",
    ),
    (
        _part({"type": "audio", "audio": "x"}),
        "messages[0].content[0].type",
        "Invalid 'messages[0].content[0].type': Input should be 'text', 'image_url' or 'video_url'",
    ),
    (
        _part({"type": "text", "text": 5}),
        "messages[0].content[0].text",
        "Invalid 'messages[0].content[0].text': Input should be a valid string",
    ),
    (
        _part({"type": "image_url", "image_url": {}}),
        "messages[0].content[0].image_url.url",
        "Missing required parameter: 'messages[0].content[0].image_url.url'",
    ),
    (
        {**text_body(), "stream": "yes"},
        "stream",
        "Invalid 'stream': Input should be a valid boolean",
    ),
    (
        {**text_body(), "max_tokens": 0},
        "max_tokens",
        "Invalid 'max_tokens': Input should be greater than 0",
    ),
    (
        {**text_body(), "max_tokens": "5"},
        "max_tokens",
        "Invalid 'max_tokens': Input should be a valid integer",
    ),
    (
        {**text_body(), "temperature": 2.5},
        "temperature",
        "Invalid 'temperature': Input should be less than or equal to 2",
    ),
    (
        {**text_body(), "temperature": -0.1},
        "temperature",
        "Invalid 'temperature': Input should be greater than or equal to 0",
    ),
    ({**text_body(), "top_p": 0}, "top_p", "Invalid 'top_p': Input should be greater than 0"),
    (
        {**text_body(), "top_p": 1.5},
        "top_p",
        "Invalid 'top_p': Input should be less than or equal to 1",
    ),
    ({**text_body(), "seed": 1.5}, "seed", "Invalid 'seed': Input should be a valid integer"),
    (
        {**text_body(), "stop": [1]},
        "stop",
        "Invalid 'stop': Input should be a string or a list of strings",
    ),
]


@pytest.mark.parametrize(("body", "param", "message"), OPENAI_INVALID)
def test_openai_validation_errors(
    client: httpx.Client, body: dict, param: str, message: str
) -> None:
    response = client.post("/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"type": "validation_error", "message": message, "param": param, "details": None}
    }


def test_openai_rejects_non_json_and_non_objects(
    server: OfflineServer, client: httpx.Client
) -> None:
    for content, message in [
        (b"{not json", "The request body is not valid JSON"),
        (b"", "The request body is empty: send a JSON object"),
        (b"[1, 2]", "The request body must be a JSON object"),
    ]:
        response = client.post("/chat/completions", content=content)
        assert response.status_code == 400
        assert response.json()["error"]["message"] == message
    assert [r.body for r in server.requests] == [None, None, [1, 2]]


def test_chunked_request_bodies_are_read(client: httpx.Client) -> None:
    parts = [b'{"model": "reka-core", ', b'"messages": [{"role": "user", "content": "hi"}]}']
    response = client.post("/chat", content=iter(parts))
    assert response.status_code == 200
    assert response.json()["responses"][0]["message"]["content"].endswith("Prompt: hi")


NATIVE_INVALID = [
    (
        {"messages": [{"role": "user", "content": "x"}]},
        ["body", "model"],
        "Field required",
        "missing",
    ),
    (
        {"model": "reka-flash", "messages": []},
        ["body", "messages"],
        "List should have at least 1 item after validation, not 0",
        "too_short",
    ),
    (
        {**text_body(), "max_tokens": -1},
        ["body", "max_tokens"],
        "Input should be greater than 0",
        "greater_than",
    ),
    (
        {**text_body(), "top_k": "x"},
        ["body", "top_k"],
        "Input should be a valid integer",
        "int_type",
    ),
    (
        {**text_body(), "use_search_engine": "y"},
        ["body", "use_search_engine"],
        "Input should be a valid boolean",
        "bool_type",
    ),
    (
        {"model": "reka-flash", "messages": [{"content": "x"}]},
        ["body", "messages", 0, "role"],
        "Field required",
        "missing",
    ),
    (
        [1],
        ["body"],
        "Input should be a valid dictionary or object to extract fields from",
        "model_attributes_type",
    ),
]


@pytest.mark.parametrize(("body", "loc", "msg", "kind"), NATIVE_INVALID)
def test_native_shape_errors_are_fastapi_422(
    client: httpx.Client, body: Any, loc: list, msg: str, kind: str
) -> None:
    response = client.post("/chat", json=body)
    assert response.status_code == 422
    assert response.headers["x-request-id"].startswith("req_")
    assert response.json() == {"detail": [{"loc": loc, "msg": msg, "type": kind}]}


def test_native_422_lists_every_problem_and_bad_json(client: httpx.Client) -> None:
    body = {
        "model": 1,
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 3,
        "seed": "s",
    }
    detail = client.post("/chat", json=body).json()["detail"]
    assert [d["loc"] for d in detail] == [
        ["body", "model"],
        ["body", "temperature"],
        ["body", "seed"],
    ]
    bad = client.post("/chat", content=b'{"model": ')
    assert bad.status_code == 422
    assert bad.json() == {
        "detail": [{"loc": ["body", 10], "msg": "JSON decode error", "type": "json_invalid"}]
    }


def test_native_extras_are_accepted(client: httpx.Client) -> None:
    extras = {
        "top_k": 5,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
        "use_search_engine": False,
    }
    body = text_body(temperature=0.4, top_p=0.95, seed=7, max_tokens=1024, **extras)
    assert client.post("/chat", json=body).status_code == 200


NOT_AN_IMAGE = "data:image/png;base64," + base64.b64encode(b"hello, not an image").decode()
TRUNCATED = "data:image/jpeg;base64," + base64.b64encode(CAT.read_bytes()[:2000]).decode()
IMAGE_ERRORS = [
    (NOT_AN_IMAGE, "could not be decoded: not an image format Pillow recognises"),
    (TRUNCATED, "could not be decoded: OSError: image file is truncated (13 bytes not processed)"),
    ("data:image/png;base64,@@@", "could not be decoded: invalid base64"),
    ("data:image/png,abc", "could not be decoded: a data: URL must be base64 (';base64,')"),
    (
        "http://example.com/cat.jpg",
        "has an unsupported URL: send an https:// URL or a base64 data: URL",
    ),
]


@pytest.mark.parametrize("native", [False, True])
@pytest.mark.parametrize(("url", "problem"), IMAGE_ERRORS)
def test_bad_images_are_400(client: httpx.Client, native: bool, url: str, problem: str) -> None:
    image: Any = url if native else {"url": url}
    good: Any = CAT_URL if native else {"url": CAT_URL}
    messages = [
        {"role": "user", "content": [{"type": "image_url", "image_url": good}]},
        {"role": "assistant", "content": "A cat."},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": good},
                {"type": "image_url", "image_url": image},
            ],
        },
    ]
    response = client.post(path_for(native), json={"model": "reka-flash", "messages": messages})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "validation_error",
        "message": f"Image 2 of message 3 {problem}",
        "param": "messages[2].content[1].image_url",
        "details": None,
    }


@pytest.mark.parametrize("native", [False, True])
def test_reka_edge_2603_takes_at_most_three_images(client: httpx.Client, native: bool) -> None:
    def body(count: int) -> dict[str, Any]:
        image: Any = png_url() if native else {"url": png_url()}
        parts = [{"type": "image_url", "image_url": image}] * count
        return {"model": "reka-edge-2603", "messages": [{"role": "user", "content": parts}]}

    response = client.post(path_for(native), json=body(4))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "Too many images in message 1: 4 given, model 'reka-edge-2603' accepts at most 3"
    )
    assert response.json()["error"]["param"] == "messages[0].content"
    assert client.post(path_for(native), json=body(3)).status_code == 200


def test_max_images_for_other_models(client: httpx.Client) -> None:
    parts = [{"type": "image_url", "image_url": {"url": png_url()}}] * 7
    response = client.post(
        "/chat/completions",
        json={"model": "reka-core", "messages": [{"role": "user", "content": parts}]},
    )
    assert response.json()["error"]["message"] == (
        "Too many images in message 1: 7 given, model 'reka-core' accepts at most 6"
    )
    with OfflineServer(max_images=1) as small, httpx.Client(base_url=small.base_url) as c:
        headers = {"X-Api-Key": small.api_key}
        two = {"model": "reka-core", "messages": [{"role": "user", "content": parts[:2]}]}
        assert c.post("/chat/completions", json=two, headers=headers).status_code == 400
        three = {"model": "reka-edge-2603", "messages": [{"role": "user", "content": parts[:3]}]}
        assert c.post("/chat/completions", json=three, headers=headers).status_code == 200
        small.check_errors()


def test_oversized_body_is_413(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=text_body("x" * (26 * 1024 * 1024)))
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "request_too_large",
        "message": "The request body is too large: the limit is 25 MB",
        "param": None,
        "details": None,
    }
    assert client.get("/models").status_code == 200  # the connection is still usable


# -- faults, seen from the client ------------------------------------------------------------


def test_status_fault_default_envelope_and_retry_after(
    server: OfflineServer, client: httpx.Client
) -> None:
    server.queue(Fault.status(429, retry_after=2), Fault.status(503, retry_after="Wed, 21 Oct"))
    limited = client.post("/chat/completions", json=cat_body())
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "2"
    assert limited.headers["x-request-id"].startswith("req_")
    assert limited.json() == {
        "error": {
            "type": "rate_limit_error",
            "message": "Too Many Requests",
            "param": None,
            "details": None,
        }
    }
    unavailable = client.get("/models")
    assert unavailable.status_code == 503
    assert unavailable.headers["retry-after"] == "Wed, 21 Oct"
    assert unavailable.json()["error"]["type"] == "server_error"
    assert client.get("/models").status_code == 200


def test_status_fault_custom_bodies_and_headers(
    server: OfflineServer, client: httpx.Client
) -> None:
    credits = {"error": {"type": "rate_limit_error", "message": "You have run out of credits"}}
    server.queue(
        Fault.status(429, credits, retry_after=0.5, headers={"X-Extra": "1"}),
        Fault.status(502, "upstream broke"),
    )
    first = client.post("/chat", json=cat_body(native=True))
    assert (first.status_code, first.json()) == (429, credits)
    assert first.headers["retry-after"] == "0.5" and first.headers["x-extra"] == "1"
    second = client.post("/chat", json=cat_body(native=True))
    assert second.status_code == 502
    assert second.headers["content-type"] == "text/plain; charset=utf-8"
    assert second.text == "upstream broke"


def test_scripted_sequence_is_consumed_by_any_endpoint(
    server: OfflineServer, client: httpx.Client
) -> None:
    server.queue(Fault.status(503), Fault.status(503), Fault.ok(), Fault.status(500))
    statuses = [
        client.post("/chat/completions", json=cat_body()).status_code,
        client.get("/models").status_code,
        client.post("/chat/completions", json=cat_body()).status_code,
        client.post("/chat", json=cat_body(native=True)).status_code,
        client.post("/chat", json=cat_body(native=True)).status_code,
    ]
    assert statuses == [503, 503, 200, 500, 200]
    assert [r.fault for r in server.requests] == ["status", "status", None, "status", None]
    assert [r.status for r in server.requests] == statuses
    assert server.requests[0].body == server.requests[2].body == cat_body()


def test_reset_fault_closes_before_any_byte(server: OfflineServer, client: httpx.Client) -> None:
    server.queue(Fault.reset())
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        client.post("/chat/completions", json=cat_body())
    (record,) = server.requests
    assert (record.status, record.fault) == (0, "reset")
    assert client.post("/chat/completions", json=cat_body()).status_code == 200


@pytest.mark.parametrize("native", [False, True])
def test_break_after_drops_the_stream_mid_body(
    server: OfflineServer, client: httpx.Client, native: bool
) -> None:
    server.queue(Fault.break_after(3))
    events: list[str] = []
    body = cat_body(native, stream=True)
    with client.stream("POST", path_for(native), json=body) as r:
        assert r.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete chunked read"):
            events.extend(line[6:] for line in r.iter_lines() if line.startswith("data: "))
    # Three words on both endpoints; OpenAI's opening role chunk is not counted.
    assert len(events) == (3 if native else 4)
    assert words_of(events, native) == "This is reka_nb's "
    assert server.requests[0].status == 200 and server.requests[0].fault == "break_after"


def test_break_after_on_a_whole_answer(server: OfflineServer, client: httpx.Client) -> None:
    server.queue(Fault.break_after(1))
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/chat/completions", json=cat_body())


def _raw_exchange(
    server: OfflineServer,
    body: dict[str, Any],
    version: str = "HTTP/1.1",
    length: str | None = None,
) -> bytes:
    """Send one request with Connection: close on a bare socket and read until EOF."""
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions {version}\r\nHost: x\r\nX-Api-Key: {server.api_key}\r\n"
        f"Content-Length: {length or len(data)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head + data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def test_chunked_framing_clean_end_versus_break(server: OfflineServer) -> None:
    clean = _raw_exchange(server, cat_body(stream=True, max_tokens=2))
    assert clean.endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    server.queue(Fault.break_after(2))
    broken = _raw_exchange(server, cat_body(stream=True))
    assert broken.count(b"data: ") == 3  # the role chunk and two words
    assert broken.endswith(b"\n\n\r\n") and not broken.endswith(b"0\r\n\r\n")


def test_http_1_0_streams_without_chunking_and_bad_framing_is_400(server: OfflineServer) -> None:
    old = _raw_exchange(server, cat_body(stream=True, max_tokens=2), version="HTTP/1.0")
    head, _, body = old.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Transfer-Encoding" not in head
    assert body.count(b"data: ") == 5 and body.endswith(b"data: [DONE]\n\n")
    bad = _raw_exchange(server, cat_body(), length="ten")
    assert bad.startswith(b"HTTP/1.1 400 ") and b"X-Request-ID: req_" in bad
    assert bad.endswith(b'"message":"Malformed request body framing","param":null,"details":null}}')


@pytest.mark.parametrize("native", [False, True])
def test_break_points_at_the_edges(
    server: OfflineServer, client: httpx.Client, native: bool
) -> None:
    server.queue(Fault.break_after(0), Fault.break_after(2))
    body = cat_body(native, stream=True, max_tokens=2)
    # OpenAI: the finish comes in a chunk after the words, so it is lost; native: the last
    # word's snapshot carries it, and the body still ends without its terminating chunk.
    finishes = [[], [None, "length"]] if native else [[None], [None, None, None]]
    for expected_text, expected_finishes in zip(("", "This is "), finishes, strict=True):
        events: list[str] = []
        with (
            client.stream("POST", path_for(native), json=body) as r,
            pytest.raises(httpx.RemoteProtocolError),
        ):
            events.extend(line[6:] for line in r.iter_lines() if line.startswith("data: "))
        assert words_of(events, native) == expected_text
        key = "responses" if native else "choices"
        assert [json.loads(e)[key][0]["finish_reason"] for e in events] == expected_finishes


def test_keep_alive_serves_several_requests_on_one_connection(server: OfflineServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"X-Api-Key": server.api_key, "Content-Type": "application/json"}
    try:
        conn.request("POST", "/v1/chat", json.dumps(cat_body(native=True, stream=True)), headers)
        first = conn.getresponse()
        assert first.read().count(b"data: ") == CAT_WORDS
        sock = conn.sock
        conn.request("GET", "/v1/models", headers=headers)
        second = conn.getresponse()
        assert second.status == 200 and json.loads(second.read())["object"] == "list"
        assert conn.sock is sock
    finally:
        conn.close()


@pytest.mark.parametrize("native", [False, True])
def test_stall_pauses_then_finishes(
    server: OfflineServer, client: httpx.Client, native: bool
) -> None:
    server.queue(Fault.stall(2, 0.4))
    arrivals: list[float] = []
    with client.stream("POST", path_for(native), json=cat_body(native, stream=True)) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    stalled = 1 if native else 2  # after the second word (OpenAI: after role + two words)
    assert gaps[stalled] >= 0.3
    assert max(gaps[:stalled] + gaps[stalled + 1 :]) < 0.3
    assert len(arrivals) == (CAT_WORDS if native else CAT_WORDS + 3)


@pytest.mark.parametrize("native", [False, True])
def test_malformed_event_then_a_clean_end(
    server: OfflineServer, client: httpx.Client, native: bool
) -> None:
    server.queue(Fault.malformed(2))
    _, events = stream(client, path_for(native), cat_body(native))
    assert len(events) == (3 if native else 4)
    assert words_of(events[:-1], native) == "This is "
    assert events[-1] == ('{"responses": [' if native else '{"choices": [')
    with pytest.raises(json.JSONDecodeError):
        json.loads(events[-1])


def test_slow_first_byte_waits_then_answers(server: OfflineServer, client: httpx.Client) -> None:
    server.queue(Fault.slow_first_byte(0.4), Fault.slow_first_byte(2))
    started = time.monotonic()
    response = client.get("/models")
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.35
    with pytest.raises(httpx.ReadTimeout):
        client.get("/models", timeout=0.2)
    assert [r.fault for r in server.requests] == ["slow_first_byte", "slow_first_byte"]


def test_trickle_holds_the_model_list_open(server: OfflineServer, client: httpx.Client) -> None:
    server.queue(Fault.trickle(0.5, 0.1))
    assert repr(Fault.trickle(0.5, 0.1)) == "Fault.trickle(0.5, 0.1)"
    started = time.monotonic()
    with client.stream("GET", "/models") as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        first = next(chunks)  # the headers and a first space, before the list
        body = first + b"".join(chunks)
    took = time.monotonic() - started
    assert first == b" " and body.startswith(b"  ") and took >= 0.5
    assert [m["id"] for m in json.loads(body)["data"]][:2] == ["reka-core", "reka-flash"]
    assert [r.fault for r in server.requests] == ["trickle"]
    with pytest.raises(ValueError, match="every must be more than 0 seconds"):
        Fault.trickle(1, 0)


def test_model_list_and_models_latency(server: OfflineServer, client: httpx.Client) -> None:
    server.model_list = [{"id": "x", "pricing": {"prompt": "abc"}}, "y"]
    server.models_latency = 0.3
    started = time.monotonic()
    assert client.get("/models").json() == {
        "object": "list",
        "data": [{"id": "x", "pricing": {"prompt": "abc"}}, "y"],
    }
    assert time.monotonic() - started >= 0.3
    server.reset()
    assert (server.model_list, server.models_latency) == (None, 0.0)
    assert client.get("/models").json()["data"][0]["id"] == "reka-core"


@pytest.mark.parametrize("native", [False, True])
def test_end_without_finish(server: OfflineServer, client: httpx.Client, native: bool) -> None:
    server.queue(Fault.end_without_finish(4))
    _, events = stream(client, path_for(native), cat_body(native))
    assert len(events) == (4 if native else 5)
    assert "[DONE]" not in events
    assert words_of(events, native) == "This is reka_nb's offline "
    parsed = [json.loads(e) for e in events]
    key = "responses" if native else "choices"
    assert all(p[key][0]["finish_reason"] is None for p in parsed)


def test_end_without_finish_on_a_whole_answer(server: OfflineServer, client: httpx.Client) -> None:
    server.queue(Fault.end_without_finish(2), Fault.malformed(0))
    choice = client.post("/chat/completions", json=cat_body()).json()["choices"][0]
    assert choice["message"]["content"] == "This is " and choice["finish_reason"] is None
    bad = client.post("/chat/completions", json=cat_body())
    assert bad.status_code == 200 and bad.text == '{"choices": ['


def test_fault_values() -> None:
    assert Fault.status(503) == Fault.status(503)
    assert repr(Fault.stall(2, 0.5)) == "Fault.stall(2, 0.5)"
    assert repr(Fault.status(429, retry_after=1)) == "Fault.status(429)"
    assert Fault.break_after(3).kind == "break_after"
    with pytest.raises(ValueError, match="events must be an int >= 0"):
        Fault.break_after(-1)
    with pytest.raises(ValueError, match="code must be an HTTP status"):
        Fault.status(99)
    with pytest.raises(TypeError, match="queue\\(\\) takes Fault values"):
        OfflineServer().queue("503")  # type: ignore[arg-type]


# -- log, reset, delay, concurrency, errors -------------------------------------------------


def test_request_log_records_requests_with_keys_redacted(
    server: OfflineServer, client: httpx.Client
) -> None:
    client.post("/chat/completions?trace=1", json=cat_body(max_tokens=1))
    client.get("/models", headers={"Authorization": "", "X-Api-Key": server.api_key})
    first, second = server.requests
    assert isinstance(first, RecordedRequest)
    assert (first.method, first.path, first.status, first.auth_ok) == (
        "POST",
        "/v1/chat/completions",
        200,
        True,
    )
    assert first.body == cat_body(max_tokens=1)
    assert first.headers["authorization"] == "Bearer [secure]"
    assert first.headers["content-type"] == "application/json"
    assert second.headers["x-api-key"] == "[secure]" and second.body is None
    assert first.request_id != second.request_id
    assert server.api_key not in repr(server.requests)
    assert CAT_URL not in repr(first)


def test_request_ids_match_the_header(server: OfflineServer, client: httpx.Client) -> None:
    ids = [client.get("/models").headers["x-request-id"] for _ in range(3)]
    assert [r.request_id for r in server.requests] == ids
    assert len(set(ids)) == 3


def test_reset_forgets_requests_and_faults(server: OfflineServer, client: httpx.Client) -> None:
    server.queue(Fault.status(500), Fault.status(500))
    server.token_delay, server.reply = 0.5, "changed"
    assert client.get("/models").status_code == 500
    server.reset()
    assert server.requests == []
    assert (server.token_delay, server.reply) == (0.0, None)
    assert client.get("/models").status_code == 200


def test_a_chat_request_is_counted_on_arrival_and_logged_once_answered(
    server: OfflineServer, client: httpx.Client
) -> None:
    server.latency = 0.5
    assert client.get("/models").status_code == 200  # not a chat request
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(client.post, "/chat/completions", json=cat_body())
        deadline = time.monotonic() + 5
        while server.chats_arrived < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert server.chat_requests() == []  # still waiting out the latency
        assert answer.result().status_code == 200
    assert (server.chats_arrived, len(server.chat_requests())) == (1, 1)
    server.reset()
    assert server.chats_arrived == 0


def test_token_delay_spaces_the_events(server: OfflineServer, client: httpx.Client) -> None:
    server.token_delay = 0.1
    started = time.monotonic()
    _, events = stream(client, "/chat", cat_body(native=True, max_tokens=4))
    assert len(events) == 4
    assert time.monotonic() - started >= 0.25


def test_64_concurrent_streams(server: OfflineServer) -> None:
    server.token_delay = 0.01

    async def one(c: httpx.AsyncClient, n: int) -> str:
        body = text_body(f"stream number {n}", stream=True)
        native = n % 2 == 1
        async with c.stream("POST", path_for(native), json=body) as r:
            data = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
        if native:
            return json.loads(data[-1])["responses"][0]["chunk"]["content"]
        return openai_text(data)

    async def main() -> list[str]:
        limits = httpx.Limits(max_connections=100)
        headers = {"X-Api-Key": server.api_key}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, limits=limits) as c:
            return await asyncio.gather(*(one(c, n) for n in range(64)))

    started = time.monotonic()
    texts = asyncio.run(main())
    elapsed = time.monotonic() - started
    expected = [f"{INTRO_TEXT} Model: reka-core. Prompt: stream number {n}" for n in range(64)]
    assert texts == expected
    # Served one after another this would take 64 * ~0.2 s; in parallel it is far quicker.
    assert elapsed < 6
    assert len(server.requests) == 64 and {r.status for r in server.requests} == {200}


def test_handler_errors_answer_500_and_are_reraised(
    server: OfflineServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("handler bug")

    monkeypatch.setattr(handler_module, "complete", broken)
    response = client.post("/chat/completions", json=cat_body())
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    with pytest.raises(RuntimeError, match="handler bug"):
        server.check_errors()
    server.check_errors()  # reported once


def test_start_stop_and_base_url() -> None:
    server = OfflineServer(api_key="custom-key")
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
    with server:
        base_url = server.base_url
        assert base_url == f"http://127.0.0.1:{server.port}/v1"
        assert "custom-key" not in repr(server)
        response = httpx.get(server.base_url + "/models", headers={"X-Api-Key": "custom-key"})
        assert response.status_code == 200
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    assert not server.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)


def test_the_server_never_echoes_a_key(server: OfflineServer) -> None:
    seen: list[str] = []
    for key in (WRONG_KEY, server.api_key):
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-Api-Key": key}):
            with httpx.Client(base_url=server.base_url, headers=headers) as c:
                responses = [
                    c.get("/models"),
                    c.post("/chat/completions", json=cat_body(max_tokens=2)),
                    c.post("/chat", json=cat_body(native=True, stream=True, max_tokens=2)),
                    c.post("/chat", json={"model": "x"}),
                    c.post("/chat/completions", json={**cat_body(), "model": "nope"}),
                    c.get("/nowhere"),
                    c.get("/chat"),
                ]
            seen.extend(f"{r.headers}\n{r.text}" for r in responses)
    text = "\n".join(seen) + repr(server) + repr(server.requests)
    assert WRONG_KEY not in text and server.api_key not in text
    assert "Missing or invalid API key" in text


# -- the command line -----------------------------------------------------------------------


def _run_main(*args: str) -> tuple[subprocess.Popen[str], list[str]]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reka_nb.testing", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(4)]
    return proc, lines


def _interrupt(proc: subprocess.Popen[str]) -> tuple[str, str]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0
    return out, err


def test_python_m_reka_nb_testing() -> None:
    proc, lines = _run_main("--delay", "0")
    try:
        assert lines[0].startswith("reka_nb offline server running at http://127.0.0.1:")
        base_url = lines[0].rsplit(" ", 1)[1].strip()
        assert lines[1] == f"export REKA_BASE_URL={base_url}\n"
        assert lines[2] == f"export REKA_API_KEY={TEST_API_KEY}\n"
        assert lines[3] == "Press Ctrl-C to stop.\n"
        headers = {"Authorization": f"Bearer {TEST_API_KEY}"}
        response = httpx.post(base_url + "/chat/completions", json=cat_body(), headers=headers)
        assert response.json()["choices"][0]["message"]["content"] == cat_answer()
    finally:
        out, err = _interrupt(proc)
    assert (out, err) == ("Stopped.\n", "")


def test_python_m_with_a_custom_key_does_not_print_it() -> None:
    proc, lines = _run_main("--key", "my-own-secret-key", "--delay", "0.001")
    try:
        base_url = lines[0].rsplit(" ", 1)[1].strip()
        assert lines[2] == "export REKA_API_KEY=<the key given with --key>\n"
        response = httpx.get(base_url + "/models", headers={"X-Api-Key": "my-own-secret-key"})
        assert response.status_code == 200
    finally:
        out, err = _interrupt(proc)
    assert "my-own-secret-key" not in "".join(lines) + out + err


# -- independent judges: the openai package -------------------------------------------------


@pytest.fixture
def oai(server: OfflineServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as c:
        yield c


def _oai_messages() -> list[dict[str, Any]]:
    return cat_body()["messages"]


def test_openai_package_reads_a_whole_answer(oai: openai.OpenAI) -> None:
    result = oai.chat.completions.create(model="reka-flash", messages=_oai_messages())
    assert result.choices[0].message.content == cat_answer()
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    assert result.usage is not None
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (
        CAT_PROMPT_TOKENS,
        CAT_WORDS,
    )


def test_openai_package_reads_a_stream(oai: openai.OpenAI) -> None:
    chunks = list(
        oai.chat.completions.create(model="reka-flash", messages=_oai_messages(), stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == cat_answer()
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == CAT_WORDS
    limited = list(
        oai.chat.completions.create(
            model="reka-flash", messages=_oai_messages(), stream=True, max_tokens=2
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in limited) == "This is "
    assert limited[-1].choices[0].finish_reason == "length"


def test_openai_package_lists_models(oai: openai.OpenAI) -> None:
    assert [m.id for m in oai.models.list()] == list(DEFAULT_MODELS)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(400), openai.BadRequestError),
        (Fault.status(401), openai.AuthenticationError),
        (Fault.status(403), openai.PermissionDeniedError),
        (Fault.status(404), openai.NotFoundError),
        (Fault.status(422), openai.UnprocessableEntityError),
        (Fault.status(429, retry_after=0), openai.RateLimitError),
        (Fault.status(500), openai.InternalServerError),
        (Fault.status(503), openai.InternalServerError),
    ],
)
def test_openai_package_typed_errors_for_status_faults(
    server: OfflineServer, oai: openai.OpenAI, fault: Fault, error: type[Exception]
) -> None:
    server.queue(fault)
    with pytest.raises(error) as caught:
        oai.chat.completions.create(model="reka-flash", messages=_oai_messages(), stream=True)
    assert type(caught.value) is error
    assert caught.value.request_id == server.requests[0].request_id  # type: ignore[attr-defined]


def test_openai_package_typed_errors_for_real_problems(server: OfflineServer) -> None:
    with (
        openai.OpenAI(base_url=server.base_url, api_key=WRONG_KEY, max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError) as auth,
    ):
        bad.chat.completions.create(model="reka-flash", messages=_oai_messages())
    assert auth.value.status_code == 401 and WRONG_KEY not in str(auth.value)
    with openai.OpenAI(base_url=server.base_url, api_key=server.api_key, max_retries=0) as oai:
        with pytest.raises(openai.NotFoundError, match="Model 'reka-foo' not found"):
            oai.chat.completions.create(model="reka-foo", messages=_oai_messages())
        with pytest.raises(openai.BadRequestError) as bad_request:
            oai.chat.completions.create(model="reka-flash", messages=_oai_messages(), max_tokens=0)
        assert bad_request.value.param == "max_tokens"  # type: ignore[attr-defined]
        assert bad_request.value.type == "validation_error"  # type: ignore[attr-defined]
        server.queue(Fault.reset())
        with pytest.raises(openai.APIConnectionError):
            oai.chat.completions.create(model="reka-flash", messages=_oai_messages())
        server.queue(Fault.slow_first_byte(2))
        with pytest.raises(openai.APITimeoutError):
            oai.with_options(timeout=0.2).models.list()


# -- independent judges: Reka's own SDK (native /chat) --------------------------------------


@pytest.fixture
def reka_client(server: OfflineServer) -> Iterator[Reka]:
    with httpx.Client(timeout=10) as http:
        yield Reka(api_key=server.api_key, base_url=server.base_url, httpx_client=http)


def _reka_messages() -> list[ChatMessage]:
    content = [
        TypedMediaContent(type="image_url", image_url=CAT_URL),
        TypedText(type="text", text=PROMPT),
    ]
    return [ChatMessage(role="user", content=content)]


def test_reka_sdk_reads_a_whole_answer(reka_client: Reka) -> None:
    result = reka_client.chat.create(model="reka-flash", messages=_reka_messages())
    assert result.responses[0].message.content == cat_answer()
    assert result.responses[0].message.role == "assistant"
    assert result.responses[0].finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (CAT_PROMPT_TOKENS, CAT_WORDS)


def test_reka_sdk_reads_a_stream_of_snapshots(reka_client: Reka) -> None:
    chunks = list(reka_client.chat.create_stream(model="reka-flash", messages=_reka_messages()))
    assert len(chunks) == CAT_WORDS
    assert chunks[0].responses[0].chunk.content == "This "
    assert chunks[-1].responses[0].chunk.content == cat_answer()
    assert chunks[-1].responses[0].finish_reason == "stop"
    assert chunks[-1].usage.output_tokens == CAT_WORDS
    limited = list(
        reka_client.chat.create_stream(model="reka-flash", messages=_reka_messages(), max_tokens=3)
    )
    assert limited[-1].responses[0].chunk.content == "This is reka_nb's "
    assert limited[-1].responses[0].finish_reason == "length"


def test_reka_sdk_errors(server: OfflineServer, reka_client: Reka) -> None:
    with pytest.raises(UnprocessableEntityError) as invalid:
        reka_client.chat.create(model="reka-flash", messages=_reka_messages(), max_tokens=0)
    (problem,) = invalid.value.body.detail
    assert (problem.loc, problem.type) == (["body", "max_tokens"], "greater_than")
    with pytest.raises(ApiError) as missing:
        reka_client.chat.create(model="reka-foo", messages=_reka_messages())
    assert missing.value.status_code == 404
    assert missing.value.body["error"]["message"] == "Model 'reka-foo' not found"
    with httpx.Client(timeout=10) as http:
        wrong = Reka(api_key=WRONG_KEY, base_url=server.base_url, httpx_client=http)
        with pytest.raises(ApiError) as denied:
            list(wrong.chat.create_stream(model="reka-flash", messages=_reka_messages()))
    assert denied.value.status_code == 401
    assert denied.value.body["error"]["type"] == "authentication_error"
