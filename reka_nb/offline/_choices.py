"""Which value of an ``enum`` (a label) each offline model picks, so that models disagree and a
known truth makes them right or wrong. No I/O here.

With ``OfflineServer(varied_choices=True)`` a structured answer's ``enum`` fields (the label of
``labels=[...]``) are chosen by a rule any test can repeat (`offline_choice`):

1. The *reference* choice for a question is ``options[h % len(options)]``, where ``h`` is a
   SHA-256 of the question's image digests (`image_digest` of each image's bytes as sent) and
   its prompt (the last user text, stripped): `reference_choice`.
2. A model gives the reference when a second hash of (model, images, prompt), read as a
   fraction in [0, 1), is below its accuracy (`MODEL_ACCURACY`; a model not listed there has
   ``DEFAULT_ACCURACY``); otherwise it gives another option, also chosen by hash.

So ``reka-core`` gives the reference most often and ``reka-edge-2603`` least, the same
question always gets the same choice, and a truth built from `reference_choice` scores each
model exactly as the rule says. Without ``varied_choices`` every model takes the first
option, as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "DEFAULT_ACCURACY",
    "MODEL_ACCURACY",
    "choice_key",
    "offline_choice",
    "reference_choice",
]

#: How often each catalog model gives the reference choice (a fraction 0-1).
MODEL_ACCURACY: dict[str, float] = {
    "reka-core": 0.9,
    "reka-core-20240501": 0.85,
    "reka-flash": 0.75,
    "reka-edge": 0.6,
    "reka-edge-2603": 0.45,
    "reka-flash-3": 0.3,
}
#: The accuracy of a model the catalog does not list.
DEFAULT_ACCURACY = 0.5


def choice_key(images: Sequence[str], prompt: str | None) -> str:
    """What a question's choice depends on besides the model: its images' digests (in order)
    and its prompt, stripped."""
    return "\n".join([*images, (prompt or "").strip()])


def _number(*parts: str) -> int:
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def reference_choice(options: Sequence[Any], images: Sequence[str], prompt: str | None) -> Any:
    """The choice the rule calls right for this question (images as `image_digest` strings)."""
    if not options:
        raise ValueError("no options to choose from")
    return options[_number("reference", choice_key(images, prompt)) % len(options)]


def offline_choice(
    model: str, options: Sequence[Any], images: Sequence[str], prompt: str | None
) -> Any:
    """The option ``model`` picks for this question (images as `image_digest` strings)."""
    reference = reference_choice(options, images, prompt)
    if len(options) == 1:
        return reference
    key = choice_key(images, prompt)
    accuracy = MODEL_ACCURACY.get(model, DEFAULT_ACCURACY)
    if _number("model", model, key) / 2**64 < accuracy:
        return reference
    start = list(options).index(reference)
    step = 1 + _number("other", model, key) % (len(options) - 1)
    return options[(start + step) % len(options)]
