"""The engine: many questions on one AsyncRekaClient, at most ``concurrency`` at a time.

``run_items`` is what ``describe_many`` and any other runner (a cluster integration) call:
give it the items, a client and a ``Limiter``; it returns ``Results`` in input order.

Each row is a ``Question`` (``client/question.py``), the same as ``describe()`` asks: its
settings, limits, parameters and the model's inputs are checked the same way, so a row is
refused exactly where describe() would refuse it, with nothing sent; a model that takes no
images refuses the whole run before anything is read. The run's settings are resolved once and
shared by every row (``_plan``). Each worker takes the next item through named steps
(``_Run``): it prepares its question and looks it up in the cache in one worker thread hop
(Pillow and SQLite release the GIL), or on the loop for a light input (an https URL, a small
file: ``images.light``), waits for an identical question in flight instead of asking it twice,
and only then waits for the limiter and asks. The loop's own cache lookups and stores go in
batches (``_Desk``: one query for the lookups and one transaction for the stores that arrived
together), on the loop, where SQLite's work costs less than a thread's round trip (each hop
hands the GIL to and fro at every system call); only a file another process holds locked is
waited for, in a worker thread. So at most ``concurrency`` prepared images exist at once,
whatever the number of items, and none is kept once its request is sent: a row keeps its input,
its answer and a thumbnail made only when a table shows it (``images.row_thumbnail``). Failures
stay with their item (retried first when worth it). An out-of-credits answer stops the run:
nothing new is sent, and the requests already sent (paid for) finish and are kept. Cancelling
the run (Ctrl-C) stops every request at once. In both cases the finished results travel on the
exception (``exc.results``): an answer is kept from the moment it arrives, and its cache write
finishes even when the run is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._exceptions import (
    APIConnectionError,
    APIError,
    CacheLocked,
    InvalidRequestError,
    RateLimitError,
    RekaError,
    StreamInterrupted,
)
from ..cache import AnswerCache, CachedAnswer
from ..client.aio import AsyncRekaClient
from ..client.question import Question, cache_entry, refuse_images
from ..client.settings import Settings
from ..images import light, row_thumbnail
from ..protocol.costs import Budget, first_estimate
from ..protocol.errors import (
    is_retryable,
    not_sent,
    rate_limit_pause,
    refuses_model,
    retry_delay,
    stops_run,
)
from ..protocol.messages import check_params
from ..protocol.models import Model, ModelList
from ..protocol.stream import Completion
from .limiter import Limiter
from .options import check_run_options
from .results import THUMBNAIL, Result, Results

if TYPE_CHECKING:
    from ..protocol.schema import Schema

__all__ = ["MAX_RATE_LIMIT_WAITS", "Item", "run_items"]

#: 429s an item may wait out (each pausing every worker) on top of its ``retries``.
MAX_RATE_LIMIT_WAITS = 8


@dataclass(frozen=True, slots=True)
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
    settings: Settings | None = None,
) -> Results:
    """Ask every item's question; return ``Results`` in input order.

    With ``max_cost`` (US dollars) no request starts once the total could pass it (see
    ``Budget``); the run then ends early and ``Results.stopped`` says why. It needs the
    model's prices, from the client's model list.

    With ``schema`` (a `Schema`) each answer is structured: checked, repaired once in its
    conversation (``schema_retries``), and what still fails is the row's `SchemaError`; the
    ``Results`` know the schema (a column per field).

    ``settings``: the client's settings for ``model`` when the caller resolved them already
    (they are resolved once per run, here otherwise).

    Per-item failures are recorded on their ``Result``. A ``RateLimitError`` about credits
    stops the run once the requests already sent have ended; a cancellation or an interrupt
    stops every worker at once. Either is re-raised with the finished ``Results`` as
    ``exc.results``.
    """
    check_run_options(concurrency=concurrency, retries=retries)
    plan = await _plan(client, model, settings, params, max_cost, items)
    run = _Run(plan, client, limiter, cache, on_result, len(items))
    run.retries, run.stream, run.keep_metadata = retries, stream, keep_metadata
    run.schema, run.schema_retries = schema, schema_retries
    return await run.run(items, concurrency)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every row of a run shares, decided once before anything is read: the settings,
    the checked parameters, the model's metadata and list, and the budget (``max_cost``).
    ``asked`` holds the settings and metadata of each model the items name (``Item.model``)."""

    settings: Settings
    params: Mapping[str, Any]
    info: Model | None
    models: ModelList | None
    budget: Budget | None
    asked: Mapping[str | None, tuple[Settings, Model | None]]

    def of(self, item: Item) -> tuple[Settings, Model | None]:
        """The settings and metadata of the model this item asks."""
        return self.asked[item.model] if item.model is not None else (self.settings, self.info)


async def _plan(
    client: AsyncRekaClient,
    model: str | None,
    settings: Settings | None,
    params: Mapping[str, Any] | None,
    max_cost: Decimal | None,
    items: Sequence[Item],
) -> _Plan:
    """Step 1, plan: the run's settings (resolved once: every row's question shares them),
    its parameters and key checked before anything is read, the model's prices (each
    answer's cost; ``max_cost`` needs them) and a model that takes no images refused for the
    whole run, since every row would be refused alike."""
    settings = client.settings(model) if settings is None else settings
    checked = check_params(params or {}, settings.api)  # before anything is read
    settings.require_key()  # the key is checked here, before anything is sent
    info = await client.model_info(settings=settings)
    refused = client.key_refused(settings)  # the model list's lookup met a 401
    if refused is not None:
        raise copy.copy(refused)  # before any image is read or asked about
    # Each other model the items ask (items may name their own): its settings and what the
    # server says of it (prices: each answer's cost), found once for the run.
    asked: dict[str | None, tuple[Settings, Model | None]] = {}
    for name in dict.fromkeys(item.model for item in items if item.model is not None):
        chosen = client.settings(name)
        asked[name] = (chosen, await client.model_info(settings=chosen))
    own = any(item.model is None for item in items)
    everyone = ([(settings, info)] if own or not asked else []) + list(asked.values())
    budget: Budget | None = None
    if max_cost is not None:
        for chosen, found in everyone:
            if found is None or found.input_price is None or found.output_price is None:
                raise InvalidRequestError(
                    f"max_cost needs the prices of {chosen.model!r}, and the server's model "
                    "list does not give them: run without max_cost, or list the models first "
                    "(client.models()) where the server states prices"
                )
        budget = Budget(max_cost)
    models = client.known_models(settings)
    if models is not None and items:
        for chosen, _ in everyone:  # every row would be refused alike: refuse the run
            refuse_images(chosen, models)
    return _Plan(settings, checked, info, models, budget, asked)


@dataclass(slots=True)
class _Ready:
    """A row's question, prepared: its key in the cache (None without one), what the cache
    held for it (``looked``: whether it was looked up yet), its thumbnail (or the function
    making it when a table is shown) and how many images it sends. The question keeps no
    image bytes: its message holds what is sent, and goes with it once the row is done."""

    question: Question
    key: str | None
    hit: CachedAnswer | None
    looked: bool
    thumb: Any
    images: int


class _Run:
    """One run of ``run_items``: its workers and what they share.

    Each worker takes the next item and takes it through the steps, each a method:
    ``prepare`` (the question, its cache key and first lookup, in one thread hop, or on the
    loop for a light input), ``lookup`` (the cache, and an identical question
    in flight waited for instead of asked twice), ``ask`` (the budget, the limiter, retries),
    ``keep`` (the ``Result``, at once, and the answer stored in the cache) and at the end
    ``report`` (the ``Results``).
    """

    def __init__(
        self,
        plan: _Plan,
        client: AsyncRekaClient,
        limiter: Limiter,
        cache: AnswerCache | None,
        on_result: Callable[[Result], None] | None,
        total: int,
    ) -> None:
        self.plan = plan
        self.client = client
        self.limiter = limiter
        self.cache = cache
        self.desk = None if cache is None else _Desk(cache)
        self.on_result = on_result
        self.total = total
        self.retries = 2
        self.stream = False
        self.keep_metadata = False
        self.schema: Schema | None = None
        self.schema_retries = 1
        self.changed = asyncio.Condition()  # the budget moved: waiting workers look again
        self.probe: list[asyncio.Event] = []  # the first structured question, asked alone
        self.done: list[Result] = []
        self.writes: set[asyncio.Future[Any]] = set()  # cache writes not yet done
        self.flight = _Flight()
        self.asking: dict[str, asyncio.Event] = {}  # questions in flight, by cache key
        self.mine: dict[asyncio.Task[Any] | None, str] = {}  # the question each worker asks
        self.tasks: list[asyncio.Task[None]] = []

    async def run(self, items: Sequence[Item], concurrency: int) -> Results:
        """Run the workers over ``items``; the ``Results``, or the stop with them attached."""
        queue = iter(items)
        self.tasks = [
            asyncio.create_task(self.worker(queue))
            for _ in range(min(concurrency, len(items)) or 0)
        ]
        try:
            if self.tasks:
                finished, _ = await asyncio.wait(self.tasks, return_when=asyncio.FIRST_EXCEPTION)
                for task in finished:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
            if self.flight.closed is not None:
                raise self.flight.closed
        except BaseException as exc:
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await _settle(list(self.writes))
            exc.results = self.report(stopped=False)  # type: ignore[attr-defined]
            raise
        return self.report()

    def report(self, *, stopped: bool = True) -> Results:
        """The last step: the ``Results`` so far, in input order (and, when the run ended
        by itself, why the budget stopped it, if it did)."""
        budget = self.plan.budget
        why = None if budget is None or not stopped else budget.stopped
        return Results(self.done, total=self.total, stopped=why, schema=self.schema)

    async def worker(self, queue: Iterator[Item]) -> None:
        """Take items from the shared iterator (each by exactly one worker) until none is
        left, the budget stops the run, or an answer says no request can succeed (the credits
        ran out, the key is refused)."""
        for item in queue:
            if self.flight.closed is not None:
                return
            try:
                result = await self.row(item)
            except RekaError as exc:
                if not stops_run(exc):
                    raise
                self.flight.close(exc, self.tasks)  # nothing new; what was sent ends, kept
                return
            finally:
                self.done_asking()
            if result is None:  # the budget stopped the run: nothing more starts
                return
            if result is not _KEPT:
                self.keep(result)

    async def row(self, item: Item) -> Result | None:
        """One item through the steps: its ``Result``, ``_KEPT`` when it was kept already,
        or None when the budget stopped the run before it was asked."""
        started = time.monotonic()
        try:
            ready = await self.prepare(item)
        except RekaError as exc:  # a bad input: nothing is sent for it
            return Result(item.index, item.image, item.source, error=exc)
        if ready.key is not None:
            hit = ready.question.answered(await self.lookup(ready))
            if hit is not None:
                seconds = time.monotonic() - started
                hit.images, hit.message = (), {}
                return Result(item.index, item.image, item.source, hit, None, seconds, ready.thumb)
        held = None
        if self.plan.budget is not None:
            held = await self.reserve(item, ready.images)
            if held is None:
                return None
        return await self.ask(item, ready, held, started)

    async def prepare(self, item: Item) -> _Ready:
        """Step 2, prepare: the row's question, checked as describe() checks it, in one
        thread hop that also looks it up in the cache (Pillow and SQLite release the GIL);
        a light input (an https URL, a small file: ``images.light``) is prepared on the
        loop instead, and looked up with the others of its moment in one query (``_Desk``)."""
        if light(item.image):
            return self._prepare(item, look=False)
        return await asyncio.to_thread(self._prepare, item, True)

    def _prepare(self, item: Item, look: bool) -> _Ready:
        if isinstance(item.prompt, BaseException):
            raise item.prompt
        plan = self.plan
        settings, info = plan.of(item)
        question = Question.prepare(
            settings,
            item.image,
            item.prompt,
            keep_metadata=self.keep_metadata,
            params=plan.params,
            models=plan.models,
            schema=self.schema,
            schema_retries=self.schema_retries,
        )
        models = plan.models
        question.learn(None if models is None else models.get(settings.model), models)
        question.info = info
        key = question.keep_in(self.cache)
        hit = None
        if key is not None and look:
            assert self.cache is not None
            hit = self.cache.get(key)
        images = question.images
        thumb = row_thumbnail(item.image, images[0], THUMBNAIL) if images else None
        question.images = []  # the message holds what is sent; nothing else keeps the bytes
        return _Ready(question, key, hit, look, thumb, len(images))

    async def lookup(self, ready: _Ready) -> CachedAnswer | None:
        """Step 3, lookup: the cached answer, or None: then this worker asks. The same
        question already in flight (identical images) is waited for, then looked up again,
        instead of asked twice."""
        key, desk = ready.key, self.desk
        assert key is not None and desk is not None
        hit = ready.hit if ready.looked else await desk.get(key)
        while hit is None:
            first = self.asking.get(key)
            if first is None:
                self.asking[key] = asyncio.Event()
                self.mine[asyncio.current_task()] = key
                return None
            await first.wait()  # its answer is cached by then (or it failed: ask here)
            hit = await desk.get(key)
        return hit

    def done_asking(self) -> None:
        """This worker's question has ended: wake those waiting for the same one."""
        key = self.mine.pop(asyncio.current_task(), None)
        if key is not None:
            self.asking.pop(key).set()

    async def reserve(self, item: Item, images: int) -> Decimal | None:
        """Wait until the budget lets this question start; None once it has stopped."""
        budget, (_, info) = self.plan.budget, self.plan.of(item)
        assert budget is not None and info is not None
        max_tokens = self.plan.params.get("max_tokens")
        async with self.changed:
            while True:  # the worst case grows as answers show what an image costs
                worst = budget.image_tokens
                first = first_estimate(info, str(item.prompt), images, max_tokens, worst)
                held = budget.start(first)
                if held is not None or budget.stopped is not None:
                    return held
                await self.changed.wait()

    async def release(
        self,
        held: Decimal | None,
        cost: Decimal | None,
        answered: bool,
        tokens: int | None = None,
        images: int = 0,
    ) -> None:
        """End a request's hold on the budget (None: already ended) and wake the waiters."""
        if self.plan.budget is None:
            return
        if held is not None:
            self.plan.budget.finish(held, cost, answered, tokens, images)
        async with self.changed:
            self.changed.notify_all()

    async def ask(
        self, item: Item, ready: _Ready, held: Decimal | None, started: float
    ) -> Result | None:
        """Step 4, ask: the question to its answer (``_answer``: retries, the limiter, a
        refused ``response_format``, a repair turn), its hold on the budget released; the
        answer goes to ``answered``, a failure stays with its row."""
        question = ready.question
        gate: asyncio.Event | None = None
        if question.structured is not None and question.structured.unsure:
            # Nothing says whether the model takes response_format: the first question goes
            # alone, so that a refusal is learnt once, not by every question in flight.
            if self.probe:
                await self.probe[0].wait()
            else:
                gate = asyncio.Event()
                self.probe.append(gate)
        try:
            try:
                completion = await _answer(
                    self.client, self.limiter, question, self.retries, self.stream, self.flight
                )
            finally:
                if gate is not None:
                    gate.set()  # settled: the others go, with or without response_format
        except RekaError as exc:
            # What a structured answer that failed cost; its prompt tokens (every attempt's)
            # bound what the next images may take, as an answer's do.
            spent = getattr(exc, "cost", None)
            usage = getattr(exc, "usage", None)
            tokens = None if usage is None else usage.input_tokens
            await self.release(held, spent, spent is not None, tokens, ready.images)
            if stops_run(exc):
                raise  # stops every worker: no credits, or the key refused
            error: RekaError = exc
        except BaseException:
            await self.release(held, None, False)
            raise
        else:
            return await self.answered(item, ready, completion, held, started)
        seconds = time.monotonic() - started
        return Result(item.index, item.image, item.source, None, error, seconds, ready.thumb)

    async def answered(
        self,
        item: Item,
        ready: _Ready,
        completion: Completion,
        held: Decimal | None,
        started: float,
    ) -> Any:
        """Step 5, keep an answer: its ``Description`` (cost, the session's usage), its row
        kept at once (a stop from here on loses nothing paid for), then stored in the cache,
        a write that a stop does not cancel. Returns ``_KEPT``."""
        question = ready.question
        question.started = started
        description = question.finish(completion, inputs=False)  # cost, session's usage
        seconds = description.elapsed  # timed from ``started`` too: one float for the two
        if seconds is None:
            seconds = time.monotonic() - started
        budget = self.plan.budget
        if budget is not None and held is not None:  # at once: no await before keep
            usage = description.usage
            tokens = None if usage is None else usage.input_tokens
            budget.finish(held, description.cost, True, tokens, ready.images)
        row = Result(item.index, item.image, item.source, description, None, seconds, ready.thumb)
        self.keep(row)
        if ready.key is not None and self.desk is not None:
            write = self.desk.put(ready.key, cache_entry(description))
            self.writes.add(write)
            await asyncio.shield(write)  # a stop does not cancel the write
            self.writes.discard(write)  # done: a stop has nothing to wait for here
        if held is not None:
            await self.release(None, None, True)  # wake workers waiting for the budget
        return _KEPT

    def keep(self, result: Result) -> None:
        """A row's outcome, kept and reported (``on_result``) as it comes."""
        self.done.append(result)
        if self.on_result is not None:
            self.on_result(result)


#: What ``_Run.row`` returns for an answer it has already kept.
_KEPT: Any = object()


class _Desk:
    """The run's answer cache as the loop reaches it: the lookups and stores asked at one
    moment go together, run on the loop without waiting for anything; when another process
    holds the file locked, that batch waits in a worker thread and the next ones gather."""

    __slots__ = ("_queue", "_task", "cache")

    def __init__(self, cache: AnswerCache) -> None:
        self.cache = cache
        self._queue: list[tuple[str, str, CachedAnswer | None, asyncio.Future[Any]]] = []
        self._task: asyncio.Task[None] | None = None  # the batch in a thread, if any

    def get(self, key: str) -> asyncio.Future[CachedAnswer | None]:
        """The stored answer for ``key`` (None when there is none)."""
        return self._add("get", key, None)

    def put(self, key: str, entry: CachedAnswer) -> asyncio.Future[None]:
        """Store ``entry`` for ``key``; done once it is written."""
        return self._add("put", key, entry)

    def _add(self, op: str, key: str, entry: CachedAnswer | None) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((op, key, entry, future))
        if self._task is None:
            self._task = loop.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        batch: list[tuple[str, str, CachedAnswer | None, asyncio.Future[Any]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                try:  # here on the loop: SQLite's own work is shorter than a thread's hop
                    outcomes = self._work(batch, wait=False)
                except CacheLocked:  # another process holds the file: wait in a thread
                    outcomes = await asyncio.to_thread(self._work, batch, True)
                for (*_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        future.set_exception(outcome)
                    else:
                        future.set_result(outcome)
        except BaseException as exc:  # nobody waits for this task: tell those who wait
            cancelled = isinstance(exc, asyncio.CancelledError)
            for *_, future in [*batch, *self._queue]:
                if not future.done():
                    future.cancel() if cancelled else future.set_exception(exc)
            self._queue = []
            if cancelled:
                raise
        finally:
            self._task = None

    def _work(
        self, batch: list[tuple[str, str, CachedAnswer | None, Any]], wait: bool
    ) -> list[Any]:
        """The stores in one transaction, then the lookups in one query: each lookup's answer
        or None, each store's None, in order. ``wait=False`` (on the loop): ``CacheLocked``
        instead of waiting for another process's lock."""
        stores = [(key, entry) for op, key, entry, _ in batch if op == "put"]
        keys = [key for op, key, _, _ in batch if op == "get"]
        try:
            if stores:
                self.cache.put_many(stores, wait=wait)  # type: ignore[arg-type]
            found = iter(self.cache.get_many(keys, wait=wait) if keys else ())
        except CacheLocked:
            raise
        except Exception as exc:  # handed to the workers that asked, as a call would
            return [exc] * len(batch)
        return [next(found) if op == "get" else None for op, *_ in batch]


class _Flight:
    """Which workers have a request on the wire, and whether new requests may still start.

    Once closed (out of credits, the key refused) nothing new is sent: the workers with
    nothing on the wire are cancelled, the others finish what they sent, which is paid for.
    A model refused (403, 404: ``refused``) gets no further request in the run: its other
    questions fail with the same error, unsent, instead of each being refused in turn.
    """

    def __init__(self) -> None:
        self.sending: set[asyncio.Task[Any]] = set()
        self.closed: BaseException | None = None
        self.refused: dict[str, APIError] = {}  # the first refusal of each model

    def refuse(self, model: str, error: APIError) -> None:
        """Note an answer that no retry changes: one that refuses the model stops the
        model's questions (one that stops the run closes it in the worker, ``close``)."""
        if refuses_model(error):
            self.refused.setdefault(model, error)

    @contextlib.contextmanager
    def send(self, model: str) -> Iterator[None]:
        """Around one request to ``model``; raises CancelledError once the run is closed,
        the first refusal (unsent) once the model is refused."""
        if self.closed is not None:
            raise asyncio.CancelledError
        refusal = self.refused.get(model)
        if refusal is not None:
            raise not_sent(refusal)
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
            with flight.send(settings.model):
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
                flight.refuse(settings.model, exc)
                raise
            error = exc
        if attempt >= retries:
            raise error
        await asyncio.sleep(retry_delay(attempt, getattr(error, "retry_after", None)))
        attempt += 1
