"""describe() and adescribe(): ask about images and show the answer as it arrives; models()
and usage(): what the default client's key can use, and what this session's answers cost."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..answer import DEFAULT_PROMPT, SESSION_USAGE, Description, Presenter
from ..protocol.costs import UsageTotals
from ..protocol.models import ModelList
from .question import require_image
from .sync import RekaClient, run_describe

if TYPE_CHECKING:
    from .aio import AsyncRekaClient

__all__ = ["adescribe", "default_client", "describe", "models", "usage"]

_default_client: RekaClient | None = None
_default_lock = threading.Lock()


def default_client() -> RekaClient:
    """The process-wide client behind describe(); its settings are read at each call."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = RekaClient()
        return _default_client


def describe(
    image: Any,
    prompt: str = DEFAULT_PROMPT,
    *,
    model: str | None = None,
    stream: bool = True,
    show: bool | Presenter = True,
    client: RekaClient | None = None,
    keep_metadata: bool = False,
    cache: bool = False,
    **params: Any,
) -> Description:
    """Ask Reka about one image (or a list of them) and return the answer.

    ``image`` is a path, URL, bytes, open file, PIL image, numpy array, matplotlib figure or
    a list of these. The answer streams into the notebook (or stdout) as it is written;
    ``show=False`` returns quietly. Images go without their metadata (EXIF, GPS, XMP) unless
    ``keep_metadata=True``. Params: max_tokens, temperature, top_p, stop, seed.
    ``cache=True`` reuses the stored answer to the same question (asking twice is sometimes
    the point, so it is off unless asked for); see ``reka_nb.cache``.
    """
    require_image(image)
    return run_describe(
        client or default_client(),
        image,
        prompt,
        model=model,
        stream=stream,
        show=show,
        keep_metadata=keep_metadata,
        cache=cache,
        **params,
    )


async def adescribe(
    image: Any,
    prompt: str = DEFAULT_PROMPT,
    *,
    client: AsyncRekaClient | None = None,
    cache: bool = False,
    **options: Any,
) -> Description:
    """``await adescribe(...)``: describe() for a running event loop, such as a notebook's
    (the same options: model, stream, show, keep_metadata, params)."""
    require_image(image)
    from .aio import AsyncRekaClient, run_adescribe  # asyncio: imported when first used

    if client is not None:
        return await run_adescribe(client, image, prompt, cache=cache, **options)
    async with AsyncRekaClient() as own:  # per call: an async pool belongs to one event loop
        return await run_adescribe(own, image, prompt, cache=cache, **options)


def models(*, refresh: bool = False) -> ModelList:
    """The models your key can use: inputs, context, longest answer and prices of each.

    A list of ``Model`` (each is its id as a str), shown as a table in a notebook. The list is
    kept for a few minutes; ``refresh=True`` asks the server again.
    """
    return default_client().models(refresh=refresh)


def usage() -> UsageTotals:
    """Tokens and cost of this session's answers so far, per model (a table in a notebook).

    Costs are exact ``Decimal`` US dollars from the prices ``GET /models`` gives; answers of a
    model without prices are counted as ``unpriced``.
    """
    return SESSION_USAGE.copy()
