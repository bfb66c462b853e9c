"""A structured question's own steps: how the schema is asked, the check, the repair turn.

A question with a schema (``schema=``/``labels=``) sends ``response_format`` where the model
takes it (its ``/models`` entry lists it in ``supported_parameters``, or nothing says it does
not) and otherwise puts the JSON Schema, verbatim, in the instructions (a system turn). A 400
that refuses ``response_format`` is remembered for that (base URL, model) for the rest of the
process: the question is asked again with the instructions, and later questions (runs over
many images included) never send it there again. The answer is parsed tolerantly and
validated; when it fails, the question goes on in the same conversation with the validation
error (``schema_retries`` times, 1 by default); what still fails is a `SchemaError` carrying
the tokens and cost spent. Every attempt's tokens count in the answer's usage.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .._exceptions import APIError, ConfigurationError, SchemaError

if TYPE_CHECKING:
    from ..protocol.models import Model
    from ..protocol.schema import Schema
    from ..protocol.stream import Completion, Usage
    from .settings import Settings

__all__ = [
    "SCHEMA_OPTIONS",
    "Structured",
    "forget_refusals",
    "refuses_format",
    "schema_of",
]

#: The options a question takes for a structured answer (beside the generation parameters).
SCHEMA_OPTIONS = ("schema", "labels", "multi_label", "schema_retries")

_REFUSED: set[tuple[str, str]] = set()
_LOCK = threading.Lock()


def forget_refusals() -> None:
    """Forget which models refused ``response_format`` (tests; a server that changed)."""
    with _LOCK:
        _REFUSED.clear()


def _refused(settings: Settings) -> bool:
    with _LOCK:
        return (settings.base_url, settings.model) in _REFUSED


def _remember(settings: Settings) -> None:
    with _LOCK:
        _REFUSED.add((settings.base_url, settings.model))


def refuses_format(error: BaseException) -> bool:
    """Whether ``error`` is a 400 that refuses ``response_format`` (not some other 400)."""
    if not isinstance(error, APIError) or error.status != 400:
        return False
    return any("response_format" in text for text in (error.message, *error.messages))


def schema_of(options: dict[str, Any]) -> tuple[Schema | None, int]:
    """Take the schema options out of ``options``: the `Schema` (None without one) and the
    number of repair turns. An unusable schema is a `ConfigurationError`, raised now."""
    schema = options.pop("schema", None)
    labels = options.pop("labels", None)
    multi_label = options.pop("multi_label", False)
    retries = options.pop("schema_retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"schema_retries must be 0 or more, not {retries!r}")
    if schema is None and labels is None and not multi_label:
        return None, retries
    from ..protocol.schema import make_schema  # jsonschema: imported when a schema is used

    return make_schema(schema, labels=labels, multi_label=multi_label), retries


def _add(a: Usage | None, b: Usage | None) -> Usage | None:
    if a is None or b is None:
        return a or b
    from ..protocol.stream import Usage

    def plus(x: int | None, y: int | None) -> int | None:
        return None if x is None or y is None else x + y

    return Usage(plus(a.input_tokens, b.input_tokens), plus(a.output_tokens, b.output_tokens))


@dataclass
class Structured:
    """The state of one structured question: how it is asked, what it has spent."""

    schema: Schema
    retries: int = 1
    wants_format: bool = True
    settings: Settings | None = field(default=None, repr=False)
    known: bool = False
    repairs: int = 0
    spent: Usage | None = None
    data: Any = None
    turns: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def plan(self, settings: Settings, info: Model | None) -> None:
        """Decide how to ask: ``response_format`` unless the model (its metadata, or a
        refusal this process saw) does not take it, or the endpoint is the native one."""
        takes = None if info is None else info.takes_response_format
        self.settings = settings
        self.wants_format = settings.api == "openai" and takes is not False
        self.known = takes is not None or not self.wants_format

    @property
    def use_format(self) -> bool:
        """Whether ``response_format`` is sent now (a refusal seen meanwhile, by another
        question too, turns it off)."""
        settings = self.settings
        return self.wants_format and not (settings is not None and _refused(settings))

    @property
    def unsure(self) -> bool:
        """True while nothing says whether the model takes ``response_format`` (it is sent,
        and a refusal would be learnt from the answer)."""
        return self.use_format and not self.known

    def params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The generation parameters to send (``response_format`` added when used)."""
        out = {k: v for k, v in params.items() if k != "response_format"}
        if self.use_format:
            out["response_format"] = self.schema.response_format()
        return out

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation to send: with the schema in the instructions when not asked by
        ``response_format`` (joined to a system turn there is, else a new first turn), and
        the repair turns asked so far."""
        messages = [*messages, *self.turns]
        if self.use_format:
            return messages
        text = self.schema.instructions()
        if messages and messages[0].get("role") == "system":
            first = messages[0]
            content = first.get("content")
            if isinstance(content, str):
                return [{**first, "content": f"{content}\n\n{text}"}, *messages[1:]]
            return [{"role": "system", "content": text}, *messages]
        return [{"role": "system", "content": text}, *messages]

    def refused(self, settings: Settings, error: BaseException) -> bool:
        """After a failed request: True when it refused ``response_format`` (remembered for
        the process), so the question is to be asked again with the instructions."""
        if not self.use_format or not refuses_format(error):
            return False
        _remember(settings)
        self.wants_format = False
        return True

    def accept(self, completion: Completion) -> list[dict[str, Any]] | None:
        """Check an answer: None when it is valid (``data`` set), else the two turns to add
        for a repair (the answer, then the error); raises `SchemaError` when no repair is
        left (with ``usage`` spent on every attempt)."""
        self.spent = _add(self.spent, completion.usage)
        try:
            self.data = self.schema.check(completion.text)
            return None
        except SchemaError as error:
            if self.repairs >= self.retries:
                error.usage = self.spent
                raise
            self.repairs += 1
            turns = [
                {"role": "assistant", "content": completion.text or " "},
                {"role": "user", "content": self.schema.repair_prompt(error)},
            ]
            self.turns.extend(turns)
            return turns

    def completion(self, completion: Completion) -> Completion:
        """The last answer with the tokens of every attempt as its usage."""
        return replace(completion, usage=self.spent) if self.repairs else completion

    def failed_cost(self, info: Model | None) -> Decimal | None:
        """What the attempts of a question that still failed cost (None when unknown)."""
        return None if info is None or self.spent is None else info.cost(self.spent)
