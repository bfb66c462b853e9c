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

from .._exceptions import ImageError
from ..answer import (
    DEFAULT_PROMPT,
    SESSION_USAGE,
    AnswerStore,
    Description,
    Presenter,
    answer_store,
    default_presenter,
)
from ..protocol.messages import check_params, user_message
from ..protocol.models import Model
from ..protocol.stream import Completion

if TYPE_CHECKING:
    from ..images import Media
    from .aio import AsyncRekaClient
    from .sync import RekaClient

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
    keep_metadata: bool = False,
) -> tuple[list[Media], str, dict, list[dict], str]:
    from ..images import prepare_images  # Pillow: imported when a first image is prepared

    settings = client.settings(model)  # first: its limits are checked before images are read
    images = (
        prepare_images(
            image,
            keep_metadata=keep_metadata,
            max_images=settings.max_images,
            max_request_bytes=settings.max_request_bytes,
        )
        if image is not None
        else []
    )
    text = DEFAULT_PROMPT if prompt is None else prompt
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
    keep_metadata: bool = False,
    cache: bool = False,
    **params: Any,
) -> Description:
    """describe() on an explicit client; everything is checked before anything is sent.

    ``cache=True`` answers from the answer cache when the same question was asked before
    (the answer says ``cached``), and stores a new answer there.
    """
    images, text, message, messages, model_name = _prepare(
        client, image, prompt, model, system, history, keep_metadata
    )
    info = client.model_info(model_name)
    presenter = _presenter(show)
    store, key, hit = _lookup(cache, client, model_name, text, images, messages, params)
    if hit is not None:
        return _replay(hit, presenter, text, images, message, model_name)
    started = time.monotonic()
    if stream:
        chat = client.stream(messages, model=model_name, **params)
        if presenter:
            presenter.start(model=model_name, prompt=text, images=images)
        try:
            for delta in chat:
                if presenter:
                    presenter.update(delta)
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
    description = _finish(completion, presenter, started, text, images, message, model_name, info)
    _keep(store, key, description)
    return description


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
    keep_metadata: bool = False,
    cache: bool = False,
    **params: Any,
) -> Description:
    """adescribe() on an explicit client; the mirror of run_describe.

    ``cache=True`` answers from the answer cache when the same question was asked before
    (the answer says ``cached``), and stores a new answer there.
    """
    images, text, message, messages, model_name = _prepare(
        client, image, prompt, model, system, history, keep_metadata
    )
    info = await client.model_info(model_name)
    presenter = _presenter(show)
    store, key, hit = _lookup(cache, client, model_name, text, images, messages, params)
    if hit is not None:
        return _replay(hit, presenter, text, images, message, model_name)
    started = time.monotonic()
    if stream:
        chat = client.stream(messages, model=model_name, **params)
        if presenter:
            presenter.start(model=model_name, prompt=text, images=images)
        try:
            async for delta in chat:
                if presenter:
                    presenter.update(delta)
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
    description = _finish(completion, presenter, started, text, images, message, model_name, info)
    _keep(store, key, description)
    return description


def _lookup(
    cache: bool,
    client: RekaClient | AsyncRekaClient,
    model: str,
    prompt: str,
    images: list[Media],
    messages: list[dict],
    params: Mapping[str, Any],
) -> tuple[AnswerStore | None, str | None, Description | None]:
    """With ``cache``: the store, the question's key and its stored answer (if any)."""
    store = answer_store() if cache else None
    if store is None:
        return None, None, None
    settings = client.settings(model)
    question = {
        "base_url": settings.base_url,
        "api": settings.api,
        "model": model,
        "prompt": prompt,
        "images": images,
        "params": check_params(params, settings.api),
        "context": messages[:-1],  # a system message and earlier turns change the answer
    }
    try:
        key, hit = store.lookup(question)
    except BaseException:
        store.close()
        raise
    if hit is not None:
        store.close()
        return None, None, hit
    return store, key, None


def _keep(store: AnswerStore | None, key: str | None, description: Description) -> None:
    if store is not None and key is not None:
        try:
            store.store(key, description)
        finally:
            store.close()


def _replay(
    hit: Description,
    presenter: Presenter | None,
    prompt: str,
    images: list[Media],
    message: dict,
    model: str,
) -> Description:
    """A cached answer, shown like a new one (its footer says ``cached``)."""
    description = Description(
        hit.text,
        model=hit.model or model,
        usage=hit.usage,
        finish_reason=hit.finish_reason,
        request_id=hit.request_id,
        elapsed=hit.elapsed,
        prompt=prompt,
        images=images,
        message=message,
        cached=True,
    )
    if presenter:
        presenter.start(model=description.model or model, prompt=prompt, images=images)
        presenter.finish(description)
    return description


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
