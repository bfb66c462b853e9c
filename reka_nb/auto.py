"""The defaults, picked at the top and handed down: how an answer and a run are shown.

Inside a notebook whose frontend can update outputs, an answer streams into the notebook's
display and a run over many images shows the notebook's progress table; elsewhere answers go
to stdout and runs get a tqdm bar. The layers below never look for a notebook: the public
``describe``, ``adescribe``, ``describe_many``, ``adescribe_many``, the public clients'
``describe`` (``reka_nb.RekaClient``, ``reka_nb.AsyncRekaClient``) and the ``%reka`` magics
take these choices from here, as ``tqdm.auto`` picks a bar without tqdm's core knowing that
notebooks exist. (The answer cache sits below the client, which opens it itself.)
"""

from __future__ import annotations

import functools
import sys
from typing import TYPE_CHECKING, Any

from .answer import DEFAULT_PROMPT, Description, Presenter, StdoutPresenter
from .client import describe as _core
from .client import sync as _sync

if TYPE_CHECKING:
    from .batch import Progress, Results

__all__ = [  # and AsyncRekaClient, made on first use
    "RekaClient",
    "acompare",
    "adescribe",
    "adescribe_many",
    "compare",
    "default_presenter",
    "default_progress",
    "describe",
    "describe_many",
    "load_ipython_extension",
]


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules  # every Jupyter kernel has it loaded; a script does not


def default_presenter(raw: bool = False) -> Presenter:
    """The notebook display inside a notebook (plain text with ``raw``), else stdout."""
    if _in_notebook():
        from .notebook.display import notebook_presenter  # IPython: only inside a kernel

        presenter = notebook_presenter(raw)
        if presenter is not None:
            return presenter
    return StdoutPresenter()


def default_progress() -> Progress:
    """The notebook's progress table inside a notebook, else a tqdm bar."""
    if _in_notebook():
        from .notebook.progress import notebook_progress

        chosen = notebook_progress()
        if chosen is not None:
            return chosen
    from .batch.progress import TerminalProgress

    return TerminalProgress()


def _shown(show: Any) -> Any:
    return default_presenter() if show is True else show


def _progress(show: Any) -> Any:
    return default_progress() if show is True else show


@functools.wraps(_core.describe)
def describe(
    image: Any, prompt: str = DEFAULT_PROMPT, *, show: Any = True, **options: Any
) -> Description:
    return _core.describe(image, prompt, show=_shown(show), **options)


@functools.wraps(_core.adescribe)
async def adescribe(
    image: Any, prompt: str = DEFAULT_PROMPT, *, show: Any = True, **options: Any
) -> Description:
    return await _core.adescribe(image, prompt, show=_shown(show), **options)


class RekaClient(_sync.RekaClient):
    """A synchronous client for Reka's chat API (OpenAI-compatible or native), whose
    ``describe`` shows the answer as ``reka_nb.describe`` does: in the notebook's display
    inside a notebook, else on stdout."""

    def describe(
        self, image: Any, prompt: str | None = None, *, show: Any = True, **options: Any
    ) -> Description:
        """Ask about one or more images; see ``reka_nb.describe``."""
        answer: Description = super().describe(image, prompt, show=_shown(show), **options)
        return answer


def __getattr__(name: str) -> Any:
    """``AsyncRekaClient``, made on first use (asyncio is imported only then)."""
    if name != "AsyncRekaClient":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .client import aio

    class AsyncRekaClient(aio.AsyncRekaClient):
        """An asyncio client for Reka's chat API, the mirror of RekaClient, whose ``describe``
        shows the answer as ``reka_nb.adescribe`` does: in the notebook's display inside a
        notebook, else on stdout."""

        async def describe(  # type: ignore[override]
            self, image: Any, prompt: str | None = None, *, show: Any = True, **options: Any
        ) -> Description:
            """Ask about one or more images; see ``reka_nb.adescribe``."""
            answer: Description = await super().describe(
                image, prompt, show=_shown(show), **options
            )
            return answer

    AsyncRekaClient.__qualname__ = "AsyncRekaClient"
    globals()[name] = AsyncRekaClient
    return AsyncRekaClient


def describe_many(
    images: Any, prompt: Any = DEFAULT_PROMPT, *, show: Any = True, **options: Any
) -> Results:
    """Ask the same question (or ``prompt(item)``) about many images; return ``Results``.

    The options are ``reka_nb.batch.describe_many``'s (model, concurrency,
    requests_per_minute, cache, client, retries, stream, limiter, max_cost, keep_metadata and
    the generation params); ``show=True`` shows the notebook's progress table inside a
    notebook, else a tqdm bar.
    """
    from .batch import api  # asyncio, sqlite3: imported when first used

    return api.describe_many(images, prompt, show=_progress(show), **options)


async def adescribe_many(
    images: Any, prompt: Any = DEFAULT_PROMPT, *, show: Any = True, **options: Any
) -> Results:
    """``await adescribe_many(...)``: describe_many for a running event loop."""
    from .batch import api

    return await api.adescribe_many(images, prompt, show=_progress(show), **options)


def compare(source: Any, prompt: Any = DEFAULT_PROMPT, *, show: Any = True, **options: Any) -> Any:
    """Ask several models (``models=[...]``) the same question about the same images; return
    a ``Comparison``. The options are ``reka_nb.batch.compare``'s (models, labels or schema,
    truth, field, concurrency, requests_per_minute, max_cost, cache, ...); ``show=True``
    shows the notebook's progress table inside a notebook, else a tqdm bar.
    """
    from .batch.compare import compare as run  # asyncio, sqlite3: imported when first used

    return run(source, prompt, show=_progress(show), **options)


async def acompare(
    source: Any, prompt: Any = DEFAULT_PROMPT, *, show: Any = True, **options: Any
) -> Any:
    """``await acompare(...)``: compare for a running event loop (the same options)."""
    from .batch.compare import acompare as run

    return await run(source, prompt, show=_progress(show), **options)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext reka_nb``: the %reka magics, showing answers and runs the notebook's way."""
    from .notebook import magics  # IPython: imported when the extension is loaded

    magics.load_ipython_extension(
        ipython, presenter=lambda raw: default_presenter(raw), progress=default_progress
    )
