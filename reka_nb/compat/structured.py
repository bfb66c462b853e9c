"""A structured ``create()`` of the OpenAI-style clients (``schema=``, ``labels=``, or
OpenAI's ``response_format={"type": "json_schema", ...}``), written once as a flow that both
clients drive.

It takes the steps of every structured question (``client/structured.py``): the schema asked
by ``response_format`` where the model takes it, else in the instructions; a refusal of
``response_format`` remembered and the question asked again; the answer checked, and asked
once more with what was wrong (``schema_retries``); what still fails is a `SchemaError`
carrying what its attempts spent. The completion's usage counts every attempt.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import SchemaError
from ..client.structured import Structured

if TYPE_CHECKING:
    from ..client.settings import Settings
    from ..protocol.models import Model
    from ..protocol.schema import Schema
    from ..protocol.stream import Completion

__all__ = ["Ask", "StructuredCall", "structured_flow"]


@dataclass(frozen=True)
class StructuredCall:
    """A call's schema (a `Schema`) and how many repair turns it may ask."""

    schema: Schema
    retries: int = 1


@dataclass(frozen=True)
class Ask:
    """A step of ``structured_flow``: send these messages and parameters; the answer is the
    `Completion`, or the exception the request raised."""

    messages: list[dict[str, Any]]
    params: dict[str, Any]


def structured_flow(
    call: StructuredCall,
    settings: Settings,
    info: Model | None,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
) -> Generator[Ask, Any, tuple[Completion, Any]]:
    """Ask until the answer fits the schema: the last completion (its usage that of every
    attempt) and the checked data; the request's own errors are re-raised."""
    structured = Structured(call.schema, call.retries)
    structured.plan(settings, info)
    while True:
        outcome = yield Ask(structured.messages(messages), structured.params(params))
        if isinstance(outcome, BaseException):
            if structured.refused(settings, outcome):
                continue  # asked again, the schema in the instructions
            raise outcome
        try:
            if structured.accept(outcome) is None:
                return structured.completion(outcome), structured.data
        except SchemaError as error:
            error.cost = structured.failed_cost(info)
            raise
