"""The engine: many questions on one AsyncRekaClient, at most ``concurrency`` at a time.

``run_items`` is what ``describe_many`` and any other runner (a cluster integration) call:
give it the items, a client and a ``Limiter``; it returns ``Results`` in input order.

Each row is a ``Question`` (``client/question.py``), the same as ``describe()`` asks: its
settings, limits, parameters and the model's inputs are checked the same way, so a row is
refused exactly where describe() would refuse it, with nothing sent; a model that takes no
images refuses the whole run before anything is read. Each worker takes the next item,
prepares its question in a worker thread (Pillow releases the GIL), looks it up in the cache
(an identical question in flight is waited for and then found there, not asked twice), and
only then waits for the limiter and asks. So at
most ``concurrency`` prepared images exist at once, whatever the number of items. Failures
stay with their item (retried first when worth it). An out-of-credits answer stops the run:
nothing new is sent, and the requests already sent (paid for) finish and are kept. Cancelling
the run (Ctrl-C) stops every request at once. In both cases the finished results travel on
the exception (``exc.results``): an answer is kept from the moment it arrives, and its cache
write finishes even when the run is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from ..cache import AnswerCache, CachedAnswer
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
    one question), ``source`` its short name, ``prompt`` the text asked, ``model`` the model
    asked (None: the run's), so that one run can ask several models (``compare``)."""

    index: int
    image: Any
    source: str
    prompt: str | BaseException
    model: str | None = None


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

    Per-item failures are recorded on their ``Result``. A ``RateLimitError`` about credits
    stops the run once the requests already sent have ended; a cancellation or an interrupt
    stops every worker at once. Either is re-raised with the finished ``Results`` as
    ``exc.results``.
    """
    check_run_options(concurrency=concurrency, retries=retries)
    settings = client.settings(model)  # once for the run: every row's question shares them
    params = check_params(params or {}, settings.api)  # before anything is read
    settings.require_key()  # the key is checked here, before anything is sent
    # Each model the items ask (items may name their own): its settings and what the
    # server says of it (prices: each answer's cost), found once for the run.
    asked: dict[str | None, tuple[Settings, Any]] = {}
    for name in dict.fromkeys([model, *(item.model for item in items if item.model)]):
        chosen = settings if name == model else client.settings(name)
        asked[name] = (chosen, await client.model_info(chosen.model))
    budget: Budget | None = None
    if max_cost is not None:
        for chosen, info in asked.values():
            if info is None or info.input_price is None or info.output_price is None:
                raise InvalidRequestError(
                    f"max_cost needs the prices of {chosen.model!r}, and the server's model "
                    "list does not give them: run without max_cost, or list the models first "
                    "(client.models()) where the server states prices"
                )
        budget = Budget(max_cost)
    models = client.known_models(settings)
    if models is not None and items:
        for name, (chosen, _) in asked.items():  # every row would be refused alike: refuse
            if name is not None or any(item.model is None for item in items):
                refuse_images(chosen, models)
    changed = asyncio.Condition()
    probe: list[asyncio.Event] = []  # the first structured question, asked alone (see _one)
    done: list[Result] = []
    writes: list[asyncio.Future[None]] = []  # cache writes of answers received
    flight = _Flight()
    asking: dict[str, asyncio.Event] = {}  # questions in flight, by cache key
    mine: dict[asyncio.Task[Any] | None, str] = {}  # the question each worker asks
    queue = iter(items)

    def finish(result: Result) -> None:
        done.append(result)
        if on_result is not None:
            on_result(result)

    async def worker() -> None:
        for item in queue:  # shared iterator: each item is taken by exactly one worker
            if flight.closed is not None:
                return
            try:
                result = await _one(item)
            except RateLimitError as exc:
                if not exc.out_of_credits:
                    raise
                flight.close(exc, tasks)  # nothing new; what was sent ends and is kept
                return
            finally:
                _done_asking()
            if result is None:  # the budget stopped the run: nothing more starts
                return
            if result is not _KEPT:
                finish(result)

    async def _lookup(key: str) -> CachedAnswer | None:
        """The cached answer, or None: then this worker asks. The same question already in
        flight (identical images) is waited for, then looked up, instead of asked again."""
        assert cache is not None
        while True:
            hit = await asyncio.to_thread(cache.get, key)
            if hit is not None:
                return hit
            first = asking.get(key)
            if first is None:
                asking[key] = asyncio.Event()
                mine[asyncio.current_task()] = key
                return None
            await first.wait()  # its answer is cached by then (or it failed: ask here)

    def _done_asking() -> None:
        """This worker's question has ended: wake those waiting for the same one."""
        key = mine.pop(asyncio.current_task(), None)
        if key is not None:
            asking.pop(key).set()

    async def _reserve(item: Item, images: int, info: Any) -> Decimal | None:
        """Wait until the budget lets this question start; None once it has stopped."""
        assert budget is not None and info is not None
        async with changed:
            while True:  # the worst case grows as answers show what an image costs
                first = first_estimate(
                    info, str(item.prompt), images, params.get("max_tokens"), budget.image_tokens
                )
                held = budget.start(first)
                if held is not None or budget.stopped is not None:
                    return held
                await changed.wait()

    async def _release(
        held: Decimal | None,
        cost: Decimal | None,
        answered: bool,
        tokens: int | None = None,
        images: int = 0,
    ) -> None:
        """End a request's hold on the budget (None: already ended) and wake the waiters."""
        if budget is None:
            return
        if held is not None:
            budget.finish(held, cost, answered, tokens, images)
        async with changed:
            changed.notify_all()

    async def _one(item: Item) -> Result | None:
        started = time.monotonic()
        settings, info = asked[item.model or model]
        try:
            question, key, thumb = await asyncio.to_thread(
                _prepare,
                item,
                settings,
                params,
                keep_metadata,
                models,
                cache,
                schema,
                schema_retries,
            )
        except RekaError as exc:  # a bad input: nothing is sent for it
            return Result(item.index, item.image, item.source, error=exc)
        question.info = info
        count = len(question.images)
        question.images = []  # the message holds what is sent; nothing else keeps the bytes
        if key is not None:
            hit = question.answered(await _lookup(key))
            if hit is not None:
                seconds = time.monotonic() - started
                hit.images, hit.message = (), {}
                return Result(item.index, item.image, item.source, hit, None, seconds, thumb)
        held = None
        if budget is not None:
            held = await _reserve(item, count, info)
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
                completion = await _answer(client, limiter, question, retries, stream, flight)
            finally:
                if gate is not None:
                    gate.set()  # settled: the others go, with or without response_format
        except RateLimitError as exc:
            await _release(held, None, False)
            if exc.out_of_credits:
                raise  # stops every worker: waiting does not bring credits back
            error: RekaError = exc
        except RekaError as exc:
            # What a structured answer that failed cost; its prompt tokens (every attempt's)
            # bound what the next images may take, as an answer's do.
            spent = getattr(exc, "cost", None)
            usage = getattr(exc, "usage", None)
            tokens = None if usage is None else usage.input_tokens
            await _release(held, spent, spent is not None, tokens, count)
            error = exc
        except BaseException:
            await _release(held, None, False)
            raise
        else:
            question.started = started
            description = question.finish(completion, inputs=False)  # cost, session's usage
            seconds = time.monotonic() - started
            if budget is not None and held is not None:  # at once: no await before finish
                usage = description.usage
                tokens = None if usage is None else usage.input_tokens
                budget.finish(held, description.cost, True, tokens, count)
            # Kept before anything else is awaited: a stop from here on loses nothing paid for.
            finish(Result(item.index, item.image, item.source, description, None, seconds, thumb))
            if key is not None:
                write = asyncio.ensure_future(
                    asyncio.to_thread(question.store, description, close=False)
                )
                writes.append(write)
                await asyncio.shield(write)  # a stop does not cancel the write
            if held is not None:
                await _release(None, None, True)  # wake workers waiting for the budget
            return _KEPT
        seconds = time.monotonic() - started
        return Result(item.index, item.image, item.source, None, error, seconds, thumb)

    tasks = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(items)) or 0)]
    try:
        if tasks:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        if flight.closed is not None:
            raise flight.closed
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await _settle(writes)
        exc.results = Results(done, total=len(items), schema=schema)  # type: ignore[attr-defined]
        raise
    stopped = None if budget is None else budget.stopped
    return Results(done, total=len(items), stopped=stopped, schema=schema)


#: What ``_one`` returns for an answer it has already handed to ``finish``.
_KEPT: Any = object()


class _Flight:
    """Which workers have a request on the wire, and whether new requests may still start.

    Once closed (out of credits) nothing new is sent: the workers with nothing on the wire
    are cancelled, the others finish what they sent, which is paid for.
    """

    def __init__(self) -> None:
        self.sending: set[asyncio.Task[Any]] = set()
        self.closed: BaseException | None = None

    @contextlib.contextmanager
    def send(self) -> Iterator[None]:
        """Around one request; raises CancelledError once the run is closed."""
        if self.closed is not None:
            raise asyncio.CancelledError
        task = asyncio.current_task()
        assert task is not None
        self.sending.add(task)
        try:
            yield
        finally:
            self.sending.discard(task)

    def close(self, reason: BaseException, tasks: Sequence[asyncio.Task[Any]]) -> None:
        if self.closed is None:
            self.closed = reason
        current = asyncio.current_task()
        for task in tasks:
            if task is not current and task not in self.sending:
                task.cancel()


async def _settle(writes: Sequence[asyncio.Future[None]]) -> None:
    """Wait for the cache writes of the answers received, through any further cancel."""
    while pending := [w for w in writes if not w.done()]:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(pending)


def _prepare(
    item: Item,
    settings: Settings,
    params: Mapping[str, Any],
    keep_metadata: bool,
    models: ModelList | None,
    cache: AnswerCache | None,
    schema: Schema | None = None,
    schema_retries: int = 1,
) -> tuple[Question, str | None, tuple[bytes, str] | None]:
    """In a worker thread: the row's question (checked as describe() checks it), its key in
    ``cache`` (None without one) and a thumbnail."""
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
    key = question.keep_in(cache)
    try:
        thumb = question.images[0].thumbnail(THUMBNAIL) if question.images else None
    except RekaError:  # a table without this thumbnail is still a table
        thumb = None
    return question, key, thumb


async def _answer(
    client: AsyncRekaClient,
    limiter: Limiter,
    question: Question,
    retries: int,
    stream: bool,
    flight: _Flight,
) -> Completion:
    """One question to its answer: asked again without ``response_format`` when the model
    refuses it, and once more in its conversation when a structured answer fails its check."""
    while True:
        try:
            completion = await _ask(client, limiter, question, retries, stream, flight)
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
    flight: _Flight,
) -> Completion:
    """One question with retries; every attempt waits for the limiter, and sends only while
    ``flight`` is open."""
    messages, settings, params = question.send_messages, question.settings, question.send_params
    attempt = waits = 0
    while True:
        await limiter.acquire()
        try:
            with flight.send():
                if stream:
                    async with client.stream(
                        messages, settings=settings, retries=0, **params
                    ) as chat:
                        await chat.open()
                        pause = rate_limit_pause(chat.headers)
                        if pause is not None:  # the last request the limit allows: hold all
                            await limiter.pause(pause)
                        async for _ in chat:
                            pass
                    assert chat.completion is not None
                    return chat.completion
                return await client.complete(messages, settings=settings, retries=0, **params)
        except RateLimitError as exc:
            if exc.out_of_credits:
                raise
            wait = retry_delay(waits, exc.retry_after)  # never below the backoff's floor
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
