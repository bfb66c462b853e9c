"""Request bodies for both chat endpoints, checked before anything is sent (no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from ..images import PreparedImage, PreparedVideo

__all__ = ["PARAMS", "Api", "build_body", "check_params", "user_message"]

#: Which of Reka's two chat endpoints a request is for.
Api = Literal["openai", "native"]

#: Generation parameters both endpoints take, with the check each value must pass.
PARAMS = ("max_tokens", "temperature", "top_p", "stop", "seed")
_NATIVE_ONLY = ("top_k", "frequency_penalty", "presence_penalty", "use_search_engine")
_ROLES = ("system", "user", "assistant")


def check_params(
    params: Mapping[str, Any], api: Api = "openai", options: Sequence[str] = ()
) -> dict[str, Any]:
    """Validate generation parameters; drop the ones set to None.

    ``options``: the caller's own keyword arguments. A name that is neither but nearly spells
    one of them or a parameter (``rpm`` for ``requests_per_minute``) gets the suggestion and
    both lists; any other unknown name the same words from every caller.
    """
    allowed = PARAMS + (_NATIVE_ONLY if api == "native" else ())
    out: dict[str, Any] = {}
    for name, value in params.items():
        if name not in allowed:
            hint = f" ({name} is native-only: pass api='native')" if name in _NATIVE_ONLY else ""
            meant = _near_miss(name, [*options, *allowed]) if options and not hint else None
            if meant is None:
                raise InvalidRequestError(
                    f"unknown parameter {name!r}{hint}; expected one of: {', '.join(allowed)}"
                )
            raise InvalidRequestError(
                f"unknown parameter {name!r} (did you mean {meant}?); expected one of the "
                f"options {', '.join(options)}, or the model parameters {', '.join(allowed)}"
            )
        if value is None:
            continue
        out[name] = _check_param(name, value)
    return out


def _near_miss(name: str, names: Sequence[str]) -> str | None:
    """The name ``name`` abbreviates (``rpm``: requests_per_minute) or nearly spells."""
    import difflib  # only for a mistake: not with import reka_nb

    for candidate in names:
        if "_" in candidate and name == "".join(part[:1] for part in candidate.split("_")):
            return candidate
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def _check_param(name: str, value: Any) -> Any:
    if name in ("max_tokens", "top_k"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidRequestError(f"{name} must be a positive whole number, not {value!r}")
    elif name == "seed":
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequestError(f"seed must be a whole number, not {value!r}")
    elif name == "temperature":
        _check_number(name, value, 0.0, 2.0, low_open=False)
    elif name == "top_p":
        _check_number(name, value, 0.0, 1.0, low_open=True)
    elif name in ("frequency_penalty", "presence_penalty"):
        _check_number(name, value, -2.0, 2.0, low_open=False)
    elif name == "use_search_engine":
        if not isinstance(value, bool):
            raise InvalidRequestError(f"use_search_engine must be True or False, not {value!r}")
    elif name == "stop":
        stops = [value] if isinstance(value, str) else value
        if (
            not isinstance(stops, (list, tuple))
            or not stops
            or not all(isinstance(s, str) and s for s in stops)
        ):
            raise InvalidRequestError(
                f"stop must be a non-empty string or a list of them, not {value!r}"
            )
        return value if isinstance(value, str) else list(stops)
    return value


def _check_number(name: str, value: Any, low: float, high: float, *, low_open: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise InvalidRequestError(
            f"{name} must be a number in {bracket}{low}, {high}], not {value!r}"
        )


def user_message(
    prompt: str, images: Sequence[PreparedImage | PreparedVideo], api: Api = "openai"
) -> dict:
    """One user turn: the images and videos first (Reka's models work best that way), then
    the text."""
    if not isinstance(prompt, str):
        raise InvalidRequestError(f"the prompt must be a string, not {type(prompt).__name__}")
    if not prompt.strip() and not images:
        raise InvalidRequestError("the prompt is empty and there is no image: nothing to ask")
    content: list[dict] = [media_part(image.kind, image.to_url(), api) for image in images]
    if prompt.strip():
        content.append({"type": "text", "text": prompt})
    return {"role": "user", "content": content}


def image_part(url: str, api: Api) -> dict:
    """An image content part in the endpoint's shape (native takes the URL as a plain string)."""
    return media_part("image", url, api)


def media_part(kind: str, url: str, api: Api) -> dict:
    """An ``image_url`` or ``video_url`` part; native takes the URL as a plain string."""
    name = f"{kind}_url"
    if api == "native":
        return {"type": name, name: url}
    return {"type": name, name: {"url": url}}


def build_body(
    messages: Iterable[Mapping[str, Any]],
    *,
    model: str,
    stream: bool,
    api: Api = "openai",
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON body of a chat request; messages are checked and put in the endpoint's shape.
    ``params`` may hold a ``response_format`` (a structured question's), sent as it is."""
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequestError(f"the model must be a non-empty string, not {model!r}")
    shaped = [_shape_message(m, i, api) for i, m in enumerate(messages, 1)]
    if not shaped:
        raise InvalidRequestError("messages is empty: there is nothing to ask")
    body: dict[str, Any] = {"model": model, "messages": shaped, "stream": bool(stream)}
    rest = dict(params or {})
    response_format = rest.pop("response_format", None)  # a structured question's, not a user's
    body.update(check_params(rest, api))
    if response_format is not None:
        if not isinstance(response_format, Mapping):
            raise InvalidRequestError(
                f"response_format must be a dict, not {type(response_format).__name__}"
            )
        body["response_format"] = dict(response_format)
    return body


def _shape_message(message: Mapping[str, Any], index: int, api: Api) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise InvalidRequestError(f"message {index} must be a dict, not {type(message).__name__}")
    role = message.get("role")
    if role not in _ROLES:
        raise InvalidRequestError(
            f"message {index} has role {role!r}; expected one of: {', '.join(_ROLES)}"
        )
    content = message.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, (list, tuple)) or not content:
        raise InvalidRequestError(
            f"message {index} content must be a string or a non-empty list of parts"
        )
    return {"role": role, "content": [_shape_part(p, index, api) for p in content]}


def _shape_part(part: Any, index: int, api: Api) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind in ("image_url", "video_url"):
        url = part.get(kind)
        if isinstance(url, Mapping):
            url = url.get("url")
        if isinstance(url, str) and url:
            return media_part(kind[:-4], url, api)
    raise InvalidRequestError(
        f"message {index} has a content part that is neither {{'type': 'text', 'text': ...}} "
        f"nor a media part ({{'type': 'image_url', 'image_url': ...}} or "
        f"{{'type': 'video_url', 'video_url': ...}})"
    )
