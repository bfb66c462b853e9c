"""Many images: ``describe_many`` with a shared rate limit, an answer cache, progress and a
results table.

Layers inside: ``sources`` (what users pass -> items), ``engine`` (the async run on one
client, reusable by other runners), ``limiter`` (the per-account rate limit), ``cache``
(SQLite answers), ``results`` (the table), ``progress`` (tqdm, or the notebook's display
registered from above), ``api`` (the public functions), ``compare`` and ``comparison``
(several models over the same images), ``score`` and ``truth`` (answers against the right
ones), ``plots`` (their figures).
"""

from __future__ import annotations

from .. import cache
from ..cache import AnswerCache, CacheInfo
from .api import adescribe_many, describe_many, last_results
from .comparison import Comparison
from .engine import Item, run_items
from .limiter import Limiter, RateLimiter, shared_limiter
from .progress import Progress, ProgressStats, TerminalProgress
from .results import COLUMNS, Result, Results
from .score import Score

__all__ = [
    "COLUMNS",
    "AnswerCache",
    "CacheInfo",
    "Comparison",
    "Item",
    "Limiter",
    "Progress",
    "ProgressStats",
    "RateLimiter",
    "Result",
    "Results",
    "Score",
    "TerminalProgress",
    "adescribe_many",
    "cache",
    "describe_many",
    "last_results",
    "run_items",
    "shared_limiter",
]
