"""HTML pieces shared by the results table and the notebook displays (no I/O).

Colours come from JupyterLab's theme variables (also set by Notebook 7), so text keeps its
contrast in light and dark themes; each has a fallback pair for other frontends. Thumbnails
keep their aspect ratio inside a square box and sit on a checkerboard that also frames them
(2 px) inside a thin border, so a transparent or black image stays visible on a dark
background.
"""

from __future__ import annotations

import html
import re

__all__ = ["ERROR_STYLE", "WRAP_STYLE", "file_name", "thumbnail_img"]

#: An error in a table or a progress line: the theme's text colour on its error background
#: (as JupyterLab shows stderr): 4.5:1 or more in the light and the dark theme.
ERROR_STYLE = (
    "color:var(--jp-content-font-color0,#000);"
    "background-color:var(--jp-rendermime-error-background,#fdd)"
)
#: Long unbroken words (URLs) wrap instead of widening the output.
WRAP_STYLE = "overflow-wrap:anywhere;word-break:break-word"
_CHECKERBOARD = (
    "background-color:#fff;"
    "background-image:repeating-conic-gradient(#c8c8c8 0 25%,#fff 0 50%);"
    "background-size:12px 12px;"
    "padding:2px;"
    "border:1px solid var(--jp-border-color1,#999)"
)
_SEPARATORS = re.compile(r"[/\\]")


def file_name(source: str) -> str:
    """The last part of a path or URL (without its query), for alt texts; else ``source``."""
    name = _SEPARATORS.split(source.split("?", 1)[0].split("#", 1)[0].rstrip("/\\"))[-1]
    return name or source


def thumbnail_img(src: str, alt: str, side: int, title: str | None = None) -> str:
    """An ``<img>`` that fits a ``side`` px box keeping its aspect ratio, on a checkerboard."""
    style = (
        f"max-width:{side}px;max-height:{side}px;width:auto;height:auto;"
        f"object-fit:contain;flex:none;{_CHECKERBOARD}"
    )
    tip = "" if title is None else f' title="{html.escape(title, quote=True)}"'
    return (
        f'<img src="{html.escape(src, quote=True)}" alt="{html.escape(alt, quote=True)}"{tip} '
        f'style="{style}"/>'
    )
