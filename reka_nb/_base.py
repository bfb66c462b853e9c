"""What the sync and async clients share: settings, URLs, headers, bodies, stream decoding.

No sockets are opened here. The clients read raw body bytes and hand them to ``StreamState``
(streamed answers) or ``read_limited`` (whole replies), which decode ``Content-Encoding``
with a bounded size, so no reply can take more memory than its limit.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Generator, Iterable, Mapping
from typing import Any

import httpx

from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    ConfigurationError,
    MissingAPIKeyError,
    RateLimitError,
    RekaError,
    ServerError,
    StreamInterrupted,
)
from ._settings import Secret, Settings, check_base_url, positive, resolve
from ._version import __version__
from .protocol.body import (
    ACCEPT_ENCODING,
    MAX_BODY_SIZE,
    BodyDecoder,
    BodyTooLarge,
    UndecodableBody,
)
from .protocol.errors import error_from_response, parse_retry_after, redact
from .protocol.messages import build_body
from .protocol.sse import EventTooLarge, SSEDecoder
from .protocol.stream import (
    Accumulator,
    Completion,
    MalformedEvent,
    StreamError,
    load_json,
    parse_completion,
    parse_models,
)

__all__ = [
    "AFTER_FINISH_WAIT",
    "DRAIN_WAIT",
    "BaseClient",
    "KeyAuth",
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

AFTER_FINISH_WAIT = 0.5
"""Seconds a finished answer waits for what may follow its finish reason (usage, ``[DONE]``,
the end of the body); after ``[DONE]``, ``DRAIN_WAIT`` for the end of the body alone. A server
that keeps the connection open beyond that does not delay the answer: the connection is shut
instead of being kept for the next request."""
DRAIN_WAIT = 0.1

DRAIN_LIMIT = 64 * 1024
"""Bytes read after ``[DONE]`` to let the connection serve again; a server sending more is cut."""


class KeyAuth(httpx.Auth):
    """Puts the key into a request's headers as it is sent, and nowhere else: the headers the
    clients build, and so every frame a traceback can show, hold no key."""

    def __init__(self, key: Secret, *, native: bool) -> None:
        self._key = key
        self._native = native

    def __repr__(self) -> str:
        return "KeyAuth([secure])"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._native:
            request.headers["X-Api-Key"] = self._key.reveal()
        else:
            request.headers["Authorization"] = "Bearer " + self._key.reveal()
        yield request


class BaseClient:
    """Settings and request building for RekaClient and AsyncRekaClient.

    Every setting left as None is read from the environment at call time.
    """

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
        if base_url is not None:  # refuse a bad URL when the client is made, not at first use
            check_base_url(base_url)
        if api not in (None, "openai", "native"):
            raise ConfigurationError(f"api must be 'openai' or 'native', not {api!r}")
        if max_images is not None:  # refuse bad limits now, not at first use
            positive("max_images", max_images)
        if max_request_bytes is not None:
            positive("max_request_bytes", max_request_bytes)

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
        }

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
            http, self._http = self._http, None  # type: ignore[has-type]
        for stream in list(self._streams):
            _shutdown(stream)
        return http

    def _note_connection(self, event: str, info: Mapping[str, Any]) -> None:
        """httpcore's trace: remember each connection opened, to wake its reads on close()."""
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

    def _client_options(self) -> dict[str, Any]:
        return {"timeout": self._timeout(), "follow_redirects": False, "trust_env": False}

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
    ) -> tuple[Settings, str, dict[str, str], dict[str, Any]]:
        """(settings, url, headers, body) for a chat call; raises before anything is sent."""
        settings = self.settings(model)
        body = build_body(
            messages, model=settings.model, stream=stream, api=settings.api, params=params
        )
        path = "/chat" if settings.api == "native" else "/chat/completions"
        headers = self._headers(settings, stream=stream)
        return settings, settings.base_url + path, headers, body


def _shutdown(stream: Any) -> None:
    """Shut a connection's socket down: a read blocked on it in any thread returns at once.
    (Closing a socket does not wake a thread blocked on it; shutting it down does. The base
    class's method is used on a TLS socket too, so no TLS state is touched from here.)"""
    try:
        sock = stream.get_extra_info("socket")
    except Exception:
        return
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def shutdown_response(response: httpx.Response) -> None:
    """Shut down the socket of a response's connection (see ``_shutdown``)."""
    stream = response.extensions.get("network_stream")
    if stream is not None:
        _shutdown(stream)


class StreamState:
    """One streamed answer's decoding: raw bytes in, text deltas out, errors made typed.

    Progress is an event with data: comments (``: ping``) keep a connection alive but do
    not count, so a server that sends only keep-alives for ``read_timeout`` seconds ends
    the answer with ``StreamInterrupted``.
    """

    def __init__(
        self,
        settings: Settings,
        response: httpx.Response,
        read_timeout: float,
        closed: Any = None,
    ) -> None:
        self.request_id = request_id_of(response)
        self.read_timeout = read_timeout
        self.secret = settings.api_key
        self.decoder = SSEDecoder()
        self.acc = Accumulator(settings.api)
        self.started = False  # iteration began: an answer is read once
        self.drained = 0  # bytes read after [DONE]
        self._closed = closed or (lambda: False)
        self._last_event = time.monotonic()
        self._body, self._undecodable = body_reader(response)

    def feed(self, chunk: bytes) -> list[str]:
        """Text deltas in this chunk of raw body bytes."""
        if self._body is None:
            raise self.interrupted(self._undecodable)
        try:
            events: list[str] = []
            for piece in self._body.feed(chunk):
                events += self.decoder.feed(piece)
        except EventTooLarge as exc:
            raise self.interrupted(str(exc)) from None
        except UndecodableBody as exc:
            raise self.interrupted(str(exc)) from None
        now = time.monotonic()
        if events:
            self._last_event = now
        elif now - self._last_event > self.read_timeout:
            raise self.interrupted(
                f"no event for {self.read_timeout:g} s (keep-alive comments do not count)"
            )
        return self._deltas(events)

    def end(self) -> list[str]:
        """The clean end of the body: last deltas, or StreamInterrupted if it was cut."""
        if self._body is None:
            raise self.interrupted(self._undecodable)
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
        return StreamInterrupted(
            redact(reason, self.secret), partial_text=self.acc.text, request_id=self.request_id
        )

    def translate(self, exc: Exception) -> RekaError:
        """An httpx error raised while reading the body, as StreamInterrupted."""
        if self._closed():
            return self.interrupted("the client was closed")
        if isinstance(exc, httpx.TimeoutException):
            return self.interrupted(f"no event for {self.read_timeout:g} s")
        return self.interrupted(f"the connection was lost ({_describe_transport(exc)})")


def stream_reply_kind(response: httpx.Response) -> str:
    """How to read a 2xx reply to a stream request: ``events``, or ``json`` (a whole answer,
    accepted as is); anything else (an HTML page, say) raises a ServerError saying so."""
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype or ctype == "text/event-stream":
        return "events"
    if ctype == "application/json" or ctype.endswith("+json"):
        return "json"
    raise ServerError(
        f"The server answered with {ctype}, not an event stream: check the base URL "
        "(it should end in /v1)",
        status=response.status_code,
        request_id=request_id_of(response),
    )


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


class Body:
    """A reply's body read whole, decoded, within ``MAX_BODY_SIZE`` (``too_large`` beyond)."""

    def __init__(self, data: bytes, *, too_large: bool = False, undecodable: str = "") -> None:
        self.data = data
        self.too_large = too_large
        self.undecodable = undecodable


def body_reader(response: httpx.Response) -> tuple[BodyDecoder | None, str]:
    """The decoder for a response's Content-Encoding, or None and why it cannot be decoded."""
    try:
        return BodyDecoder(response.headers.get("content-encoding")), ""
    except UndecodableBody as exc:
        return None, str(exc)


def take_body(decoder: BodyDecoder | None, why: str, out: bytearray, chunk: bytes) -> None:
    """Add a raw chunk's decoded bytes to ``out``; BodyTooLarge past the limit."""
    if decoder is None:
        raise UndecodableBody(why)
    for piece in decoder.feed(chunk):
        out += piece
        if len(out) > MAX_BODY_SIZE:
            raise BodyTooLarge(f"the reply was larger than {MAX_BODY_SIZE:,} bytes")


def error_of(
    response: httpx.Response,
    body: Body,
    settings: Settings,
    model: str | None,
    available: list[str],
) -> APIError:
    """The typed error of an error status; the key is redacted from what the server said."""
    return error_from_response(
        response.status_code,
        body.data,
        request_id=request_id_of(response),
        retry_after=response.headers.get("retry-after"),
        model=model,
        available_models=available,
        secret=settings.api_key,
        too_large=body.too_large or bool(body.undecodable),
    )


def check_whole(response: httpx.Response, body: Body) -> None:
    """A 2xx body read whole must have been read whole: too large or undecodable is an error."""
    if body.too_large or body.undecodable:
        why = body.undecodable or f"it was larger than {MAX_BODY_SIZE:,} bytes"
        raise ServerError(
            f"The reply could not be read: {why}",
            status=response.status_code,
            request_id=request_id_of(response),
        )


def json_completion(response: httpx.Response, body: Body, settings: Settings) -> Completion:
    check_whole(response, body)
    try:
        return parse_completion(load_json(body.data, "the answer"), request_id_of(response))
    except MalformedEvent as exc:
        raise unexpected_reply(response, exc, settings) from None
    except StreamError as exc:  # a 200 whose body is {"error": {...}}
        raise ServerError(
            f"The server answered with an error: {redact(str(exc), settings.api_key)}",
            status=response.status_code,
            request_id=request_id_of(response),
        ) from None


def json_models(response: httpx.Response, body: Body, settings: Settings) -> list[str]:
    check_whole(response, body)
    try:
        return parse_models(body.data)
    except MalformedEvent as exc:
        raise unexpected_reply(response, exc, settings) from None


def unexpected_reply(response: httpx.Response, exc: Exception, settings: Settings) -> ServerError:
    return ServerError(
        f"The answer was not the JSON expected ({redact(str(exc), settings.api_key)})",
        status=response.status_code,
        request_id=request_id_of(response),
    )
