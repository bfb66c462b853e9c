"""Test support: the offline server (``reka_nb.offline``) and notebook kernels pointed at it.

    >>> from reka_nb.testing import OfflineServer, Fault
    >>> with OfflineServer() as server:            # doctest: +SKIP
    ...     server.queue(Fault.status(503), Fault.ok())

``python -m reka_nb.testing`` runs the server from a shell, as ``python -m reka_nb.offline`` does.
"""

from __future__ import annotations

from ..offline import (
    DEFAULT_ACCURACY,
    DEFAULT_MODELS,
    INSUFFICIENT_BALANCE,
    MODEL_ACCURACY,
    TEST_API_KEY,
    Fault,
    OfflineServer,
    RecordedRequest,
    image_digest,
    offline_choice,
    reference_choice,
)
from ._kernel import kernel_env, run_notebook

__all__ = [
    "DEFAULT_ACCURACY",
    "DEFAULT_MODELS",
    "INSUFFICIENT_BALANCE",
    "MODEL_ACCURACY",
    "TEST_API_KEY",
    "Fault",
    "OfflineServer",
    "RecordedRequest",
    "image_digest",
    "kernel_env",
    "offline_choice",
    "reference_choice",
    "run_notebook",
]
