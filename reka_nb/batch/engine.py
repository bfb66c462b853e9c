"""The engine: many questions on one AsyncRekaClient, at most ``concurrency`` at a time.

``run_items`` is what ``describe_many`` and any other runner (a cluster integration) call:
give it the items, a client and a ``Limiter``; it returns ``Results`` in input order.

Each row is a ``Question`` (``client/question.py``), the same as ``describe()`` asks: its
settings, limits, parameters and the model's inputs are checked the same way, so a row is
refused exactly where describe() would refuse it, with nothing sent; a model that takes no
images refuses the whole run before anything is read. Each worker takes the next item,
prepares its question in a worker thread (Pillow releases the GIL), looks it up in the cache,
and only then waits for the limiter and asks. So at
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
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    APIConnectionError,
    APIError,
    InvalidRequestError,
    RateLimitError,
    RekaError,
    StreamInterrupted,
)
from ..cache import AnswerCache
from ..client.aio import AsyncRekaClient
from ..client.question import Question, refuse_images
from ..client.settings import Settings
from ..protocol.costs import Budget, first_estimate
from ..protocol.errors import is_retryable, rate_limit_pause, retry_delay
from ..protocol.messages import check_params
from ..protocol.models import ModelList
from ..protocol.stream import Completion
from .limiter import Limiter
from .options import check_run_options
from .results import THUMBNAIL, Result, Results

if TYPE_CHECKING:
    from ..protocol.schema import Schema

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
    keep_metadata: bool = False,
    schema: Schema | None = None,
    schema_retries: int = 1,
) -> Results:
    """Ask every item's question; return ``Results`` in input order.

    With ``max_cost`` (US dollars) no request starts once the total could pass it (see
    ``Budget``); the run then ends early and ``Results.stopped`` says why. It needs the
    model's prices, from the client's model list.

    With ``schema`` (a `Schema`) each answer is structured: checked, repaired once in its
    conversation (``schema_retries``), and what still fails is the row's `SchemaError`; the
    ``Results`` know the schema (a column per field).

    Per-item failures are recorded on their ``Result``. A ``RateLimitError`` about credits,
    a cancellation or an interrupt stops every worker at once and is re-raised with the
    finished ``Results`` as ``exc.results``.
    """
    check_run_options(concurrency=concurrency, retries=retries)
    settings = client.settings(model)  # once for the run: every row's question shares them
    params = check_params(params or {}, settings.api)  # before anything is read
    settings.require_key()  # the key is checked here, before anything is sent
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
    models = client.known_models(settings)
    if models is not None and items:
        refuse_images(settings, models)  # every row would be refused alike: refuse the run
    changed = asyncio.Condition()
    probe: list[asyncio.Event] = []  # the first structured question, asked alone (see _one)
    done: list[Result] = []
    queue = iter(items)

    def finish(result: Result) -> None:
        done.append(result)
        if on_result is not None:
            on_result(result)

    async def worker() -> None:
        for item in queue:  # shared iterator: each item is taken by exactly one worker
            result = await _one(item)
            if result is None:  # the budget stopped the run: nothing more starts
                return
            finish(result)

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

    async def _one(item: Item) -> Result | None:
        started = time.monotonic()
        try:
            question, thumb = await asyncio.to_thread(
                _prepare, item, settings, params, keep_metadata, models, schema, schema_retries
            )
        except RekaError as exc:  # a bad input: nothing is sent for it
            return Result(item.index, item.image, item.source, error=exc)
        question.info = info
        hit = await asyncio.to_thread(question.cached, cache, close=False)
        count = len(question.images)
        question.images = []  # the message holds what is sent; nothing else keeps the bytes
        if hit is not None:
            seconds = time.monotonic() - started
            hit.images, hit.message = (), {}
            return Result(item.index, item.image, item.source, hit, None, seconds, thumb)
        held = None
        if budget is not None:
            held = await _reserve(item, count)
            if held is None:
                return None
        gate: asyncio.Event | None = None
        if question.structured is not None and question.structured.unsure:
            # Nothing says whether the model takes response_format: the first question goes
            # alone, so that a refusal is learnt once, not by every question in flight.
            if probe:
                await probe[0].wait()
            else:
                gate = asyncio.Event()
                probe.append(gate)
        try:
            try:
                completion = await _answer(client, limiter, question, retries, stream)
            finally:
                if gate is not None:
                    gate.set()  # settled: the others go, with or without response_format
        except RateLimitError as exc:
            await _release(held, None, False)
            if exc.out_of_credits:
                raise  # stops every worker: waiting does not bring credits back
            error: RekaError = exc
        except RekaError as exc:
            spent = getattr(exc, "cost", None)  # what a structured answer that failed cost
            await _release(held, spent, spent is not None)
            error = exc
        except BaseException:
            await _release(held, None, False)
            raise
        else:
            question.started = started
            description = question.finish(completion, inputs=False)
            seconds = time.monotonic() - started
            await _release(held, description.cost, True)
            await asyncio.to_thread(question.store, description, close=False)
            return Result(item.index, item.image, item.source, description, None, seconds, thumb)
        seconds = time.monotonic() - started
        return Result(item.index, item.image, item.source, None, error, seconds, thumb)

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
        exc.results = Results(done, total=len(items), schema=schema)  # type: ignore[attr-defined]
        raise
    stopped = None if budget is None else budget.stopped
    return Results(done, total=len(items), stopped=stopped, schema=schema)


def _prepare(
    item: Item,
    settings: Settings,
    params: Mapping[str, Any],
    keep_metadata: bool,
    models: ModelList | None,
    schema: Schema | None = None,
    schema_retries: int = 1,
) -> tuple[Question, tuple[bytes, str] | None]:
    """In a worker thread: the row's question (checked as describe() checks it) and a
    thumbnail."""
    if isinstance(item.prompt, BaseException):
        raise item.prompt
    question = Question.prepare(
        settings,
        item.image,
        item.prompt,
        keep_metadata=keep_metadata,
        params=params,
        models=models,
        schema=schema,
        schema_retries=schema_retries,
    )
    question.learn(None if models is None else models.get(settings.model), models)
    try:
        thumb = question.images[0].thumbnail(THUMBNAIL) if question.images else None
    except RekaError:  # a table without this thumbnail is still a table
        thumb = None
    return question, thumb


async def _answer(
    client: AsyncRekaClient,
    limiter: Limiter,
    question: Question,
    retries: int,
    stream: bool,
) -> Completion:
    """One question to its answer: asked again without ``response_format`` when the model
    refuses it, and once more in its conversation when a structured answer fails its check."""
    while True:
        try:
            completion = await _ask(client, limiter, question, retries, stream)
        except APIError as exc:
            if question.refused(exc):
                continue
            raise
        if not question.accept(completion):
            return completion


async def _ask(
    client: AsyncRekaClient,
    limiter: Limiter,
    question: Question,
    retries: int,
    stream: bool,
) -> Completion:
    """One question with retries; every attempt waits for the limiter first."""
    messages, settings, params = question.send_messages, question.settings, question.send_params
    attempt = waits = 0
    while True:
        await limiter.acquire()
        try:
            if stream:
                async with client.stream(messages, settings=settings, retries=0, **params) as chat:
                    await chat.open()
                    pause = rate_limit_pause(chat.headers)
                    if pause is not None:  # the last request the limit allows: hold everyone
                        await limiter.pause(pause)
                    async for _ in chat:
                        pass
                assert chat.completion is not None
                return chat.completion
            return await client.complete(messages, settings=settings, retries=0, **params)
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
