"""Describe a Ray dataset: ``describe_dataset(ds, prompt)`` adds the answers as columns.

Ray Data does the reading, preprocessing and scheduling; each actor of a small pool runs the
many-images engine (``reka_nb.batch.run_items``) on its batches: async, ``in_flight``
requests at once, failures kept per row. Every request of every actor first takes a slot
from one ``PermitDesk`` actor, so ``requests_per_minute`` holds for the whole cluster and a
429's ``Retry-After`` pauses every actor (``ray_limiter``).

The API key never travels with the work: actors read ``REKA_API_KEY`` from their own
environment, which Ray workers inherit from their node (``REKA_API_KEY=... ray start`` on
a cluster; the environment of the process that calls ``ray.init()`` on one machine). Only
the base URL, model, prompt and parameters go to the actors.

Ray and pandas are imported only when these functions run.
"""

from __future__ import annotations

import asyncio
import functools
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._exceptions import ConfigurationError, InvalidRequestError, MissingAPIKeyError
from ..answer import DEFAULT_PROMPT
from ..batch.engine import Item, run_items
from ..batch.options import check_run_options
from ..batch.results import COLUMNS, field_columns
from ..cache import FILE_NAME, AnswerCache, cache_folder
from ..client.aio import AsyncRekaClient
from ..client.settings import resolve
from ..client.structured import schema_of
from ..client.transports import check_transport, chosen, pick
from ..protocol.messages import check_params
from .limiter import RayLimiter, desk_name, get_desk

if TYPE_CHECKING:
    import numpy
    import ray.data

    from ..protocol.schema import Schema

__all__ = ["ANSWER_COLUMNS", "DatasetDescriber", "describe_dataset", "skip_answered"]

#: The columns ``describe_dataset`` adds: those of ``Results.to_pandas()`` but ``image``
#: (the dataset keeps its own columns, ``path`` among them when it was read with paths).
ANSWER_COLUMNS = tuple(c for c in COLUMNS if c != "image")

_INSTALL = "pip install 'reka-nb[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or an ImportError that says which extra brings it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise ImportError(
            f"reka_nb.ray needs Ray Data, which is not installed ({exc}): {_INSTALL}"
        ) from None
    return ray


@dataclass(frozen=True)
class _Config:
    """What every actor needs to ask: never the API key (see the module's docstring)."""

    prompt: str
    column: str
    base_url: str
    model: str
    api: str
    requests_per_minute: float | None
    in_flight: int
    retries: int
    stream: bool
    cache_path: str | None
    params: dict[str, Any] = field(default_factory=dict)
    offline_key: str | None = None  # the offline server's public test key, in offline mode
    schema: Schema | None = None  # a structured answer's (pickled without its validators)
    schema_retries: int = 1
    transport: str | None = None  # None: the worker's REKA_NB_TRANSPORT, else auto


class DatasetDescriber:
    """The callable class ``map_batches`` runs in each actor: one client, one event loop
    and one connection pool for the actor's life, the engine on each batch."""

    def __init__(self, config: _Config, desk: Any) -> None:
        self._config = config
        self._client = AsyncRekaClient(
            api_key=config.offline_key,
            base_url=config.base_url,
            model=config.model,
            api=config.api,
            transport=chosen(config.transport, "auto"),
            max_connections=config.in_flight + 1,  # the requests in flight and the model list
        )
        try:
            self._client.settings().require_key()
        except MissingAPIKeyError:
            raise MissingAPIKeyError(
                "REKA_API_KEY is not set in this Ray worker's environment: set it on every "
                "node before Ray starts there (REKA_API_KEY=... ray start ...), or before "
                "ray.init() on one machine. It is never sent with the work."
            ) from None
        self._limiter = RayLimiter(desk, config.requests_per_minute)
        self._cache = None if config.cache_path is None else AnswerCache(Path(config.cache_path))
        self._loop = asyncio.new_event_loop()

    def __call__(self, batch: dict[str, numpy.ndarray]) -> dict[str, numpy.ndarray]:
        import numpy

        config = self._config
        if config.column not in batch:
            raise InvalidRequestError(
                f"the dataset has no column {config.column!r} (its columns: "
                f"{', '.join(map(repr, batch))}): pass column= the one holding the images"
            )
        values = batch[config.column]
        paths = batch.get("path")
        items = [
            Item(
                i,
                _plain(value),
                str(paths[i]) if paths is not None else f"row {i}",
                config.prompt,
            )
            for i, value in enumerate(values)
        ]
        results = self._loop.run_until_complete(
            run_items(
                items,
                self._client,
                limiter=self._limiter,
                model=config.model,
                concurrency=config.in_flight,
                retries=config.retries,
                cache=self._cache,
                stream=config.stream,
                params=config.params,
                schema=config.schema,
                schema_retries=config.schema_retries,
            )
        )
        records = results.records()
        out = dict(batch)
        for name in ANSWER_COLUMNS:
            column = numpy.empty(len(records), dtype=object)
            column[:] = [r[name] for r in records]
            out[name] = column
        for taken in field_columns(config.schema).values():
            column = numpy.empty(len(records), dtype=object)
            column[:] = [r[taken] for r in records]
            while taken in batch:  # the dataset's own column keeps its name and values
                taken = f"field_{taken}"
            out[taken] = column
        return out

    def __repr__(self) -> str:
        return f"<DatasetDescriber {self._config.base_url} {self._config.model}>"


def _plain(value: Any) -> Any:
    """A column value as ``describe()`` takes it (numpy scalars to bytes and str)."""
    if isinstance(value, bytes | str):
        return bytes(value) if isinstance(value, bytes) else str(value)
    return value


def describe_dataset(
    ds: ray.data.Dataset,
    prompt: str = DEFAULT_PROMPT,
    *,
    column: str = "bytes",
    concurrency: int = 4,
    requests_per_minute: float | None = None,
    model: str | None = None,
    base_url: str | None = None,
    api: str | None = None,
    in_flight: int = 8,
    batch_size: int = 16,
    num_cpus: float = 0.25,
    cache: bool | str | os.PathLike[str] = True,
    retries: int = 2,
    stream: bool = True,
    transport: str | None = None,
    **params: Any,
) -> ray.data.Dataset:
    """Ask ``prompt`` about the image in ``column`` of every row; return the dataset with the
    answer columns added (``ANSWER_COLUMNS``). Lazy, like every Ray dataset: nothing is
    asked until it is written, iterated or materialized.

    ``column`` holds what ``describe()`` takes: bytes (``read_binary_files``), a numpy image
    (``read_images``), a path or URL. ``concurrency`` actors, each with ``num_cpus`` of a CPU
    (they mostly wait on the network) and ``in_flight`` requests at once;
    ``requests_per_minute`` holds for all of them together. ``cache=True`` uses the answer
    cache folder this process would use (``REKA_NB_CACHE``; it must be reachable from the
    workers, so it serves one machine), a path names another folder, False turns it off.
    Params as for describe(): max_tokens, temperature, ...; ``schema=``/``labels=``/
    ``multi_label=``/``schema_retries=`` ask for structured answers and add one column per
    field (named as in ``Results.to_pandas()``; a field named like a column the dataset has
    already is ``field_<name>``); a row whose answer fails its schema has nulls there and a
    ``SchemaError`` in ``error``.
    ``transport``: how each actor's pool moves its bytes, as for ``describe_many``: ``"auto"``
    (the default: httpx over aiohttp when ``reka-nb[fast]`` is installed on the workers),
    ``"aiohttp"`` or ``"httpx"``; unset, the workers' ``REKA_NB_TRANSPORT``, else auto.
    """
    ray = require_ray()
    if not isinstance(ds, ray.data.Dataset):
        raise InvalidRequestError(
            f"describe_dataset takes a ray.data.Dataset, not {type(ds).__name__}"
        )
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidRequestError(f"the prompt must be a non-empty string, not {prompt!r}")
    if not isinstance(column, str) or not column:
        raise InvalidRequestError(f"column must be a column name, not {column!r}")
    check_run_options(
        concurrency=concurrency,
        in_flight=in_flight,
        batch_size=batch_size,
        retries=retries,
        requests_per_minute=requests_per_minute,
    )
    if isinstance(num_cpus, bool) or not isinstance(num_cpus, int | float) or num_cpus < 0:
        raise InvalidRequestError(f"num_cpus must be a number >= 0, not {num_cpus!r}")
    schema, schema_retries = schema_of(params)  # an unusable schema: refused before Ray runs
    transport = check_transport(transport)
    if transport is not None:
        pick(transport)  # aiohttp without the fast extra: refused before Ray runs
    settings = resolve(base_url=base_url, model=model, api=api)
    config = _Config(
        prompt=prompt,
        column=column,
        base_url=settings.base_url,
        model=settings.model,
        api=settings.api,
        requests_per_minute=requests_per_minute,
        in_flight=in_flight,
        retries=retries,
        stream=stream,
        cache_path=_cache_path(cache),
        params=dict(check_params(params, settings.api)),
        offline_key=settings.api_key if settings.offline else None,
        schema=schema,
        schema_retries=schema_retries,
        transport=transport,
    )
    desk = get_desk(desk_name(settings.base_url, settings.api_key))
    return ds.map_batches(
        DatasetDescriber,
        fn_constructor_args=(config, desk),
        batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=concurrency),
        num_cpus=num_cpus,
    )


def _cache_path(cache: bool | str | os.PathLike[str]) -> str | None:
    if cache is False:
        return None
    if cache is True:
        folder = cache_folder()
        return None if folder is None else str(folder / FILE_NAME)
    if isinstance(cache, str | os.PathLike):
        return str(Path(os.path.expanduser(os.fspath(cache))) / FILE_NAME)
    raise InvalidRequestError(f"cache must be True, False or a folder, not {cache!r}")


def skip_answered(ds: ray.data.Dataset, output: str, *, on: str = "path") -> ray.data.Dataset:
    """``ds`` without the rows already answered in ``output`` (a folder of Parquet files a
    previous ``describe_dataset(...).write_parquet(output)`` wrote), matched by column ``on``.

    Rows whose earlier answer was an error are asked again. A file that cannot be read (one
    a killed run left half-written) is skipped with a warning: its rows are asked again.
    Writing the new answers to the same folder then completes it.
    """
    require_ray()
    import pyarrow.fs
    import pyarrow.parquet

    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(output)
    except (pyarrow.ArrowInvalid, ValueError):
        fs, root = pyarrow.fs.LocalFileSystem(), os.path.abspath(os.path.expanduser(output))
    info = fs.get_file_info(root)
    if info.type == pyarrow.fs.FileType.NotFound:
        return ds
    if info.type != pyarrow.fs.FileType.Directory:
        raise ConfigurationError(f"{output!r} is not a folder of Parquet files")
    done: set[Any] = set()
    for entry in fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True)):
        if entry.type != pyarrow.fs.FileType.File or not entry.path.endswith(".parquet"):
            continue
        try:
            table = pyarrow.parquet.read_table(entry.path, columns=[on, "error"], filesystem=fs)
        except (OSError, pyarrow.ArrowException) as exc:
            warnings.warn(
                f"skip_answered: cannot read {entry.path} ({exc}); its rows will be asked again",
                stacklevel=2,
            )
            continue
        for key, error in zip(table[on].to_pylist(), table["error"].to_pylist(), strict=True):
            if error is None:
                done.add(key)
    if not done:
        return ds
    try:  # an expression Ray Data evaluates on whole blocks (Ray 2.5x and later)
        from ray.data.expressions import col

        return ds.filter(expr=col(on).not_in(sorted(done)))
    except (ImportError, AttributeError, TypeError):
        # a function, not a callable class: Ray Data would run a class in an actor pool
        return ds.filter(functools.partial(_not_answered, on, frozenset(done)))


def _not_answered(on: str, done: frozenset[Any], row: Mapping[str, Any]) -> bool:
    return row[on] not in done
