"""``describe_many`` and ``adescribe_many``: many images, one table of answers.

The sync function runs the async engine on its own event loop in a helper thread (so it
works the same in a script and inside a notebook's running loop) and shows progress from the
calling thread. Ctrl-C or the notebook's stop button cancels the requests in flight at once;
the finished answers stay reachable on the exception (``exc.results``) and as
``reka_nb.last_results``, and the cache makes the same call ask only for what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidRequestError, one_line
from ..answer import DEFAULT_PROMPT
from ..cache import AnswerCache, default_cache
from ..client.aio import AsyncRekaClient
from ..client.settings import Settings, resolve
from ..client.structured import SCHEMA_OPTIONS, schema_of
from ..client.sync import RekaClient
from ..client.transports import check_transport, chosen, pick
from ..protocol.messages import check_params
from .engine import Item, run_items
from .limiter import Limiter, shared_limiter
from .options import check_run_options
from .progress import Progress, make_progress, stop_message
from .results import Result, Results
from .sources import Prompt, make_items

if TYPE_CHECKING:
    from ..protocol.schema import Schema

__all__ = ["adescribe_many", "describe_many", "last_results"]

_last: Results | None = None
_DONE = object()


def last_results() -> Results | None:
    """The Results of the latest run in this process (also after an interrupt)."""
    return _last


def _remember(results: Results | None) -> None:
    global _last
    if results is not None:
        _last = results


@dataclass
class _Run:
    """A run's settings, kept so ``Results.retry_failed`` can ask again the same way."""

    client: RekaClient | AsyncRekaClient | None
    model: str | None
    concurrency: int
    requests_per_minute: float | None
    cache: AnswerCache | None
    retries: int
    stream: bool
    limiter: Limiter | None
    params: dict[str, Any] = field(default_factory=dict)
    max_cost: Decimal | None = None
    keep_metadata: bool = False
    schema: Schema | None = None
    schema_retries: int = 1
    # The settings checked before the run (``_check_key``), used by its first run rather
    # than resolved again; a later run (retry_failed) resolves its own.
    checked: Settings | None = field(default=None, repr=False)
    transport: str | None = None  # None: the client's, else REKA_NB_TRANSPORT, else auto
    # What a stopped run had finished. Python 3.10 replaces a cancelled task's CancelledError
    # with a new one on the way out, so the results attached to it do not always arrive.
    partial: Results | None = field(default=None, repr=False)

    def options(self) -> dict[str, Any]:
        """The options of the client the run makes: the given client's, with the transport
        chosen for the run and a pool of a connection for each request in flight and one
        for the model list (unless the client sized its own)."""
        options = {} if self.client is None else self.client.options()
        options["transport"] = self.transport_name(options.get("transport"))
        if options.get("max_connections") is None:
            options["max_connections"] = self.concurrency + 1
        return options

    def transport_name(self, client_transport: str | None = None) -> str:
        """The run's ``transport``, else the client's, else REKA_NB_TRANSPORT, else auto."""
        return chosen(self.transport or client_transport, "auto")

    async def arun(
        self, items: Sequence[Item], client: AsyncRekaClient, progress: Progress | None
    ) -> Results:
        """Run on ``client`` in the current event loop; progress is shown from this loop."""
        settings, self.checked = self.checked or client.settings(self.model), None
        limiter = self.limiter
        shared = None
        if limiter is None:
            shared = shared_limiter(settings.base_url, settings.api_key)
            limiter = shared
        if progress is not None:
            progress.start(len(items))
            expect = getattr(progress, "expect_schema", None)
            if expect is not None and self.schema is not None:
                expect(self.schema)
        results: Results | None = None
        error: BaseException | None = None
        self.partial = None
        try:
            if shared is not None:
                with shared.limit(self.requests_per_minute):
                    results = await self._engine(items, client, limiter, progress, settings)
            else:
                results = await self._engine(items, client, limiter, progress, settings)
        except BaseException as exc:
            error = exc
            results = getattr(exc, "results", None)
            if isinstance(results, Results):
                results = self._wrap(results, items)
                exc.results = results  # type: ignore[attr-defined]
                self.partial = results
            raise
        finally:
            if self.cache is not None:
                self.cache.close()  # reopened when needed (retry_failed); no file held open
            _remember(results)
            if progress is not None:
                progress.close(results, error)
        assert results is not None
        results = self._wrap(results, items)
        _remember(results)
        return results

    async def _engine(
        self,
        items: Sequence[Item],
        client: AsyncRekaClient,
        limiter: Limiter,
        progress: Progress | None,
        settings: Settings,
    ) -> Results:
        return await run_items(
            items,
            client,
            limiter=limiter,
            model=self.model,
            concurrency=self.concurrency,
            retries=self.retries,
            cache=self.cache,
            stream=self.stream,
            on_result=None if progress is None else progress.update,
            params=self.params,
            max_cost=self.max_cost,
            keep_metadata=self.keep_metadata,
            schema=self.schema,
            schema_retries=self.schema_retries,
            settings=settings,
        )

    def _wrap(self, results: Results, items: Sequence[Item]) -> Results:
        """The results, knowing how to ask for the items not answered (``retry_failed``):
        every item of the run but those whose index is in ``answered``."""

        retry = _Rerun(self, items)
        return Results(
            list(results),
            total=results.total,
            retry=retry,
            stopped=results.stopped,
            schema=results.schema,
        )

    async def run_async(self, items: Sequence[Item], progress: Progress | None) -> Results:
        """Run in the current event loop: on the AsyncRekaClient given (its own pool), else
        on one made for the run and closed after it."""
        try:
            if isinstance(self.client, AsyncRekaClient):
                _same_transport(self, self.client)
                return await self.arun(items, self.client, progress)
            async with AsyncRekaClient(**self.options()) as own:
                return await self.arun(items, own, progress)
        finally:
            if self.cache is not None:
                self.cache.warn(stacklevel=3)

    def run_sync(self, items: Sequence[Item], progress: Progress | None) -> Results:
        """Run on a fresh event loop in a helper thread; progress is shown from this thread."""
        events: queue.SimpleQueue[Any] = queue.SimpleQueue()
        outcome: dict[str, Any] = {}
        loop = asyncio.new_event_loop()
        options = self.options()

        async def main() -> Results:
            async with AsyncRekaClient(**options) as client:
                return await self.arun(items, client, _Relay(events, progress))

        task = loop.create_task(main())

        def target() -> None:
            try:
                outcome["results"] = loop.run_until_complete(task)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                loop.close()
                events.put(_DONE)
                outcome["ended"] = True

        thread = threading.Thread(target=target, name="reka-nb-describe-many", daemon=True)
        stop: BaseException | None = None
        try:
            thread.start()
            _show(events, progress, outcome)
            thread.join()
        except BaseException as exc:  # Ctrl-C or the stop button, wherever it lands
            stop = exc
            _stop(loop, task, thread, events, progress, outcome)
        if self.cache is not None:
            self.cache.warn(stacklevel=3)  # here, in the caller's thread, not a worker's
        error = outcome.get("error")
        if isinstance(stop, KeyboardInterrupt) or isinstance(error, asyncio.CancelledError):
            interrupt = stop if isinstance(stop, KeyboardInterrupt) else KeyboardInterrupt()
            kept = getattr(error, "results", None)
            if kept is None:
                kept = outcome.get("results", self.partial)
            interrupt.results = kept  # type: ignore[attr-defined]
            done = 0 if kept is None else len(kept)
            if progress is not None and outcome.get("closing") is not None:
                with contextlib.suppress(Exception):  # the stop cut the display's end short
                    progress.close(kept, interrupt)
            raise one_line(interrupt, stop_message(interrupt, done, len(items)) or "")
        if stop is not None:
            raise stop
        if error is not None:
            raise error
        return outcome["results"]  # type: ignore[no-any-return]


#: Seconds a stopped run may take to wind down before the caller is let go regardless.
_STOP_WAIT = 30.0


def _show(
    events: queue.SimpleQueue[Any], progress: Progress | None, outcome: dict[str, Any]
) -> None:
    """Show the run's progress calls, in this thread, until the run ends. The last call is
    noted in ``outcome["closing"]`` until it has been shown, so a stop that cuts it short
    can show it again."""
    while True:
        try:
            event = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if event is _DONE:
            return
        method, args = event
        if progress is not None:
            outcome["closing"] = event if method == "close" else None
            getattr(progress, method)(*args)
            outcome["closing"] = None


def _stop(
    loop: asyncio.AbstractEventLoop,
    task: asyncio.Task[Any],
    thread: threading.Thread,
    events: queue.SimpleQueue[Any],
    progress: Progress | None,
    outcome: Mapping[str, Any],
) -> None:
    """Cancel the run (every request in flight) and wait for it to wind down, showing its
    last progress calls (the display ends saying it was interrupted). Another Ctrl-C while
    waiting cancels again and goes on waiting: the finished answers are still being kept."""
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        try:
            with contextlib.suppress(RuntimeError):  # the loop has already closed
                loop.call_soon_threadsafe(task.cancel)
            while time.monotonic() < deadline:
                try:
                    event = events.get(timeout=0.1)
                except queue.Empty:
                    if "ended" in outcome or thread.ident is None:
                        break  # ended (its last event already shown), or never started
                    continue
                if event is _DONE:
                    break
                if progress is not None:
                    method, args = event
                    with contextlib.suppress(Exception):  # the display may be what failed
                        getattr(progress, method)(*args)
            thread.join(max(0.0, deadline - time.monotonic()))
            return
        except KeyboardInterrupt:
            continue


class _Relay:
    """Progress calls from the run's thread, queued for the calling thread to show."""

    def __init__(self, events: queue.SimpleQueue[Any], progress: Progress | None) -> None:
        self._events = events
        self._on = progress is not None
        self._schema_on = hasattr(progress, "expect_schema")

    def start(self, total: int) -> None:
        if self._on:
            self._events.put(("start", (total,)))

    def expect_schema(self, schema: Schema) -> None:
        if self._schema_on:
            self._events.put(("expect_schema", (schema,)))

    def update(self, result: Result) -> None:
        if self._on:
            self._events.put(("update", (result,)))

    def close(self, results: Results | None, error: BaseException | None = None) -> None:
        if self._on:
            self._events.put(("close", (results, error)))


def _setup(
    images: Any,
    prompt: Prompt,
    *,
    model: str | None = None,
    concurrency: int = 8,
    requests_per_minute: float | None = None,
    cache: bool | AnswerCache = True,
    client: Any = None,
    retries: int = 2,
    stream: bool = False,
    limiter: Limiter | None = None,
    max_cost: Any = None,
    keep_metadata: bool = False,
    transport: str | None = None,
    **params: Any,
) -> tuple[_Run, list[Item]]:
    """describe_many's arguments checked before anything is read or sent: the run, its items."""
    check_run_options(
        concurrency=concurrency, retries=retries, requests_per_minute=requests_per_minute
    )
    if client is not None and not isinstance(client, (RekaClient, AsyncRekaClient)):
        raise InvalidRequestError(
            f"client must be a RekaClient or AsyncRekaClient, not {type(client).__name__}"
        )
    rest = dict(params)
    schema, schema_retries = schema_of(rest)  # an unusable schema: refused before anything
    checked = check_params(rest, options=_OPTIONS)
    store = default_cache() if cache is True else (cache or None)
    run = _Run(
        client, model, concurrency, requests_per_minute, store, retries, stream, limiter, checked
    )
    run.max_cost = _budget(max_cost)
    run.schema, run.schema_retries = schema, schema_retries
    run.keep_metadata = keep_metadata
    run.transport = check_transport(transport)
    pick(run.transport_name(run.client.transport if run.client is not None else None))
    items = make_items(images, prompt)
    _check_key(run)
    return run, items


#: describe_many's own keyword arguments, named when an unknown one is passed.
_OPTIONS: tuple[str, ...] = ("model", "concurrency", "requests_per_minute", "cache", "show")
_OPTIONS += ("client", "retries", "stream", "limiter", "max_cost", "keep_metadata", "transport")
_OPTIONS += SCHEMA_OPTIONS


def _budget(max_cost: Any) -> Decimal | None:
    """``max_cost`` as exact US dollars (a float is read through its text: 2.5 is 2.5)."""
    if max_cost is None:
        return None
    amount: Decimal | None = None
    if isinstance(max_cost, (int, float, str, Decimal)) and not isinstance(max_cost, bool):
        try:
            amount = Decimal(str(max_cost).strip())
        except InvalidOperation:
            amount = None
    if amount is None or not amount.is_finite() or amount <= 0:
        raise InvalidRequestError(
            f"max_cost must be a number of US dollars above 0 (or None), not {max_cost!r}"
        )
    return amount


def describe_many(
    images: Any,
    prompt: Prompt = DEFAULT_PROMPT,
    *,
    model: str | None = None,
    concurrency: int = 8,
    requests_per_minute: float | None = None,
    cache: bool | AnswerCache = True,
    show: bool | Progress = True,
    client: RekaClient | AsyncRekaClient | None = None,
    retries: int = 2,
    stream: bool = False,
    limiter: Limiter | None = None,
    max_cost: float | Decimal | str | None = None,
    keep_metadata: bool = False,
    transport: str | None = None,
    **params: Any,
) -> Results:
    """Ask the same question (or ``prompt(item)``) about many images; return ``Results``.

    ``images``: a list of anything ``describe()`` takes (a list inside it is several images in
    one question), a folder, a glob pattern, or a pandas Series. At most ``concurrency``
    requests are in flight; ``requests_per_minute`` caps the rate of every run sharing this
    key. Answers are cached (``cache=False`` to ask anew), so re-running asks only for what is
    missing. ``show=False`` is silent. Params as for describe(): max_tokens, temperature, ...
    Answers are asked whole (``stream=True`` streams each one; nobody reads them word by
    word, and whole answers cost less on both ends).
    Images go without their metadata unless ``keep_metadata=True``, as in describe().
    ``max_cost`` (US dollars): no request starts once the total could pass it; the results
    then hold what finished and ``Results.stopped`` says why. ``Results.cost`` and
    ``.usage`` total the run.
    ``schema=``/``labels=``/``multi_label=``/``schema_retries=`` ask for structured answers as
    in describe(): ``to_pandas()`` then has one typed column per field, and a row whose
    answer still fails its check has a ``SchemaError``.
    ``transport``: ``"auto"`` (the default: httpx over aiohttp's pool when ``reka-nb[fast]``
    is installed, which spends far less CPU per image), ``"aiohttp"`` or ``"httpx"``; unset,
    a given client's choice, else ``REKA_NB_TRANSPORT``. The pool keeps a connection for each
    request in flight.
    """
    run, items = _setup(
        images,
        prompt,
        model=model,
        concurrency=concurrency,
        requests_per_minute=requests_per_minute,
        cache=cache,
        client=client,
        retries=retries,
        stream=stream,
        limiter=limiter,
        max_cost=max_cost,
        keep_metadata=keep_metadata,
        transport=transport,
        **params,
    )
    return run.run_sync(items, make_progress(show))


async def adescribe_many(
    images: Any, prompt: Prompt = DEFAULT_PROMPT, *, show: bool | Progress = True, **options: Any
) -> Results:
    """``await adescribe_many(...)``: describe_many for a running event loop (the same options).
    An AsyncRekaClient given as ``client`` is used as it is, with its own pool."""
    run, items = _setup(images, prompt, **options)
    return await run.run_async(items, make_progress(show))


def _same_transport(run: _Run, client: AsyncRekaClient) -> None:
    """A transport asked of the run that the given client does not use is an error: the
    run asks through that client's pool, made already."""
    if run.transport is None:
        return
    wanted, used = pick(run.transport), client.transport_in_use()
    if wanted != used:
        raise InvalidRequestError(
            f"transport={run.transport!r} asks for {wanted}, but the AsyncRekaClient given uses "
            f"{used}: make it with AsyncRekaClient(transport={wanted!r}), or leave transport out"
        )


def _check_key(run: _Run) -> None:
    """A missing key (or bad settings) is an error before anything is read or sent."""
    settings = run.client.settings(run.model) if run.client else resolve(model=run.model)
    settings.require_key()
    run.checked = settings  # the run's settings: not resolved again when it starts


class _Options:
    """Stands for an unpickled run's client: its settings without the key (which is never
    pickled), so asking again takes the key from the environment (REKA_API_KEY)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)

    def options(self) -> dict[str, Any]:
        return dict(self._options)


class _Rerun:
    """How ``Results.retry_failed`` asks for the items not answered (every item of the run but
    those whose index it is given), the way their run did.

    It pickles (for worker processes, for saving a run) without the client, the key, the
    cache's connections or a limiter: unpickled, it asks with a client of the same settings
    whose key comes from the environment, and the same cache file.
    """

    def __init__(self, run: _Run, items: Sequence[Item]) -> None:
        self._run = run
        self._items = items  # the run's own list: no copy per run

    def __call__(self, answered: set[int]) -> Results:
        missing = [item for item in self._items if item.index not in answered]
        return self._run.run_sync(missing, None)

    def __getstate__(self) -> dict[str, Any]:
        run = self._run
        if run.limiter is not None:
            raise TypeError("the run had a limiter of its own (limiter=...), which is not pickled")
        options = {k: v for k, v in run.options().items() if k != "api_key"}
        return {
            "options": options if run.client is not None else None,
            "cache": None if run.cache is None else str(run.cache.path),
            "run": {
                "model": run.model,
                "concurrency": run.concurrency,
                "requests_per_minute": run.requests_per_minute,
                "retries": run.retries,
                "stream": run.stream,
                "params": dict(run.params),
                "max_cost": run.max_cost,
                "keep_metadata": run.keep_metadata,
                "schema": run.schema,
                "schema_retries": run.schema_retries,
                "transport": run.transport,
            },
            "items": self._items,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        from pathlib import Path

        client = None if state["options"] is None else _Options(state["options"])
        cache = None if state["cache"] is None else AnswerCache(Path(state["cache"]))
        self._run = _Run(client, cache=cache, limiter=None, **state["run"])  # type: ignore[arg-type]
        items = state["items"]  # a dict by index in pickles of earlier versions
        self._items = list(items.values()) if isinstance(items, dict) else items
