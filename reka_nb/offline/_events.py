"""Response bodies and stream events in the two wire shapes. Pure: no I/O.

OpenAI-compatible stream: a role chunk, one chunk per token (a true increment), a final chunk
with ``finish_reason`` and ``usage``, then ``[DONE]``. Native stream: one event per token, each a
snapshot of the whole text so far with running ``usage``; the last one carries the finish
reason, and nothing follows it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ._answer import Completion

__all__ = [
    "MALFORMED_NATIVE",
    "MALFORMED_OPENAI",
    "dumps",
    "native_completion",
    "native_events",
    "openai_completion",
    "openai_events",
]

MALFORMED_OPENAI = '{"choices": ['
MALFORMED_NATIVE = '{"responses": ['


def dumps(payload: Any) -> str:
    """Compact JSON, non-ASCII kept as is (the bytes are UTF-8 on the wire)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def _openai_usage(completion: Completion, sent: int) -> dict[str, int]:
    prompt = completion.prompt_tokens
    return {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}


def _native_usage(completion: Completion, sent: int) -> dict[str, int]:
    return {"input_tokens": completion.prompt_tokens, "output_tokens": sent}


def openai_completion(
    *, response_id: str, created: int, model: str, completion: Completion
) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` body."""
    return {
        "id": response_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": completion.text},
                "finish_reason": completion.finish_reason,
            }
        ],
        "usage": _openai_usage(completion, len(completion.tokens)),
    }


def native_completion(*, response_id: str, model: str, completion: Completion) -> dict[str, Any]:
    """The non-streaming native body."""
    return {
        "id": response_id,
        "model": model,
        "responses": [
            {
                "finish_reason": completion.finish_reason,
                "message": {"role": "assistant", "content": completion.text},
            }
        ],
        "usage": _native_usage(completion, len(completion.tokens)),
    }


def openai_events(
    *, response_id: str, created: int, model: str, completion: Completion, finished: bool = True
) -> Iterator[str]:
    """The ``data:`` payloads of an OpenAI-compatible stream.

    With ``finished`` False the final chunk and ``[DONE]`` are left out.
    """

    def chunk(delta: dict[str, Any], finish: str | None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        base = {"id": response_id, "object": "chat.completion.chunk", "created": created}
        return dumps({**base, "model": model, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""}, None)
    for token in completion.tokens:
        yield chunk({"content": token}, None)
    if finished:
        usage = _openai_usage(completion, len(completion.tokens))
        yield chunk({}, completion.finish_reason, usage=usage)
        yield "[DONE]"


def native_events(
    *, response_id: str, model: str, completion: Completion, finished: bool = True
) -> Iterator[str]:
    """The ``data:`` payloads of a native stream: one snapshot per token (at least one).

    With ``finished`` False no event carries a finish reason.
    """
    tokens = completion.tokens or ("",)
    text = ""
    for sent, token in enumerate(tokens, start=1):
        text += token
        last = sent == len(tokens)
        finish = completion.finish_reason if finished and last else None
        yield dumps(
            {
                "id": response_id,
                "model": model,
                "responses": [
                    {"chunk": {"role": "assistant", "content": text}, "finish_reason": finish}
                ],
                "usage": _native_usage(completion, min(sent, len(completion.tokens))),
            }
        )
