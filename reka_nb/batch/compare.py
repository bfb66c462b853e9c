"""``compare``: the same question about the same images to several models, side by side.

One run of the engine asks every (image, model) question: its items go image by image (image 1
to every model, then image 2, ...), so one concurrency, one rate limiter per (base URL, key),
one budget (``max_cost``) and one stop cover all the models, and a run that is stopped or
capped has answers from every model for the same images (but for the last few asked). Each
model's answers are cached as ``describe_many`` caches them, so adding a model to a comparison
asks only that model. ``truth`` is read and checked before anything is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidRequestError, RekaError
from ..answer import DEFAULT_PROMPT
from .api import _Rerun, _setup
from .comparison import Comparison
from .engine import Item
from .progress import Progress, make_progress
from .results import Result, Results
from .score import truth_for
from .sources import Prompt

if TYPE_CHECKING:
    from ..cache import AnswerCache
    from ..client.aio import AsyncRekaClient
    from ..client.sync import RekaClient
    from .limiter import Limiter

__all__ = ["acompare", "check_models", "compare"]


def check_models(models: Any) -> list[str]:
    """Two or more different model names, in order."""
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",")]
    if not isinstance(models, Sequence) or not all(isinstance(m, str) for m in models):
        raise InvalidRequestError(
            f"models must be a list of model names, not {type(models).__name__}"
        )
    names = [m.strip() for m in models]
    if any(not m for m in names):
        raise InvalidRequestError("models has an empty model name")
    twice = sorted({m for m in names if names.count(m) > 1})
    if twice:
        raise InvalidRequestError(f"models names {', '.join(map(repr, twice))} twice")
    if len(names) < 2:
        raise InvalidRequestError(
            f"compare needs two or more models, not {len(names)}: models=['reka-flash', "
            "'reka-edge'] (describe_many asks one)"
        )
    return names


def compare(
    source: Any,
    prompt: Prompt = DEFAULT_PROMPT,
    *,
    models: Sequence[str],
    truth: Any = None,
    field: str | None = None,
    concurrency: int = 8,
    requests_per_minute: float | None = None,
    max_cost: Any = None,
    cache: bool | AnswerCache = True,
    show: bool | Progress = True,
    client: RekaClient | AsyncRekaClient | None = None,
    retries: int = 2,
    limiter: Limiter | None = None,
    **params: Any,
) -> Comparison:
    """Ask ``models`` the same question about the images of ``source``; a `Comparison`.

    ``source`` and ``prompt`` as for describe_many. ``labels=[...]`` or ``schema=...`` ask
    for structured answers (agreement and accuracy are measured on them; ``field=`` names
    the schema field when there are several), neither for free text (compared side by side,
    with cost and time). ``truth``: the right answers (a list in the images' order, a dict or
    pandas Series by image, a Series by position, or a CSV file with image,label columns):
    then each model's accuracy. ``concurrency``, ``requests_per_minute`` and ``max_cost``
    (US dollars) hold for the whole comparison. A stop (Ctrl-C, the credits run out, the key
    refused) raises with the comparison so far as ``exc.results``.
    """
    comparing = _Comparing(
        source,
        prompt,
        models,
        truth,
        field,
        concurrency=concurrency,
        requests_per_minute=requests_per_minute,
        cache=cache,
        client=client,
        retries=retries,
        limiter=limiter,
        max_cost=max_cost,
        **params,
    )
    try:
        mixed = comparing.run.run_sync(comparing.asked, make_progress(show))
    except BaseException as exc:
        comparing.stopped(exc)
        raise
    return comparing.made(mixed)


async def acompare(
    source: Any,
    prompt: Prompt = DEFAULT_PROMPT,
    *,
    models: Sequence[str],
    truth: Any = None,
    field: str | None = None,
    show: bool | Progress = True,
    **options: Any,
) -> Comparison:
    """``await acompare(...)``: compare for a running event loop (the same options). An
    AsyncRekaClient given as ``client`` is used as it is, with its own pool."""
    comparing = _Comparing(source, prompt, models, truth, field, **options)
    try:
        mixed = await comparing.run.run_async(comparing.asked, make_progress(show))
    except BaseException as exc:
        comparing.stopped(exc)
        raise
    return comparing.made(mixed)


class _Comparing:
    """A comparison set up before anything is sent: the models checked, the run's options,
    the truth lined up with the images, and the items, image by image, each naming its model."""

    def __init__(
        self,
        source: Any,
        prompt: Prompt,
        models: Any,
        truth: Any,
        field: str | None,
        **options: Any,
    ) -> None:
        self.names = check_models(models)
        self.run, self.items = _setup(source, prompt, model=self.names[0], **options)
        sources = dict(enumerate(item.source for item in self.items))
        schema = self.run.schema
        self.truth: dict[int, Any] | None = None
        self.scored: tuple[str, Any, bool] | None = None
        if truth is not None:
            name, labels, many, self.truth = truth_for(
                truth, sources, len(self.items), schema, field
            )
            self.scored = (name, labels, many)
        elif schema is not None:
            from .score import scored_field

            if field is not None or len(schema.fields) == 1:
                self.scored = scored_field(schema, field)
        count = len(self.names)
        self.asked = [
            Item(i * count + j, item.image, item.source, item.prompt, model)
            for i, item in enumerate(self.items)
            for j, model in enumerate(self.names)
        ]

    def made(self, mixed: Results | None) -> Comparison:
        """The comparison of the run's results (each model's own ``Results``)."""
        return _comparison(mixed, self.run, self.items, self.names, self.truth, self.scored)

    def stopped(self, exc: BaseException) -> None:
        """A stop's finished answers, as the comparison so far (``exc.results``)."""
        kept = getattr(exc, "results", None)
        if isinstance(exc, KeyboardInterrupt) or isinstance(kept, Results):
            exc.results = self.made(kept)  # type: ignore[attr-defined]


def _comparison(
    mixed: Results | None,
    run: Any,
    items: Sequence[Item],
    names: Sequence[str],
    truth: dict[int, Any] | None,
    scored: tuple[str, Any, bool] | None,
) -> Comparison:
    """Split one run's results by model (each model's own Results, by image index)."""
    count = len(names)
    rows: dict[str, list[Result]] = {name: [] for name in names}
    for result in mixed or ():
        image, which = divmod(result.index, count)
        thumbnail = result.__dict__.get("_thumbnail")  # as given: a deferred one stays so
        rows[names[which]].append(
            Result(
                image,
                result.item,
                result.source,
                result.description,
                result.error,
                result.seconds,
                thumbnail,
            )
        )
    stopped = None if mixed is None else mixed.stopped
    by_index = list({item.index: item for item in items}.values())  # one per image
    results = {
        name: Results(
            rows[name],
            total=len(items),
            retry=_Rerun(dataclasses.replace(run, model=name, partial=None), by_index),
            stopped=stopped,
            schema=run.schema,
        )
        for name in names
    }
    return Comparison(
        results,
        prices=_prices(run, results),
        sources=[item.source for item in items],
        truth=truth,
        scored=scored,
        schema=run.schema,
        stopped=stopped,
    )


def _prices(run: Any, results: dict[str, Results]) -> dict[str, Any]:
    """What the server says of each model whose answers came from the cache without a cost
    (their cost in the summary is what they cost when asked): the kept model list, or one
    lookup (none when ``REKA_NB_MODEL_INFO`` is off)."""
    need = [
        name
        for name, rows in results.items()
        if any(r.description is not None and r.description.cost is None for r in rows)
    ]
    if not need:
        return {}
    from ..client.sync import RekaClient

    try:
        options = run.options()
        options.pop("transport", None)  # the run's own transport is async-only
        options.pop("max_connections", None)
        with RekaClient(**options) as client:
            return {name: client.model_info(name) for name in need}
    except RekaError:  # no list to be had: those costs stay unknown
        return {}
