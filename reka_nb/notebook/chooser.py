"""The images part of the upload panel: the picker (or its fallback), the limits note, the
thumbnails, and the images chosen so far.

The picker is an anywidget (``Picker``); once it has loaded it also draws the thumbnails,
sent to it as custom messages, so neither the images nor their thumbnails are in the saved
widget state. Where it cannot load (a frontend without anywidget), it never says it is ready;
``wait`` seconds after the panel is shown, ipywidgets' plain ``FileUpload`` appears in its
place with a note saying why, and the thumbnails are ``Image`` widgets. The fallback's value
is cleared as soon as it is read, so no upload stays in the saved widget state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .._exceptions import ImageError
from ..images import THUMBNAIL_SIDE, prepare_image
from . import background
from .picker import Outcome, Picker, Thumbnail
from .uploader_job import Chosen, chosen_text, limits_html, preparing_text, read_uploads

__all__ = ["ImageChooser", "descendants"]


class ImageChooser:
    """Owns the picker, the fallback ``FileUpload``, the limits note and the thumbnails.

    ``on_change()`` is called after each new choice; ``on_busy()`` when images start or stop
    arriving from the browser (see ``busy``); ``on_errors(lines)`` with what was refused (an
    empty list clears the error area).
    """

    wait = 8.0
    """Seconds after the panel is shown before the fallback replaces a picker that has not
    loaded; it is hidden again if the picker loads later."""

    def __init__(
        self,
        max_bytes: int,
        on_change: Callable[[], Any],
        on_errors: Callable[[Sequence[str]], Any],
        on_busy: Callable[[], Any] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self.files: list[Chosen] = []
        self._on_change = on_change
        self._on_errors = on_errors
        self._on_busy = on_busy
        self._not_used: list[str] = []  # files of the last choice that were refused
        self._thumbs: dict[int, Thumbnail] = {}
        self._boxes: dict[int, widgets.VBox] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.picker = Picker(max_bytes=max_bytes)
        self.upload = widgets.FileUpload(
            accept="image/*",
            multiple=True,
            description="Choose images",
            layout=widgets.Layout(width="auto", align_self="flex-start", display="none"),
        )
        self.limits = widgets.HTML(limits_html(max_bytes))
        self.thumbnails = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.upload.observe(self._on_upload, names="value")
        self.picker.on_files(self._on_picked)
        self.picker.on_ready(self._picker_loaded)
        self.picker.on_busy(self._busy)

    @property
    def widgets(self) -> list[widgets.Widget]:
        return [self.picker, self.upload, self.limits, self.thumbnails]

    @property
    def busy(self) -> bool:
        """True while a choice is still on its way from the browser."""
        return self.picker.busy

    def add(self, image: object, name: str | None = None) -> None:
        """Add one image given in code (anything ``describe()`` takes) to the choice."""
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        prepared = prepare_image(image)
        self._not_used = []
        self._choose([*self.files, Chosen(name or _name_of(image, len(self.files) + 1), prepared)])

    def shown(self) -> None:
        """The panel was displayed: start waiting for the picker to say it loaded."""
        if not self.picker.ready and self._timer is None and not self._closed:
            background.background_loop().call_soon_threadsafe(self._arm)

    def close(self) -> None:
        self._closed = True
        self.picker.close()
        timer, self._timer = self._timer, None
        if timer is not None:
            loop = background.existing_loop()
            if loop is not None:
                loop.call_soon_threadsafe(timer.cancel)

    # -- what arrives -----------------------------------------------------------------------

    def _on_upload(self, change: Mapping[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        try:
            accepted, refused = read_uploads(files, self.max_bytes)
        finally:
            self.upload.value = ()  # keep uploads out of the saved widget state
        if accepted:
            self._not_used = []
            self._choose(accepted)
        self._on_errors(refused)

    def _on_picked(
        self, files: list[dict[str, Any]], how: str, refused: list[str]
    ) -> list[Outcome]:
        """A choice from the picker: ``how`` is "replace" (dialog, drop) or "add" (paste...).

        Returns what became of each file, (used, why not), for the picker to mark its rows.
        """
        accepted: list[Chosen] = []
        problems: list[str] = []
        outcomes: list[Outcome] = []
        not_used: list[str] = []
        for item in files:
            taken, why = read_uploads([item], self.max_bytes)
            accepted += taken
            problems += why
            outcomes.append((bool(taken), " ".join(why)))
            if not taken:
                not_used.append(str(item.get("name") or "file"))
        if accepted:
            self._not_used = not_used
            self._choose([*self.files, *accepted] if how == "add" else accepted)
        self._on_errors([*refused, *problems])
        return outcomes

    def _busy(self, names: list[str]) -> None:
        """Images started or stopped arriving: say which at once; Describe waits for them."""
        if names:
            self.picker.chosen_text = preparing_text(names)
        else:
            self.picker.chosen_text = chosen_text([c.name for c in self.files], self._not_used)
        if self._on_busy is not None:
            self._on_busy()

    def _choose(self, files: list[Chosen]) -> None:
        """Show the chosen images; a thumbnail is made once and kept while its image is."""
        old = self._thumbs
        self.files = files
        self._thumbs = {id(c): old.get(id(c)) or _thumbnail(c) for c in files}
        self._show_thumbnails()
        if not self.picker.busy:
            self.picker.chosen_text = chosen_text([c.name for c in files], self._not_used)
        self._on_change()

    def _show_thumbnails(self) -> None:
        """In the picker once it has loaded (never saved); as Image widgets in the fallback."""
        if self.picker.ready:
            self.picker.show_thumbnails(list(self._thumbs.values()))
            keep: dict[int, widgets.VBox] = {}
        else:
            keep = {key: self._boxes.get(key) or _box(t) for key, t in self._thumbs.items()}
        old, self._boxes = self._boxes, keep
        self.thumbnails.children = tuple(keep.values())
        for key, box in old.items():
            if key not in keep:
                for widget in [*descendants(box), box]:
                    widget.close()

    # -- the picker, or the fallback --------------------------------------------------------

    def _arm(self) -> None:
        if not self._closed:
            self._timer = asyncio.get_running_loop().call_later(self.wait, self._use_fallback)

    def _use_fallback(self) -> None:
        if self.picker.ready or self._closed:
            return
        self.upload.layout.display = None
        self.limits.value = limits_html(self.max_bytes, fallback=True)

    def _picker_loaded(self) -> None:
        self.upload.layout.display = "none"
        self.limits.value = limits_html(self.max_bytes)
        if self._boxes:
            self._show_thumbnails()


def _thumbnail(chosen: Chosen) -> Thumbnail:
    try:
        thumb = chosen.image.thumbnail(THUMBNAIL_SIDE)
    except ImageError:  # a thumbnail is a courtesy; the image itself was checked
        thumb = None
    if thumb is None:
        return Thumbnail(chosen.name, None)
    return Thumbnail(chosen.name, thumb[0], thumb[1])


def _box(thumb: Thumbnail) -> widgets.VBox:
    """A thumbnail as widgets, for the fallback: fitted into THUMBNAIL_SIDE, aspect kept."""
    side = f"{THUMBNAIL_SIDE}px"
    items: list[widgets.Widget] = []
    if thumb.data is not None:
        fit = widgets.Layout(
            width="auto", height="auto", max_width=side, max_height=side, object_fit="contain"
        )
        items.append(widgets.Image(value=thumb.data, format=thumb.mime.split("/")[1], layout=fit))
    items.append(widgets.Label(thumb.name, tooltip=thumb.name))
    layout = widgets.Layout(margin="0 8px 8px 0", max_width=side, align_items="flex-start")
    return widgets.VBox(items, layout=layout)


def _name_of(image: object, number: int) -> str:
    """A name for an image added from code: a path's file name, else ``image N``."""
    if isinstance(image, Path) or (isinstance(image, str) and "://" not in image):
        return Path(image).name or f"image {number}"
    return f"image {number}"


def descendants(box: widgets.Widget) -> Iterator[widgets.Widget]:
    for child in getattr(box, "children", ()):
        yield from descendants(child)
        yield child
