"""Request validation for the offline server, as strict as the real API would be.

Shape and type problems (a missing field, a wrong type, a value out of range) are reported all
at once: on the native ``/chat`` endpoint as a FastAPI 422 ``{"detail": [...]}`` body, on the
OpenAI-compatible endpoint as a 400 ``validation_error`` envelope naming the first problem.
Then an unknown model is a 404, and problems with images and videos (a kind the model does not
take, too many, not decodable, a URL scheme other than https/data) are 400 envelopes on both
endpoints.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._catalog import input_modalities
from ._faults import error_envelope
from ._request import ChatRequest, ImageInfo, Message, Rejection, VideoInfo
from ._video import measure_video

__all__ = ["EDGE_2603_MAX_IMAGES", "InvalidJSON", "parse_body", "validate_chat"]

EDGE_2603_MAX_IMAGES = 3
"""``reka-edge-2603`` takes at most this many images per message."""

_ROLES = ("user", "assistant", "system")
_Loc = tuple[Any, ...]


@dataclass(frozen=True)
class InvalidJSON:
    """A request body that is empty or not JSON; ``error`` says why."""

    error: str
    position: int = 0


def parse_body(raw: bytes) -> Any:
    """The parsed JSON body, or an `InvalidJSON` describing why it is not JSON."""
    if not raw.strip():
        return InvalidJSON("empty body")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        return InvalidJSON(f"body is not UTF-8: {exc.reason}", exc.start)
    except json.JSONDecodeError as exc:
        return InvalidJSON(exc.msg, exc.pos)


@dataclass(frozen=True)
class _Problem:
    loc: _Loc
    msg: str
    type: str


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(value: Any, loc: _Loc, out: list[_Problem], *, gt: int | None = None) -> None:
    if not _is_int(value):
        out.append(_Problem(loc, "Input should be a valid integer", "int_type"))
    elif gt is not None and value <= gt:
        out.append(_Problem(loc, f"Input should be greater than {gt}", "greater_than"))


def _check_number(
    value: Any, loc: _Loc, out: list[_Problem], *, low: float, high: float | None, open_low: bool
) -> None:
    if not _is_number(value):
        out.append(_Problem(loc, "Input should be a valid number", "float_type"))
    elif open_low and value <= low:
        out.append(_Problem(loc, f"Input should be greater than {low:g}", "greater_than"))
    elif not open_low and value < low:
        msg = f"Input should be greater than or equal to {low:g}"
        out.append(_Problem(loc, msg, "greater_than_equal"))
    elif high is not None and value > high:
        msg = f"Input should be less than or equal to {high:g}"
        out.append(_Problem(loc, msg, "less_than_equal"))


def _check_bool(value: Any, loc: _Loc, out: list[_Problem]) -> None:
    if not isinstance(value, bool):
        out.append(_Problem(loc, "Input should be a valid boolean", "bool_type"))


def _check_stop(value: Any, loc: _Loc, out: list[_Problem]) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        out.append(_Problem(loc, "Input should be a string or a list of strings", "stop_type"))


def _check_part(part: Any, loc: _Loc, out: list[_Problem]) -> None:
    if not isinstance(part, dict):
        out.append(_Problem(loc, "Input should be a valid dictionary", "dict_type"))
        return
    kind = part.get("type")
    if "type" not in part:
        out.append(_Problem((*loc, "type"), "Field required", "missing"))
    elif kind == "text":
        if "text" not in part:
            out.append(_Problem((*loc, "text"), "Field required", "missing"))
        elif not isinstance(part["text"], str):
            out.append(_Problem((*loc, "text"), "Input should be a valid string", "string_type"))
    elif kind in ("image_url", "video_url"):
        image = part.get(kind)
        if kind not in part:
            out.append(_Problem((*loc, kind), "Field required", "missing"))
        elif isinstance(image, dict):
            if "url" not in image:
                out.append(_Problem((*loc, kind, "url"), "Field required", "missing"))
            elif not isinstance(image["url"], str):
                msg = "Input should be a valid string"
                out.append(_Problem((*loc, kind, "url"), msg, "string_type"))
        elif not isinstance(image, str):
            msg = "Input should be a URL string or an object with a 'url' string"
            out.append(_Problem((*loc, kind), msg, "image_url_type"))
    else:
        msg = "Input should be 'text', 'image_url' or 'video_url'"
        out.append(_Problem((*loc, "type"), msg, "literal_error"))


def _check_message(message: Any, loc: _Loc, out: list[_Problem]) -> None:
    if not isinstance(message, dict):
        out.append(_Problem(loc, "Input should be a valid dictionary", "dict_type"))
        return
    if "role" not in message:
        out.append(_Problem((*loc, "role"), "Field required", "missing"))
    elif message["role"] not in _ROLES:
        msg = "Input should be 'user', 'assistant' or 'system'"
        out.append(_Problem((*loc, "role"), msg, "literal_error"))
    content = message.get("content")
    if "content" not in message:
        out.append(_Problem((*loc, "content"), "Field required", "missing"))
    elif isinstance(content, list):
        for index, part in enumerate(content):
            _check_part(part, (*loc, "content", index), out)
    elif not isinstance(content, str):
        msg = "Input should be a string or a list of content parts"
        out.append(_Problem((*loc, "content"), msg, "content_type"))


def _shape_problems(body: Any, native: bool) -> list[_Problem]:
    out: list[_Problem] = []
    if isinstance(body, InvalidJSON):
        if body.error == "empty body":
            return [_Problem(("body",), "Field required", "missing")]
        return [_Problem(("body", body.position), "JSON decode error", "json_invalid")]
    if not isinstance(body, dict):
        msg = "Input should be a valid dictionary or object to extract fields from"
        return [_Problem(("body",), msg, "model_attributes_type")]
    if "model" not in body:
        out.append(_Problem(("body", "model"), "Field required", "missing"))
    elif not isinstance(body["model"], str):
        out.append(_Problem(("body", "model"), "Input should be a valid string", "string_type"))
    messages = body.get("messages")
    if "messages" not in body:
        out.append(_Problem(("body", "messages"), "Field required", "missing"))
    elif not isinstance(messages, list):
        out.append(_Problem(("body", "messages"), "Input should be a valid list", "list_type"))
    elif not messages:
        msg = "List should have at least 1 item after validation, not 0"
        out.append(_Problem(("body", "messages"), msg, "too_short"))
    else:
        for index, message in enumerate(messages):
            _check_message(message, ("body", "messages", index), out)

    def param(name: str) -> tuple[Any, _Loc] | None:
        value = body.get(name)
        return None if value is None else (value, ("body", name))

    if (p := param("stream")) is not None:
        _check_bool(*p, out)
    if (p := param("max_tokens")) is not None:
        _check_int(*p, out, gt=0)
    if (p := param("temperature")) is not None:
        _check_number(*p, out, low=0, high=2, open_low=False)
    if (p := param("top_p")) is not None:
        _check_number(*p, out, low=0, high=1, open_low=True)
    if (p := param("seed")) is not None:
        _check_int(*p, out)
    if (p := param("stop")) is not None:
        _check_stop(*p, out)
    if native:
        if (p := param("top_k")) is not None:
            _check_int(*p, out)
        for name in ("frequency_penalty", "presence_penalty"):
            if (p := param(name)) is not None:
                _check_number(*p, out, low=-2, high=2, open_low=False)
        if (p := param("use_search_engine")) is not None:
            _check_bool(*p, out)
    return out


def _path(loc: _Loc) -> str:
    text = ""
    for item in loc[1:]:
        text += f"[{item}]" if isinstance(item, int) else (f".{item}" if text else str(item))
    return text


def _shape_rejection(problems: list[_Problem], native: bool) -> Rejection:
    if native:
        detail = [{"loc": list(p.loc), "msg": p.msg, "type": p.type} for p in problems]
        return Rejection(422, {"detail": detail})
    first = problems[0]
    path = _path(first.loc)
    if first.type == "json_invalid":
        message = "The request body is not valid JSON"
    elif not path and first.type == "missing":
        message = "The request body is empty: send a JSON object"
    elif not path:
        message = "The request body must be a JSON object"
    elif first.type == "missing":
        message = f"Missing required parameter: '{path}'"
    else:
        message = f"Invalid '{path}': {first.msg}"
    return Rejection(400, error_envelope(400, message, path or None))


def _data_url_bytes(url: str, label: str, param: str) -> bytes | Rejection:
    """The bytes of a base64 ``data:`` URL, or the 400 for any other URL or a broken one."""
    if not url.startswith("data:"):
        message = f"{label} has an unsupported URL: send an https:// URL or a base64 data: URL"
        return Rejection(400, error_envelope(400, message, param))
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        message = f"{label} could not be decoded: a data: URL must be base64 (';base64,')"
        return Rejection(400, error_envelope(400, message, param))
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):  # Python's wording varies by version: not echoed
        message = f"{label} could not be decoded: invalid base64"
        return Rejection(400, error_envelope(400, message, param))
    return data


def _decode_image(url: str, label: str, param: str) -> ImageInfo | Rejection:
    if url.startswith("https://"):
        return ImageInfo(url=url)
    data = _data_url_bytes(url, label, param)
    if isinstance(data, Rejection):
        return data
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return ImageInfo(str(image.format), image.width, image.height, len(data))
    except UnidentifiedImageError:
        reason = "not an image format Pillow recognises"
    except Exception as exc:  # Pillow raises many types for broken files
        reason = f"{type(exc).__name__}: {exc}"
    return Rejection(400, error_envelope(400, f"{label} could not be decoded: {reason}", param))


def _image_url(part: dict[str, Any]) -> str:
    image = part[part["type"]]
    return str(image["url"] if isinstance(image, dict) else image)


def _decode_video(url: str, label: str, param: str) -> VideoInfo | Rejection:
    if url.startswith("https://"):
        return VideoInfo(url=url)
    data = _data_url_bytes(url, label, param)
    if isinstance(data, Rejection):
        return data
    info = measure_video(data)
    if isinstance(info, str):
        return Rejection(400, error_envelope(400, f"{label} could not be decoded: {info}", param))
    return info


_MODALITY = {"image_url": "image", "video_url": "video"}


def _refused_modality(model: str, messages: list[dict[str, Any]]) -> Rejection | None:
    """A 400 for a media part the model does not take (per the catalog; unknown: accepted)."""
    takes = input_modalities(model)
    if takes is None:
        return None
    for index, raw in enumerate(messages):
        content = raw["content"] if isinstance(raw["content"], list) else []
        for part_index, part in enumerate(content):
            kind = _MODALITY.get(part["type"])
            if kind is not None and kind not in takes:
                message = (
                    f"Model '{model}' does not accept {kind} input; it accepts: {', '.join(takes)}"
                )
                param = f"messages[{index}].content[{part_index}]"
                return Rejection(400, error_envelope(400, message, param))
    return None


def validate_chat(
    body: Any, *, native: bool, models: Sequence[str], max_images: int, modalities: bool = True
) -> ChatRequest | Rejection:
    """Check a chat request body; return the accepted request or the error to answer with."""
    problems = _shape_problems(body, native)
    if problems:
        return _shape_rejection(problems, native)
    model: str = body["model"]
    if model not in models:
        return Rejection(404, error_envelope(404, f"Model '{model}' not found", "model"))
    limit = EDGE_2603_MAX_IMAGES if model == "reka-edge-2603" else max_images
    raw_messages: list[dict[str, Any]] = body["messages"]
    refused = _refused_modality(model, raw_messages) if modalities else None
    if refused is not None:
        return refused
    for index, raw in enumerate(raw_messages):
        content = raw["content"] if isinstance(raw["content"], list) else []
        count = sum(1 for part in content if part["type"] == "image_url")
        if count > limit:
            message = (
                f"Too many images in message {index + 1}: {count} given, "
                f"model '{model}' accepts at most {limit}"
            )
            return Rejection(400, error_envelope(400, message, f"messages[{index}].content"))
    messages = []
    for index, raw in enumerate(raw_messages):
        content = raw["content"]
        if isinstance(content, str):
            messages.append(Message(raw["role"], (content,)))
            continue
        texts = tuple(p["text"] for p in content if p["type"] == "text")
        images: list[ImageInfo] = []
        videos: list[VideoInfo] = []
        for part_index, part in enumerate(content):
            if part["type"] == "video_url":
                label = f"Video {len(videos) + 1} of message {index + 1}"
                param = f"messages[{index}].content[{part_index}].video_url"
                video = _decode_video(_image_url(part), label, param)
                if isinstance(video, Rejection):
                    return video
                videos.append(video)
            if part["type"] != "image_url":
                continue
            label = f"Image {len(images) + 1} of message {index + 1}"
            param = f"messages[{index}].content[{part_index}].image_url"
            info = _decode_image(_image_url(part), label, param)
            if isinstance(info, Rejection):
                return info
            images.append(info)
        messages.append(Message(raw["role"], texts, tuple(images), tuple(videos)))
    stop = body.get("stop")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        stream=bool(body.get("stream") or False),
        max_tokens=body.get("max_tokens"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop or ()),
    )
