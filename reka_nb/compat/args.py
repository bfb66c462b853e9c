"""Checking and shaping create()'s arguments for the OpenAI-style clients (no I/O).

OpenAI arguments that change nothing here are accepted and ignored; values Reka cannot honour
raise ``InvalidRequestError`` saying why; unknown names raise ``TypeError`` like any Python
call. ``image=`` / ``images=`` become image parts at the start of the last user message.
``schema=``/``labels=`` (or a ``json_schema`` ``response_format``) ask for a structured answer,
checked as describe() checks them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._exceptions import ConfigurationError, InvalidRequestError
from ..client.structured import SCHEMA_OPTIONS, schema_of
from ..images import prepare_images
from ..protocol.messages import image_part
from .structured import StructuredCall

__all__ = ["Reka", "check_options", "check_provider", "prepare_call"]


class Reka:
    """The provider in ``Client(provider=Reka)``: the only one reka_nb speaks to.

    Point ``base_url`` at any OpenAI-compatible server to use another model; the provider
    stays ``Reka``.
    """

    def __init__(self) -> None:
        raise TypeError("Reka is a provider name: pass the class itself, Client(provider=Reka)")


_CLIENT_OPTIONS = ("model", "api", "connect_timeout", "read_timeout", "max_retries", "backoff")


def check_provider(provider: object) -> None:
    """Accept ``Reka`` (or the string "reka"); anything else is a ConfigurationError."""
    if provider is Reka or (isinstance(provider, str) and provider.lower() == "reka"):
        return
    name = getattr(provider, "__name__", None) or repr(provider)
    raise ConfigurationError(
        f"provider={name} is not available: reka_nb only speaks to Reka, so use "
        "provider=reka_nb.Reka (for another OpenAI-compatible server, keep provider=Reka "
        "and pass base_url=...)"
    )


def check_options(options: Mapping[str, Any]) -> None:
    """Client keyword arguments beyond api_key/base_url must be RekaClient options."""
    for name in options:
        if name not in _CLIENT_OPTIONS:
            hint = _suggest(name, _CLIENT_OPTIONS)
            raise TypeError(
                f"Client() got an unexpected keyword argument {name!r}{hint}; "
                f"it takes provider, api_key, base_url, {', '.join(_CLIENT_OPTIONS)}"
            )


# -- create() arguments ------------------------------------------------------------------------

_FUNCTIONS = "function calling is not supported: describe the task in the prompt instead"
_LOGPROBS = "log probabilities are not available"

#: OpenAI arguments accepted when their value changes nothing here, and why other values fail.
_HARMLESS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "n": (
        lambda v: v is None or (v == 1 and not isinstance(v, bool)),
        "Reka gives one answer per request: call create() once for each answer",
    ),
    "stream_options": (
        lambda v: v is None or isinstance(v, Mapping),
        "stream_options must be a dict such as {'include_usage': True} (the final chunk "
        "carries the usage whenever the server reports it)",
    ),
    "user": (lambda v: v is None or isinstance(v, str), "user must be a string"),
    "store": (lambda v: v in (None, False), "stored completions are an OpenAI service"),
    "metadata": (lambda v: not v, "metadata belongs to OpenAI's stored completions"),
    "service_tier": (lambda v: v in (None, "auto", "default"), "service tiers are OpenAI's"),
    "logprobs": (lambda v: v in (None, False), _LOGPROBS),
    "top_logprobs": (lambda v: v in (None, 0), _LOGPROBS),
    "logit_bias": (lambda v: not v, "logit_bias is not supported"),
    "tools": (lambda v: not v, _FUNCTIONS),
    "tool_choice": (lambda v: v in (None, "none", "auto"), _FUNCTIONS),
    "parallel_tool_calls": (lambda v: v is None or isinstance(v, bool), _FUNCTIONS),
    "functions": (lambda v: not v, _FUNCTIONS),
    "function_call": (lambda v: v in (None, "none", "auto"), _FUNCTIONS),
    "response_format": (
        lambda v: v is None or v == {"type": "text"},
        "structured output is not supported without a schema: pass schema= (fields, a model "
        "class or a JSON Schema), labels=, or response_format={'type': 'json_schema', "
        "'json_schema': {'name': ..., 'schema': {...}}}",
    ),
    "modalities": (
        lambda v: v is None or (isinstance(v, (list, tuple)) and list(v) == ["text"]),
        "answers are text only",
    ),
    "timeout": (
        lambda v: v is None,
        "set connect_timeout= and read_timeout= on the Client instead",
    ),
    "extra_headers": (lambda v: not v, "extra headers are not sent"),
    "extra_query": (lambda v: not v, "extra query parameters are not sent"),
    "provider": (
        lambda v: v is Reka or (isinstance(v, str) and v.lower() == "reka"),
        "the only provider is reka_nb.Reka",
    ),
}
#: Passed on to the request as they are; the client checks them (some are native-only).
_PASSED_ON = ("top_k", "use_search_engine")
_PENALTIES = ("presence_penalty", "frequency_penalty")
_OTHER = ("max_completion_tokens", "extra_body")
_EXPLICIT = (
    "model",
    "messages",
    "stream",
    "image",
    "images",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
)
_KNOWN = (*_EXPLICIT, *_PASSED_ON, *_PENALTIES, *_OTHER, *_HARMLESS, *SCHEMA_OPTIONS)


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _clip(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _params(explicit: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Generation parameters for the client from create()'s keyword arguments."""
    params = {name: value for name, value in explicit.items() if value is not None}
    for name, value in extra.items():
        if name in _HARMLESS:
            accepts, reason = _HARMLESS[name]
            if not accepts(value):
                raise InvalidRequestError(f"{name}={_clip(value)} is not supported: {reason}")
        elif name in _PASSED_ON or (name in _PENALTIES and value not in (None, 0)):
            params[name] = value
        elif name == "max_completion_tokens" and value is not None:
            if params.get("max_tokens", value) != value:
                raise InvalidRequestError("max_tokens and max_completion_tokens disagree")
            params["max_tokens"] = value
        elif name == "extra_body" and value:
            if not isinstance(value, Mapping):
                raise InvalidRequestError(f"extra_body must be a dict, not {_clip(value)}")
            for key, item in value.items():
                if key in ("model", "messages", "stream"):
                    raise InvalidRequestError(
                        f"extra_body cannot set {key!r}: pass {key}= to create() itself"
                    )
                if key in params and params[key] != item:
                    raise InvalidRequestError(f"{key} is given twice, with different values")
                params[key] = item
        elif name not in _KNOWN:
            raise TypeError(
                f"create() got an unexpected keyword argument {name!r}{_suggest(name, _KNOWN)}"
            )
    return params


def _as_message(message: Any, index: int) -> dict[str, Any]:
    """A message as a dict; an answer object (``.role``, ``.content``) is taken as a turn."""
    if isinstance(message, Mapping):
        out = dict(message)
    elif hasattr(message, "role") and hasattr(message, "content"):
        out = {"role": message.role, "content": message.content}
    else:
        raise InvalidRequestError(
            f"message {index} must be a dict like {{'role': 'user', 'content': '...'}}, "
            f"not {type(message).__name__}"
        )
    if out.get("role") == "developer":  # OpenAI's newer name for the system role
        out["role"] = "system"
    return out


def _messages(
    messages: Any, image: Any, images: Any, limits: tuple[int, int] | None = None
) -> list[dict[str, Any]]:
    """The messages to send: copies, with the images first in the last user message;
    ``limits`` (images per message, bytes per request) are checked before any is read."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Iterable):
        raise InvalidRequestError(
            "messages must be a list of dicts like [{'role': 'user', 'content': '...'}]"
        )
    out = [_as_message(m, i) for i, m in enumerate(messages, 1)]
    given: list[Any] = []
    for obj in (image, images):
        if obj is not None:
            given += obj if isinstance(obj, (list, tuple)) else [obj]
    max_images, max_request_bytes = limits or (None, None)
    prepared = (
        prepare_images(given, max_images=max_images, max_request_bytes=max_request_bytes)
        if given
        else []
    )
    if not prepared:
        return out
    users = [i for i, m in enumerate(out) if m.get("role") == "user"]
    if not users:
        raise InvalidRequestError("image= and images= need a user message to attach the images to")
    last = out[users[-1]]
    content = last.get("content")
    parts: list[Any] = [image_part(p.to_url(), "openai") for p in prepared]
    if isinstance(content, str):
        parts += [{"type": "text", "text": content}] if content else []
    elif isinstance(content, (list, tuple)):
        parts += list(content)
    elif content is not None:
        raise InvalidRequestError(
            f"message {users[-1] + 1} content must be a string or a list of parts, "
            f"not {type(content).__name__}"
        )
    last["content"] = parts
    return out


def _structured(extra: dict[str, Any], stream: bool) -> StructuredCall | None:
    """Take a structured answer's options out of ``extra``: ``schema=``, ``labels=``,
    ``multi_label=``, ``schema_retries=`` (checked as describe() checks them: an unusable
    schema is a ConfigurationError) or OpenAI's ``response_format`` of type ``json_schema``
    (its ``schema``); None when the call asks for none."""
    given = extra.get("response_format")
    if isinstance(given, Mapping) and given.get("type") == "json_schema":
        del extra["response_format"]
        spec = given.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise InvalidRequestError(
                "response_format of type 'json_schema' needs {'json_schema': {'name': ..., "
                "'schema': {...}}}, the JSON Schema as a dict"
            )
        if extra.get("schema") is not None or extra.get("labels") is not None:
            raise InvalidRequestError(
                "response_format and schema= (or labels=) both ask for a structured answer: "
                "give one"
            )
        extra["schema"] = schema
    found, retries = schema_of(extra)
    if found is None:
        return None
    if stream:
        raise InvalidRequestError(
            "stream=True with a schema is not supported: a structured answer is checked (and "
            "asked again when it does not fit) whole, so call create() without stream=True"
        )
    return StructuredCall(found, retries)


def prepare_call(
    messages: Any,
    stream: Any,
    image: Any,
    images: Any,
    explicit: dict,
    extra: dict,
    limits: tuple[int, int] | None = None,
) -> tuple[list[dict[str, Any]], bool, dict[str, Any], StructuredCall | None]:
    """(messages, stream, params, the structured answer's schema or None) for the client, or
    an error before anything is sent."""
    if stream not in (None, True, False):
        raise InvalidRequestError(f"stream must be True or False, not {_clip(stream)}")
    structured = _structured(extra, bool(stream))
    params = _params(explicit, extra)
    return _messages(messages, image, images, limits), bool(stream), params, structured
