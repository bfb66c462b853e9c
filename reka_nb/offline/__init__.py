"""The offline Reka-protocol server: a stand-in for Reka's API on 127.0.0.1, for ``--offline``,
``use_offline_server()``, tests, notebook runs and benchmarks. It imports nothing else from reka_nb.

    >>> from reka_nb.offline import OfflineServer, Fault
    >>> with OfflineServer() as server:            # doctest: +SKIP
    ...     server.queue(Fault.status(503), Fault.ok())
    ...     ...                                    # point a client at server.base_url

Run it from a shell with ``python -m reka_nb.offline`` (or ``python -m reka_nb.testing``).
The answers are deterministic and say that no model ran; they report what the server measured
from the request (image formats, pixel sizes, byte counts; a video's container, duration, size
and bytes; the prompt), so tests can assert exact text. ``GET /v1/models`` describes each model
with example prices (see ``_catalog``), or lists ids only with
``OfflineServer(model_metadata=False)``. A request with a JSON Schema (``response_format``, or
the schema written in its instructions) gets a deterministic instance of it as JSON
(``_structured``); ``Fault.invalid_json()`` and its siblings spoil one such answer for repair
tests.
"""

from __future__ import annotations

from ._choices import DEFAULT_ACCURACY, MODEL_ACCURACY, offline_choice, reference_choice
from ._faults import Fault
from ._limits import INSUFFICIENT_BALANCE, image_digest
from ._server import DEFAULT_MODELS, TEST_API_KEY, OfflineServer, RecordedRequest

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
    "offline_choice",
    "reference_choice",
]
