"""One question, from the caller's arguments to a finished answer: the one path every caller
takes (``describe``/``adescribe``, the clients' ``describe`` methods, the magics, the upload
panel, and ``describe_many``'s engine for each row, and so Ray's).

``Question.prepare`` resolves nothing itself: it gets the settings resolved once by the caller,
checks the parameters and the limits before any image is read, prepares the images and builds
the message, so whatever it refuses is refused with nothing sent, for every caller alike.
``learn`` takes the model's metadata (``model_info``) and refuses an input the model does not
take; ``cached`` answers from the answer cache; ``finish`` turns a completion into the
``Description`` (its cost, the session's usage, the cache entry).

``run_describe`` (``sync.py``) and ``run_adescribe`` (``aio.py``) drive one question on a
client; this module imports neither.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._exceptions import RekaError, SchemaError, one_line
from ..answer import DEFAULT_PROMPT, SESSION_USAGE, Description, Presenter, StdoutPresenter
from ..protocol.messages import check_params, user_message
from ..protocol.models import Model, ModelList, check_inputs
from .base import require_image
from .offline_mode import server_name
from .structured import Structured, schema_of

if TYPE_CHECKING:
    from ..cache import AnswerCache, CachedAnswer
    from ..images import Media
    from ..protocol.schema import Schema
    from ..protocol.stream import Completion
    from .base import BaseClient
    from .settings import Settings

__all__ = [
    "INFO",
    "NEXT",
    "Open",
    "Question",
    "answer_flow",
    "ask",
    "open_cache",
    "presenter_of",
    "refuse_images",
    "require_image",
    "settings_of",
    "stopped",
]


@dataclass
class Question:
    """One question, checked and prepared: everything is decided before a byte is sent."""

    settings: Settings
    prompt: str
    images: list[Media]
    message: dict[str, Any]
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    info: Model | None = None
    presenter: Presenter | None = None
    started: float = field(default_factory=time.monotonic)
    structured: Structured | None = None
    _cache: AnswerCache | None = field(default=None, repr=False)
    _key: str | None = field(default=None, repr=False)

    @classmethod
    def prepare(
        cls,
        settings: Settings,
        image: Any,
        prompt: str | None = None,
        *,
        system: str | None = None,
        history: Sequence[Mapping[str, Any]] = (),
        keep_metadata: bool = False,
        params: Mapping[str, Any] | None = None,
        models: ModelList | None = None,
        schema: Schema | None = None,
        schema_retries: int = 1,
    ) -> Question:
        """Check the parameters, the limits and (from ``models``, a list known already) the
        model's inputs before reading any image; then prepare the images and the message.
        ``schema`` (a `Schema`, see `make_schema`) asks for a structured answer."""
        checked = check_params(params or {}, settings.api)
        if image is not None and models is not None:
            refuse_images(settings, models)
        images: list[Media] = []
        if image is not None:
            from ..images import prepare_images  # Pillow: imported when a first image is prepared

            images = prepare_images(
                image,
                keep_metadata=keep_metadata,
                max_images=settings.max_images,
                max_request_bytes=settings.max_request_bytes,
            )
        text = DEFAULT_PROMPT if prompt is None else prompt
        message = user_message(text, images, settings.api)
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        messages += [dict(m) for m in history]
        messages.append(message)
        question = cls(settings, text, images, message, messages, checked)
        if schema is not None:
            question.structured = Structured(schema, schema_retries)
            question.structured.plan(settings, None)
        return question

    @property
    def model(self) -> str:
        return self.settings.model

    def learn(self, info: Model | None, models: ModelList | None) -> None:
        """Keep the model's metadata (prices: the answer's cost) and refuse, unsent, an input
        the model does not take."""
        self.info = info
        if info is not None and models is not None:
            check_inputs(info, self.messages, models)  # the list itself: no copy per question
        if self.structured is not None:
            self.structured.plan(self.settings, info)

    @property
    def schema(self) -> Schema | None:
        """The schema of a structured question, else None."""
        return None if self.structured is None else self.structured.schema

    @property
    def send_messages(self) -> list[dict[str, Any]]:
        """The conversation to send (a structured question's instructions and repair turns
        included)."""
        if self.structured is None:
            return self.messages
        return self.structured.messages(self.messages)

    @property
    def send_params(self) -> dict[str, Any]:
        """The parameters to send (a structured question's ``response_format`` included)."""
        if self.structured is None:
            return self.params
        return self.structured.params(self.params)

    def refused(self, error: BaseException) -> bool:
        """After a failed request: True when it refused ``response_format``, so the question
        is to be asked again with the schema in the instructions."""
        return self.structured is not None and self.structured.refused(self.settings, error)

    def accept(self, completion: Completion) -> bool:
        """Check a structured answer: True when it is to be asked again (the repair turns are
        added); False when it is done (or the question is not structured). Raises
        `SchemaError` when it still fails, its tokens added to the session's usage."""
        if self.structured is None:
            return False
        try:
            turns = self.structured.accept(completion)
        except SchemaError as error:
            cost = self.structured.failed_cost(self.info)
            error.cost = cost
            SESSION_USAGE.add(self.model, self.structured.spent, cost)
            raise
        return turns is not None

    def key(self) -> str:
        """The question's key in the answer cache: never the API key; images by their hash."""
        from ..cache import cache_key  # sqlite3: imported when a cache is used

        return cache_key(
            base_url=server_name(self.settings.base_url),  # the offline server: any port
            api=self.settings.api,
            model=self.model,
            prompt=self.prompt,
            images=[(im.data, im.url) for im in self.images],
            params=self.params,
            context=self.messages[:-1],  # a system message and earlier turns change the answer
            schema=None if self.schema is None else self.schema.fingerprint,
        )

    def keep_in(self, cache: AnswerCache | None) -> str | None:
        """Look this question up in ``cache`` and ``store`` its answer there: its key (None
        without a cache)."""
        self._cache = cache
        self._key = None if cache is None else self.key()
        return self._key

    def cached(self, cache: AnswerCache | None, *, close: bool = True) -> Description | None:
        """The stored answer to this question (shown like a new one), else None; ``store``
        keeps a new one. ``close=False``: the cache stays open (a run closes it at its end)."""
        key = self.keep_in(cache)
        if cache is None or key is None:
            return None
        try:
            hit = cache.get(key)
        finally:
            if close:
                cache.close()  # no file held open while the question is asked
        return self.answered(hit)

    def answered(self, hit: CachedAnswer | None) -> Description | None:
        """The answer ``hit`` (this question's, from the cache) shown like a new one; None
        when there was none, and then ``store`` keeps the new one."""
        if hit is None:
            return None
        data = None
        if self.schema is not None:
            try:
                data = self.schema.check(hit.text)
            except SchemaError:  # a stored answer that no longer fits: asked again
                return None
        self._cache = None
        description = hit.description(self.prompt)
        description.data = data
        description.model = description.model or self.model
        description.images = tuple(self.images)
        description.message = dict(self.message)
        if self.presenter:
            self.presenter.start(model=description.model, prompt=self.prompt, images=self.images)
            self.presenter.finish(description)
        return description

    def start(self) -> None:
        """The answer is about to arrive: the presenter shows the question (and, for a
        structured one, a presenter that can show fields filling in is told their names:
        its optional ``expect_fields(names)``)."""
        if self.presenter:
            self.presenter.start(model=self.model, prompt=self.prompt, images=self.images)
            expect = getattr(self.presenter, "expect_fields", None)
            if expect is not None and self.schema is not None:
                expect(self.schema.field_names)

    def update(self, delta: str) -> None:
        if self.presenter:
            self.presenter.update(delta)

    def fail(self, error: BaseException, partial: str) -> None:
        if self.presenter:
            self.presenter.fail(error, partial)

    def finish(self, completion: Completion, *, inputs: bool = True) -> Description:
        """The answer: its cost (from ``info``), added to the session's usage, and shown.
        ``inputs=False`` leaves the images out of it (a run over many keeps no image bytes)."""
        elapsed = time.monotonic() - self.started
        if self.structured is not None:
            completion = self.structured.completion(completion)
        description = Description.from_completion(
            completion,
            data=None if self.structured is None else self.structured.data,
            elapsed=elapsed,
            prompt=self.prompt,
            images=self.images if inputs else (),
            message=self.message if inputs else None,
            model_info=self.info,
        )
        if description.model is None:
            description.model = self.model
        SESSION_USAGE.add(self.model, description.usage, description.cost)
        if self.presenter:
            self.presenter.finish(description)
        return description

    def store(self, description: Description, *, close: bool = True) -> None:
        """Keep a new answer in the cache the question was looked up in (if any)."""
        if self._cache is not None and self._key is not None:
            try:
                self._cache.put(self._key, cache_entry(description))
            finally:
                if close:
                    self._cache.close()


def cache_entry(description: Description) -> CachedAnswer:
    """What the answer cache keeps of an answer."""
    from ..cache import CachedAnswer

    usage = description.usage
    return CachedAnswer(
        text=description.text,
        model=description.model,
        finish_reason=description.finish_reason,
        input_tokens=None if usage is None else usage.input_tokens,
        output_tokens=None if usage is None else usage.output_tokens,
        request_id=description.request_id,
        seconds=description.elapsed,
        stored_at=time.time(),
    )


_IMAGE_PROBE = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": ""}}]}


def refuse_images(settings: Settings, models: ModelList) -> None:
    """Refuse, before any image is read, a model the list says takes no images."""
    info = models.get(settings.model)
    if info is not None and info.input_modalities is not None and not info.takes("image"):
        check_inputs(info, [_IMAGE_PROBE], models)


def stopped(exc: KeyboardInterrupt, show: object) -> BaseException:
    """A stop while one question was asked, as one line (IPython shows no traceback through
    httpx): what arrived of the answer stays on screen when it was shown."""
    return one_line(
        exc, "interrupted; the text that arrived is kept above" if show else "interrupted"
    )


def open_cache(cache: bool | AnswerCache | None) -> AnswerCache | None:
    """``cache=True``: the answer cache ``REKA_NB_CACHE`` names now (None when it is off), the
    same one for every question of the process, its connections kept open between them."""
    if cache is True:
        from ..cache import describe_cache  # sqlite3: imported when a cache is used

        return describe_cache()
    return cache or None


def presenter_of(show: bool | Presenter | None) -> Presenter | None:
    """``show=True``: print to stdout (the notebook display is chosen above, in ``auto``)."""
    if show is True:
        return StdoutPresenter()
    if show is False or show is None:
        return None
    return show


def settings_of(client: BaseClient, model: str | None) -> Settings | None:
    """The client's settings for ``model``, resolved once for a question and passed down
    (the model-list lookup, ``ask``, ``model_info``); None when they are refused: ``ask``
    then says why, after the checks that come before it."""
    try:
        return client.settings(model)
    except RekaError:
        return None


def ask(
    client: BaseClient,
    image: Any,
    prompt: str | None = None,
    *,
    model: str | None = None,
    show: bool | Presenter | None = True,
    system: str | None = None,
    history: Sequence[Mapping[str, Any]] = (),
    keep_metadata: bool = False,
    settings: Settings | None = None,
    **params: Any,
) -> Question:
    """A question for ``client``: its settings resolved once (or ``settings``, resolved
    already for ``model``), everything checked and the images prepared (see
    ``Question.prepare``); ``show`` chooses its presenter. The schema options (``schema``,
    ``labels``, ``multi_label``, ``schema_retries``) ask for a structured answer; an unusable
    schema is refused here, before anything is read or sent."""
    schema, schema_retries = schema_of(params)
    if settings is None:  # once: its limits are checked before images are read
        settings = client.settings(model)
    question = Question.prepare(
        settings,
        image,
        prompt,
        system=system,
        history=history,
        keep_metadata=keep_metadata,
        params=params,
        models=client.known_models(settings),
        schema=schema,
        schema_retries=schema_retries,
    )
    question.presenter = presenter_of(show)
    return question


#: Steps of ``answer_flow``: the model's metadata (answer: ``(model_info, known_models)``),
#: the next text of the open stream (answer: a str, None at its end, or the exception).
INFO = "model info"
NEXT = "next delta"


@dataclass(frozen=True)
class Open:
    """Ask: ``stream`` (answer: the open ChatStream) or not (the Completion, or the error)."""

    stream: bool


def answer_flow(
    q: Question, cache: bool | AnswerCache | None, stream: bool
) -> Generator[Any, Any, Description]:
    """A prepared question to its answer, written once: the model's metadata and inputs, the
    answer cache, the presenter, the finishing. ``run_describe`` (``sync.py``) and
    ``run_adescribe`` (``aio.py``) drive it; its errors are the drivers' own, re-raised."""
    q.learn(*(yield INFO))
    store = open_cache(cache)
    close = cache is not True  # the process's shared cache stays open between questions
    try:
        hit = q.cached(store, close=close)
        if hit is not None:
            return hit
        q.started = time.monotonic()
        q.start()
        while True:  # once, unless refused response_format or a structured answer to repair
            if stream:
                chat = yield Open(True)
                refused = False
                while (delta := (yield NEXT)) is not None:
                    try:
                        if isinstance(delta, BaseException):
                            if not chat.text and q.refused(delta):
                                refused = True  # ask again, the schema in the instructions
                                break
                            raise delta
                        q.update(delta)  # a presenter may stop it too (an interrupt)
                    except BaseException as exc:
                        q.fail(exc, chat.text)
                        raise
                if refused:
                    continue
                completion = chat.completion
            else:
                completion = yield Open(False)
                if isinstance(completion, BaseException):
                    if q.refused(completion):
                        continue
                    q.fail(completion, "")
                    raise completion
            try:
                if not q.accept(completion):
                    break
            except BaseException as exc:
                q.fail(exc, completion.text)
                raise
            q.start()  # the repair turn's answer is shown afresh
        description = q.finish(completion)
        q.store(description, close=close)
        return description
    finally:
        if store is not None:
            store.warn(stacklevel=5)  # at the caller's describe() line
