"""RekaClient: the synchronous client. It moves bytes; the protocol lives in no-I/O modules.

AsyncRekaClient (``_async_client.py``) mirrors it line for line. Retries happen only before an
answer has started: connection failures and 408/409/429/5xx replies, with backoff and jitter,
honouring Retry-After. Once text has arrived, a failure raises StreamInterrupted with the
partial text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from ._ask import require_image, run_describe, stopped
from ._base import BaseClient, Messages, translate_send_error
from ._exceptions import APIError, RekaError
from ._model_lists import fetch_models
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
    shutdown_response,
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

__all__ = ["ChatStream", "RekaClient"]


class RekaClient(BaseClient):
    """A synchronous client for Reka's chat API (OpenAI-compatible or native)."""

    _http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._closed:
                raise self._closed_error()
            if self._http is None:
                self._http = httpx.Client(**self._client_options())
            return self._http

    def close(self) -> None:
        """Close the connection pool; calls in progress in other threads end at once, and
        every later call raises ClientClosedError."""
        http = self._mark_closed()
        if http is not None:
            http.close()

    def __enter__(self) -> RekaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(
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
        extensions = {"trace": self._note_connection}
        for attempt in range(retries + 1):
            last = attempt == retries
            failure: httpx.HTTPError | None = None  # raised outside the except: no context
            http = self._client()
            try:
                request = http.build_request(
                    method, url, headers=headers, json=body, extensions=extensions
                )
                response = http.send(request, stream=True, auth=auth)
            except httpx.HTTPError as exc:
                failure = exc
            except RuntimeError:  # httpx's "the client has been closed", from another thread
                if not self._closed:
                    raise
                failure = httpx.ReadError("closed")
            if failure is not None:
                if last or not may_retry(failure) or self._closed:
                    raise translate_send_error(failure, settings, self)
                time.sleep(retry_delay(attempt, base=self.backoff))
                continue
            if response.is_success and not read:
                return response, Body(b"")
            content = self._read(response)
            if isinstance(content, httpx.HTTPError):
                raise translate_send_error(content, settings, self)
            if response.is_success:
                return response, content
            api_error = self._error(response, content, settings, body)
            if last or not is_retryable(api_error):
                raise api_error
            time.sleep(
                retry_delay(attempt, wait_before_retry(api_error, response), base=self.backoff)
            )
        raise AssertionError("unreachable")

    @staticmethod
    def _read(response: httpx.Response) -> Body | httpx.HTTPError:
        """The decoded body, at most MAX_BODY_SIZE bytes (then ``too_large``), then closed."""
        decoder, why = body_reader(response)
        out = bytearray()
        try:
            for chunk in response.iter_raw():
                take_body(decoder, why, out, chunk)
        except httpx.HTTPError as exc:
            return exc
        except BodyTooLarge:
            return Body(bytes(out), too_large=True)
        except UndecodableBody as exc:
            return Body(b"", undecodable=str(exc))
        finally:
            response.close()
        return Body(bytes(out))

    def _error(
        self, response: httpx.Response, content: Body, settings: Settings, body: Any
    ) -> APIError:
        model = body.get("model") if isinstance(body, dict) else None
        available: list[str] = []
        if response.status_code == 404 and model is not None:
            try:
                available = self._models(retries=0)
            except Exception:  # listing is a courtesy; the 404 is the error to report
                available = []
        return error_of(response, content, settings, model, available)

    def models(self, *, refresh: bool = False) -> ModelList:
        """The models this key can use, with what ``GET /models`` says of each (``Model``s,
        which are their ids as str). Kept for ``MODELS_TTL`` seconds; ``refresh`` asks again."""
        settings = self.settings()
        found, models = self._cached_models(settings)
        if found and models is not None and not refresh:
            return models
        models = self._models()
        self._keep_models(settings, models)
        return models

    def model_info(self, model: str | None = None) -> Model | None:
        """What the server says of ``model`` (its inputs and prices), from the kept list (in
        memory, or on disk for a day) or one lookup shared by the threads asking now, waited
        for at most ``LOOKUP_DEADLINE`` seconds (unless the lookup is off: ``model_info=False``
        or ``REKA_NB_MODEL_INFO=off``); None when unknown."""
        settings = self.settings(model)
        if not self._looks_up_models():
            return self.known_model(model)  # a list got earlier, however old
        models = self._model_lists.wait(settings, partial(fetch_models, self, settings))
        return models.get(settings.model) if models else None

    def start_model_lookup(self, model: str | None = None) -> None:
        """Begin the lookup of ``model_info`` in a thread when the list is not known, so
        that it runs while the question is prepared."""
        try:
            settings = self.settings(model)
        except RekaError:  # the question itself says what is wrong
            return
        if settings.api_key and self._looks_up_models():
            self._model_lists.start(settings, partial(fetch_models, self, settings))

    def _models(self, retries: int | None = None) -> ModelList:
        settings = self.settings()
        headers = self._headers(settings)
        url = settings.base_url + "/models"
        response, body = self._send("GET", url, settings, headers, read=True, retries=retries)
        return json_models(response, body, settings)

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        retries: int | None = None,
        **params: Any,
    ) -> ChatStream:
        """Start a streamed answer; iterate the result for text deltas. Checks happen now.

        ``retries`` replaces the client's ``max_retries`` for this request (0: one attempt,
        for callers that retry themselves).
        """
        return ChatStream(self, messages, model, params, retries)

    def complete(
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
            with self.stream(messages, model=model, retries=retries, **params) as chat:
                for _ in chat:
                    pass
            assert chat.completion is not None
            return chat.completion
        settings, url, headers, body = self._chat_request(
            messages, model=model, stream=False, params=params
        )
        response, content = self._send(
            "POST", url, settings, headers, body, read=True, retries=retries
        )
        return json_completion(response, content, settings)

    def describe(
        self,
        image: Any,
        prompt: str | None = None,
        *,
        model: str | None = None,
        stream: bool = True,
        show: bool = True,
        **params: Any,
    ) -> Description:
        """Ask about one or more images; see ``reka_nb.describe``."""
        require_image(image)
        try:
            return run_describe(
                self, image, prompt, model=model, stream=stream, show=show, **params
            )
        except KeyboardInterrupt as exc:  # a stop: one line, not a traceback through httpx
            raise stopped(exc, show) from None


class ChatStream:
    """A streamed answer: iterate for text deltas; ``completion`` is set once it finished."""

    def __init__(
        self,
        client: RekaClient,
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

    def open(self) -> None:
        """Send the request (with retries) and read the status; errors surface here."""
        if self._response is None:
            response, _ = self._client._send(
                "POST", self._url, self.settings, self._headers, self._body, retries=self._retries
            )
            self._response = response
            self._state = StreamState(
                self.settings, response, self._client.read_timeout, lambda: self._client.closed
            )

    def __iter__(self) -> Iterator[str]:
        self.open()
        assert self._response is not None and self._state is not None
        state, response = self._state, self._response
        if state.started:
            raise RuntimeError("this answer has been read already: start a new stream")
        state.started = True
        try:
            if stream_reply_kind(response) == "json":  # a whole answer to a stream request
                yield from self._whole(response, state)
                return
            chunks = response.iter_raw()
            failure: httpx.HTTPError | None = None
            try:
                for chunk in chunks:
                    yield from state.feed(chunk)
                    if state.acc.finished:
                        break
                else:
                    yield from state.end()
            except httpx.HTTPError as exc:
                failure = exc
            if failure is not None and not state.acc.finished:  # after the finish: nothing lost
                raise state.translate(failure)  # outside the except: httpx's request stays out
            if failure is None and state.acc.finished:
                yield from self._after_finish(chunks, state, response)
            self.completion = stream_answer(state, response)
        finally:
            self.close()

    @staticmethod
    def _after_finish(
        chunks: Iterator[bytes], state: StreamState, response: httpx.Response
    ) -> Iterator[str]:
        """Read what follows the finish (usage, [DONE], the end of the body) for at most
        AFTER_FINISH_WAIT seconds (DRAIN_WAIT after [DONE]): a server that keeps the connection
        open gets it shut down, so the answer never waits on it (nor is the connection reused)."""
        wait = DRAIN_WAIT if state.acc.done else AFTER_FINISH_WAIT
        timer = threading.Timer(wait, shutdown_response, (response,))
        timer.daemon = True
        timer.start()
        try:
            for chunk in chunks:
                if not state.acc.done:
                    yield from state.feed(chunk)
                    continue
                state.drained += len(chunk)
                if state.drained > DRAIN_LIMIT:
                    break  # more than an end of body: not worth keeping the connection
        except httpx.HTTPError:
            pass  # the answer is complete; the connection is simply not reused
        finally:
            timer.cancel()

    def _whole(self, response: httpx.Response, state: StreamState) -> Iterator[str]:
        content = self._client._read(response)
        if isinstance(content, httpx.HTTPError):
            raise state.translate(content)
        text = state.acc.take_whole(json_completion(response, content, self.settings))
        if text:
            yield text
        self.completion = state.acc.completion(state.request_id)

    def close(self) -> None:
        """Close the connection (at once, even mid-answer)."""
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
