"""What the sync and async clients share: settings, URLs, headers, bodies (no I/O)."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ConfigurationError,
    RateLimitError,
    RekaError,
    ServerError,
    StreamInterrupted,
)
from ._settings import Settings, check_base_url, model_info_wanted, redact, resolve
from ._version import __version__
from .protocol.errors import parse_retry_after
from .protocol.messages import build_body
from .protocol.models import Model, ModelList, check_inputs, parse_models
from .protocol.sse import SSEDecoder
from .protocol.stream import (
    Accumulator,
    Completion,
    MalformedEvent,
    StreamError,
    parse_completion,
)

__all__ = [
    "MODELS_TTL",
    "BaseClient",
    "Messages",
    "StreamState",
    "json_completion",
    "json_models",
    "may_retry",
    "request_id_of",
    "translate_send_error",
    "wait_before_retry",
]

Messages = Iterable[Mapping[str, Any]]

MODELS_TTL = 300.0
"""Seconds a client keeps the model list (and a failure to get it) before asking again."""


class BaseClient:
    """Settings and request building for RekaClient and AsyncRekaClient.

    Every setting left as None is read from the environment at call time.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        api: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_retries: int = 2,
        backoff: float = 0.5,
        model_info: bool | None = None,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, not {max_retries}")
        self._api_key = api_key
        self.base_url = base_url
        self.model = model
        self.api = api
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.model_info_lookup = model_info  # None: REKA_NB_MODEL_INFO (default on)
        self._lock = threading.Lock()  # the connection pool is made once, even across threads
        self._model_lists: dict[tuple[str, str, str], tuple[float, ModelList | None]] = {}
        if base_url is not None:  # refuse a bad URL when the client is made, not at first use
            check_base_url(base_url)
        if api not in (None, "openai", "native"):
            raise ConfigurationError(f"api must be 'openai' or 'native', not {api!r}")

    def __repr__(self) -> str:
        key = "[secure]" if self._api_key else "from REKA_API_KEY"
        return (
            f"{type(self).__name__}(base_url={self.base_url or 'from settings'!r}, "
            f"model={self.model or 'from settings'!r}, api={self.api or 'openai'!r}, "
            f"api_key={key!r})"
        )

    def options(self) -> dict[str, Any]:
        """The constructor arguments of this client, to make another like it (say, an async
        twin for another event loop); they include the key, so never print them."""
        return {
            "api_key": self._api_key,
            "base_url": self.base_url,
            "model": self.model,
            "api": self.api,
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "max_retries": self.max_retries,
            "backoff": self.backoff,
            "model_info": self.model_info_lookup,
        }

    def settings(self, model: str | None = None) -> Settings:
        """The settings a request made now would use."""
        return resolve(
            api_key=self._api_key,
            base_url=self.base_url,
            model=self.model if model is None else model,
            api=self.api,
        )

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.read_timeout,
            pool=self.connect_timeout,
        )

    def _client_options(self) -> dict[str, Any]:
        return {"timeout": self._timeout(), "follow_redirects": False, "trust_env": False}

    @staticmethod
    def _headers(settings: Settings, *, stream: bool = False) -> dict[str, str]:
        key = settings.require_key()
        headers = {"User-Agent": f"reka-nb/{__version__}", "Accept": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        if settings.api == "native":
            headers["X-Api-Key"] = key
        else:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _chat_request(
        self,
        messages: Iterable[Mapping[str, Any]],
        *,
        model: str | None,
        stream: bool,
        params: Mapping[str, Any],
    ) -> tuple[Settings, str, dict[str, str], dict[str, Any]]:
        """(settings, url, headers, body) for a chat call; raises before anything is sent."""
        settings = self.settings(model)
        body = build_body(
            messages, model=settings.model, stream=stream, api=settings.api, params=params
        )
        path = "/chat" if settings.api == "native" else "/chat/completions"
        headers = self._headers(settings, stream=stream)
        self._check_inputs(settings, body["messages"])
        return settings, settings.base_url + path, headers, body

    # -- model metadata (kept per client for MODELS_TTL seconds) ------------------------------

    @staticmethod
    def _list_key(settings: Settings) -> tuple[str, str, str]:
        """Which list a cached one is: the server, the endpoint and (a digest of) the key."""
        key = settings.api_key or ""
        return settings.base_url, settings.api, hashlib.sha256(key.encode()).hexdigest()[:16]

    def _cached_models(
        self, settings: Settings, *, stale: bool = False
    ) -> tuple[bool, ModelList | None]:
        """(found, list): a list, or None for a recent failure to get one, when still fresh
        (or, with ``stale``, the last list got, however old: prices outlive the TTL)."""
        entry = self._model_lists.get(self._list_key(settings))
        if entry is None:
            return False, None
        if time.monotonic() - entry[0] > MODELS_TTL:
            return (True, entry[1]) if stale and entry[1] is not None else (False, None)
        return True, entry[1]

    def _keep_models(self, settings: Settings, models: ModelList | None) -> None:
        self._model_lists[self._list_key(settings)] = (time.monotonic(), models)

    def _looks_up_models(self) -> bool:
        """Whether a question first asks ``GET /models`` (once per MODELS_TTL) when the list
        is not known: the ``model_info`` argument, else ``REKA_NB_MODEL_INFO`` (default on)."""
        if self.model_info_lookup is not None:
            return self.model_info_lookup
        return model_info_wanted()

    def known_model(self, model: str | None = None) -> Model | None:
        """What the last model list said about ``model`` (no request); None when unknown."""
        settings = self.settings(model)
        _, models = self._cached_models(settings, stale=True)
        return models.get(settings.model) if models else None

    def _check_inputs(self, settings: Settings, messages: Any) -> None:
        """Refuse an input the model does not take, when the cached list describes the model."""
        _, models = self._cached_models(settings, stale=True)
        info = models.get(settings.model) if models else None
        if info is not None and models is not None:
            check_inputs(info, messages, [m for m in models if m != info])


class StreamState:
    """One streamed answer's decoding: bytes in, text deltas out, errors made typed."""

    def __init__(self, settings: Settings, request_id: str | None, read_timeout: float) -> None:
        self.request_id = request_id
        self.read_timeout = read_timeout
        self.decoder = SSEDecoder()
        self.acc = Accumulator(settings.api)
        self.started = False  # iteration began: an answer is read once

    def feed(self, chunk: bytes) -> list[str]:
        """Text deltas in this chunk of bytes."""
        return self._deltas(self.decoder.feed(chunk))

    def end(self) -> list[str]:
        """The clean end of the body: last deltas, or StreamInterrupted if it was cut."""
        deltas = self._deltas(self.decoder.close())
        if not self.acc.finished:
            raise self.interrupted("the stream ended without [DONE] or a finish reason")
        return deltas

    def _deltas(self, events: list[str]) -> list[str]:
        out = []
        for data in events:
            try:
                delta = self.acc.feed(data)
            except MalformedEvent as exc:
                raise self.interrupted(f"malformed event ({exc})") from None
            except StreamError as exc:
                raise self.interrupted(f"the server sent an error: {exc}") from None
            if delta:
                out.append(delta)
            if self.acc.done:
                break
        return out

    def interrupted(self, reason: str) -> StreamInterrupted:
        return StreamInterrupted(reason, partial_text=self.acc.text, request_id=self.request_id)

    def translate(self, exc: Exception) -> RekaError:
        """An httpx error raised while reading the body, as StreamInterrupted."""
        if isinstance(exc, httpx.TimeoutException):
            return self.interrupted(f"no event for {self.read_timeout:g} s")
        return self.interrupted(f"the connection was lost ({_describe_transport(exc)})")


def translate_send_error(exc: httpx.HTTPError, settings: Settings, client: BaseClient) -> RekaError:
    """An httpx error raised before an answer arrived, as a typed error. Raise it outside the
    ``except`` block: httpx's exception holds the request, whose headers repr shows an X-Api-Key,
    and must not become the new error's context."""
    where = settings.base_url
    if isinstance(exc, httpx.ConnectTimeout):
        return APITimeoutError(f"Connecting to {where} took more than {client.connect_timeout:g} s")
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(f"{where} did not answer within {client.read_timeout:g} s")
    detail = redact(_describe_transport(exc), settings.api_key)
    if isinstance(exc, httpx.ConnectError):
        return APIConnectionError(f"Could not connect to {where} ({detail})")
    return APIConnectionError(f"The connection to {where} failed before an answer ({detail})")


def may_retry(exc: httpx.HTTPError) -> bool:
    """Connection failures and a connection closed before any reply are retried; a request
    that timed out waiting for its reply may have reached the server, so it is not resent."""
    return isinstance(
        exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
    )


def _describe_transport(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def request_id_of(response: httpx.Response) -> str | None:
    return response.headers.get("x-request-id")


def wait_before_retry(error: APIError, response: httpx.Response) -> float | None:
    if isinstance(error, RateLimitError):
        return error.retry_after
    return parse_retry_after(response.headers.get("retry-after"))


def json_completion(response: httpx.Response) -> Completion:
    try:
        return parse_completion(json.loads(response.content), request_id_of(response))
    except (ValueError, MalformedEvent) as exc:
        raise unexpected_reply(response, exc) from None


def json_models(response: httpx.Response) -> ModelList:
    try:
        return parse_models(response.content)
    except MalformedEvent as exc:
        raise unexpected_reply(response, exc) from None


def unexpected_reply(response: httpx.Response, exc: Exception) -> ServerError:
    return ServerError(
        f"The answer was not the JSON expected ({exc})",
        status=response.status_code,
        request_id=request_id_of(response),
    )
