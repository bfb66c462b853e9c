"""One question on an explicit client: prepare the images, send, show the answer, return it.

Before sending, the model's metadata is looked up (``model_info``: kept by the client for a few
minutes), so an input the model does not take is refused unsent, and the answer's cost is known.
Every answer is added to the session's totals (``SESSION_USAGE``).

``run_describe`` / ``run_adescribe`` are the one code path to Reka behind ``describe()``, the
clients' ``describe`` methods, the magics and the upload panel. They take the client as a
parameter, so they sit below the clients and import none.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._answer import DEFAULT_PROMPT, SESSION_USAGE, Description, Presenter, default_presenter
from ._exceptions import ImageError
from .images import Media, prepare_images
from .protocol.messages import user_message
from .protocol.models import Model
from .protocol.stream import Completion

if TYPE_CHECKING:
    from ._async_client import AsyncRekaClient
    from ._client import RekaClient

__all__ = ["require_image", "run_adescribe", "run_describe"]


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
) -> tuple[list[Media], str, dict, list[dict], str]:
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
    info = client.model_info(model_name)
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
    return _finish(completion, presenter, started, text, images, message, model_name, info)


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
    info = await client.model_info(model_name)
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
    return _finish(completion, presenter, started, text, images, message, model_name, info)


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
    images: list[Media],
    message: dict,
    model: str,
    info: Model | None,
) -> Description:
    description = Description.from_completion(
        completion,
        elapsed=time.monotonic() - started,
        prompt=prompt,
        images=images,
        message=message,
        model_info=info,
    )
    if description.model is None:
        description.model = model
    SESSION_USAGE.add(model, description.usage, description.cost)
    if presenter:
        presenter.finish(description)
    return description
