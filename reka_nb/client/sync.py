"""RekaClient: the synchronous client. It moves bytes; the protocol lives in no-I/O modules.

AsyncRekaClient (``aio.py``) mirrors it line for line. Retries happen only before an
answer has started: connection failures and 408/409/429/5xx replies, with backoff and jitter,
honouring Retry-After. Once text has arrived, a failure raises StreamInterrupted with the
partial text.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import httpx

from .._exceptions import ConfigurationError, RekaError
from ..protocol.body import BodyTooLarge, UndecodableBody
from ..protocol.stream import Completion
from .base import WHOLE, BaseChatStream, BaseClient, Flow, Lookup, Messages, Read, Send, Sleep
from .model_lists import fetch_models
from .question import INFO, NEXT, Question, answer_flow, ask, settings_of, stopped
from .replies import (
    Body,
    body_reader,
    shutdown_response,
    take_body,
)
from .settings import Settings

if TYPE_CHECKING:
    from ..answer import Description
    from ..cache import AnswerCache

__all__ = ["ChatStream", "RekaClient", "answer_question", "run_describe"]


class RekaClient(BaseClient):
    """A synchronous client for Reka's chat API (OpenAI-compatible or native)."""

    _http: httpx.Client | None = None
    _http_class = httpx.Client

    def _check_transport(self, transport: str | None) -> str | None:
        """httpx's pool only (the aiohttp transport is asyncio's): ``auto`` means httpx here,
        and ``REKA_NB_TRANSPORT`` is for asyncio clients."""
        if transport == "aiohttp":
            raise ConfigurationError(
                "transport='aiohttp' is for AsyncRekaClient (and describe_many): a RekaClient "
                "always uses httpx's own pool"
            )
        return transport

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

    def _drive(self, flow: Flow) -> Any:
        """Run a request flow (``BaseClient``) with blocking calls; return its result."""
        outcome: Any = None
        while True:
            try:
                step = flow.send(outcome)
            except StopIteration as done:
                return done.value
            if isinstance(step, Sleep):
                time.sleep(step.seconds)
                outcome = None
            elif isinstance(step, Read):
                outcome = self._read(step.response)
            elif isinstance(step, Lookup):  # known, or one lookup shared by the threads asking
                fetch = partial(fetch_models, self, step.settings)
                outcome = self._model_lists.wait(step.settings, fetch)
            else:
                outcome = self._send(step)

    def _start_lookup(self, settings: Settings) -> None:
        # The pool is made here, before the lookup's thread starts (the question needs it
        # anyway): making it (its TLS context) is the CPU the thread would otherwise share
        # with the image preparation, sending GET /models that much later.
        with contextlib.suppress(RekaError):  # closed: the question says so
            self._client()
        self._model_lists.start(settings, partial(fetch_models, self, settings))

    def _send(self, step: Send) -> httpx.Response | httpx.HTTPError:
        """Send one request (its body is read later); a transport failure is returned."""
        http = self._client()
        extensions = {"trace": self._note_connection}
        try:
            request = http.build_request(
                step.method, step.url, headers=step.headers, json=step.body, extensions=extensions
            )
            return http.send(request, stream=True, auth=step.auth)
        except httpx.HTTPError as exc:
            return exc
        except RuntimeError:  # httpx's "the client has been closed", from another thread
            if not self._closed:
                raise
            return httpx.ReadError("closed")

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

    def stream(
        self,
        messages: Messages,
        *,
        model: str | None = None,
        retries: int | None = None,
        settings: Settings | None = None,
        **params: Any,
    ) -> ChatStream:
        """Start a streamed answer; iterate the result for text deltas. Checks happen now.

        ``retries`` replaces the client's ``max_retries`` for this request (0: one attempt,
        for callers that retry themselves).
        """
        return ChatStream(self, messages, model, params, retries, settings)

    def complete(
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
            with self.stream(
                messages, model=model, retries=retries, settings=settings, **params
            ) as chat:
                for _ in chat:
                    pass
            assert chat.completion is not None
            return chat.completion
        flow = self._complete_flow(messages, model, retries, settings, params)
        return self._drive(flow)  # type: ignore[no-any-return]


class ChatStream(BaseChatStream):
    """A streamed answer: iterate for text deltas; ``completion`` is set once it finished."""

    _client: RekaClient

    def open(self) -> None:
        """Send the request (with retries) and read the status; errors surface here."""
        if self._response is None:
            response, _ = self._client._drive(self._request_flow(self._client))
            self._opened(self._client, response)

    def __iter__(self) -> Iterator[str]:
        self.open()
        assert self._response is not None
        response, flow = self._response, self._flow()
        chunks = response.iter_raw()
        timer: threading.Timer | None = None
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
                elif step is WHOLE:
                    outcome = self._client._read(response)
                else:
                    if step.wait is not None and timer is None:  # past it, the socket is shut
                        timer = threading.Timer(step.wait, shutdown_response, (response,))
                        timer.daemon = True
                        timer.start()
                    try:
                        outcome = next(chunks, None)
                    except httpx.HTTPError as exc:
                        outcome = exc
        finally:
            if timer is not None:
                timer.cancel()
            self.close()

    def close(self) -> None:
        """Close the connection (at once, even mid-answer)."""
        if self._response is not None:
            self._response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_describe(
    client: RekaClient,
    image: Any,
    prompt: str | None = None,
    *,
    stream: bool = True,
    cache: bool | AnswerCache = False,
    **options: Any,
) -> Description:
    """describe() on an explicit client; everything is checked before anything is sent.
    ``options``: those of ``question.ask`` (model, show, system, history, keep_metadata,
    params). ``cache=True`` answers from the answer cache when the same question was asked
    before (the answer says ``cached``), and stores a new answer there."""
    settings = settings_of(client, options.get("model"))  # once for the question
    if settings is not None:
        client.start_model_lookup(settings=settings)  # the list comes while images are read
    q = ask(client, image, prompt, settings=settings, **options)
    return answer_question(client, q, cache=cache, stream=stream)


def answer_question(
    client: RekaClient, q: Question, *, cache: bool | AnswerCache = False, stream: bool = True
) -> Description:
    """A question prepared by ``ask`` to its answer (``answer_flow``): for callers that
    prepare several questions, checking them all, before any is sent."""
    flow = answer_flow(q, cache, stream)
    outcome: Any = None
    deltas: Iterator[str] = iter(())
    while True:
        try:
            step = flow.send(outcome)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        try:
            if step == INFO:
                info = client.model_info(settings=q.settings)
                outcome = info, client.known_models(q.settings)
            elif step == NEXT:
                outcome = next(deltas, None)
            elif step.stream:
                outcome = client.stream(q.send_messages, settings=q.settings, **q.send_params)
                deltas = iter(outcome)
            else:
                outcome = client.complete(q.send_messages, settings=q.settings, **q.send_params)
        except BaseException as exc:
            if step == INFO or getattr(step, "stream", False):
                raise  # before the answer began: nothing to show
            outcome = exc


def describe_stopped(
    client: RekaClient, image: Any, prompt: str | None = None, **options: Any
) -> Description:
    """``RekaClient.describe``: ``run_describe``, with a stop shown as one line (not a
    traceback through httpx)."""
    try:
        return run_describe(client, image, prompt, **options)
    except KeyboardInterrupt as exc:
        raise stopped(exc, options.get("show", True)) from None


RekaClient._run_describe = describe_stopped  # type: ignore[assignment]
