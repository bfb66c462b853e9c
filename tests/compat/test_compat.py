"""The OpenAI-style Client/AsyncClient against the offline server, over real sockets.

The seed program (the call shape the project started from) runs verbatim apart from its
imports; every other scenario runs through both the sync and the async client.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from reka_nb import (
    AsyncClient,
    AuthenticationError,
    BadRequestError,
    Client,
    ConfigurationError,
    ImageError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    Reka,
    ServerError,
    StreamInterrupted,
)
from reka_nb.compat import AsyncStream, Stream
from reka_nb.testing import DEFAULT_MODELS, Fault, OfflineServer

ROOT = Path(__file__).resolve().parents[2]
CAT = ROOT / "docs" / "images" / "cat.jpeg"
CAT_URL = "data:image/jpeg;base64," + base64.b64encode(CAT.read_bytes()).decode()
INTRO = (
    "This is reka_nb's offline server: no model ran, so nothing here comes from looking at "
    "the images."
)
TEXT_INTRO = "This is reka_nb's offline server: no model ran, so nothing here is a real answer."
CAT_LINE = "Image 1: JPEG, 451×300 px, 35,042 bytes."
KINDS = ["sync", "async"]

SEED_PROGRAM = """\
from reka_nb import Client, Reka

client = Client(provider=Reka)
completion = client.chat.completions.create(
    model="reka-core",
    messages=[{"role": "user", "content": "What can you see in the image ?"}],
    stream=True,
    image=open("docs/images/cat.jpeg", "rb"),
)
for message in completion:
    print(message.choices[0].delta.content or "")
"""
SEED_ANSWER = f"{INTRO} Model: reka-core. {CAT_LINE} Prompt: What can you see in the image ?"
# Each delta (a word and its space) on its own line, then the final chunk's empty line.
SEED_OUTPUT = "".join(word + "\n" for word in re.findall(r"\S+\s*", SEED_ANSWER)) + "\n"


def png_bytes(width: int = 8, height: int = 6) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def create(kind: str, client_kw: dict[str, Any] | None = None, **kw: Any) -> Any:
    """create() on a Client or AsyncClient configured from the environment.

    A stream is read to the end and returned as a list of chunks.
    """
    client_kw = {"backoff": 0.01, **(client_kw or {})}
    if kind == "sync":
        with Client(provider=Reka, **client_kw) as client:
            result = client.chat.completions.create(**kw)
            if isinstance(result, Stream):
                with result:
                    return list(result)
            return result

    async def main() -> Any:
        async with AsyncClient(provider=Reka, **client_kw) as client:
            result = await client.chat.completions.create(**kw)
            if isinstance(result, AsyncStream):
                async with result:
                    return [chunk async for chunk in result]
            return result

    return asyncio.run(main())


def text_of(chunks: list[Any]) -> str:
    return "".join(chunk.choices[0].delta.content or "" for chunk in chunks)


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# -- the seed program ----------------------------------------------------------------------


def test_seed_program_runs_verbatim(
    env: OfflineServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "__seed__"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            exec(compile(SEED_PROGRAM, "seed.py", "exec"), namespace)
        finally:
            if "client" in namespace:
                namespace["client"].close()
            namespace.clear()
    assert capsys.readouterr().out == SEED_OUTPUT
    # The program never closes the image file it opens; nothing else may leak or warn.
    others = [
        w for w in caught if not (w.category is ResourceWarning and "cat.jpeg" in str(w.message))
    ]
    assert others == []
    (request,) = env.requests
    assert (request.method, request.path, request.status) == ("POST", "/v1/chat/completions", 200)
    assert request.headers["authorization"] == "Bearer [secure]"
    assert request.body == {
        "model": "reka-core",
        "stream": True,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": CAT_URL}},
                    {"type": "text", "text": "What can you see in the image ?"},
                ],
            }
        ],
    }


def test_seed_program_runs_in_a_fresh_interpreter(env: OfflineServer) -> None:
    settings = {"REKA_BASE_URL": env.base_url, "REKA_API_KEY": env.api_key}
    done = subprocess.run(
        [sys.executable, "-c", SEED_PROGRAM],
        cwd=ROOT,
        env={**os.environ, **settings},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == SEED_OUTPUT
    assert [r.path for r in env.requests] == ["/v1/chat/completions"]


# -- shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_stream_chunks_look_like_openai_chunks(kind: str, env: OfflineServer) -> None:
    chunks = create(
        kind, model="reka-flash", messages=user("What can you see?"), stream=True, image=CAT
    )
    answer = f"{INTRO} Model: reka-flash. {CAT_LINE} Prompt: What can you see?"
    assert text_of(chunks) == answer
    *deltas, final = chunks
    assert [c.choices[0].delta.content for c in deltas] == re.findall(r"\S+\s*", answer)
    assert [c.choices[0].delta.role for c in deltas] == ["assistant"] + [None] * (len(deltas) - 1)
    assert {c.choices[0].finish_reason for c in deltas} == {None}
    assert {c.usage for c in deltas} == {None}
    request_id = env.requests[0].request_id
    assert {(c.id, c.object, c.model) for c in chunks} == {
        (request_id, "chat.completion.chunk", "reka-flash")
    }
    assert len({c.created for c in chunks}) == 1
    assert final.model_dump() == {
        "id": request_id,
        "created": final.created,
        "model": "reka-flash",
        "object": "chat.completion.chunk",
        "choices": [
            {"index": 0, "delta": {"content": None, "role": None}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 68, "completion_tokens": 31, "total_tokens": 99},
    }
    assert final.to_dict() == final.model_dump()
    assert json.loads(final.to_json()) == final.model_dump()


@pytest.mark.parametrize("kind", KINDS)
def test_whole_answer_looks_like_an_openai_completion(kind: str, env: OfflineServer) -> None:
    result = create(kind, model="reka-core", messages=user("Hi there"))
    assert result.choices[0].message.content == f"{TEXT_INTRO} Model: reka-core. Prompt: Hi there"
    assert result.choices[0].message.role == "assistant"
    assert result.choices[0].finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (2, 20)
    assert result.usage.total_tokens == 22
    assert (result.id, result.model, result.object) == (
        env.requests[0].request_id,
        "reka-core",
        "chat.completion",
    )
    assert env.requests[0].body == {
        "model": "reka-core",
        "stream": False,
        "messages": user("Hi there"),
    }
    dumped = result.model_dump()
    assert list(dumped) == ["id", "created", "model", "choices", "usage", "object"]
    assert dumped["choices"][0]["message"] == {
        "content": result.choices[0].message.content,
        "role": "assistant",
    }


@pytest.mark.parametrize("kind", KINDS)
def test_model_defaults_to_the_clients_settings(
    kind: str, env: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert create(kind, messages=user("a")).model == "reka-flash"
    monkeypatch.setenv("REKA_MODEL", "reka-edge")
    assert create(kind, messages=user("a")).model == "reka-edge"
    assert create(kind, client_kw={"model": "reka-core"}, messages=user("a")).model == "reka-core"
    assert [r.body["model"] for r in env.requests] == ["reka-flash", "reka-edge", "reka-core"]


@pytest.mark.parametrize("kind", KINDS)
def test_models_list(kind: str, env: OfflineServer) -> None:
    if kind == "sync":
        with Client() as client:
            models = client.models.list()
    else:

        async def main() -> Any:
            async with AsyncClient() as client:
                return await client.models.list()

        models = asyncio.run(main())
    assert [m.id for m in models] == list(DEFAULT_MODELS)
    assert [m.id for m in models.data] == list(DEFAULT_MODELS)
    assert (len(models), models[0].object, models.object) == (len(DEFAULT_MODELS), "model", "list")


# -- images and messages -------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_image_and_several_images_go_first_in_the_last_user_message(
    kind: str, env: OfflineServer
) -> None:
    png = png_bytes()
    messages = [
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "Compare them."},
    ]
    with CAT.open("rb") as file:
        result = create(
            kind, messages=messages, image=file, images=[png, Image.open(io.BytesIO(png))]
        )
    png_line = f"PNG, 8×6 px, {len(png):,} bytes."
    assert result.choices[0].message.content == (
        f"{INTRO} Model: reka-flash. Earlier messages: 2. {CAT_LINE} Image 2: {png_line} "
        f"Image 3: {png_line} Prompt: Compare them."
    )
    sent = env.requests[0].body["messages"]
    assert sent[:2] == messages[:2]
    parts = sent[2]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "image_url", "text"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": CAT_URL}}
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[3] == {"type": "text", "text": "Compare them."}
    assert messages[2] == {"role": "user", "content": "Compare them."}  # not modified


@pytest.mark.parametrize("kind", KINDS)
def test_openai_content_parts_pass_through(kind: str, env: OfflineServer) -> None:
    parts = [
        {"type": "text", "text": "What is in both?"},
        {"type": "image_url", "image_url": {"url": CAT_URL, "detail": "high"}},
    ]
    result = create(kind, messages=user(parts), images=[png_bytes(3, 2)])
    assert result.choices[0].message.content.endswith(
        f"Image 1: PNG, 3×2 px, {len(png_bytes(3, 2))} bytes. Image 2: JPEG, 451×300 px, "
        "35,042 bytes. Prompt: What is in both?"
    )
    sent = env.requests[0].body["messages"][0]["content"]
    assert sent[1:] == [
        {"type": "text", "text": "What is in both?"},
        {"type": "image_url", "image_url": {"url": CAT_URL}},
    ]
    assert parts[1]["image_url"]["detail"] == "high" and len(parts) == 2  # not modified


@pytest.mark.parametrize("kind", KINDS)
def test_answers_and_developer_messages_can_be_sent_back(kind: str, env: OfflineServer) -> None:
    first = create(kind, messages=user("one"))
    messages = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "one"},
        first.choices[0].message,
        {"role": "user", "content": "two"},
    ]
    second = create(kind, messages=messages)
    assert second.choices[0].message.content == (
        f"{TEXT_INTRO} Model: reka-flash. System: Be brief. Earlier messages: 2. Prompt: two"
    )
    sent = env.requests[1].body["messages"]
    assert sent[0] == {"role": "system", "content": "Be brief."}
    assert sent[2] == {"role": "assistant", "content": first.choices[0].message.content}


@pytest.mark.parametrize("kind", KINDS)
def test_native_endpoint_through_the_compat_client(kind: str, env: OfflineServer) -> None:
    chunks = create(
        kind,
        client_kw={"api": "native"},
        messages=user("What is it?"),
        stream=True,
        image=CAT,
        top_k=5,
    )
    assert text_of(chunks) == f"{INTRO} Model: reka-flash. {CAT_LINE} Prompt: What is it?"
    assert chunks[-1].usage.prompt_tokens == 67
    (request,) = env.requests
    assert (request.path, request.headers["x-api-key"]) == ("/v1/chat", "[secure]")
    assert request.body["top_k"] == 5
    assert request.body["messages"][0]["content"][0] == {"type": "image_url", "image_url": CAT_URL}


# -- parameters ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_reach_the_server(kind: str, env: OfflineServer) -> None:
    chunks = create(
        kind,
        messages=user("Hi there"),
        stream=True,
        max_tokens=3,
        temperature=0.2,
        top_p=0.9,
        stop=["zzz"],
        seed=7,
    )
    assert text_of(chunks) == "This is reka_nb's "
    assert chunks[-1].choices[0].finish_reason == "length"
    body = env.requests[0].body
    assert {k: body[k] for k in ("max_tokens", "temperature", "top_p", "stop", "seed")} == {
        "max_tokens": 3,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["zzz"],
        "seed": 7,
    }


@pytest.mark.parametrize("kind", KINDS)
def test_harmless_openai_arguments_are_accepted_and_not_sent(kind: str, env: OfflineServer) -> None:
    result = create(
        kind,
        messages=user("Hi there"),
        n=1,
        stream_options={"include_usage": True},
        user="someone",
        store=False,
        logprobs=False,
        tools=None,
        tool_choice="none",
        response_format={"type": "text"},
        presence_penalty=0,
        frequency_penalty=0.0,
        logit_bias={},
        timeout=None,
        provider=Reka,
    )
    assert result.choices[0].message.content.endswith("Prompt: Hi there")
    assert env.requests[0].body == {
        "model": "reka-flash",
        "stream": False,
        "messages": user("Hi there"),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_max_completion_tokens_and_extra_body(kind: str, env: OfflineServer) -> None:
    result = create(kind, messages=user("Hi there"), max_completion_tokens=2)
    assert (result.choices[0].message.content, result.choices[0].finish_reason) == (
        "This is ",
        "length",
    )
    create(kind, client_kw={"api": "native"}, messages=user("a"), extra_body={"top_k": 3})
    assert env.requests[0].body["max_tokens"] == 2
    assert env.requests[1].body["top_k"] == 3


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"n": 2}, "n=2 is not supported: Reka gives one answer per request"),
        ({"tools": [{"type": "function"}]}, "is not supported: function calling is not supported"),
        ({"tool_choice": "required"}, "tool_choice='required' is not supported: function calling"),
        ({"response_format": {"type": "json_object"}}, "structured output is not supported"),
        ({"logprobs": True}, "logprobs=True is not supported: log probabilities"),
        ({"timeout": 5}, "timeout=5 is not supported: set connect_timeout= and read_timeout="),
        ({"provider": "Bing"}, "provider='Bing' is not supported: the only provider is"),
        ({"stream": "yes"}, "stream must be True or False, not 'yes'"),
        ({"presence_penalty": 0.5}, "presence_penalty is native-only: pass api='native'"),
        ({"extra_body": {"top_k": 3}}, "top_k is native-only"),
        ({"extra_body": {"model": "x"}}, "extra_body cannot set 'model': pass model= to create"),
        ({"max_tokens": 5, "max_completion_tokens": 6}, "max_tokens and max_completion_tokens"),
        ({"temperature": 3}, "temperature must be a number in [0.0, 2.0], not 3"),
        ({"messages": "hi"}, "messages must be a list of dicts"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "message 1 has role 'tool'"),
        ({"messages": [{"role": "system", "content": "x"}], "image": CAT}, "need a user message"),
        ({"messages": user([{"type": "input_audio"}])}, "neither {'type': 'text'"),
    ],
)
def test_unsupported_arguments_are_refused_before_sending(
    kind: str, env: OfflineServer, kw: dict[str, Any], message: str
) -> None:
    kw = {"messages": user("hi"), **kw}
    with pytest.raises(InvalidRequestError) as info:
        create(kind, **kw)
    assert type(info.value) is InvalidRequestError
    assert message in str(info.value)
    assert env.requests == []


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_arguments_are_type_errors(kind: str, env: OfflineServer) -> None:
    with pytest.raises(
        TypeError,
        match=r"unexpected keyword argument 'temprature' \(did you mean 'temperature'\?\)",
    ):
        create(kind, messages=user("hi"), temprature=0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'web_search'"):
        create(kind, messages=user("hi"), web_search=True)
    with pytest.raises(TypeError, match="missing 1 required keyword-only argument: 'messages'"):
        create(kind, model="reka-flash")
    assert env.requests == []


@pytest.mark.parametrize("kind", KINDS)
def test_bad_images_are_image_errors(kind: str, env: OfflineServer, tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpeg"
    with pytest.raises(ImageError, match="no such file"):
        create(kind, messages=user("hi"), image=str(missing))
    with pytest.raises(ImageError, match=r"image 2 of 2: "):
        create(kind, messages=user("hi"), images=[CAT, b"not an image"])
    assert env.requests == []


# -- clients and providers -----------------------------------------------------------------


def test_provider_must_be_reka() -> None:
    class Bing:
        pass

    for provider in (Bing, "OpenaiChat", None):
        with pytest.raises(ConfigurationError, match="reka_nb only speaks to Reka") as info:
            Client(provider=provider)
        assert type(info.value) is ConfigurationError
        with pytest.raises(ConfigurationError, match=r"use provider=reka_nb\.Reka"):
            AsyncClient(provider)
    with pytest.raises(ConfigurationError, match=r"^provider=Bing is not available"):
        Client(Bing)
    assert Client("reka").provider is Reka and Client().provider is Reka
    with pytest.raises(TypeError, match=r"pass the class itself, Client\(provider=Reka\)"):
        Reka()


def test_client_options() -> None:
    with pytest.raises(
        TypeError, match=r"unexpected keyword argument 'proxies'; it takes provider"
    ):
        Client(provider=Reka, proxies={"all": "http://proxy"})
    with pytest.raises(TypeError, match=r"'max_retry' \(did you mean 'max_retries'\?\)"):
        AsyncClient(max_retry=1)
    with pytest.raises(ConfigurationError, match=r"refusing plain http to example\.com"):
        Client(base_url="http://example.com/v1")
    client = Client(
        api_key="sk-very-secret-value", base_url="https://api.reka.ai/v1", read_timeout=9
    )
    assert "sk-very-secret-value" not in repr(client)
    assert repr(client) == (
        "Client(provider=Reka, client=RekaClient(base_url='https://api.reka.ai/v1', "
        "model='from settings', api='openai', api_key='[secure]'))"
    )
    assert client.reka_client.read_timeout == 9


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.status(400), BadRequestError),
        (Fault.status(401), AuthenticationError),
        (Fault.status(429, retry_after=0), RateLimitError),
        (Fault.status(503), ServerError),
    ],
)
def test_error_statuses_are_typed_and_raised_by_create(
    kind: str, stream: bool, env: OfflineServer, fault: Fault, error: type[Exception]
) -> None:
    env.queue(fault)
    with pytest.raises(error) as info:
        create(kind, client_kw={"max_retries": 0}, messages=user("hi"), stream=stream)
    assert type(info.value) is error
    assert info.value.request_id == env.requests[0].request_id
    assert len(env.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_key_and_unknown_model(kind: str, env: OfflineServer) -> None:
    with pytest.raises(AuthenticationError, match="The API key is missing or wrong") as auth:
        create(kind, client_kw={"api_key": "wrong-key-12345"}, messages=user("hi"), stream=True)
    assert "wrong-key-12345" not in str(auth.value)
    with pytest.raises(NotFoundError) as missing:
        create(kind, model="reka-nope", messages=user("hi"), stream=True)
    assert missing.value.available_models == list(DEFAULT_MODELS)
    assert str(missing.value).startswith("Unknown model 'reka-nope'; the models this key can use")


@pytest.mark.parametrize("kind", KINDS)
def test_a_stream_that_breaks_raises_after_its_chunks(kind: str, env: OfflineServer) -> None:
    env.queue(Fault.break_after(2))
    seen: list[Any] = []

    def collect_sync() -> None:
        with Client() as client:
            for chunk in client.chat.completions.create(messages=user("hi"), stream=True):
                seen.append(chunk)

    async def collect_async() -> None:
        async with AsyncClient() as client:
            async for chunk in await client.chat.completions.create(
                messages=user("hi"), stream=True
            ):
                seen.append(chunk)

    with pytest.raises(StreamInterrupted) as info:
        collect_sync() if kind == "sync" else asyncio.run(collect_async())
    assert text_of(seen) == "This is "
    assert info.value.partial_text == "This is "
    assert info.value.reason == "the connection closed before the answer was complete"


def test_closing_a_stream_early_closes_the_connection(env: OfflineServer) -> None:
    env.token_delay = 0.01
    with Client() as client:
        stream = client.chat.completions.create(messages=user("hi"), stream=True)
        assert isinstance(stream, Stream)
        assert next(stream).choices[0].delta.content == "This "
        stream.close()
        assert list(stream) == []
        assert stream.completion is None and stream.text == "This "
        again = client.chat.completions.create(messages=user("hi"), stream=True)
        with again:
            assert text_of(list(again)).endswith("Prompt: hi")
        assert again.completion is not None and again.completion.finish_reason == "stop"


def test_closing_an_async_stream_early(env: OfflineServer) -> None:
    async def main() -> None:
        env.token_delay = 0.01
        async with AsyncClient() as client:
            stream = await client.chat.completions.create(messages=user("hi"), stream=True)
            assert isinstance(stream, AsyncStream)
            assert (await stream.__anext__()).choices[0].delta.content == "This "
            await stream.close()
            assert [c async for c in stream] == []
            assert stream.completion is None and stream.text == "This "

    asyncio.run(main())


# -- docs/compat.md --------------------------------------------------------------------------


def compat_doc_blocks() -> list[str]:
    """The Python blocks of the "Coming from OpenAI-style code" section of docs/compat.md."""
    text = (ROOT / "docs" / "compat.md").read_text(encoding="utf-8")
    section = text.split("## Coming from OpenAI-style code", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_docs_start_with_the_seed_program() -> None:
    blocks = compat_doc_blocks()
    assert len(blocks) == 3
    assert blocks[0] == SEED_PROGRAM


@pytest.mark.parametrize("number", [1, 2])
def test_docs_examples_run(
    number: int,
    env: OfflineServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, Any] = {"__name__": "__doc__"}
    exec(compile(compat_doc_blocks()[number], "compat.md", "exec"), namespace)
    if "client" in namespace:
        namespace["client"].close()
    out = capsys.readouterr().out
    if number == 1:
        answer = (
            f"{INTRO} Model: reka-flash. {CAT_LINE} Image 2: JPEG, 451×300 px, 35,042 bytes. "
            "Prompt: Which is bigger?"
        )
        assert out == f"{answer}\n131 37\n"
    else:
        assert out == f"{INTRO} Model: reka-flash. {CAT_LINE} Prompt: What can you see?\n"
