"""The checks of a run's options (concurrency, retries, rate), written once for every runner:
``describe_many``, the engine itself and Ray's ``describe_dataset``."""

from __future__ import annotations

from typing import Any

from .._exceptions import InvalidRequestError

__all__ = ["check_run_options"]

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
