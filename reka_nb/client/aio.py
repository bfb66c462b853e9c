"""AsyncRekaClient: the asyncio mirror of RekaClient, line for line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ..protocol.body import BodyTooLarge, UndecodableBody
from ..protocol.models import Model, ModelList
from ..protocol.stream import Completion
from .base import BaseClient, Flow, Messages, Read, Send, Sleep
from .question import require_image, run_adescribe
from .replies import (
    AFTER_FINISH_WAIT,
    DRAIN_LIMIT,
    DRAIN_WAIT,
    Body,
    StreamState,
    body_reader,
    json_completion,
    stream_reply_kind,
    take_body,
)
from .settings import Settings

if TYPE_CHECKING:
    from ..answer import Description

__all__ = ["AsyncChatStream", "AsyncRekaClient"]


async def chunks_close(chunks: object) -> None:
    """Close an async generator of body bytes left part way (no warning when it is collected)."""
    aclose = getattr(chunks, "aclose", None)
    if aclose is not None:
        with contextlib.suppress(Exception):
            await aclose()


class AsyncRekaClient(BaseClient):
    """An asyncio client for Reka's chat API; the mirror of RekaClient."""

    _http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._http is None:
                self._http = httpx.AsyncClient(**self._client_options())
            return self._http

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
            else:
                outcome = await self._send(step)

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

    async def models(self, *, refresh: bool = False) -> ModelList:
        """The models this key can use; see ``RekaClient.models``."""
        return await self._drive(self._models_flow(refresh))  # type: ignore[no-any-return]

    async def model_info(self, model: str | None = None) -> Model | None:
        """What the server says of ``model``; see ``RekaClient.model_info``."""
        return await self._drive(self._model_info_flow(model))  # type: ignore[no-any-return]

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        retries: int | None = None,
        settings: Settings | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        """Start a streamed answer; ``async for`` over it for text deltas. Checks happen now.

        ``retries`` replaces the client's ``max_retries`` for this request (0: one attempt,
        for callers that retry themselves).
        """
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

    async def describe(
        self,
        image: Any,
        prompt: str | None = None,
        *,
        model: str | None = None,
        stream: bool = True,
        show: bool = True,
        **params: Any,
    ) -> Description:
        """Ask about one or more images; see ``reka_nb.adescribe``."""
        require_image(image)
        return await run_adescribe(
            self, image, prompt, model=model, stream=stream, show=show, **params
        )


class AsyncChatStream:
    """A streamed answer for asyncio: ``async for`` text deltas; then ``completion``."""

    def __init__(
        self,
        client: AsyncRekaClient,
        messages: Messages,
        model: str | None,
        params: dict,
        retries: int | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._client = client
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

    async def open(self) -> None:
        """Send the request (with retries) and read the status; errors surface here."""
        if self._response is None:
            flow = self._client._send_flow(
                "POST", self._url, self.settings, self._headers, self._body, retries=self._retries
            )
            response, _ = await self._client._drive(flow)
            self._response = response
            self._state = StreamState(
                self.settings, response, self._client.read_timeout, lambda: self._client.closed
            )

    async def __aiter__(self) -> AsyncIterator[str]:
        await self.open()
        assert self._response is not None and self._state is not None
        state, response = self._state, self._response
        if state.started:
            raise RuntimeError("this answer has been read already: start a new stream")
        state.started = True
        chunks: AsyncIterator[bytes] | None = None
        try:
            if stream_reply_kind(response) == "json":  # a whole answer to a stream request
                async for text in self._whole(response, state):
                    yield text
                return
            chunks = response.aiter_raw()
            failure: httpx.HTTPError | None = None
            try:
                async for chunk in chunks:
                    for delta in state.feed(chunk):
                        yield delta
                    if state.acc.finished:
                        break
                else:
                    for delta in state.end():
                        yield delta
            except httpx.HTTPError as exc:
                failure = exc
            if failure is not None and not state.acc.finished:  # after the finish: nothing lost
                raise state.translate(failure)  # outside the except: httpx's request stays out
            if failure is None and state.acc.finished:
                async for delta in self._after_finish(chunks, state):
                    yield delta
            self.completion = state.acc.completion(state.request_id)
        finally:
            await chunks_close(chunks)
            await self.aclose()

    @staticmethod
    async def _after_finish(chunks: AsyncIterator[bytes], state: StreamState) -> AsyncIterator[str]:
        """Read what follows the finish (usage, [DONE], the end of the body) for at most
        AFTER_FINISH_WAIT seconds: a server that keeps the connection open past that gets
        it shut down, so the answer never waits on it (and the connection is not reused)."""
        wait = DRAIN_WAIT if state.acc.done else AFTER_FINISH_WAIT
        deadline = asyncio.get_running_loop().time() + wait
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                chunk = await asyncio.wait_for(chunks.__anext__(), max(left, 0.0))
                if not state.acc.done:
                    for delta in state.feed(chunk):
                        yield delta
                    continue
                state.drained += len(chunk)
                if state.drained > DRAIN_LIMIT:
                    break  # more than an end of body: not worth keeping the connection
        except (StopAsyncIteration, asyncio.TimeoutError, httpx.HTTPError):
            pass  # the answer is complete; on a timeout the connection is closed, not reused

    async def _whole(self, response: httpx.Response, state: StreamState) -> AsyncIterator[str]:
        content = await self._client._read(response)
        if isinstance(content, httpx.HTTPError):
            raise state.translate(content)
        text = state.acc.take_whole(json_completion(response, content, self.settings))
        if text:
            yield text
        self.completion = state.acc.completion(state.request_id)

    async def aclose(self) -> None:
        """Close the connection (at once, even mid-answer)."""
        if self._response is not None:
            await self._response.aclose()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
