"""What the offline server's ``GET /v1/models`` says about each model.

The shape is the one in Reka's protocol notes (``input_modalities``, ``context_length``,
``max_output_length``, ``pricing`` in US dollars per token as decimal strings,
``supported_sampling_parameters``, and ``supported_parameters``, which lists
``response_format`` for the models that take structured output: all but ``reka-edge-2603``,
so that the fallback of a schema in the prompt is tested too). The values are EXAMPLES for
testing, not a quote:

- prices of ``reka-core``, ``reka-flash`` and ``reka-edge`` are Reka's published launch prices
  of April 2024 (per million tokens: $10 / $25, $0.80 / $2, $0.40 / $1, input / output);
  ``reka-edge-2603`` has the $0.10 / $0.10 listed for it in March 2026; ``reka-flash-3`` has
  no price here, so that answers without a known cost are tested too;
- context lengths and the longest answer are round example figures.

Prices change: real ones come from the real ``/v1/models``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CATALOG",
    "NO_RESPONSE_FORMAT",
    "PRICES_AS_OF",
    "SAMPLING_PARAMETERS",
    "model_entry",
    "takes_response_format",
]

PRICES_AS_OF = "2024-04 (reka-core, reka-flash, reka-edge); 2026-03 (reka-edge-2603)"
SAMPLING_PARAMETERS = ("max_tokens", "temperature", "top_p", "stop", "seed")
_ALL_MEDIA = ("text", "image", "video", "audio")
#: Models whose entry does not list ``response_format``: they answer 400 when sent one.
NO_RESPONSE_FORMAT = frozenset({"reka-edge-2603"})

CATALOG: dict[str, dict[str, Any]] = {
    "reka-core": {
        "name": "Reka Core",
        "input_modalities": _ALL_MEDIA,
        "context_length": 128_000,
        "max_output_length": 8_192,
        "pricing": {"prompt": "0.00001", "completion": "0.000025"},
    },
    "reka-core-20240501": {
        "name": "Reka Core (2024-05-01)",
        "input_modalities": _ALL_MEDIA,
        "context_length": 128_000,
        "max_output_length": 8_192,
        "pricing": {"prompt": "0.00001", "completion": "0.000025"},
    },
    "reka-flash": {
        "name": "Reka Flash",
        "input_modalities": _ALL_MEDIA,
        "context_length": 128_000,
        "max_output_length": 8_192,
        "pricing": {"prompt": "0.0000008", "completion": "0.000002"},
    },
    "reka-edge": {
        "name": "Reka Edge",
        "input_modalities": ("text", "image", "video"),
        "context_length": 64_000,
        "max_output_length": 4_096,
        "pricing": {"prompt": "0.0000004", "completion": "0.000001"},
    },
    "reka-edge-2603": {
        "name": "Reka Edge (2026-03)",
        "input_modalities": ("text", "image", "video"),
        "context_length": 16_000,
        "max_output_length": 4_096,
        "pricing": {"prompt": "0.0000001", "completion": "0.0000001"},
    },
    "reka-flash-3": {
        "name": "Reka Flash 3",
        "input_modalities": ("text",),
        "context_length": 32_000,
        "max_output_length": 8_192,
    },
}


def model_entry(model: str, created: int, *, metadata: bool = True) -> dict[str, Any]:
    """One entry of the list: the id fields, and the metadata when the server gives it."""
    entry: dict[str, Any] = {"id": model, "object": "model", "created": created, "owned_by": "reka"}
    known = CATALOG.get(model)
    if metadata and known is not None:
        entry.update(
            {
                "name": known["name"],
                "input_modalities": list(known["input_modalities"]),
                "output_modalities": ["text"],
                "context_length": known["context_length"],
                "max_output_length": known["max_output_length"],
                "supported_sampling_parameters": list(SAMPLING_PARAMETERS),
                "supported_parameters": _parameters(model),
            }
        )
        if "pricing" in known:
            entry["pricing"] = dict(known["pricing"])
    return entry


def input_modalities(model: str) -> tuple[str, ...] | None:
    """What the model takes, or None for a model the catalog does not describe."""
    known = CATALOG.get(model)
    return None if known is None else tuple(known["input_modalities"])


def _parameters(model: str) -> list[str]:
    extra = [] if model in NO_RESPONSE_FORMAT else ["response_format"]
    return ["model", "messages", "stream", *SAMPLING_PARAMETERS, *extra]


def takes_response_format(model: str) -> bool:
    """False for a model whose entry does not list ``response_format``."""
    return model not in NO_RESPONSE_FORMAT
