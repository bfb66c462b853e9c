"""One input or a list of them, upload widgets opened: the single inputs to prepare."""

from __future__ import annotations

from .._exceptions import ImageError

__all__ = ["expand"]


def expand(obj: object) -> list[object]:
    """Flatten a list/tuple and upload widgets into single inputs; refuse an empty result."""
    if isinstance(obj, (list, tuple)):
        items: list[object] = []
        for item in obj:
            if isinstance(item, (list, tuple)):
                raise ImageError("nested lists are not accepted: pass a flat list of images")
            items.extend(_expand_widget(item))
        if not items:
            raise ImageError(f"no images given: the {type(obj).__name__} is empty")
        return items
    return _expand_widget(obj)


def _expand_widget(obj: object) -> list[object]:
    # An ipywidgets FileUpload: .value is a tuple of {"name", "type", "size", "content"} dicts.
    value = getattr(obj, "value", None)
    if isinstance(value, (tuple, list)) and hasattr(obj, "accept"):
        if not value:
            raise ImageError("the upload widget holds no files yet: choose a file first")
        return list(value)
    return [obj]
