"""describe(): ask about images and show the answer as it arrives; the Description it returns."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._exceptions import ImageError
from ._messages import user_message
from ._stream import Completion, Usage
from .images import PreparedImage, prepare_images

if TYPE_CHECKING:
    from ._async_client import AsyncRekaClient
    from ._client import RekaClient

__all__ = ["DEFAULT_PROMPT", "Description", "Presenter", "adescribe", "describe"]

DEFAULT_PROMPT = "What can you see in the image?"


class Description(str):
    """An answer: it is the text (a str), and carries what the server said about it."""

    model: str | None
    usage: Usage | None
    finish_reason: str | None
    request_id: str | None
    elapsed: float | None
    prompt: str
    images: tuple[PreparedImage, ...]
    message: dict[str, Any]

    def __new__(
        cls,
        text: str,
        *,
        model: str | None = None,
        usage: Usage | None = None,
        finish_reason: str | None = None,
        request_id: str | None = None,
        elapsed: float | None = None,
        prompt: str = "",
        images: Sequence[PreparedImage] = (),
        message: Mapping[str, Any] | None = None,
    ) -> Description:
        self = super().__new__(cls, text)
        self.model = model
        self.usage = usage
        self.finish_reason = finish_reason
        self.request_id = request_id
        self.elapsed = elapsed
        self.prompt = prompt
        self.images = tuple(images)
        self.message = dict(message or {})  # the user turn sent, for follow-up questions
        return self

    @classmethod
    def from_completion(cls, completion: Completion, **extra: Any) -> Description:
        return cls(
            completion.text,
            model=completion.model,
            usage=completion.usage,
            finish_reason=completion.finish_reason,
            request_id=completion.request_id,
            **extra,
        )

    @property
    def text(self) -> str:
        """The answer as a plain str."""
        return str.__str__(self)

    def __repr__(self) -> str:
        text = self.text if len(self) <= 60 else self.text[:57] + "..."
        return (
            f"Description({text!r}, model={self.model!r}, finish_reason={self.finish_reason!r}, "
            f"request_id={self.request_id!r})"
        )

    def _repr_markdown_(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)

    def footer(self) -> str:
        """One line: model, tokens in/out, seconds."""
        parts = [self.model or "unknown model"]
        if self.usage is not None:
            inp = "?" if self.usage.input_tokens is None else self.usage.input_tokens
            out = "?" if self.usage.output_tokens is None else self.usage.output_tokens
            parts.append(f"{inp} tokens in, {out} out")
        if self.elapsed is not None:
            parts.append(f"{self.elapsed:.1f} s")
        if self.finish_reason not in (None, "stop"):
            parts.append(f"finish: {self.finish_reason}")
        return " · ".join(parts)


class Presenter(Protocol):
    """Shows an answer while it arrives (the terminal, or a notebook display)."""

    def start(self, *, model: str, prompt: str, images: Sequence[PreparedImage]) -> None: ...

    def update(self, delta: str, text: str) -> None: ...

    def finish(self, description: Description) -> None: ...

    def fail(self, error: BaseException, partial_text: str) -> None: ...


class StdoutPresenter:
    """Streams text to stdout as it arrives: terminals, scripts and plain IPython."""

    def __init__(self, stream: Any = None) -> None:
        self._out = stream
        self._wrote = False

    def _write(self, text: str) -> None:
        out = self._out or sys.stdout
        out.write(text)
        out.flush()

    def start(self, *, model: str, prompt: str, images: Sequence[PreparedImage]) -> None:
        self._wrote = False

    def update(self, delta: str, text: str) -> None:
        self._write(delta)
        self._wrote = True

    def finish(self, description: Description) -> None:
        if not self._wrote and description.text:
            self._write(description.text)
            self._wrote = True
        if self._wrote:
            self._write("\n")

    def fail(self, error: BaseException, partial_text: str) -> None:
        if self._wrote:
            self._write(" [interrupted]\n" if isinstance(error, KeyboardInterrupt) else " […]\n")


def default_presenter(raw: bool = False) -> Presenter:
    """The notebook display inside a notebook (plain text with ``raw``), else stdout."""
    if "ipykernel" in sys.modules:
        from . import display

        if display.can_update_displays():
            return display.NotebookPresenter(raw=raw)
    return StdoutPresenter()


_default_client: RekaClient | None = None
_default_lock = threading.Lock()


def default_client() -> RekaClient:
    """The process-wide client behind describe(); its settings are read at each call."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            from ._client import RekaClient

            _default_client = RekaClient()
        return _default_client


def require_image(image: Any) -> None:
    """describe() is about images: None (allowed inside, for text-only magics) is an error here."""
    if image is None:
        raise ImageError(
            "describe() needs an image: pass a path, URL, bytes, an open binary file, a PIL image, "
            "a numpy array or a matplotlib figure, or a list of them"
        )


def _prepare(
    client: RekaClient | AsyncRekaClient,
    image: Any,
    prompt: str | None,
    model: str | None,
    system: str | None,
    history: Sequence[Mapping[str, Any]],
) -> tuple[list[PreparedImage], str, dict, list[dict], str]:
    images = prepare_images(image) if image is not None else []
    text = DEFAULT_PROMPT if prompt is None else prompt
    settings = client.settings(model)
    message = user_message(text, images, settings.api)
    messages: list[dict] = [{"role": "system", "content": system}] if system else []
    messages += [dict(m) for m in history]
    messages.append(message)
    return images, text, message, messages, settings.model


def run_describe(
    client: RekaClient,
    image: Any,
    prompt: str | None = None,
    *,
    model: str | None = None,
    stream: bool = True,
    show: bool | Presenter = True,
    system: str | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    **params: Any,
) -> Description:
    """describe() on an explicit client; everything is checked before anything is sent."""
    images, text, message, messages, model_name = _prepare(
        client, image, prompt, model, system, history
    )
    presenter = _presenter(show)
    started = time.monotonic()
    if stream:
        chat = client.stream(messages, model=model_name, **params)
        if presenter:
            presenter.start(model=model_name, prompt=text, images=images)
        try:
            for delta in chat:
                if presenter:
                    presenter.update(delta, chat.text)
        except BaseException as exc:
            if presenter:
                presenter.fail(exc, chat.text)
            raise
        assert chat.completion is not None
        completion = chat.completion
    else:
        if presenter:
            presenter.start(model=model_name, prompt=text, images=images)
        try:
            completion = client.complete(messages, model=model_name, **params)
        except BaseException as exc:
            if presenter:
                presenter.fail(exc, "")
            raise
    return _finish(completion, presenter, started, text, images, message, model_name)


async def run_adescribe(
    client: AsyncRekaClient,
    image: Any,
    prompt: str | None = None,
    *,
    model: str | None = None,
    stream: bool = True,
    show: bool | Presenter = True,
    system: str | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    **params: Any,
) -> Description:
    """adescribe() on an explicit client; the mirror of run_describe."""
    images, text, message, messages, model_name = _prepare(
        client, image, prompt, model, system, history
    )
    presenter = _presenter(show)
    started = time.monotonic()
    if stream:
        chat = client.stream(messages, model=model_name, **params)
        if presenter:
            presenter.start(model=model_name, prompt=text, images=images)
        try:
            async for delta in chat:
                if presenter:
                    presenter.update(delta, chat.text)
        except BaseException as exc:
            if presenter:
                presenter.fail(exc, chat.text)
            raise
        assert chat.completion is not None
        completion = chat.completion
    else:
        if presenter:
            presenter.start(model=model_name, prompt=text, images=images)
        try:
            completion = await client.complete(messages, model=model_name, **params)
        except BaseException as exc:
            if presenter:
                presenter.fail(exc, "")
            raise
    return _finish(completion, presenter, started, text, images, message, model_name)


def _presenter(show: bool | Presenter) -> Presenter | None:
    if show is True:
        return default_presenter()
    if show is False or show is None:
        return None
    return show


def _finish(
    completion: Completion,
    presenter: Presenter | None,
    started: float,
    prompt: str,
    images: list[PreparedImage],
    message: dict,
    model: str,
) -> Description:
    description = Description.from_completion(
        completion,
        elapsed=time.monotonic() - started,
        prompt=prompt,
        images=images,
        message=message,
    )
    if description.model is None:
        description.model = model
    if presenter:
        presenter.finish(description)
    return description


def describe(
    image: Any,
    prompt: str = DEFAULT_PROMPT,
    *,
    model: str | None = None,
    stream: bool = True,
    show: bool = True,
    client: RekaClient | None = None,
    **params: Any,
) -> Description:
    """Ask Reka about one image (or a list of them) and return the answer.

    ``image`` is a path, URL, bytes, open file, PIL image, numpy array, matplotlib figure or
    a list of these. The answer streams into the notebook (or stdout) as it is written;
    ``show=False`` returns quietly. Params: max_tokens, temperature, top_p, stop, seed.
    """
    require_image(image)
    return run_describe(
        client or default_client(), image, prompt, model=model, stream=stream, show=show, **params
    )


async def adescribe(
    image: Any,
    prompt: str = DEFAULT_PROMPT,
    *,
    model: str | None = None,
    stream: bool = True,
    show: bool = True,
    client: AsyncRekaClient | None = None,
    **params: Any,
) -> Description:
    """``await adescribe(...)``: describe() for a running event loop, such as a notebook's."""
    require_image(image)
    if client is not None:
        return await run_adescribe(
            client, image, prompt, model=model, stream=stream, show=show, **params
        )
    from ._async_client import AsyncRekaClient

    async with AsyncRekaClient() as own:  # per call: an async pool belongs to one event loop
        return await run_adescribe(
            own, image, prompt, model=model, stream=stream, show=show, **params
        )
