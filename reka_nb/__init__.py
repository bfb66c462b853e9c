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

from . import _answer
from ._answer import Description
from ._client import ChatStream, RekaClient
from ._describe import adescribe, describe, models, usage
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
from ._offline import stop_offline_server, use_offline_server
from ._version import __version__
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
    "ServerError",
    "StreamInterrupted",
    "Uploader",
    "Usage",
    "UsageTotals",
    "VideoError",
    "__version__",
    "adescribe",
    "adescribe_many",
    "cache",
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
    from ._async_client import AsyncChatStream, AsyncRekaClient
    from .batch import Result, Results, adescribe_many, cache, describe_many
    from .compat import AsyncClient, Client, Reka
    from .images import PreparedImage, PreparedVideo, prepare_image, prepare_images
    from .notebook.uploader import Uploader, uploader
    from .protocol.costs import UsageTotals
    from .protocol.models import Model, ModelList

#: Public names imported on first use, and the module that holds each.
_LAZY = {
    "AsyncChatStream": "._async_client",  # asyncio
    "AsyncRekaClient": "._async_client",
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
    "adescribe_many": ".batch",
    "cache": ".batch",
    "describe_many": ".batch",
}


def __getattr__(name: str) -> object:
    """Import a part of the public API on first use (see ``_LAZY``); ``last_results`` is the
    Results of the latest describe_many run (kept after an interrupt too)."""
    if name == "last_results":
        from .batch import last_results

        return last_results()
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'reka_nb' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names with the lazy ones (``describe_many``, ``uploader``...), which
    exist before their first use as far as ``dir()`` and tab completion are concerned."""
    return sorted({*globals(), *_LAZY, "last_results"})


def _notebook_presenter(raw: bool) -> _answer.Presenter | None:
    """The notebook display, where a kernel's frontend can update it (imported only then)."""
    from .notebook.display import notebook_presenter

    return notebook_presenter(raw)


def _notebook_progress() -> object | None:
    """describe_many's progress display in a notebook whose frontend can update outputs."""
    from .notebook.progress import notebook_progress

    return notebook_progress()


def _answer_store() -> _answer.AnswerStore | None:
    """The answer cache describe(cache=True) uses (sqlite3 is imported only then)."""
    from .batch.cache import describe_store

    return describe_store()


_answer.set_notebook_presenter(_notebook_presenter)
_answer.set_notebook_progress(_notebook_progress)
_answer.set_answer_store(_answer_store)


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext reka_nb``: register the %reka and %%reka magics."""
    from .notebook.magics import load_ipython_extension as load

    load(ipython)
