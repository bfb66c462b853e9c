"""AsyncRekaClient: the asyncio mirror of RekaClient, line for line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

from ..protocol.body import BodyTooLarge, UndecodableBody
from ..protocol.stream import Completion
from .base import WHOLE, BaseChatStream, BaseClient, Flow, Lookup, Messages, Read, Send, Sleep
from .question import INFO, NEXT, Question, answer_flow, ask, settings_of
from .replies import (
    Body,
    body_reader,
    take_body,
)
from .settings import Settings
from .transports import chosen, make_transport, pick

if TYPE_CHECKING:
    from ..answer import Description
    from ..cache import AnswerCache

__all__ = ["AsyncChatStream", "AsyncRekaClient", "answer_question", "run_adescribe"]


async def chunks_close(chunks: object) -> None:
    """Close an async generator of body bytes left part way (no warning when it is collected)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


class AsyncRekaClient(BaseClient):
    """An asyncio client for Reka's chat API; the mirror of RekaClient.

    ``transport``: ``"httpx"`` (httpx's own pool), ``"aiohttp"`` (httpx over aiohttp's pool,
    far less CPU per request at high concurrency: ``pip install 'reka-nb[fast]'``) or
    ``"auto"`` (aiohttp when installed); None: ``REKA_NB_TRANSPORT``, else httpx. Timeouts,
    limits, retries, errors and key handling are the same on both. ``max_connections``: the
    pool's size (None: httpx's default, 100 open and 20 kept alive).
    """

    _http: httpx.AsyncClient | None = None
    _http_class = httpx.AsyncClient

    def _check_transport(self, transport: str | None) -> str | None:
        if transport is not None:
            pick(transport)  # aiohttp without the extra is refused now, before any request
        return transport

    def transport_in_use(self) -> str:
        """``"httpx"`` or ``"aiohttp"``: what this client's pool moves its bytes with."""
        return pick(chosen(self.transport, "httpx"))

    def _client_options(self) -> dict[str, Any]:
        options = super()._client_options()
        transport = make_transport(self.transport_in_use(), options["limits"])
        if transport is not None:
            options["transport"] = transport
        return options

    async def aclose(self) -> None:
        """Close the connection pool; calls in progress in other tasks end at once, and
        every later call raises ClientClosedError."""
        http = self._mark_closed()
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> AsyncRekaClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _drive(self, flow: Flow) -> Any:
        """Run a request flow (``BaseClient``) with awaits; return its result."""
        outcome: Any = None
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                await asyncio.sleep(step.seconds)
                outcome = None
            elif isinstance(step, Read):
                outcome = await self._read(step.response)
            elif isinstance(step, Lookup):  # known, or one lookup shared by the loop's tasks
                outcome = await self._model_lists.await_list(step.settings, self._fetch_models)
            else:
                outcome = await self._send(step)

    def _start_lookup(self, settings: Settings) -> None:
        self._model_lists.astart(settings, self._fetch_models)  # in the running loop

    async def _fetch_models(self) -> Any:
        """``GET /models`` once, without retries (``model_lists`` holds it to its deadline)."""
        return await self._drive(self._list_flow(retries=0))

    async def _send(self, step: Send) -> httpx.Response | httpx.HTTPError:
        """Send one request (its body is read later); a transport failure is returned."""
        http = self._client()
        extensions = {"trace": self._atrace}
        try:
            request = http.build_request(
                step.method, step.url, headers=step.headers, json=step.body, extensions=extensions
            )
            return await http.send(request, stream=True, auth=step.auth)
        except httpx.HTTPError as exc:
            return exc
        except RuntimeError:  # httpx's "the client has been closed", from another task
            if not self._closed:
                raise
            return httpx.ReadError("closed")

    async def _atrace(self, event: str, info: dict) -> None:
        self._note_connection(event, info)

    @staticmethod
    async def _read(response: httpx.Response) -> Body | httpx.HTTPError:
        """The decoded body, at most MAX_BODY_SIZE bytes (then ``too_large``), then closed."""
        decoder, why = body_reader(response)
        out = bytearray()
        try:
            async for chunk in response.aiter_raw():
                take_body(decoder, why, out, chunk)
        except httpx.HTTPError as exc:
            return exc
        except BodyTooLarge:
            return Body(bytes(out), too_large=True)
        except UndecodableBody as exc:
            return Body(b"", undecodable=str(exc))
        finally:
            await response.aclose()
        return Body(bytes(out))

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        retries: int | None = None,
        settings: Settings | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        """Start a streamed answer; ``async for`` over it. See ``RekaClient.stream``."""
        return AsyncChatStream(self, messages, model, params, retries, settings)

    async def complete(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        stream: bool = False,
        retries: int | None = None,
        settings: Settings | None = None,
        **params: Any,
    ) -> Completion:
        """The whole answer at once (``stream=True`` streams it and gathers the text)."""
        if stream:
            async with self.stream(
                messages, model=model, retries=retries, settings=settings, **params
            ) as chat:
                async for _ in chat:
                    pass
            assert chat.completion is not None
            return chat.completion
        flow = self._complete_flow(messages, model, retries, settings, params)
        return await self._drive(flow)  # type: ignore[no-any-return]


class AsyncChatStream(BaseChatStream):
    """A streamed answer for asyncio: ``async for`` text deltas; then ``completion``."""

    _client: AsyncRekaClient

    async def open(self) -> None:
        """Send the request (with retries) and read the status; errors surface here."""
        if self._response is None:
            response, _ = await self._client._drive(self._request_flow(self._client))
            self._opened(self._client, response)

    async def __aiter__(self) -> AsyncIterator[str]:
        await self.open()
        assert self._response is not None
        response, flow = self._response, self._flow()
        loop = asyncio.get_running_loop()
        chunks: AsyncIterator[bytes] | None = None
        deadline: float | None = None
        outcome: Any = None
        try:
            while True:
                try:
                    step = flow.send(outcome)
                except StopIteration:
                    return
                outcome = None
                if isinstance(step, str):
                    yield step
                    continue
                if step is WHOLE:
                    outcome = await self._client._read(response)
                    continue
                chunks = response.aiter_raw() if chunks is None else chunks
                if step.wait is not None and deadline is None:
                    deadline = loop.time() + step.wait
                left = None if deadline is None else max(deadline - loop.time(), 0.0)
                try:
                    outcome = await asyncio.wait_for(chunks.__anext__(), left)
                except (StopAsyncIteration, asyncio.TimeoutError):
                    outcome = None  # the end; past the deadline the connection is closed
                except httpx.HTTPError as exc:
                    outcome = exc
        finally:
            await chunks_close(chunks)
            await self.aclose()

    async def aclose(self) -> None:
        """Close the connection (at once, even mid-answer)."""
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def run_adescribe(
    client: AsyncRekaClient,
    image: Any,
    prompt: str | None = None,
    *,
    stream: bool = True,
    cache: bool | AnswerCache = False,
    **options: Any,
) -> Description:
    """adescribe() on an explicit client: ``run_describe``'s flow, awaited."""
    settings = settings_of(client, options.get("model"))  # once for the question
    if settings is not None:
        client.start_model_lookup(settings=settings)  # the list comes while images are read
        await asyncio.sleep(0)  # its task sends GET /models before the images are prepared
    q = ask(client, image, prompt, settings=settings, **options)
    return await answer_question(client, q, cache=cache, stream=stream)


async def answer_question(
    client: AsyncRekaClient, q: Question, *, cache: bool | AnswerCache = False, stream: bool = True
) -> Description:
    """A question prepared by ``ask`` to its answer (``answer_flow``), awaited: for callers
    that prepare several questions, checking them all, before any is sent."""
    flow = answer_flow(q, cache, stream)
    outcome: Any = None
    deltas: Any = None
    while True:
        try:
            step = flow.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            if step == INFO:
                info = await client.model_info(settings=q.settings)
                outcome = info, client.known_models(q.settings)
            elif step == NEXT:
                outcome = await anext(deltas, None)
            elif step.stream:
                outcome = client.stream(q.send_messages, settings=q.settings, **q.send_params)
                deltas = aiter(outcome)
            else:
                outcome = await client.complete(
                    q.send_messages, settings=q.settings, **q.send_params
                )
        except BaseException as exc:
            if step == INFO or getattr(step, "stream", False):
                raise  # before the answer began: nothing to show
            outcome = exc


AsyncRekaClient._run_describe = run_adescribe  # type: ignore[assignment]
