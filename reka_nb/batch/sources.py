"""What ``describe_many`` accepts as its images, turned into a list of ``Item``.

A list or tuple of anything ``describe()`` takes (an element that is itself a list is several
images in one question), a folder (its image files, sorted by name), a glob pattern
(``"photos/*.jpg"``), or a pandas Series (its index labels name the rows). Nothing is read
here: files are opened only when their turn comes.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator, KeysView, ValuesView
from pathlib import Path
from typing import Any

from .._exceptions import ImageError, InvalidRequestError
from .engine import Item

__all__ = ["IMAGE_SUFFIXES", "expand", "make_items"]

#: File name endings taken from a folder (other files there are left alone).
IMAGE_SUFFIXES = (
    ".jpg",
    ".jpeg",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".tif",
    ".tiff",
    ".ico",
    ".ppm",
)
_GLOB_CHARS = ("*", "?", "[")

Prompt = str | Callable[[Any], str]


def expand(images: Any) -> list[tuple[Any, str]]:
    """(item, source name) pairs in order; raises ImageError when nothing can be taken.

    Anything that is not a list, tuple, iterator, folder, glob or Series is one image (a
    numpy array, a PIL image, bytes, an upload widget), as describe() would take it.
    """
    if isinstance(images, (str, os.PathLike)):
        text = os.fspath(images)
        if isinstance(images, str) and any(c in text for c in _GLOB_CHARS):
            return _from_glob(text)
        if os.path.isdir(os.path.expanduser(text)):
            return _from_folder(Path(os.path.expanduser(text)), text)
        return [(images, _name(images, 0))]
    series = _series_pairs(images)
    if series is not None:
        return series
    if isinstance(images, (list, tuple, range, Iterator, KeysView, ValuesView)):
        pairs = [(item, _name(item, i)) for i, item in enumerate(images)]
        if not pairs:
            raise ImageError("no images given: the list is empty")
        return pairs
    return [(images, _name(images, 0))]


def make_items(images: Any, prompt: Prompt) -> list[Item]:
    """The items of a run: each with its prompt (a callable is called with the item)."""
    if not (isinstance(prompt, str) or callable(prompt)):
        raise InvalidRequestError(
            f"the prompt must be a string or a function of the item, not {type(prompt).__name__}"
        )
    items = []
    for index, (image, source) in enumerate(expand(images)):
        text: str | BaseException
        if isinstance(prompt, str):
            text = prompt
        else:
            try:
                text = prompt(image)
            except Exception as exc:  # the user's function failed for this item: its error
                text = InvalidRequestError(
                    f"the prompt function raised {type(exc).__name__}: {exc}"
                )
            else:
                if not isinstance(text, str):
                    text = InvalidRequestError(
                        f"the prompt function returned {type(text).__name__}, not a string"
                    )
        items.append(Item(index, image, source, text))
    return items


def _from_folder(folder: Path, shown: str) -> list[tuple[Any, str]]:
    files = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()
    )
    if not files:
        raise ImageError(
            f"the folder '{shown}' has no image files (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    return [(str(p), str(p)) for p in files]


def _from_glob(pattern: str) -> list[tuple[Any, str]]:
    paths = sorted(
        p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if not os.path.isdir(p)
    )
    if not paths:
        raise ImageError(f"no files match {pattern!r} (current directory: {os.getcwd()})")
    return [(p, p) for p in paths]


def _series_pairs(obj: Any) -> list[tuple[Any, str]] | None:
    module = type(obj).__module__
    if not module.startswith("pandas") or type(obj).__name__ != "Series":
        return None
    return [(value, str(label)) for label, value in obj.items()]


def _name(item: Any, index: int) -> str:
    if isinstance(item, os.PathLike):
        return os.fspath(item)  # type: ignore[return-value]
    if isinstance(item, str):
        text = item.strip()
        if text[:5].lower() == "data:":
            return f"#{index} (data URL)"
        return text if len(text) <= 120 else text[:119] + "…"
    if isinstance(item, (list, tuple)):
        return " + ".join(_name(x, index) for x in item) if item else f"#{index}"
    name = getattr(item, "name", None)
    if isinstance(name, str) and name:
        return os.path.basename(name)
    return f"#{index} ({type(item).__name__})"
