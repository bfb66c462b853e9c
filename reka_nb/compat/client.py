"""OpenAI-style clients on reka_nb, so code written for that call shape runs with one import.

    from reka_nb import Client, Reka

    client = Client(provider=Reka)
    completion = client.chat.completions.create(
        model="reka-core",
        messages=[{"role": "user", "content": "What can you see in the image ?"}],
        stream=True,
        image=open("docs/images/cat.jpeg", "rb"),
    )
    for message in completion:
        print(message.choices[0].delta.content or "")

Every call goes through ``RekaClient`` / ``AsyncRekaClient``: same settings (arguments, then
``REKA_*`` variables at call time), retries, typed errors and offline mode. ``image=`` and
``images=`` take anything ``describe()`` accepts and put the images at the start of the last
user message. OpenAI arguments that change nothing here (``n=1``, ``stream_options``,
``user``...) are accepted and ignored; ones that would change the answer in a way Reka cannot
honour (``n=2``, ``tools``...) raise ``InvalidRequestError``; unknown names raise ``TypeError``.
``schema=``, ``labels=``, ``multi_label=`` and ``schema_retries=`` (or OpenAI's
``response_format={"type": "json_schema", ...}``) ask for a structured answer as describe()
does (``compat/structured.py``): ``choices[0].message.parsed`` holds its checked fields.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from typing import Any

from ..client.aio import AsyncChatStream, AsyncRekaClient
from ..client.settings import Settings
from ..client.sync import ChatStream, RekaClient
from ..protocol.stream import Completion
from .args import Reka, check_options, check_provider, prepare_call
from .structured import Ask, StructuredCall, structured_flow
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessage,
    Choice,
    ChoiceDelta,
    ChunkChoice,
    CompletionUsage,
    Model,
    ModelList,
    ParsedChatCompletionMessage,
)

__all__ = ["AsyncClient", "AsyncStream", "Client", "Reka", "Stream"]


def _new_id(request_id: str | None) -> str:
    """The server's request id (X-Request-ID), or a local one when it sent none."""
    return request_id or "chatcmpl-" + uuid.uuid4().hex


def _chat_completion(
    completion: Completion, model: str, created: int, structured: bool = False, parsed: Any = None
) -> ChatCompletion:
    message = (
        ParsedChatCompletionMessage(completion.text, parsed=parsed)
        if structured
        else ChatCompletionMessage(completion.text)
    )
    choice = Choice(message, completion.finish_reason or "stop")
    return ChatCompletion(
        id=_new_id(completion.request_id),
        created=created,
        model=completion.model or model,
        choices=[choice],
        usage=CompletionUsage.from_usage(completion.usage),
    )


# -- streams -----------------------------------------------------------------------------------


class _StreamBase:
    """Chunk building shared by Stream and AsyncStream (no I/O)."""

    def __init__(self, chat: ChatStream | AsyncChatStream, created: int) -> None:
        self.id = _new_id(chat.request_id)
        self.created = created
        self.model = chat.model
        self._chat = chat
        self._first = True

    @property
    def completion(self) -> Completion | None:
        """reka_nb's view of the whole answer, once the stream has ended."""
        return self._chat.completion

    @property
    def text(self) -> str:
        """The text received so far."""
        return self._chat.text

    def _delta(self, text: str) -> ChatCompletionChunk:
        role = "assistant" if self._first else None
        self._first = False
        choice = ChunkChoice(ChoiceDelta(content=text, role=role))
        return ChatCompletionChunk(self.id, self.created, self.model, [choice])

    def _final(self) -> ChatCompletionChunk:
        done = self._chat.completion
        assert done is not None
        choice = ChunkChoice(ChoiceDelta(), finish_reason=done.finish_reason or "stop")
        usage = CompletionUsage.from_usage(done.usage)
        return ChatCompletionChunk(self.id, self.created, done.model or self.model, [choice], usage)


class Stream(_StreamBase):
    """``create(stream=True)``: iterate for chunks; the last one has finish reason and usage."""

    _chat: ChatStream

    def __init__(self, chat: ChatStream, created: int) -> None:
        super().__init__(chat, created)
        self._chunks = self._generate()

    def _generate(self) -> Generator[ChatCompletionChunk, None, None]:
        deltas = iter(self._chat)
        try:
            for text in deltas:
                yield self._delta(text)
        finally:
            deltas.close()  # type: ignore[attr-defined]
        yield self._final()

    def __iter__(self) -> Iterator[ChatCompletionChunk]:
        return self

    def __next__(self) -> ChatCompletionChunk:
        return next(self._chunks)

    def close(self) -> None:
        """Stop reading and close the connection (at once, even mid-answer)."""
        self._chunks.close()
        self._chat.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncStream(_StreamBase):
    """``await create(stream=True)``: ``async for`` the chunks; the mirror of Stream."""

    _chat: AsyncChatStream

    def __init__(self, chat: AsyncChatStream, created: int) -> None:
        super().__init__(chat, created)
        self._chunks = self._generate()

    async def _generate(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        deltas = self._chat.__aiter__()
        try:
            async for text in deltas:
                yield self._delta(text)
        finally:
            await deltas.aclose()  # type: ignore[attr-defined]
        yield self._final()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self

    async def __anext__(self) -> ChatCompletionChunk:
        return await self._chunks.__anext__()

    async def close(self) -> None:
        """Stop reading and close the connection (at once, even mid-answer)."""
        await self._chunks.aclose()
        await self._chat.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- resources ---------------------------------------------------------------------------------


class Completions:
    """``client.chat.completions``."""

    def __init__(self, client: RekaClient) -> None:
        self._client = client

    def create(
        self,
        *,
        messages: Any,
        model: str | None = None,
        stream: bool = False,
        image: Any = None,
        images: Any = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> ChatCompletion | Stream:
        """Ask for an answer: a ChatCompletion, or with ``stream=True`` a Stream of chunks.

        Errors in the arguments, the images or the server's status are raised here, before
        any chunk is read.
        """
        explicit: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        explicit.update(top_p=top_p, stop=stop, seed=seed)
        settings = self._client.settings(model)
        limits = (settings.max_images, settings.max_request_bytes)
        msgs, streamed, params, structured = prepare_call(
            messages, stream, image, images, explicit, kwargs, limits
        )
        created = int(time.time())
        if structured is not None:
            return self._structured(structured, msgs, model, settings, params, created)
        if streamed:
            chat = self._client.stream(msgs, model=model, **params)
            chat.open()
            return Stream(chat, created)
        completion = self._client.complete(msgs, model=model, **params)
        return _chat_completion(completion, settings.model, created)

    def _structured(
        self,
        call: StructuredCall,
        msgs: list[dict[str, Any]],
        model: str | None,
        settings: Settings,
        params: dict[str, Any],
        created: int,
    ) -> ChatCompletion:
        """Drive ``structured_flow``: each step is one request."""
        info = self._client.known_model(model, settings=settings)
        flow = structured_flow(call, settings, info, msgs, params)
        outcome: Any = None
        while True:
            try:
                step: Ask = flow.send(outcome)
            except StopIteration as done:
                completion, data = done.value
                return _chat_completion(completion, settings.model, created, True, data)
            try:
                outcome = self._client.complete(step.messages, model=model, **step.params)
            except Exception as exc:  # the flow decides: a refused response_format, or raised
                outcome = exc


class AsyncCompletions:
    """``client.chat.completions`` of AsyncClient; the mirror of Completions."""

    def __init__(self, client: AsyncRekaClient) -> None:
        self._client = client

    async def create(
        self,
        *,
        messages: Any,
        model: str | None = None,
        stream: bool = False,
        image: Any = None,
        images: Any = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> ChatCompletion | AsyncStream:
        """``await`` an answer: a ChatCompletion, or with ``stream=True`` an AsyncStream."""
        explicit: dict[str, Any] = {"max_tokens": max_tokens, "temperature": temperature}
        explicit.update(top_p=top_p, stop=stop, seed=seed)
        settings = self._client.settings(model)
        limits = (settings.max_images, settings.max_request_bytes)
        msgs, streamed, params, structured = prepare_call(
            messages, stream, image, images, explicit, kwargs, limits
        )
        created = int(time.time())
        if structured is not None:
            return await self._structured(structured, msgs, model, settings, params, created)
        if streamed:
            chat = self._client.stream(msgs, model=model, **params)
            await chat.open()
            return AsyncStream(chat, created)
        completion = await self._client.complete(msgs, model=model, **params)
        return _chat_completion(completion, settings.model, created)

    async def _structured(
        self,
        call: StructuredCall,
        msgs: list[dict[str, Any]],
        model: str | None,
        settings: Settings,
        params: dict[str, Any],
        created: int,
    ) -> ChatCompletion:
        """Drive ``structured_flow`` with awaits: the mirror of Completions._structured."""
        info = self._client.known_model(model, settings=settings)
        flow = structured_flow(call, settings, info, msgs, params)
        outcome: Any = None
        while True:
            try:
                step: Ask = flow.send(outcome)
            except StopIteration as done:
                completion, data = done.value
                return _chat_completion(completion, settings.model, created, True, data)
            try:
                outcome = await self._client.complete(step.messages, model=model, **step.params)
            except Exception as exc:  # the flow decides: a refused response_format, or raised
                outcome = exc


class Chat:
    """``client.chat``."""

    def __init__(self, client: RekaClient) -> None:
        self.completions = Completions(client)


class AsyncChat:
    """``client.chat`` of AsyncClient."""

    def __init__(self, client: AsyncRekaClient) -> None:
        self.completions = AsyncCompletions(client)


class Models:
    """``client.models``."""

    def __init__(self, client: RekaClient) -> None:
        self._client = client

    def list(self) -> ModelList:
        """The models the key can use (``GET /models``; NotFoundError if the server has none)."""
        return ModelList([Model(name) for name in self._client.models()])


class AsyncModels:
    """``client.models`` of AsyncClient."""

    def __init__(self, client: AsyncRekaClient) -> None:
        self._client = client

    async def list(self) -> ModelList:
        """The models the key can use (``GET /models``; NotFoundError if the server has none)."""
        return ModelList([Model(name) for name in await self._client.models()])


# -- clients -----------------------------------------------------------------------------------


class Client:
    """``Client(provider=Reka)``: ``client.chat.completions.create(...)`` on a RekaClient.

    ``api_key`` and ``base_url`` default to ``REKA_API_KEY`` / ``REKA_BASE_URL`` read at each
    call; other keywords (model, api, connect_timeout, read_timeout, max_retries, backoff)
    go to the RekaClient, available as ``reka_client``.
    """

    def __init__(
        self,
        provider: Any = Reka,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> None:
        check_provider(provider)
        check_options(options)
        self.provider = Reka
        self.reka_client = RekaClient(api_key=api_key, base_url=base_url, **options)
        self.chat = Chat(self.reka_client)
        self.models = Models(self.reka_client)

    def __repr__(self) -> str:
        return f"Client(provider=Reka, client={self.reka_client!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self.reka_client.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The asyncio mirror of Client: ``await client.chat.completions.create(...)``."""

    def __init__(
        self,
        provider: Any = Reka,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        **options: Any,
    ) -> None:
        check_provider(provider)
        check_options(options)
        self.provider = Reka
        self.reka_client = AsyncRekaClient(api_key=api_key, base_url=base_url, **options)
        self.chat = AsyncChat(self.reka_client)
        self.models = AsyncModels(self.reka_client)

    def __repr__(self) -> str:
        return f"AsyncClient(provider=Reka, client={self.reka_client!r})"

    async def close(self) -> None:
        """Close the connection pool."""
        await self.reka_client.aclose()

    aclose = close

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
