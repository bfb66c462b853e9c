"""Request bodies and parameter checks: bad input is refused before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from reka_nb import InvalidRequestError
from reka_nb.images import prepare_image
from reka_nb.protocol.messages import build_body, check_params, user_message

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"


def test_openai_body_images_first() -> None:
    image = prepare_image(CAT)
    body = build_body(
        [user_message("What is it?", [image])],
        model="reka-flash",
        stream=True,
        params={"max_tokens": 10, "temperature": 0.4, "top_p": None},
    )
    content = body["messages"][0]["content"]
    assert content[0] == {"type": "image_url", "image_url": {"url": image.to_url()}}
    assert content[1] == {"type": "text", "text": "What is it?"}
    assert body["stream"] is True and body["max_tokens"] == 10 and "top_p" not in body


def test_native_body_plain_string_url() -> None:
    msgs = [
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
        }
    ]
    body = build_body(msgs, model="reka-core", stream=False, api="native")
    assert body["messages"][0]["content"][0] == {
        "type": "image_url",
        "image_url": "https://x/y.png",
    }


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"max_tokens": 0}, "max_tokens must be a positive whole number, not 0"),
        ({"max_tokens": True}, "max_tokens must be a positive whole number, not True"),
        ({"max_tokens": 1.5}, "max_tokens must be a positive whole number, not 1.5"),
        ({"temperature": 3}, r"temperature must be a number in \[0.0, 2.0\], not 3"),
        ({"temperature": float("nan")}, "temperature must be a number"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_p": 0}, r"top_p must be a number in \(0.0, 1.0\], not 0"),
        ({"seed": "x"}, "seed must be a whole number, not 'x'"),
        ({"stop": ""}, "stop must be a non-empty string or a list of them"),
        ({"stop": [1]}, "stop must be a non-empty string or a list of them"),
        ({"stop": []}, "stop must be a non-empty string or a list of them"),
        ({"colour": "red"}, "unknown parameter 'colour'"),
        ({"top_k": 5}, "top_k is native-only"),
    ],
)
def test_bad_params(params: dict, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        check_params(params)


def test_native_only_params_pass_on_native() -> None:
    assert check_params({"top_k": 5, "use_search_engine": False}, "native") == {
        "top_k": 5,
        "use_search_engine": False,
    }


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "messages is empty"),
        (["hi"], "message 1 must be a dict, not str"),
        ([{"role": "robot", "content": "x"}], "message 1 has role 'robot'"),
        (
            [{"role": "user", "content": []}],
            "message 1 content must be a string or a non-empty list",
        ),
        ([{"role": "user", "content": [{"type": "audio"}]}], "neither"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "neither"),
    ],
)
def test_bad_messages(messages: list, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        build_body(messages, model="reka-flash", stream=True)


def test_bad_prompt_and_model() -> None:
    with pytest.raises(InvalidRequestError, match="the prompt must be a string, not int"):
        user_message(5, [])  # type: ignore[arg-type]
    with pytest.raises(InvalidRequestError, match="the prompt is empty and there is no image"):
        user_message("   ", [])
    with pytest.raises(InvalidRequestError, match="the model must be a non-empty string"):
        build_body([{"role": "user", "content": "x"}], model="", stream=True)
