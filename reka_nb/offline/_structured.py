"""Structured answers on the offline server: ``response_format``, schemas in the prompt, faults.

A request whose ``response_format`` is ``{"type": "json_schema", "json_schema": {"name",
"schema", "strict"}}`` is answered with the JSON text of a deterministic instance of the schema
(`instance_for`); so is a request without one whose system or user text holds a JSON Schema
(an object schema, written out as JSON), as a client puts it in the instructions for a model
that does not take ``response_format``. ``{"type": "json_object"}`` gets a small object.

A model whose catalog entry does not list ``response_format`` in ``supported_parameters``
answers 400 when sent one (unless the server gives no model metadata). The structured faults
(``Fault.invalid_json()``, ``missing_field()``, ``wrong_type()``, ``refusal()``) spoil one
structured answer each, for repair tests; on other requests they change nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ._answer import describe_image, describe_video
from ._catalog import takes_response_format
from ._faults import Fault, error_envelope
from ._instance import Chooser, instance_for
from ._request import ChatRequest, Rejection

__all__ = [
    "NOTE",
    "REFUSAL",
    "STRUCTURED_FAULTS",
    "Structured",
    "structured_reply",
    "structured_request",
]

#: How the string field that says no model ran begins.
NOTE = "No model ran: reka_nb's offline server made this answer from the schema."
#: The text of ``Fault.refusal()``.
REFUSAL = "I'm sorry, but I can't help with that request."
STRUCTURED_FAULTS = ("invalid_json", "missing_field", "wrong_type", "refusal")
_FORMAT_TYPES = ("text", "json_object", "json_schema")
_MAX_STARTS = 64
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class Structured:
    """What a request asked for: a JSON Schema, and where it came from
    (``response_format`` or ``instructions``)."""

    schema: dict[str, Any]
    source: str


def _reject(message: str, param: str) -> Rejection:
    return Rejection(400, error_envelope(400, message, param))


def _from_format(value: Any) -> Structured | Rejection | None:
    if not isinstance(value, dict):
        return _reject(
            "Invalid 'response_format': Input should be a valid dictionary", "response_format"
        )
    kind = value.get("type")
    if kind not in _FORMAT_TYPES:
        allowed = ", ".join(repr(t) for t in _FORMAT_TYPES)
        return _reject(
            f"Invalid 'response_format.type': Input should be {allowed}", "response_format.type"
        )
    if kind == "text":
        return None
    if kind == "json_object":
        return Structured(
            {"type": "object", "properties": {"answer": {"type": "string"}}}, "response_format"
        )
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        return _reject(
            "Missing required parameter: 'response_format.json_schema'",
            "response_format.json_schema",
        )
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return _reject(
            "Missing required parameter: 'response_format.json_schema.name'",
            "response_format.json_schema.name",
        )
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        return _reject(
            "Invalid 'response_format.json_schema.schema': Input should be a JSON Schema object",
            "response_format.json_schema.schema",
        )
    return Structured(schema, "response_format")


def _texts(body: dict[str, Any]) -> list[str]:
    out = []
    for message in body.get("messages") or ():
        if not isinstance(message, dict) or message.get("role") == "assistant":
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(
                p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
    return out


def _looks_like_schema(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "object"
        and isinstance(value.get("properties"), dict)
    )


def _from_instructions(body: dict[str, Any]) -> Structured | None:
    """The first object JSON Schema written out in a system or user text."""
    for text in _texts(body):
        start, tried = text.find("{"), 0
        while start >= 0 and tried < _MAX_STARTS:
            tried += 1
            try:
                value, _ = _DECODER.raw_decode(text, start)
            except json.JSONDecodeError:
                start = text.find("{", start + 1)
                continue
            if _looks_like_schema(value):
                return Structured(value, "instructions")
            start = text.find("{", start + 1)
    return None


def structured_request(
    body: dict[str, Any], model: str, metadata: bool
) -> Structured | Rejection | None:
    """The schema a valid chat request asks for (None: a plain answer), or the 400 for a bad
    ``response_format`` or one the model does not take."""
    if body.get("response_format") is not None:
        if metadata and not takes_response_format(model):
            return _reject(f"Model '{model}' does not support 'response_format'", "response_format")
        asked = _from_format(body["response_format"])
        if asked is not None:
            return asked
    return _from_instructions(body)


def _note(request: ChatRequest) -> str:
    images = [image for message in request.messages for image in message.images]
    videos = [video for message in request.messages for video in message.videos]
    parts = [NOTE]
    parts.extend(describe_image(n, image) for n, image in enumerate(images, start=1))
    parts.extend(describe_video(n, video) for n, video in enumerate(videos, start=1))
    return " ".join(parts)


_WRONG = {str: 12345, int: "many", float: "lots", bool: "yes", list: "none", dict: "none"}


def _spoil(value: dict[str, Any], schema: dict[str, Any], kind: str) -> dict[str, Any]:
    out = dict(value)
    if not out:
        return out
    if kind == "missing_field":
        required = [r for r in schema.get("required") or () if r in out]
        del out[(required or list(out))[0]]
    else:  # wrong_type
        name = next(iter(out))
        out[name] = _WRONG.get(type(out[name]), "wrong")
    return out


def structured_reply(
    asked: Structured, request: ChatRequest, fault: Fault | None, choose: Chooser | None = None
) -> str:
    """The answer's text: the instance as JSON (each ``enum`` as ``choose`` picks it), or
    spoilt as ``fault`` says."""
    kind = fault.kind if fault is not None else ""
    if kind == "refusal":
        return REFUSAL
    value = instance_for(asked.schema, _note(request), choose)
    if kind in ("missing_field", "wrong_type") and isinstance(value, dict):
        value = _spoil(value, asked.schema, kind)
    text = json.dumps(value, ensure_ascii=False)
    if kind == "invalid_json":
        return text[:-1] + ","  # the object never closes
    return text
