"""reka_nb: ask Reka's vision models about images from Jupyter.

``describe(image)`` streams an answer into the notebook (images, and short MP4/MOV/WebM
videos), ``%load_ext reka_nb`` adds the ``%reka`` / ``%%reka`` magics, and ``uploader()`` shows
an upload-and-describe panel; all of them use one client. ``models()`` tells what each model
takes and costs, ``usage()`` what this session's answers cost. IPython, ipywidgets and video
decoders are imported only when those parts are used, and Pillow, the asyncio client and the
OpenAI-style classes when first used (``import reka_nb`` stays cheap: see
benchmarks/bench_import.py).
"""

from __future__ import annotations

import importlib
import typing

from ._exceptions import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    CacheWarning,
    ClientClosedError,
    ConfigurationError,
    ImageError,
    InvalidRequestError,
    LongVideoWarning,
    MissingAPIKeyError,
    ModelInfoWarning,
    NotFoundError,
    RateLimitError,
    RekaError,
    SchemaError,
    ServerError,
    StreamInterrupted,
    VideoError,
)
from ._version import __version__
from .answer import Description
from .auto import RekaClient, adescribe, describe
from .client.describe import models, usage
from .client.offline_mode import stop_offline_server, use_offline_server
from .client.sync import ChatStream
from .protocol.stream import Completion, Usage

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncRekaClient",
    "AuthenticationError",
    "BadRequestError",
    "CacheWarning",
    "ChatStream",
    "Client",
    "ClientClosedError",
    "Comparison",
    "Completion",
    "ConfigurationError",
    "Description",
    "ImageError",
    "InvalidRequestError",
    "LongVideoWarning",
    "MissingAPIKeyError",
    "Model",
    "ModelInfoWarning",
    "ModelList",
    "NotFoundError",
    "PreparedImage",
    "PreparedVideo",
    "RateLimitError",
    "Reka",
    "RekaClient",
    "RekaError",
    "Result",
    "Results",
    "SchemaError",
    "Score",
    "ServerError",
    "StreamInterrupted",
    "Uploader",
    "Usage",
    "UsageTotals",
    "VideoError",
    "__version__",
    "acompare",
    "adescribe",
    "adescribe_many",
    "cache",
    "compare",
    "describe",
    "describe_many",
    "load_ipython_extension",
    "models",
    "prepare_image",
    "prepare_images",
    "stop_offline_server",
    "uploader",
    "usage",
    "use_offline_server",
]


if typing.TYPE_CHECKING:
    from . import cache
    from .auto import AsyncRekaClient, acompare, adescribe_many, compare, describe_many
    from .batch import Comparison, Result, Results, Score
    from .client.aio import AsyncChatStream
    from .compat import AsyncClient, Client, Reka
    from .images import PreparedImage, PreparedVideo, prepare_image, prepare_images
    from .notebook.uploader import Uploader, uploader
    from .protocol.costs import UsageTotals
    from .protocol.models import Model, ModelList

#: Public names imported on first use, and the module that holds each.
_LAZY = {
    "AsyncChatStream": ".client.aio",  # asyncio
    "AsyncRekaClient": ".auto",
    "AsyncClient": ".compat",
    "Client": ".compat",
    "Reka": ".compat",
    "PreparedImage": ".images",  # Pillow
    "prepare_image": ".images",
    "prepare_images": ".images",
    "PreparedVideo": ".images",
    "Model": ".protocol.models",
    "ModelList": ".protocol.models",
    "UsageTotals": ".protocol.costs",
    "Uploader": ".notebook.uploader",  # ipywidgets
    "uploader": ".notebook.uploader",
    "Result": ".batch",  # asyncio, sqlite3
    "Results": ".batch",
    "Comparison": ".batch",
    "Score": ".batch",
    "compare": ".auto",
    "acompare": ".auto",
    "adescribe_many": ".auto",
    "describe_many": ".auto",
}


def __getattr__(name: str) -> object:
    """Import a part of the public API on first use (see ``_LAZY``); ``last_results`` is the
    Results of the latest describe_many run (kept after an interrupt too)."""
    if name == "last_results":
        from .batch import last_results

        return last_results()
    if name == "cache":  # the answer cache's module (sqlite3): imported on first use
        return importlib.import_module(".cache", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reka_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names with the lazy ones (``describe_many``, ``uploader``...), which
    exist before their first use as far as ``dir()`` and tab completion are concerned."""
    return sorted({*globals(), *_LAZY, "cache", "last_results"})


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext reka_nb``: register the %reka and %%reka magics."""
    from .auto import load_ipython_extension as load

    load(ipython)
