"""The figures of scores and comparisons (matplotlib, imported only here and only when a plot is
asked for). Each function returns a Figure, never only shows one.

Themes: ``light`` (dark text on white), ``dark`` (light text on a near-black background) and
``auto``, the default: the colours of the user's matplotlib style when it has been changed
(``plt.style.use("dark_background")``), else a mid-grey text on a transparent background,
readable on a light and a dark notebook alike (about 4.3:1 against white and against
JupyterLab's dark background). The figure is made with pyplot (so a notebook's inline
backend knows how to show it) and closed at once, so it is shown once: where it is returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._exceptions import InvalidRequestError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Colours", "confusion_axes", "cost_axes", "new_figure", "recall_axes"]

THEMES = ("auto", "light", "dark")
_MID_GREY = "#7a7a7a"


@dataclass(frozen=True)
class Colours:
    """A theme's colours: text and lines, the background (``none``: transparent), a colour
    map for counts and the marks' colours."""

    text: str
    background: str
    cmap: str
    marks: tuple[str, ...] = ("#4c8fd6", "#e07b39", "#4aa564", "#c44e8a", "#8c6bd1", "#b39b2e")


def _colours(theme: str) -> Colours:
    if theme not in THEMES:
        raise InvalidRequestError(f"theme must be one of {', '.join(THEMES)}, not {theme!r}")
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "plot() needs matplotlib: pip install matplotlib (or reka-nb[notebook])"
        ) from None
    if theme == "light":
        return Colours("#1a1a1a", "#ffffff", "Blues")
    if theme == "dark":
        return Colours("#e6e6e6", "#111111", "viridis")
    text = matplotlib.rcParams["text.color"]
    face = matplotlib.rcParams["figure.facecolor"]
    if text not in ("black", "#000000", "k") or face not in ("white", "#ffffff", "w"):
        return Colours(str(text), str(face), "viridis")  # the user's own style
    return Colours(_MID_GREY, "none", "viridis")


def new_figure(theme: str, size: tuple[float, float]) -> tuple[Figure, Colours]:
    """A closed pyplot figure in ``theme``'s colours."""
    colours = _colours(theme)
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=size, dpi=100)
    plt.close(figure)  # shown where it is returned, not again at the end of the cell
    figure.patch.set_facecolor(colours.background)
    if colours.background == "none":
        figure.patch.set_alpha(0.0)
    return figure, colours


def _style(ax: Axes, colours: Colours, title: str) -> None:
    ax.set_facecolor("none")
    ax.set_title(title, color=colours.text, fontsize=10)
    ax.tick_params(colors=colours.text, labelsize=8)
    ax.xaxis.label.set_color(colours.text)
    ax.yaxis.label.set_color(colours.text)
    for spine in ax.spines.values():
        spine.set_color(colours.text)


def confusion_axes(
    ax: Axes, labels: Sequence[str], counts: Sequence[Sequence[int]], colours: Colours, title: str
) -> None:
    """A confusion matrix: true labels down, answers across, each cell's count written in."""
    import matplotlib

    cmap = matplotlib.colormaps[colours.cmap]
    top = max([max(row) for row in counts] + [1])
    ax.imshow(counts, cmap=cmap, vmin=0, vmax=top)
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("answer given (images)")
    ax.set_ylabel("true label (images)")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            red, green, blue, _ = cmap(count / top)
            light = 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                fontsize=9,
                color="#000000" if light else "#ffffff",
            )
    _style(ax, colours, title)


def recall_axes(ax: Axes, rows: Sequence[Mapping[str, Any]], colours: Colours, title: str) -> None:
    """Each label's precision and recall as bars (0-1)."""
    names = [str(r["label"]) for r in rows]
    width = 0.4
    for k, key in enumerate(("precision", "recall")):
        values = [0.0 if r[key] != r[key] else r[key] for r in rows]
        ax.bar(
            [i + (k - 0.5) * width for i in range(len(rows))],
            values,
            width,
            label=key,
            color=colours.marks[k],
        )
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("fraction (0-1)")
    legend = ax.legend(fontsize=8, frameon=False)
    for text in legend.get_texts():
        text.set_color(colours.text)
    _style(ax, colours, title)


def cost_axes(
    ax: Axes,
    points: Sequence[tuple[str, float, float | None]],
    colours: Colours,
    title: str,
    measure: str,
    unit: str = "fraction 0-1",
) -> None:
    """Each model as a point: its cost (US dollars) across, ``measure`` up (a fraction 0-1
    unless ``unit`` says otherwise)."""
    for k, (model, cost, value) in enumerate(points):
        colour = colours.marks[k % len(colours.marks)]
        y = 0.0 if value is None else value
        ax.scatter([cost], [y], s=60, color=colour, zorder=3)
        lift = 6 if k % 2 == 0 else -14  # neighbours' names on either side of their points
        ax.annotate(
            model,
            (cost, y),
            textcoords="offset points",
            xytext=(6, lift),
            color=colours.text,
            fontsize=8,
        )
    if unit == "fraction 0-1":
        ax.set_ylim(0, 1.05)
    else:
        ax.set_ylim(bottom=0)
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("cost of the answers (US dollars)")
    highest = max([cost for _, cost, _ in points] + [0.0])
    ax.set_xlim(0, highest * 1.3 or 1.0)  # from $0: costs compare by their distance from it
    ax.xaxis.set_major_locator(MaxNLocator(4))
    ax.xaxis.set_major_formatter(lambda value, _: f"${value:.2g}")
    ax.set_ylabel(f"{measure} ({unit})")
    ax.grid(True, color=colours.text, alpha=0.2)
    _style(ax, colours, title)
