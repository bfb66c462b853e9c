"""The engine: many questions on one AsyncRekaClient, at most ``concurrency`` at a time.

``run_items`` is what ``describe_many`` and any other runner (a cluster integration) call:
give it the items, a client and a ``Limiter``; it returns ``Results`` in input order.

Each worker takes the next item, prepares its images in a worker thread (Pillow releases the
GIL), looks the question up in the cache, and only then waits for the limiter and asks. So at
most ``concurrency`` prepared images exist at once, whatever the number of items. Failures
stay with their item (retried first when worth it); an out-of-credits answer stops the run
at once, and so does cancelling it: in both cases the finished results travel on the
exception (``exc.results``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .._answer import SESSION_USAGE, Description
from .._async_client import AsyncRekaClient
from .._exceptions import (
    APIConnectionError,
    APIError,
    InvalidRequestError,
    RateLimitError,
    RekaError,
    StreamInterrupted,
)
from .._settings import Settings
from ..images import Media, prepare_images
from ..protocol.costs import Budget, first_estimate
from ..protocol.errors import is_retryable, rate_limit_pause, retry_delay
from ..protocol.messages import check_params, user_message
from ..protocol.stream import Completion
from .cache import AnswerCache, CachedAnswer, cache_key
from .limiter import Limiter
from .results import THUMBNAIL, Result, Results

__all__ = ["MAX_RATE_LIMIT_WAITS", "Item", "run_items"]

#: 429s an item may wait out (each pausing every worker) on top of its ``retries``.
MAX_RATE_LIMIT_WAITS = 8


@dataclass(frozen=True)
class Item:
    """One question: ``image`` is anything ``describe()`` takes (a list = several images in
    one question), ``source`` its short name, ``prompt`` the text asked."""

    index: int
    image: Any
    source: str
    prompt: str | BaseException


async def run_items(
    items: Sequence[Item],
    client: AsyncRekaClient,
    *,
    limiter: Limiter,
    model: str | None = None,
    concurrency: int = 8,
    retries: int = 2,
    cache: AnswerCache | None = None,
    stream: bool = False,
    on_result: Callable[[Result], None] | None = None,
    params: Mapping[str, Any] | None = None,
    max_cost: Decimal | None = None,
) -> Results:
    """Ask every item's question; return ``Results`` in input order.

    With ``max_cost`` (US dollars) no request starts once the total could pass it (see
    ``Budget``); the run then ends early and ``Results.stopped`` says why. It needs the
    model's prices, from the client's model list.

    Per-item failures are recorded on their ``Result``. A ``RateLimitError`` about credits,
    a cancellation or an interrupt stops every worker at once and is re-raised with the
    finished ``Results`` as ``exc.results``.
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be 1 or more, not {concurrency}")
    if retries < 0:
        raise ValueError(f"retries must be 0 or more, not {retries}")
    params = check_params(params or {}, client.settings(model).api)
    settings = client.settings(model)  # the key is checked here, before anything is sent
    settings.require_key()
    info = await client.model_info(settings.model)  # prices: each answer's cost
    budget: Budget | None = None
    if max_cost is not None:
        if info is None or info.input_price is None or info.output_price is None:
            raise InvalidRequestError(
                f"max_cost needs the prices of {settings.model!r}, and the server's model list "
                "does not give them: run without max_cost, or list the models first "
                "(client.models()) where the server states prices"
            )
        budget = Budget(max_cost)
    changed = asyncio.Condition()
    done: list[Result] = []
    queue = iter(items)

    def finish(result: Result) -> None:
        done.append(result)
        if on_result is not None:
            on_result(result)

    async def worker() -> None:
        for item in queue:  # shared iterator: each item is taken by exactly one worker
            outcome = await _one(item)
            if outcome is None:  # the budget stopped the run: nothing more starts
                return
            result, answer = outcome
            finish(result)  # shown first: an interrupt never leaves an answer stored unshown
            if answer is not None and cache is not None:
                await asyncio.to_thread(cache.put, *answer)

    async def _reserve(item: Item, images: int) -> Decimal | None:
        """Wait until the budget lets this question start; None once it has stopped."""
        assert budget is not None and info is not None
        first = first_estimate(info, str(item.prompt), images, params.get("max_tokens"))
        async with changed:
            while True:
                held = budget.start(first)
                if held is not None or budget.stopped is not None:
                    return held
                await changed.wait()

    async def _release(held: Decimal | None, cost: Decimal | None, answered: bool) -> None:
        if budget is None or held is None:
            return
        async with changed:
            budget.finish(held, cost, answered)
            changed.notify_all()

    async def _one(item: Item) -> tuple[Result, tuple[str, CachedAnswer] | None] | None:
        """The item's result, and the answer to store (key, answer) when there is one."""
        started = time.monotonic()
        try:
            images, message, key, thumb = await asyncio.to_thread(
                _prepare, item, settings, cache is not None, params
            )
        except RekaError as exc:  # a bad input: nothing is sent for it
            return Result(item.index, item.image, item.source, error=exc), None
        count = len(images)
        del images  # the message holds what is sent; nothing else keeps the bytes
        if cache is not None and key is not None:
            hit = await asyncio.to_thread(cache.get, key)
            if hit is not None:
                seconds = time.monotonic() - started
                description = hit.description(str(item.prompt))
                return Result(
                    item.index, item.image, item.source, description, None, seconds, thumb
                ), None
        held = None
        if budget is not None:
            held = await _reserve(item, count)
            if held is None:
                return None
        try:
            completion = await _ask(
                client, limiter, message, settings.model, retries, stream, params
            )
        except RateLimitError as exc:
            await _release(held, None, False)
            if exc.out_of_credits:
                raise  # stops every worker: waiting does not bring credits back
            error: RekaError = exc
        except RekaError as exc:
            await _release(held, None, False)
            error = exc
        except BaseException:
            await _release(held, None, False)
            raise
        else:
            seconds = time.monotonic() - started
            description = Description.from_completion(
                completion, elapsed=seconds, prompt=str(item.prompt), model_info=info
            )
            if description.model is None:
                description.model = settings.model
            await _release(held, description.cost, True)
            SESSION_USAGE.add(settings.model, description.usage, description.cost)
            answer = None if key is None else (key, _to_cache(completion, seconds))
            result = Result(item.index, item.image, item.source, description, None, seconds, thumb)
            return result, answer
        seconds = time.monotonic() - started
        return Result(item.index, item.image, item.source, None, error, seconds, thumb), None

    tasks = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)) or 0)]
    try:
        if tasks:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        exc.results = Results(done, total=len(items))  # type: ignore[attr-defined]
        raise
    return Results(done, total=len(items), stopped=None if budget is None else budget.stopped)


def _prepare(
    item: Item, settings: Settings, keyed: bool, params: Mapping[str, Any]
) -> tuple[list[Media], dict, str | None, tuple[bytes, str] | None]:
    """In a worker thread: the images, the user message, the cache key and a thumbnail."""
    if isinstance(item.prompt, BaseException):
        raise item.prompt
    images = prepare_images(item.image)
    message = user_message(item.prompt, images, settings.api)
    key = None
    if keyed:
        key = cache_key(
            base_url=settings.base_url,
            api=settings.api,
            model=settings.model,
            prompt=item.prompt,
            images=[(im.data, im.url) for im in images],
            params=params,
        )
    try:
        thumb = images[0].thumbnail(THUMBNAIL) if images else None
    except RekaError:  # a table without this thumbnail is still a table
        thumb = None
    return images, message, key, thumb


async def _ask(
    client: AsyncRekaClient,
    limiter: Limiter,
    message: dict,
    model: str,
    retries: int,
    stream: bool,
    params: Mapping[str, Any],
) -> Completion:
    """One question with retries; every attempt waits for the limiter first."""
    attempt = waits = 0
    while True:
        await limiter.acquire()
        try:
            if stream:
                async with client.stream([message], model=model, retries=0, **params) as chat:
                    await chat.open()
                    pause = rate_limit_pause(chat.headers)
                    if pause is not None:  # the last request the limit allows: hold everyone
                        await limiter.pause(pause)
                    async for _ in chat:
                        pass
                assert chat.completion is not None
                return chat.completion
            return await client.complete([message], model=model, retries=0, **params)
        except RateLimitError as exc:
            if exc.out_of_credits:
                raise
            wait = exc.retry_after if exc.retry_after is not None else retry_delay(waits)
            await limiter.pause(wait)
            waits += 1
            if waits > MAX_RATE_LIMIT_WAITS:
                raise
            continue
        except (APIConnectionError, StreamInterrupted) as exc:
            error: RekaError = exc
        except APIError as exc:
            if not is_retryable(exc):
                raise
            error = exc
        if attempt >= retries:
            raise error
        await asyncio.sleep(retry_delay(attempt, getattr(error, "retry_after", None)))
        attempt += 1


def _to_cache(completion: Completion, seconds: float) -> CachedAnswer:
    usage = completion.usage
    return CachedAnswer(
        text=completion.text,
        model=completion.model,
        finish_reason=completion.finish_reason,
        input_tokens=None if usage is None else usage.input_tokens,
        output_tokens=None if usage is None else usage.output_tokens,
        request_id=completion.request_id,
        seconds=seconds,
        stored_at=time.time(),
    )
