"""What the sync and async clients share: settings, URLs, headers, bodies, and the request
flow itself (no I/O).

The request flow (send, retry with backoff and ``Retry-After``, read a reply within limits,
turn errors into types; the model list; a whole answer) is written once, as generators that
yield what to do (``Send``, ``Read``, ``Sleep``) and get back what happened, as httpx writes
its auth flow: ``RekaClient`` drives them with blocking calls, ``AsyncRekaClient`` with
awaits, so no behaviour can differ between the two. Reading replies (bodies within a size
limit, streamed answers, typed errors) is in ``replies.py``.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    ImageError,
    MissingAPIKeyError,
    RekaError,
)
from .._version import __version__
from ..protocol.body import ACCEPT_ENCODING
from ..protocol.errors import is_retryable, redact, retry_delay
from ..protocol.messages import build_body
from ..protocol.models import Model, ModelList, check_inputs
from ..protocol.stream import Completion
from .model_lists import MODELS_TTL, ModelLists
from .replies import (
    AFTER_FINISH_WAIT,
    DRAIN_LIMIT,
    DRAIN_WAIT,
    Body,
    KeyAuth,
    StreamState,
    describe_transport,
    error_of,
    json_completion,
    json_models,
    may_retry,
    shutdown,
    stream_answer,
    stream_reply_kind,
    wait_before_retry,
)
from .settings import Secret, Settings, check_base_url, model_info_wanted, positive, resolve
from .transports import check_transport, limits

__all__ = [
    "MODELS_TTL",
    "WHOLE",
    "BaseChatStream",
    "BaseClient",
    "Chunk",
    "Flow",
    "Lookup",
    "Messages",
    "Read",
    "Send",
    "Sleep",
    "require_image",
    "translate_send_error",
]

Messages = Iterable[Mapping[str, Any]]


@dataclass(frozen=True)
class Send:
    """Send this request; the driver answers with the response (its body still unread), or
    the ``httpx.HTTPError`` that sending raised."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any
    auth: KeyAuth


@dataclass(frozen=True)
class Read:
    """Read this response's body within MAX_BODY_SIZE and close it: a ``Body``, or the
    ``httpx.HTTPError`` that reading raised."""

    response: httpx.Response


@dataclass(frozen=True)
class Sleep:
    """Wait this many seconds (a backoff) before going on."""

    seconds: float


@dataclass(frozen=True)
class Chunk:
    """The next raw bytes of a streamed body: ``bytes``, None at its end, or the
    ``httpx.HTTPError`` that reading raised. With ``wait``, only what arrives within ``wait``
    seconds of the first such step (after that: None, and the connection is shut)."""

    wait: float | None = None


@dataclass(frozen=True)
class Lookup:
    """Find the model list for these settings (``model_lists``: in memory, on disk, else one
    ``GET /models`` shared by the threads or tasks asking at once, waited for no longer than
    its deadline); the driver answers with the list, or None when none is known."""

    settings: Settings


#: Read the whole body (a JSON answer to a stream request): a ``Body`` or an ``HTTPError``.
WHOLE = object()

#: A request flow: yields steps, gets each one's outcome, returns its result.
Flow = Generator["Send | Read | Sleep | Lookup", Any, Any]


class BaseClient:
    """Settings and request building for RekaClient and AsyncRekaClient.

    Every setting left as None is read from the environment at call time.
    """

    _http: Any = None  # the driver's httpx pool, made at first use
    _http_class: Any = None  # httpx.Client or httpx.AsyncClient
    _run_describe: Callable[..., Any]  # run_describe or run_adescribe

    def __init__(
        self,
        *,
        api_key: str | Secret | None = None,
        base_url: str | None = None,
        model: str | None = None,
        api: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        max_images: int | None = None,
        max_request_bytes: int | None = None,
        model_info: bool | None = None,
        transport: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        # Held as a Secret: no repr, traceback or pickle of the client shows the key.
        self._api_key = api_key if isinstance(api_key, Secret) or not api_key else Secret(api_key)
        api_key = None  # this frame's local too, should the checks below raise
        self.base_url = base_url
        self.model = model
        self.api = api
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_images = max_images
        self.max_request_bytes = max_request_bytes
        self._lock = threading.Lock()  # the connection pool is made once, even across threads
        self._closed = False
        self._streams: weakref.WeakSet[Any] = weakref.WeakSet()  # every connection opened
        self.model_info_lookup = model_info  # None: REKA_NB_MODEL_INFO (default on)
        self._model_lists = ModelLists()  # in memory, on disk, and one lookup at a time
        if base_url is not None:  # refuse a bad URL when the client is made, not at first use
            check_base_url(base_url)
        if api not in (None, "openai", "native"):
            raise ConfigurationError(f"api must be 'openai' or 'native', not {api!r}")
        if max_images is not None:  # refuse bad limits now, not at first use
            positive("max_images", max_images)
        if max_request_bytes is not None:
            positive("max_request_bytes", max_request_bytes)
        if max_connections is not None:
            positive("max_connections", max_connections)
        self.max_connections = max_connections
        self.transport = self._check_transport(check_transport(transport))

    def __repr__(self) -> str:
        key = "[secure]" if self._api_key else "from REKA_API_KEY"
        return (
            f"{type(self).__name__}(base_url={self.base_url or 'from settings'!r}, "
            f"model={self.model or 'from settings'!r}, api={self.api or 'openai'!r}, "
            f"api_key={key!r})"
        )

    def __reduce__(self) -> Any:
        raise TypeError(
            f"a {type(self).__name__} is not pickled (it holds a connection pool and the key): "
            "make one in each process"
        )

    def options(self) -> dict[str, Any]:
        """The constructor arguments of this client, to make another like it (say, an async
        twin for another event loop); the key stays a ``Secret``."""
        return {
            "api_key": self._api_key,
            "base_url": self.base_url,
            "model": self.model,
            "api": self.api,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_retries": self.max_retries,
            "backoff": self.backoff,
            "max_images": self.max_images,
            "max_request_bytes": self.max_request_bytes,
            "model_info": self.model_info_lookup,
            "transport": self.transport,
            "max_connections": self.max_connections,
        }

    def _client(self) -> Any:
        """The connection pool, made at first use (ClientClosedError once closed)."""
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._http is None:
                self._http = self._http_class(**self._client_options())
            return self._http

    def describe(self, image: Any, prompt: str | None = None, **options: Any) -> Any:
        """Ask about one or more images; see ``reka_nb.describe`` (on an AsyncRekaClient,
        ``await`` it: see ``reka_nb.adescribe``). Options: model, stream, show, params."""
        require_image(image)
        return type(self)._run_describe(self, image, prompt, **options)

    def models(self, *, refresh: bool = False) -> Any:
        """The models this key can use, with what ``GET /models`` says of each (``Model``s,
        which are their ids as str). Kept for ``MODELS_TTL`` seconds; ``refresh`` asks again.
        (On an AsyncRekaClient, ``await`` it.)"""
        return self._drive(self._models_flow(refresh))

    def model_info(self, model: str | None = None, *, settings: Settings | None = None) -> Any:
        """What the server says of ``model`` (its inputs and prices), from the kept list (in
        memory, or on disk for a day) or one lookup shared by the threads (tasks) asking now,
        waited for at most ``LOOKUP_DEADLINE`` seconds (unless the lookup is off:
        ``model_info=False`` or ``REKA_NB_MODEL_INFO=off``); None when unknown. (On an
        AsyncRekaClient, ``await`` it.) ``settings``: those a question resolved already
        (its model's), so they are not resolved again."""
        return self._drive(self._model_info_flow(model, settings))

    def start_model_lookup(
        self, model: str | None = None, *, settings: Settings | None = None
    ) -> None:
        """Begin the lookup of ``model_info`` (in a thread; on an AsyncRekaClient, in a task of
        the running loop) when the list is not known, so that it runs while the question is
        prepared. ``settings``: those resolved already for ``model``."""
        if settings is None:
            try:
                settings = self.settings(model)
            except RekaError:  # the question itself says what is wrong
                return
        if settings.api_key and self._looks_up_models():
            self._start_lookup(settings)

    def _start_lookup(self, settings: Settings) -> None:
        raise NotImplementedError  # a thread or a task: each client its own way

    def _drive(self, flow: Flow) -> Any:
        raise NotImplementedError  # each client drives flows its own way

    def settings(self, model: str | None = None) -> Settings:
        """The settings a request made now would use."""
        return resolve(
            api_key=self._api_key,
            base_url=self.base_url,
            model=self.model if model is None else model,
            api=self.api,
            max_images=self.max_images,
            max_request_bytes=self.max_request_bytes,
        )

    @property
    def closed(self) -> bool:
        """True once ``close()`` (``aclose()``) was called: every later call raises."""
        return self._closed

    def _closed_error(self) -> ClientClosedError:
        return ClientClosedError(
            f"this {type(self).__name__} was closed: make a new client for more questions"
        )

    def _mark_closed(self) -> Any:
        """Mark the client closed; wake every read in progress (their sockets are shut down,
        so a call in another thread ends at once); return the pool to close, if any."""
        with self._lock:
            self._closed = True
            http, self._http = self._http, None
        for stream in list(self._streams):
            shutdown(stream)
        return http

    def _note_connection(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace: remember each connection opened, to wake its reads on close().
        (aiohttp's pool sends no trace: closing it wakes its reads, see aiohttp_transport.)"""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info.get("return_value")
            if stream is not None:
                with contextlib.suppress(TypeError):
                    self._streams.add(stream)

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )

    def _check_transport(self, transport: str | None) -> str | None:
        """The ``transport`` argument, refused now when this client cannot use it."""
        return transport

    def _client_options(self) -> dict[str, Any]:
        return {
            "timeout": self._timeout(),
            "follow_redirects": False,
            "trust_env": False,
            "limits": limits(self.max_connections),
        }

    @staticmethod
    def _headers(settings: Settings, *, stream: bool = False) -> dict[str, str]:
        """Headers without the key (``KeyAuth`` adds it as the request is sent)."""
        settings.require_key()
        return {
            "User-Agent": f"reka-nb/{__version__}",
            "Accept": "text/event-stream" if stream else "application/json",
            "Accept-Encoding": ACCEPT_ENCODING,  # only what read_limited/StreamState decode
        }

    @staticmethod
    def _auth(settings: Settings) -> KeyAuth:
        if not settings.api_key:
            raise MissingAPIKeyError()
        return KeyAuth(Secret(settings.api_key), native=settings.api == "native")

    def _chat_request(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        model: str | None,
        stream: bool,
        params: Mapping[str, Any],
        settings: Settings | None = None,
    ) -> tuple[Settings, str, dict[str, str], dict[str, Any]]:
        """(settings, url, headers, body) for a chat call; raises before anything is sent.
        ``settings``: those a question resolved already (else resolved now, for ``model``)."""
        settings = self.settings(model) if settings is None else settings
        body = build_body(
            messages, model=settings.model, stream=stream, api=settings.api, params=params
        )
        path = "/chat" if settings.api == "native" else "/chat/completions"
        headers = self._headers(settings, stream=stream)
        self._check_inputs(settings, body["messages"])
        return settings, settings.base_url + path, headers, body

    # -- model metadata (see model_lists: memory, disk, one lookup with a deadline) ----------

    def _cached_models(
        self, settings: Settings, *, stale: bool = False
    ) -> tuple[bool, ModelList | None]:
        """(found, list): a list, or None for a recent failure to get one, when still fresh
        (or, with ``stale``, the last list got, however old: prices outlive the TTL)."""
        return self._model_lists.cached(settings, stale=stale)

    def _keep_models(self, settings: Settings, models: ModelList | None) -> None:
        self._model_lists.keep(settings, models)

    def _looks_up_models(self) -> bool:
        """Whether a question first looks the list up (on disk, else ``GET /models``) when it
        is not known: the ``model_info`` argument, else ``REKA_NB_MODEL_INFO`` (default on)."""
        if self.model_info_lookup is not None:
            return self.model_info_lookup
        return model_info_wanted()

    def key_refused(self, settings: Settings) -> BaseException | None:
        """The 401 with which the server refused these settings' key to the last model list
        lookup (none got a list since), or None: no request with that key can succeed."""
        return self._model_lists.refusal(settings)

    def known_models(self, settings: Settings) -> ModelList | None:
        """The last model list got for these settings, however old (no request), or None."""
        return self._cached_models(settings, stale=True)[1]

    def known_model(
        self, model: str | None = None, *, settings: Settings | None = None
    ) -> Model | None:
        """What the last model list said about ``model`` (no request); None when unknown."""
        settings = self.settings(model) if settings is None else settings
        _, models = self._cached_models(settings, stale=True)
        return models.get(settings.model) if models else None

    def _check_inputs(self, settings: Settings, messages: Any) -> None:
        """Refuse an input the model does not take, when the cached list describes the model."""
        _, models = self._cached_models(settings, stale=True)
        info = models.get(settings.model) if models else None
        if info is not None and models is not None:
            check_inputs(info, messages, models)  # the list itself: no copy per request

    # -- the request flow, written once (driven by each client's ``_drive``) -----------------

    def _send_flow(
        self,
        method: str,
        url: str,
        settings: Settings,
        headers: dict[str, str],
        body: Any = None,
        *,
        read: bool = False,
        retries: int | None = None,
    ) -> Flow:
        """Send with retries; return (a response with a 2xx status, its body if ``read``).

        Only what happens before the reply is retried: a body that breaks is not resent.
        Errors are raised here, outside any ``except``: httpx's exception holds the request,
        which must not become a typed error's context.
        """
        auth = self._auth(settings)  # the key goes into the request only as it is sent
        retries = self.max_retries if retries is None else retries
        for attempt in range(retries + 1):
            last = attempt == retries
            sent = yield Send(method, url, headers, body, auth)
            if isinstance(sent, httpx.HTTPError):
                if last or not may_retry(sent) or self._closed:
                    raise translate_send_error(sent, settings, self)
                yield Sleep(retry_delay(attempt, base=self.backoff))
                continue
            response: httpx.Response = sent
            if response.is_success and not read:
                return response, Body(b"")
            content = yield Read(response)
            if isinstance(content, httpx.HTTPError):
                raise translate_send_error(content, settings, self)
            if response.is_success:
                return response, content
            api_error = yield from self._error_flow(response, content, settings, body)
            if last or not is_retryable(api_error):
                raise api_error
            wait = wait_before_retry(api_error, response)
            yield Sleep(retry_delay(attempt, wait, base=self.backoff))
        raise AssertionError("unreachable")

    def _error_flow(
        self, response: httpx.Response, content: Body, settings: Settings, body: Any
    ) -> Generator[Any, Any, APIError]:
        """The typed error of a reply; a 404 for a model lists the models that exist."""
        model = body.get("model") if isinstance(body, dict) else None
        available: list[str] = []
        if response.status_code == 404 and model is not None:
            try:
                available = yield from self._list_flow(retries=0)
            except Exception:  # listing is a courtesy; the 404 is the error to report
                available = []
        return error_of(response, content, settings, model, available)

    def _list_flow(self, retries: int | None = None) -> Generator[Any, Any, ModelList]:
        settings = self.settings()
        headers = self._headers(settings)
        url = settings.base_url + "/models"
        response, body = yield from self._send_flow(
            "GET", url, settings, headers, read=True, retries=retries
        )
        return json_models(response, body, settings)

    def _models_flow(self, refresh: bool) -> Generator[Any, Any, ModelList]:
        settings = self.settings()
        found, models = self._cached_models(settings)
        if found and models is not None and not refresh:
            return models
        models = yield from self._list_flow()
        self._keep_models(settings, models)
        return models

    def _model_info_flow(
        self, model: str | None, settings: Settings | None = None
    ) -> Generator[Any, Any, Model | None]:
        settings = self.settings(model) if settings is None else settings
        if not self._looks_up_models():
            return self.known_model(settings=settings)  # a list got earlier, however old
        models = yield Lookup(settings)
        return models.get(settings.model) if models else None

    def _complete_flow(
        self,
        messages: Messages,
        model: str | None,
        retries: int | None,
        settings: Settings | None,
        params: Mapping[str, Any],
    ) -> Generator[Any, Any, Completion]:
        settings, url, headers, body = self._chat_request(
            messages, model=model, stream=False, params=params, settings=settings
        )
        response, content = yield from self._send_flow(
            "POST", url, settings, headers, body, read=True, retries=retries
        )
        return json_completion(response, content, settings)


class BaseChatStream:
    """A streamed answer: what ``ChatStream`` and ``AsyncChatStream`` share, and their
    reading written once (``_flow``) for each to drive."""

    def __init__(
        self,
        client: BaseClient,
        messages: Messages,
        model: str | None,
        params: dict,
        retries: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._client: Any = client
        self._retries = retries
        self.settings, self._url, self._headers, self._body = client._chat_request(
            messages, model=model, stream=True, params=params, settings=settings
        )
        self._response: httpx.Response | None = None
        self._state: StreamState | None = None
        self.completion: Completion | None = None

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def request_id(self) -> str | None:
        return self._state.request_id if self._state else None

    @property
    def headers(self) -> Mapping[str, str]:
        """The response's headers once it is open (rate-limit state, request id), else empty."""
        return self._response.headers if self._response is not None else {}

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._state.acc.text if self._state else ""

    def _request_flow(self, client: BaseClient) -> Flow:
        return client._send_flow(
            "POST", self._url, self.settings, self._headers, self._body, retries=self._retries
        )

    def _opened(self, client: BaseClient, response: httpx.Response) -> None:
        self._response = response
        self._state = StreamState(
            self.settings, response, client.read_timeout, lambda: client.closed
        )

    def _flow(self) -> Generator[Any, Any, None]:
        """Read the answer: yields text deltas (str) and ``Chunk``/``WHOLE`` steps.

        After the finish reason, what follows (usage, ``[DONE]``, the end of the body) is read
        for at most AFTER_FINISH_WAIT seconds (DRAIN_WAIT after ``[DONE]``): a server that
        keeps the connection open gets it shut, so the answer never waits on it. Errors are
        raised outside any ``except``: httpx's request stays out of their context.
        """
        assert self._response is not None and self._state is not None
        state, response = self._state, self._response
        if state.started:
            raise RuntimeError("this answer has been read already: start a new stream")
        state.started = True
        if stream_reply_kind(response) == "json":  # a whole answer to a stream request
            content = yield WHOLE
            if isinstance(content, httpx.HTTPError):
                raise state.translate(content)
            text = state.acc.take_whole(json_completion(response, content, self.settings))
            if text:
                yield text
            self.completion = state.acc.completion(state.request_id)
            return
        failure: httpx.HTTPError | None = None
        while not state.acc.finished:
            chunk = yield Chunk()
            if isinstance(chunk, httpx.HTTPError):
                failure = chunk
                break
            if chunk is None:
                yield from state.end()
                break
            yield from state.feed(chunk)
        if failure is not None and not state.acc.finished:  # after the finish: nothing lost
            raise state.translate(failure)
        if failure is None and state.acc.finished:
            wait = Chunk(DRAIN_WAIT if state.acc.done else AFTER_FINISH_WAIT)
            while True:
                chunk = yield wait
                if chunk is None or isinstance(chunk, httpx.HTTPError):
                    break  # the answer is complete; the connection is simply not reused
                if not state.acc.done:
                    yield from state.feed(chunk)
                    continue
                state.drained += len(chunk)
                if state.drained > DRAIN_LIMIT:
                    break  # more than an end of body: not worth keeping the connection
        self.completion = stream_answer(state, response)  # a ServerError when it held no text


def translate_send_error(exc: httpx.HTTPError, settings: Settings, client: BaseClient) -> RekaError:
    """An httpx error raised before an answer arrived, as a typed error. Raise it outside the
    ``except`` block: httpx's exception holds the request, which must not become the new
    error's context."""
    if client.closed:
        return client._closed_error()
    where = settings.base_url
    if isinstance(exc, httpx.ConnectTimeout):
        return APITimeoutError(f"Connecting to {where} took more than {client.connect_timeout:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{where} did not answer within {client.read_timeout:g} s")
    detail = redact(describe_transport(exc), settings.api_key)
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"Could not connect to {where} ({detail})")
    return APIConnectionError(f"The connection to {where} failed before an answer ({detail})")


def require_image(image: Any) -> None:
    """describe() is about images: None (allowed inside, for text-only magics) is an error here."""
    if image is None:
        raise ImageError(
            "describe() needs an image: pass a path, URL, bytes, an open binary file, a PIL image, "
            "a numpy array or a matplotlib figure, or a list of them"
        )
