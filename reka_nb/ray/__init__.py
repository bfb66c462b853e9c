"""``import reka_nb.ray as rr``: describe a Ray dataset (the ``reka-nb[ray]`` extra).

    >>> ds = ray.data.read_binary_files("photos/", include_paths=True)   # doctest: +SKIP
    >>> rr.describe_dataset(ds, "Write alt text.", requests_per_minute=600).write_parquet("out/")

Importing this module does not import Ray; calling its functions does, and says which extra
to install when Ray is missing. See docs/scale.md.
"""

from __future__ import annotations

from .dataset import ANSWER_COLUMNS, describe_dataset, require_ray, skip_answered

__all__ = ["ANSWER_COLUMNS", "describe_dataset", "require_ray", "skip_answered"]
