"""Where a client finds the model list (``GET /models``) without costing the user a wait.

A question needs the model's inputs (to refuse what it cannot take, unsent) and prices (for
its cost). The list is found, in order:

1. in memory, for ``MODELS_TTL`` seconds after it was got;
2. on disk, beside the answer cache: one file per base URL and endpoint kind, kept for
   ``DISK_TTL`` (a day), never holding the key, written by whichever process got the list. The
   in-process offline server's list is not kept there (its port changes with each process, and
   asking it costs nothing);
3. from the server, by one lookup shared by every thread (or task of one event loop) that
   asks at once. It starts as early as the question does, so it runs while the images are
   prepared, and it has ``LOOKUP_DEADLINE`` seconds for the whole response: a question that
   would wait longer goes on without the metadata, as one whose lookup failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from ..protocol.body import BodyTooLarge
from ..protocol.errors import refuses_key
from ..protocol.models import ModelList, models_from_entries
from .replies import Body, body_reader, json_models, take_body
from .settings import Settings

if TYPE_CHECKING:  # asyncio and concurrent.futures come with the parts that use them
    import asyncio
    import concurrent.futures

__all__ = [
    "DISK_TTL",
    "LOOKUP_DEADLINE",
    "MODELS_TTL",
    "ModelLists",
    "fetch_models",
    "list_folder",
    "load_list",
    "save_list",
]

MODELS_TTL = 300.0
"""Seconds a client keeps the model list (and a failure to get it) in memory."""
DISK_TTL = 86_400.0
"""Seconds a model list kept on disk is used before the server is asked again."""
LOOKUP_DEADLINE = 2.0
"""Seconds a lookup has for the whole ``GET /models`` response, from when it starts."""
FOLDER_NAME = "model-lists"
_MAX_FILE = 64 * 1024 * 1024

ListKey = tuple[str, str, str]


def list_key(settings: Settings) -> ListKey:
    """Which list a kept one is: the server, the endpoint and (a digest of) the key."""
    key = settings.api_key or ""
    return settings.base_url, settings.api, hashlib.sha256(key.encode()).hexdigest()[:16]


# -- on disk ----------------------------------------------------------------------------------


def list_folder() -> Path | None:
    """The folder of kept lists: ``model-lists`` in the answer cache's folder
    (``REKA_NB_CACHE``, else the user cache folder); None when the cache is off, or its
    setting is refused (the answer cache says why where it is used)."""
    from .._exceptions import ConfigurationError
    from ..cache import cache_folder

    try:
        folder = cache_folder()
    except ConfigurationError:
        return None
    return None if folder is None else folder / FOLDER_NAME


def _list_file(settings: Settings) -> Path | None:
    if settings.offline:  # the in-process offline server: a new port in every process
        return None
    folder = list_folder()
    if folder is None:
        return None
    name = hashlib.sha256(f"{settings.api} {settings.base_url}".encode()).hexdigest()[:32]
    return folder / f"{name}.json"


def load_list(settings: Settings, *, now: float | None = None) -> ModelList | None:
    """The list kept on disk for this server, when there is one younger than ``DISK_TTL``;
    None otherwise (a missing, old, foreign or unreadable file is as no file)."""
    path = _list_file(settings)
    if path is None:
        return None
    try:
        with open(path, "rb") as file:
            raw = file.read(_MAX_FILE + 1)
        if len(raw) > _MAX_FILE:
            return None
        data = json.loads(raw)
        age = (time.time() if now is None else now) - float(data["stored"])
        if data["base_url"] != settings.base_url or data["api"] != settings.api:
            return None
        if not 0 <= age < DISK_TTL or not isinstance(data["models"], list):
            return None
        return models_from_entries(data["models"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def save_list(settings: Settings, models: ModelList) -> bool:
    """Keep the list on disk for this server (readable by the user alone); False when it was
    not kept: the cache is off, the offline server, a failure to write, or a list that holds
    the key (a server that echoes it), which is never written."""
    path = _list_file(settings)
    if path is None:
        return False
    text = json.dumps(
        {
            "base_url": settings.base_url,
            "api": settings.api,
            "stored": time.time(),
            "models": models.to_json(),
        },
        separators=(",", ":"),
    )
    key = settings.api_key
    if key and (key in text or json.dumps(key)[1:-1] in text):
        return False
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".models-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temp, path)  # readers see the old file or the new one, never half
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    except OSError:
        return False
    return True


# -- from the server, with a deadline on the whole response ----------------------------------


def fetch_models(client: Any, settings: Settings, deadline: float) -> ModelList:
    """``GET /models`` on a sync client's pool, ended at ``deadline`` (``time.monotonic()``)
    however the server sends it (held open, a byte at a time); raises on any failure."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("no time left for the model list")
    http: httpx.Client = client._client()
    request = http.build_request(
        "GET",
        settings.base_url + "/models",
        headers=client._headers(settings),
        timeout=httpx.Timeout(left),  # no single wait past the deadline
        extensions={"trace": client._note_connection},  # close() wakes it too
    )
    response = http.send(request, stream=True, auth=client._auth(settings))
    try:
        if not response.is_success:
            raise LookupError(f"the model list answered {response.status_code}")
        decoder, why = body_reader(response)
        out = bytearray()
        for chunk in response.iter_raw():
            take_body(decoder, why, out, chunk)
            if time.monotonic() > deadline:
                raise TimeoutError("the model list took longer than its deadline")
    except BodyTooLarge:
        raise LookupError("the model list is larger than a reply may be") from None
    finally:
        response.close()
    return json_models(response, Body(bytes(out)), settings)


# -- kept lists and shared lookups of one client ---------------------------------------------


class _Flight:
    """One lookup in progress: when it started, and how to wait for it."""

    def __init__(self, started: float, future: Any) -> None:
        self.started = started
        self.future = future  # concurrent.futures.Future (threads) or asyncio.Task (a loop)

    @property
    def deadline(self) -> float:
        return self.started + LOOKUP_DEADLINE


class ModelLists:
    """A client's model lists: kept in memory, read from and written to disk, and looked up
    once for all the callers that need one at the same time. Safe to share between threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._kept: dict[ListKey, tuple[float, ModelList | None]] = {}
        self._flights: dict[tuple[ListKey, Any], _Flight] = {}
        # A lookup's 401 and when it came, until a lookup gets a list for that key.
        self._refused: dict[ListKey, tuple[float, BaseException]] = {}

    def refusal(self, settings: Settings) -> BaseException | None:
        """The answer that refused these settings' key (a 401) to a lookup in the last
        ``MODELS_TTL`` seconds, none having got a list since: no request with that key can
        succeed (the failure is kept as long; a lookup after it asks again)."""
        with self._lock:
            seen = self._refused.get(list_key(settings))
        if seen is None or time.monotonic() - seen[0] > MODELS_TTL:
            return None
        return seen[1]

    def _failure(self, settings: Settings, exc: BaseException) -> None:
        """A lookup failed: a refusal of the key (a 401) is remembered (``refusal``); not
        an answer about credits, which a top-up ends without a new key."""
        if refuses_key(exc):
            with self._lock:
                self._refused[list_key(settings)] = (time.monotonic(), exc)

    def cached(self, settings: Settings, *, stale: bool = False) -> tuple[bool, ModelList | None]:
        """(found, list) in memory: a list, or None for a recent failure to get one, when
        still fresh (or, with ``stale``, the last list got, however old)."""
        with self._lock:
            entry = self._kept.get(list_key(settings))
        if entry is None:
            return False, None
        if time.monotonic() - entry[0] > MODELS_TTL:
            return (True, entry[1]) if stale and entry[1] is not None else (False, None)
        return True, entry[1]

    def keep(self, settings: Settings, models: ModelList | None, *, disk: bool = True) -> None:
        """Keep a list got from the server (also on disk), or None for a failure to get one."""
        with self._lock:
            self._kept[list_key(settings)] = (time.monotonic(), models)
        if models is not None and disk:
            save_list(settings, models)

    def _known(self, settings: Settings) -> tuple[bool, ModelList | None]:
        """What memory or disk knows now, without asking the server (lock held)."""
        found, models = self.cached(settings)
        if found:
            return True, models
        models = load_list(settings)
        if models is not None:
            self.keep(settings, models, disk=False)
            return True, models
        return False, None

    def _failed(self, settings: Settings) -> ModelList | None:
        """After a failed lookup: the last list got, however old, is kept again (or None)."""
        models = self.cached(settings, stale=True)[1]
        self.keep(settings, models, disk=False)
        return models

    def _begin(
        self, settings: Settings, loop: Any, launch: Callable[[float], Any]
    ) -> tuple[ModelList | None, _Flight | None]:
        """(the list, None) when it is known; else (None, the lookup in flight), started now
        by ``launch(started)`` unless one already is."""
        with self._lock:
            found, models = self._known(settings)
            if found:
                return models, None
            key = (list_key(settings), loop)
            flight = self._flights.get(key)
            if flight is None:
                started = time.monotonic()
                flight = _Flight(started, launch(started))
                self._flights[key] = flight
            return None, flight

    def _land(self, settings: Settings, loop: Any, models: ModelList | None) -> ModelList | None:
        """A lookup ended: keep what it got (or what was known before), end the flight."""
        with self._lock:
            self._flights.pop((list_key(settings), loop), None)
            if models is None:
                return self._failed(settings)
            self._refused.pop(list_key(settings), None)  # the key works after all
            self.keep(settings, models)
            return models

    # -- threads -------------------------------------------------------------------------

    def start(self, settings: Settings, fetch: Callable[[float], ModelList]) -> None:
        """Begin the lookup in a thread of its own unless the list is known or being got;
        ``fetch(deadline)`` gets it. The caller goes on (preparing images, say)."""
        self._begin(settings, None, lambda started: self._thread(settings, fetch, started))

    def wait(self, settings: Settings, fetch: Callable[[float], ModelList]) -> ModelList | None:
        """The list: known, or got by the lookup in flight (started now if none is), waiting
        no later than its deadline; on failure or past it, the last list got or None."""
        models, flight = self._begin(
            settings, None, lambda started: self._thread(settings, fetch, started)
        )
        if flight is None:
            return models
        import concurrent.futures

        try:
            got: ModelList | None = flight.future.result(
                timeout=max(0.0, flight.deadline - time.monotonic())
            )
        except concurrent.futures.TimeoutError:
            return self.cached(settings, stale=True)[1]
        return got

    def _thread(
        self, settings: Settings, fetch: Callable[[float], ModelList], started: float
    ) -> concurrent.futures.Future[ModelList | None]:
        import concurrent.futures

        future: concurrent.futures.Future[ModelList | None] = concurrent.futures.Future()

        def run() -> None:
            try:
                got: ModelList | None = fetch(started + LOOKUP_DEADLINE)
            except Exception as exc:  # metadata is a courtesy: without it the question goes on
                self._failure(settings, exc)
                got = None
            future.set_result(self._land(settings, None, got))

        threading.Thread(target=run, name="reka-nb-model-list", daemon=True).start()
        return future

    # -- one event loop's tasks ----------------------------------------------------------

    def astart(self, settings: Settings, fetch: Callable[[], Awaitable[ModelList]]) -> None:
        """``start`` for a task of the running loop: ``fetch()`` is cancelled at the deadline."""
        import asyncio

        loop = asyncio.get_running_loop()
        self._begin(settings, loop, lambda started: self._task(settings, fetch, loop))

    async def await_list(
        self, settings: Settings, fetch: Callable[[], Awaitable[ModelList]]
    ) -> ModelList | None:
        """``wait`` for a task of the running loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        models, flight = self._begin(
            settings, loop, lambda started: self._task(settings, fetch, loop)
        )
        if flight is None:
            return models
        got: ModelList | None = await asyncio.shield(flight.future)  # ends by its deadline
        return got

    def _task(
        self,
        settings: Settings,
        fetch: Callable[[], Awaitable[ModelList]],
        loop: asyncio.AbstractEventLoop,
    ) -> asyncio.Task[ModelList | None]:
        import asyncio

        async def run() -> ModelList | None:
            got: ModelList | None
            try:
                got = await asyncio.wait_for(fetch(), LOOKUP_DEADLINE)
            except asyncio.CancelledError:  # the loop ends: no failure to remember
                with self._lock:
                    self._flights.pop((list_key(settings), loop), None)
                raise
            except Exception as exc:  # a timeout too: without metadata the question goes on
                self._failure(settings, exc)
                got = None
            return self._land(settings, loop, got)

        return loop.create_task(run())
