"""httpx over aiohttp's connection pool (the ``fast`` extra), made to fail as httpx fails.

``httpx_aiohttp.AiohttpTransport`` moves the bytes; what it raises is remapped here so that
the request flow of ``base.py`` sees the httpx error httpx's own pool raises in the same
case (a refused connection is a ``ConnectError``, not a ``ConnectTimeout``; a server that
hangs up is a ``RemoteProtocolError``), with aiohttp's words only and no chained aiohttp
error (whose request info holds the headers, and so the key). Closing the pool ends every
read in progress at once with a ``ReadError`` (aiohttp alone would leave a body being read
waiting), as shutting httpcore's sockets down does; each response carries its connection as
``network_stream``, as httpcore's do. aiohttp keeps no cookies of its own here: httpx's
client does that, as it does over its own pool.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import aiohttp
import httpx
from aiohttp.http_exceptions import ContentLengthError, TransferEncodingError
from httpx_aiohttp import AiohttpTransport

__all__ = ["AiohttpPool", "as_httpx_error"]

#: Bytes asked of aiohttp per read of a body: whatever has arrived, up to this much.
CHUNK = 64 * 1024
#: The longest status line or header accepted: h11's limit on a whole head (aiohttp's own is
#: 8,190 bytes), so a reply httpx reads is read here too.
HEAD_LIMIT = 16 * 1024


#: The server hung up, a body broke off, or a reply was not HTTP: httpx's RemoteProtocolError.
_T = TypeVar("_T")

_BROKEN = (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)


def as_httpx_error(exc: BaseException) -> httpx.TransportError | None:
    """The httpx error httpx's own pool raises where aiohttp raised ``exc`` (its words, no
    chained cause); None for what is not a transport failure (it propagates as it is)."""
    kind: type[httpx.TransportError]
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        kind = httpx.ConnectTimeout  # connecting, or waiting for a free connection
    elif isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        kind = httpx.ReadTimeout
    elif isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ServerFingerprintMismatch)):
        kind = httpx.ConnectError
    elif isinstance(exc, _BROKEN):
        kind = httpx.RemoteProtocolError
    elif isinstance(exc, (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError)):
        kind = httpx.UnsupportedProtocol
    elif isinstance(exc, (aiohttp.ClientConnectionError, OSError)):
        kind = httpx.ReadError  # reset, or closed under the read
    elif isinstance(exc, aiohttp.ClientError):
        kind = httpx.TransportError
    else:
        return None
    text = _words(exc)
    return kind(text)


async def _as_httpx(step: Awaitable[_T]) -> _T:
    """Await ``step``, a transport failure raised as httpx's error (``as_httpx_error``)."""
    failure = None
    try:
        return await step
    except Exception as exc:
        failure = as_httpx_error(exc)
        if failure is None:
            raise
    raise failure  # outside the except: aiohttp's error is not its context


def _words(exc: BaseException) -> str:
    """httpx's words for the same failure where they differ (a test or a user may look for
    them), else aiohttp's, without the request info some of its errors carry."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "Server disconnected without sending a response."
    if isinstance(exc, aiohttp.ClientPayloadError):
        cut = "peer closed connection without sending complete message body"
        if isinstance(exc.__cause__, TransferEncodingError):
            return f"{cut} (incomplete chunked read)"
        if isinstance(exc.__cause__, ContentLengthError):
            return cut
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"the server's reply was not valid HTTP ({exc.message})"
    return str(exc) or type(exc).__name__


class _Stream:
    """A response's connection, as httpcore's ``network_stream``: ``get_extra_info``."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        self._transport = transport

    def get_extra_info(self, name: str) -> Any:
        return None if self._transport is None else self._transport.get_extra_info(name)


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp: whatever has arrived at each read, errors as httpx's."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            chunk = await _as_httpx(content.read(CHUNK))
            if not chunk:
                return
            yield chunk

    def abort(self) -> None:
        """End a read in progress (the pool is closing): it raises a ReadError."""
        content = self._response.content
        if not content.is_eof():
            content.set_exception(aiohttp.ClientConnectionError("the connection was closed"))

    async def aclose(self) -> None:
        self._response.release()


class AiohttpPool(AiohttpTransport):
    """``AiohttpTransport`` with httpx's errors, pool limits and no cookie jar of its own."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._bodies: weakref.WeakSet[_Body] = weakref.WeakSet()  # responses being read

    async def aclose(self) -> None:
        for body in list(self._bodies):
            body.abort()
        await super().aclose()

    def get_client(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
            max_line_size=HEAD_LIMIT,
            max_field_size=HEAD_LIMIT,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        timeout = request.extensions.get("timeout", {})
        response = await _as_httpx(
            self.client.request(
                method=request.method,
                url=str(request.url),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                ],
                data=request.content or None,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=aiohttp.ClientTimeout(
                    sock_connect=timeout.get("connect"),
                    sock_read=timeout.get("read"),
                    connect=timeout.get("pool"),
                ),
            ).__aenter__()
        )
        connection = response.connection
        extensions: dict[str, Any] = {
            "http_version": b"HTTP/1.1",
            "network_stream": _Stream(None if connection is None else connection.transport),
        }
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        body = _Body(response)
        self._bodies.add(body)
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=body,
            request=request,
            extensions=extensions,
        )
