"""The objects the OpenAI-style clients return: small dataclasses shaped like OpenAI's.

Attribute paths match the ``openai`` package (``completion.choices[0].message.content``,
``chunk.choices[0].delta.content``, ``usage.prompt_tokens``...), so code written for it reads
them unchanged. They are plain dataclasses, not pydantic models; ``model_dump()``,
``to_dict()`` and ``to_json()`` give the same dict/JSON as OpenAI's objects would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..protocol.stream import Usage

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatCompletionMessage",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionUsage",
    "Model",
    "ModelList",
    "ParsedChatCompletionMessage",
]


class _Record:
    """Dict and JSON views shared by every compat object."""

    def model_dump(self) -> dict[str, Any]:
        """The object as a dict of plain values (nested objects become dicts, a structured
        answer's pydantic instance too)."""
        return asdict(self, dict_factory=_plain_dict)  # type: ignore[call-overload,no-any-return]

    def to_dict(self) -> dict[str, Any]:
        """The same as ``model_dump()``."""
        return self.model_dump()

    def to_json(self, *, indent: int | None = 2) -> str:
        """The object as JSON text."""
        return json.dumps(self.model_dump(), indent=indent, ensure_ascii=False)


def _plain_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A dataclass's fields as a dict, a pydantic instance among them as its JSON values."""
    return {k: v.model_dump(mode="json") if hasattr(v, "model_dump") else v for k, v in pairs}


@dataclass
class CompletionUsage(_Record):
    """Token counts; a count the server did not report is None."""

    prompt_tokens: int | None
    completion_tokens: int | None
    total_tokens: int | None

    @classmethod
    def from_usage(cls, usage: Usage | None) -> CompletionUsage | None:
        """OpenAI's names for reka_nb's ``Usage``; None when the server sent no usage."""
        if usage is None:
            return None
        return cls(usage.input_tokens, usage.output_tokens, usage.total_tokens)


@dataclass
class ChoiceDelta(_Record):
    """The new text of one streamed chunk (None on the final chunk)."""

    content: str | None = None
    role: str | None = None


@dataclass
class ChunkChoice(_Record):
    """``chunk.choices[0]``: the delta, and the finish reason on the final chunk."""

    delta: ChoiceDelta
    finish_reason: str | None = None
    index: int = 0


@dataclass
class ChatCompletionChunk(_Record):
    """One streamed chunk. The final one has no content, a finish reason and the usage."""

    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
    object: str = "chat.completion.chunk"


@dataclass
class ChatCompletionMessage(_Record):
    """The answer of a non-streamed call."""

    content: str
    role: str = "assistant"


@dataclass
class ParsedChatCompletionMessage(ChatCompletionMessage):
    """The answer of a structured call (``schema=``, ``labels=``, a ``json_schema``
    ``response_format``): ``content`` is the JSON the model wrote, ``parsed`` its checked
    fields (an instance of a pydantic model given as the schema, else a dict), as OpenAI's
    ``parse()`` gives them."""

    parsed: Any = None


@dataclass
class Choice(_Record):
    """``completion.choices[0]``: the message and why generation stopped."""

    message: ChatCompletionMessage
    finish_reason: str | None
    index: int = 0


@dataclass
class ChatCompletion(_Record):
    """A whole answer (``stream=False``)."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage | None = None
    object: str = "chat.completion"


@dataclass
class Model(_Record):
    """One entry of ``client.models.list()``."""

    id: str
    object: str = "model"


@dataclass
class ModelList(_Record):
    """``client.models.list()``: iterate it, or read ``.data``."""

    data: list[Model] = field(default_factory=list)
    object: str = "list"

    def __iter__(self) -> Iterator[Model]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> Model:
        return self.data[index]
