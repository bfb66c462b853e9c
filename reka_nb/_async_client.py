"""AsyncRekaClient: the asyncio mirror of RekaClient, line for line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ._ask import require_image, run_adescribe
from ._base import BaseClient, Messages, translate_send_error
from ._exceptions import APIError, RekaError
from ._replies import (
    AFTER_FINISH_WAIT,
    DRAIN_LIMIT,
    DRAIN_WAIT,
    Body,
    StreamState,
    body_reader,
    error_of,
    json_completion,
    json_models,
    may_retry,
    stream_answer,
    stream_reply_kind,
    take_body,
    wait_before_retry,
)
from ._settings import Settings
from .protocol.body import BodyTooLarge, UndecodableBody
from .protocol.errors import is_retryable, retry_delay
from .protocol.models import Model, ModelList
from .protocol.stream import Completion

if TYPE_CHECKING:
    from ._answer import Description

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

    async def _send(
        self,
        method: str,
        url: str,
        settings: Settings,
        headers: dict,
        body: Any = None,
        *,
        read: bool = False,
        retries: int | None = None,
    ) -> tuple[httpx.Response, Body]:
        """Send with retries; return a response with a 2xx status (and its body if ``read``).

        Only what happens before the reply is retried: a body that breaks is not resent.
        """
        auth = self._auth(settings)  # the key goes into the request only as it is sent
        retries = self.max_retries if retries is None else retries
        extensions = {"trace": self._atrace}
        for attempt in range(retries + 1):
            last = attempt == retries
            failure: httpx.HTTPError | None = None  # raised outside the except: no context
            http = self._client()
            try:
                request = http.build_request(
                    method, url, headers=headers, json=body, extensions=extensions
                )
                response = await http.send(request, stream=True, auth=auth)
            except httpx.HTTPError as exc:
                failure = exc
            except RuntimeError:  # httpx's "the client has been closed", from another thread
                if not self._closed:
                    raise
                failure = httpx.ReadError("closed")
            if failure is not None:
                if last or not may_retry(failure) or self._closed:
                    raise translate_send_error(failure, settings, self)
                await asyncio.sleep(retry_delay(attempt, base=self.backoff))
                continue
            if response.is_success and not read:
                return response, Body(b"")
            content = await self._read(response)
            if isinstance(content, httpx.HTTPError):
                raise translate_send_error(content, settings, self)
            if response.is_success:
                return response, content
            api_error = await self._error(response, content, settings, body)
            if last or not is_retryable(api_error):
                raise api_error
            await asyncio.sleep(
                retry_delay(attempt, wait_before_retry(api_error, response), base=self.backoff)
            )
        raise AssertionError("unreachable")

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

    async def _error(
        self, response: httpx.Response, content: Body, settings: Settings, body: Any
    ) -> APIError:
        model = body.get("model") if isinstance(body, dict) else None
        available: list[str] = []
        if response.status_code == 404 and model is not None:
            try:
                available = await self._models(retries=0)
            except Exception:  # listing is a courtesy; the 404 is the error to report
                available = []
        return error_of(response, content, settings, model, available)

    async def models(self, *, refresh: bool = False) -> ModelList:
        """The models this key can use, with what ``GET /models`` says of each (``Model``s,
        which are their ids as str). Kept for ``MODELS_TTL`` seconds; ``refresh`` asks again."""
        settings = self.settings()
        found, models = self._cached_models(settings)
        if found and models is not None and not refresh:
            return models
        models = await self._models()
        self._keep_models(settings, models)
        return models

    async def model_info(self, model: str | None = None) -> Model | None:
        """What the server says of ``model`` (its inputs and prices), from the kept list (in
        memory, or on disk for a day) or one lookup shared by the tasks asking now, waited
        for at most ``LOOKUP_DEADLINE`` seconds (unless the lookup is off: ``model_info=False``
        or ``REKA_NB_MODEL_INFO=off``); None when unknown."""
        settings = self.settings(model)
        if not self._looks_up_models():
            return self.known_model(model)  # a list got earlier, however old
        models = await self._model_lists.await_list(settings, lambda: self._models(retries=0))
        return models.get(settings.model) if models else None

    def start_model_lookup(self, model: str | None = None) -> None:
        """Begin the lookup of ``model_info`` in a task when the list is not known, so that
        it runs while the question is prepared (call it inside the running loop)."""
        try:
            settings = self.settings(model)
        except RekaError:  # the question itself says what is wrong
            return
        if settings.api_key and self._looks_up_models():
            self._model_lists.astart(settings, lambda: self._models(retries=0))

    async def _models(self, retries: int | None = None) -> ModelList:
        settings = self.settings()
        headers = self._headers(settings)
        url = settings.base_url + "/models"
        response, body = await self._send("GET", url, settings, headers, read=True, retries=retries)
        return json_models(response, body, settings)

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        retries: int | None = None,
        **params: Any,
    ) -> AsyncChatStream:
        """Start a streamed answer; ``async for`` over it for text deltas. Checks happen now.

        ``retries`` replaces the client's ``max_retries`` for this request (0: one attempt,
        for callers that retry themselves).
        """
        return AsyncChatStream(self, messages, model, params, retries)

    async def complete(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        stream: bool = False,
        retries: int | None = None,
        **params: Any,
    ) -> Completion:
        """The whole answer at once (``stream=True`` streams it and gathers the text)."""
        if stream:
            async with self.stream(messages, model=model, retries=retries, **params) as chat:
                async for _ in chat:
                    pass
            assert chat.completion is not None
            return chat.completion
        settings, url, headers, body = self._chat_request(
            messages, model=model, stream=False, params=params
        )
        response, content = await self._send(
            "POST", url, settings, headers, body, read=True, retries=retries
        )
        return json_completion(response, content, settings)

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
    ) -> None:
        self._client = client
        self._retries = retries
        self.settings, self._url, self._headers, self._body = client._chat_request(
            messages, model=model, stream=True, params=params
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
            response, _ = await self._client._send(
                "POST", self._url, self.settings, self._headers, self._body, retries=self._retries
            )
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
            self.completion = stream_answer(state, response)
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
