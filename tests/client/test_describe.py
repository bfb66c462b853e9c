"""describe() and adescribe() against the offline server: every input kind, output, errors."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import pytest

import reka_nb
from reka_nb import (
    AsyncRekaClient,
    Description,
    ImageError,
    InvalidRequestError,
    MissingAPIKeyError,
    RekaClient,
    StreamInterrupted,
    adescribe,
    describe,
)
from reka_nb.testing import Fault, OfflineServer

CAT = Path(__file__).resolve().parents[2] / "docs" / "images" / "cat.jpeg"
CAT_LINE = "Image 1: JPEG, 451×300 px, 35,042 bytes."


def image_urls(server: OfflineServer) -> list[str]:
    parts = server.requests[-1].body["messages"][-1]["content"]
    out = []
    for p in parts:
        if p["type"] == "image_url":
            url = p["image_url"]
            out.append(url["url"] if isinstance(url, dict) else url)
    return out


def test_describe_streams_to_stdout_and_returns_description(
    env: OfflineServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = describe(CAT)
    out = capsys.readouterr().out
    assert isinstance(result, Description) and isinstance(result, str)
    assert out == result + "\n"
    assert CAT_LINE in result
    assert "Prompt: What can you see in the image?" in result
    assert result.finish_reason == "stop" and result.model == "reka-flash"
    assert result.request_id == env.requests[-1].request_id
    assert result.usage.output_tokens > 0 and result.elapsed > 0
    assert result._repr_markdown_() == result.text
    assert repr(result).startswith("Description(\"This is reka_nb's offline server")
    assert image_urls(env) == [
        "data:image/jpeg;base64," + base64.b64encode(CAT.read_bytes()).decode()
    ]


def test_show_false_is_quiet_and_no_stream_gives_same_text(
    env: OfflineServer, capsys: pytest.CaptureFixture[str]
) -> None:
    quiet = describe(str(CAT), "Colour?", show=False)
    whole = describe(CAT, "Colour?", stream=False, show=False)
    assert capsys.readouterr().out == ""
    assert quiet == whole
    assert env.requests[-1].body["stream"] is False


def test_params_and_model(env: OfflineServer) -> None:
    result = describe(
        CAT,
        model="reka-core",
        show=False,
        max_tokens=4,
        temperature=0.1,
        top_p=0.5,
        stop=["zzz"],
        seed=3,
    )
    body = env.requests[-1].body
    assert (
        body["model"],
        body["max_tokens"],
        body["temperature"],
        body["top_p"],
        body["seed"],
    ) == ("reka-core", 4, 0.1, 0.5, 3)
    assert body["stop"] == ["zzz"]
    assert result.finish_reason == "length" and len(result.split()) == 4


def numpy_image() -> Any:
    np = pytest.importorskip("numpy")
    return np.zeros((20, 30, 3), dtype=np.uint8)


def figure() -> Any:
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1), dpi=50)
    fig.add_subplot().plot([1, 2, 3])
    return fig


def pil_image() -> Any:
    from PIL import Image

    return Image.new("RGB", (40, 20), "red")


@pytest.mark.parametrize(
    ("make", "expect"),
    [
        (lambda: CAT, CAT_LINE),
        (lambda: str(CAT), CAT_LINE),
        (lambda: CAT.read_bytes(), CAT_LINE),
        (lambda: open(CAT, "rb"), CAT_LINE),  # noqa: SIM115 - the seed's own call
        (lambda: io.BytesIO(CAT.read_bytes()), CAT_LINE),
        (lambda: "data:image/jpeg;base64," + base64.b64encode(CAT.read_bytes()).decode(), CAT_LINE),
        (lambda: "https://example.com/cat.jpeg", "Image 1: a URL, not fetched offline"),
        (pil_image, "Image 1: PNG, 40×20 px"),
        (numpy_image, "Image 1: PNG, 30×20 px"),
        (figure, "Image 1: PNG"),
    ],
    ids=["path", "str", "bytes", "file", "bytesio", "data-url", "url", "pil", "numpy", "figure"],
)
def test_every_input_kind(env: OfflineServer, make: Any, expect: str) -> None:
    image = make()
    try:
        result = describe(image, show=False)
    finally:
        if hasattr(image, "close"):
            image.close()
    assert expect in result


def test_several_images(env: OfflineServer) -> None:
    result = describe([CAT, pil_image()], "Compare", show=False)
    assert CAT_LINE in result and "Image 2: PNG, 40×20 px" in result
    assert len(image_urls(env)) == 2
    parts = env.requests[-1].body["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        ("no/such/file.jpg", ImageError, "no/such/file.jpg"),
        (b"", ImageError, "empty"),
        (b"not an image at all", ImageError, "not an image"),
        (42, ImageError, "unsupported type int"),
        ([], ImageError, "no images given: the list is empty"),
        ("ftp://example.com/cat.jpg", ImageError, "ftp"),
    ],
)
def test_bad_input_sends_nothing(env: OfflineServer, image: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        describe(image, show=False)
    assert env.requests == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"temperature": 5}, "temperature must be a number"),
        ({"colour": "blue"}, "unknown parameter 'colour'"),
        ({"prompt": 3}, "the prompt must be a string"),
        ({"model": ""}, "the model must be a non-empty string"),
    ],
)
def test_bad_request_sends_nothing(env: OfflineServer, kw: dict, match: str) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        describe(CAT, show=False, **kw)
    assert env.requests == []


def test_missing_key(server: OfflineServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REKA_BASE_URL", server.base_url)
    with pytest.raises(MissingAPIKeyError, match="REKA_API_KEY"):
        describe(CAT, show=False)
    assert server.requests == []


def test_break_mid_stream_shows_partial_then_raises(
    env: OfflineServer, capsys: pytest.CaptureFixture[str]
) -> None:
    env.queue(Fault.break_after(6))
    with pytest.raises(StreamInterrupted) as info:
        describe(CAT)
    out = capsys.readouterr().out
    assert info.value.partial_text
    assert out == info.value.partial_text + " […]\n"


def test_keyboard_interrupt_closes_and_next_call_works(env: OfflineServer) -> None:
    env.token_delay = 0.02
    seen: list[Any] = []

    class Stopper:
        def start(self, **kw: Any) -> None:
            pass

        text = ""

        def update(self, delta: str) -> None:
            self.text += delta
            if len(self.text.split()) >= 3:
                raise KeyboardInterrupt

        def finish(self, description: Description) -> None:
            seen.append(description)

        def fail(self, error: BaseException, partial_text: str) -> None:
            seen.append((type(error), partial_text))

    with pytest.raises(KeyboardInterrupt):
        describe(CAT, show=Stopper())  # type: ignore[arg-type]
    assert seen == [(KeyboardInterrupt, "This is reka_nb's ")]
    env.token_delay = 0.0
    assert CAT_LINE in describe(CAT, show=False)


def test_client_describe_and_native_api(server: OfflineServer) -> None:
    with RekaClient(base_url=server.base_url, api_key=server.api_key, api="native") as client:
        native = client.describe(CAT, show=False)
    assert server.requests[-1].path == "/v1/chat"
    with RekaClient(base_url=server.base_url, api_key=server.api_key) as client:
        assert client.describe(CAT, show=False) == native


def test_adescribe_in_a_running_loop(env: OfflineServer) -> None:
    async def main() -> tuple[str, str]:
        own = await adescribe(CAT, show=False)
        async with AsyncRekaClient() as client:
            explicit = await client.describe(CAT, show=False)
            passed = await adescribe(CAT, show=False, client=client)
        assert explicit == passed
        return own, explicit

    own, explicit = asyncio.run(main())
    assert own == explicit and CAT_LINE in own


def test_offline_switch_needs_no_key(capsys: pytest.CaptureFixture[str]) -> None:
    reka_nb.use_offline_server()
    assert CAT_LINE in describe(CAT, show=False)
