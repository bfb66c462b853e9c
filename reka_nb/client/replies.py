"""What the clients do with httpx replies, no sockets opened: the key put in as a request is
sent, bodies read whole within a size limit, streamed answers decoded, errors made typed.

The clients read raw body bytes and hand them over here (``StreamState`` for streamed answers,
``take_body`` for whole ones), where ``Content-Encoding`` is decoded with a bounded size, so no
reply can take more memory than its limit.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Generator
from typing import Any

import httpx

from .._exceptions import APIError, RateLimitError, RekaError, ServerError, StreamInterrupted
from ..protocol.body import MAX_BODY_SIZE, BodyDecoder, BodyTooLarge, UndecodableBody
from ..protocol.errors import (
    error_from_response,
    parse_retry_after,
    redact,
    sent_key,
    server_value,
)
from ..protocol.models import ModelList, parse_models
from ..protocol.sse import EventTooLarge, SSEDecoder
from ..protocol.stream import (
    Accumulator,
    Completion,
    EmptyAnswer,
    MalformedEvent,
    StreamError,
    load_json,
    parse_completion,
)
from .settings import Secret, Settings

__all__ = [
    "AFTER_FINISH_WAIT",
    "DRAIN_LIMIT",
    "DRAIN_WAIT",
    "Body",
    "KeyAuth",
    "StreamState",
    "body_reader",
    "describe_transport",
    "error_of",
    "json_completion",
    "json_models",
    "may_retry",
    "request_id_of",
    "shutdown",
    "shutdown_response",
    "stream_answer",
    "stream_reply_kind",
    "take_body",
    "wait_before_retry",
]

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


class _NoResponseHeaders(logging.Filter):
    """httpcore's DEBUG lines list a reply's headers as received: a server may echo the key in
    one, so that line keeps its name and loses the headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if message.startswith("receive_response_headers.complete"):
            record.msg, record.args = "receive_response_headers.complete (headers not shown)", ()
        return True


for _name in ("httpcore.http11", "httpcore.http2"):
    logging.getLogger(_name).addFilter(_NoResponseHeaders())


def shutdown(stream: Any) -> None:
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
    elif _asyncio_socket(sock):  # an asyncio connection's (aiohttp's): its TLS is above it
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _asyncio_socket(sock: Any) -> bool:
    """Whether ``sock`` is asyncio's wrapper of a connection's socket (asyncio not imported)."""
    trsock = sys.modules.get("asyncio.trsock")
    return trsock is not None and isinstance(sock, trsock.TransportSocket)


def shutdown_response(response: httpx.Response) -> None:
    """Shut down the socket of a response's connection (see ``shutdown``)."""
    stream = response.extensions.get("network_stream")
    if stream is not None:
        shutdown(stream)


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
        closed: Callable[[], bool] | None = None,
    ) -> None:
        self.request_id = request_id_of(response)
        self.read_timeout = read_timeout
        self._secret = Secret(settings.api_key or "")  # for redacting what the server says
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
            redact(reason, self._secret.reveal()),
            partial_text=self.acc.text,
            request_id=self.request_id,
        )

    def translate(self, exc: Exception) -> RekaError:
        """An httpx error raised while reading the body, as StreamInterrupted in the user's
        words; httpx's own words stay on ``__cause__`` (a copy without the request)."""
        if self._closed():
            return self.interrupted("the client was closed")
        if isinstance(exc, httpx.TimeoutException):
            error = self.interrupted(f"no event for {self.read_timeout:g} s")
        else:
            error = self.interrupted("the connection closed before the answer was complete")
        error.__cause__ = detached(exc, self._secret.reveal())
        return error


def stream_reply_kind(response: httpx.Response) -> str:
    """How to read a 2xx reply to a stream request: ``events``, or ``json`` (a whole answer,
    accepted as is); anything else (an HTML page, say) raises a ServerError saying so."""
    shown = server_value(response.headers.get("content-type", ""), key_sent(response)) or ""
    ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype or ctype == "text/event-stream":
        return "events"
    if ctype == "application/json" or ctype.endswith("+json"):
        return "json"
    raise ServerError(
        f"The server answered with {shown}, not an event stream: check the base URL "
        "(it should end in /v1)",
        status=response.status_code,
        request_id=request_id_of(response),
    )


def may_retry(exc: httpx.HTTPError) -> bool:
    """Connection failures and a connection closed before any reply are retried; a request
    that timed out waiting for its reply may have reached the server, so it is not resent."""
    return isinstance(
        exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError)
    )


def describe_transport(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "…"


def request_id_of(response: httpx.Response) -> str | None:
    """The reply's ``X-Request-ID``, with the key redacted should the server echo it there."""
    return server_value(response.headers.get("x-request-id"), key_sent(response))


def key_sent(response: httpx.Response) -> str | None:
    """The key the request of this reply carried, to redact from what the server sends back."""
    try:
        return sent_key(response.request.headers)
    except RuntimeError:  # a response built without a request
        return None


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
        return None, redact(str(exc), key_sent(response))


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
        reset=response.headers.get("x-ratelimit-reset"),
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
    except EmptyAnswer as exc:
        raise no_answer(response, exc) from None


def no_answer(response: httpx.Response, exc: EmptyAnswer) -> ServerError:
    """A 2xx reply that holds no answer text (nor a refusal): an error, never an answer."""
    return ServerError(
        f"The server's reply held no answer: {exc}",
        status=response.status_code,
        request_id=request_id_of(response),
    )


def stream_answer(state: StreamState, response: httpx.Response) -> Completion:
    """The finished answer of a stream; a ServerError when the stream held no answer text."""
    try:
        return state.acc.answer(state.request_id)
    except EmptyAnswer as exc:
        raise no_answer(response, exc) from None


def json_models(response: httpx.Response, body: Body, settings: Settings) -> ModelList:
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


def detached(exc: Exception, secret: str | None) -> Exception:
    """The same kind of httpx error with the same words, but without the request it carried
    (whose headers hold the key), to keep as the technical cause of one of ours."""
    text = redact(describe_transport(exc), secret)
    try:
        return type(exc)(text)
    except TypeError:  # an error class that needs more than a message
        return httpx.TransportError(f"{type(exc).__name__}: {text}")
