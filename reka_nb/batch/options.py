"""Options, written once: the checks of a run's options (concurrency, retries, rate) for every
runner (``describe_many``, the engine itself, Ray's ``describe_dataset``), and what the CLI and
the magics share (generation parameters from their options, "did you mean" for a typo)."""

from __future__ import annotations

import difflib
from typing import Any

from .._exceptions import InvalidRequestError
from ..protocol.messages import PARAMS

__all__ = ["check_run_options", "closest", "params_from"]

_LOWEST = {"concurrency": 1, "in_flight": 1, "batch_size": 1, "retries": 0}


def check_run_options(*, requests_per_minute: Any = None, **whole: Any) -> None:
    """Refuse, before anything is read or sent, a whole-number option below its lowest
    (``concurrency``, ``in_flight``, ``batch_size`` >= 1; ``retries`` >= 0) or a rate that is
    not a number above 0 (``requests_per_minute``; None: no limit)."""
    for name, value in whole.items():
        low = _LOWEST[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidRequestError(f"{name} must be a whole number >= {low}, not {value!r}")
    if requests_per_minute is not None and (
        isinstance(requests_per_minute, bool)
        or not isinstance(requests_per_minute, (int, float))
        or not requests_per_minute > 0
    ):
        raise InvalidRequestError(
            f"requests_per_minute must be a number above 0 (or None), not {requests_per_minute!r}"
        )


def closest(word: str, options: list[str]) -> str | None:
    """The one option ``word`` begins, else one spelled nearly like it (a typo), else None:
    the "did you mean" of the CLI and the magics."""
    longer = [option for option in options if option.startswith(word)]
    if len(longer) == 1:
        return longer[0]
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.8)
    return close[0] if close else None


def params_from(options: object) -> dict[str, Any]:
    """The generation parameters set among parsed command-line options (``--max-tokens``,
    ``-t``, ``--top-p``, ``--seed``, ``--stop``), by their parameter names."""
    return {name: getattr(options, name, None) for name in PARAMS}
