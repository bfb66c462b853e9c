"""The right answers for a run's images (``truth=``), lined up with its items. No I/O but
reading a CSV file named as the truth.

``truth`` may be a sequence (one answer per image, in order), a mapping from image to answer,
a pandas Series (by image when its index names the images, else by position), or the path of
a CSV file with ``image`` and ``label`` columns. An image is found by its name as the run
gives it (``shots/a.jpg``), its normalised path, or its file name when that is unique. A
length that does not match, or an image without an answer, is an error before anything is
sent.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .._exceptions import InvalidRequestError

__all__ = ["read_truth"]

_SHOWN = 3  # images named in an error before "and N more"


def read_truth(truth: Any, sources: Mapping[int, str], total: int) -> dict[int, Any]:
    """The right answer of each item (``sources``: index -> image name, of a run of ``total``
    items; a stopped run's results have fewer), from any form ``truth=`` takes."""
    if isinstance(truth, (str, os.PathLike)):
        return _by_image(_read_csv(Path(os.fspath(truth))), sources, f"the CSV file {truth}")
    if isinstance(truth, Mapping):
        return _by_image(dict(truth), sources, "truth")
    if type(truth).__module__.startswith("pandas") and type(truth).__name__ == "Series":
        labels = [str(label) for label in truth.index]
        finder = _Finder(labels)
        named = [finder.find(s) is not None for s in sources.values()]
        if len(set(labels)) == len(labels) and named and all(named):
            return _by_image(dict(zip(labels, truth.tolist(), strict=True)), sources, "truth")
        return _by_position(truth.tolist(), sources, total)
    ordered = isinstance(truth, Sequence) or hasattr(truth, "tolist")  # a list, a numpy array
    if not ordered or isinstance(truth, (bytes, bytearray)):
        raise InvalidRequestError(
            "truth must be a list (one answer per image, in order), a dict or pandas Series "
            "by image, or the path of a CSV file with image,label columns; "
            f"not {type(truth).__name__}"
        )
    return _by_position(list(truth), sources, total)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _by_position(values: list[Any], sources: Mapping[int, str], total: int) -> dict[int, Any]:
    if len(values) != total:
        raise InvalidRequestError(
            f"truth has {len(values)} answers and there are {total} images: give one "
            "answer per image, in order (or name the images: a dict, a Series by image, a CSV)"
        )
    empty = [s for i, s in sources.items() if _missing(values[i])]
    if empty:
        raise InvalidRequestError(f"truth has no answer for {_names(empty)}")
    return {i: values[i] for i in sources}


def _by_image(table: Mapping[Any, Any], sources: Mapping[int, str], where: str) -> dict[int, Any]:
    finder = _Finder([str(k) for k in table])
    values = list(table.values())
    out: dict[int, Any] = {}
    missing = []
    for index, source in sources.items():
        found = finder.find(source)
        if found is None or _missing(values[found]):
            missing.append(source)
        else:
            out[index] = values[found]
    if missing:
        raise InvalidRequestError(f"{where} has no answer for {_names(missing)}")
    return out


class _Finder:
    """Where an image is among ``keys``: as given, as a normalised path, or by its file name
    when exactly one key has it (looked up in dicts: a run of 10,000 images stays fast)."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.exact: dict[str, int] = {}
        self.normal: dict[str, int] = {}
        names: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            self.exact.setdefault(key, i)
            normal = os.path.normpath(key)
            self.normal.setdefault(normal, i)
            names.setdefault(os.path.basename(normal), []).append(i)
        self.names = {name: found[0] for name, found in names.items() if len(found) == 1}

    def find(self, source: str) -> int | None:
        if source in self.exact:
            return self.exact[source]
        normal = os.path.normpath(source)
        if normal in self.normal:
            return self.normal[normal]
        return self.names.get(os.path.basename(normal))


def _names(sources: Sequence[str]) -> str:
    shown = ", ".join(sources[:_SHOWN])
    more = len(sources) - _SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _read_csv(path: Path) -> dict[str, str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.DictReader(file)
            columns = [c.strip() for c in reader.fieldnames or ()]
            if "image" not in columns or "label" not in columns:
                raise InvalidRequestError(
                    f"the truth CSV {path} needs the columns image,label; it has "
                    f"{','.join(columns) or 'none'}"
                )
            table: dict[str, str] = {}
            for row in reader:
                row = {(k or "").strip(): v for k, v in row.items()}
                image = (row.get("image") or "").strip()
                if image:
                    table[image] = (row.get("label") or "").strip()
            return table
    except OSError as exc:
        raise InvalidRequestError(
            f"cannot read the truth CSV {path}: {exc.strerror or exc}"
        ) from None
