"""What every report figure shares: axis names, series styles, an Agg figure, fitted titles."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from prunelab.io import atomic_write_bytes
from prunelab.report.aggregate import Group, Row

SPARSITY_AXIS = "Sparsity (fraction of prunable weights set to zero)"
CHANNEL_AXIS = "Channel ratio (fraction of channels removed: structured pruning)"
MIXED_AXIS = "Sparsity (for structured: channel ratio)"
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
MARKERS = ("o", "s", "^", "D", "v", "P")


def group_label(group: Group, groups: list[Group]) -> str:
    """The model name, with data set and pruning method when the sweep has several."""
    parts = [group.model]
    if len({g.data for g in groups}) > 1:
        parts.append(group.data)
    if len({g.pruning for g in groups}) > 1:
        parts.append(group.pruning)
    return " · ".join(parts)


def sparsity_axis(rows: dict[Group, list[Row]]) -> str:
    """The x label: what `sparsity` is a fraction of, for the pruning methods in the figure."""
    structured = [g.pruning == "structured" for g in rows]
    if structured and all(structured):
        return CHANNEL_AXIS
    return MIXED_AXIS if any(structured) else SPARSITY_AXIS


def series_style(i: int) -> dict:
    """Colour and marker of the i-th series, the same in every figure; distinct pairs for the
    first len(COLORS) * len(MARKERS) series (a 2-model methods sweep has 12: its 7th drew as
    its 1st)."""
    shift = i // len(COLORS)  # each further round of colours moves the markers on by one
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[(i + shift) % len(MARKERS)]}


# Legend rows (x-small) that fit beside a panel of new_figure's height.
LEGEND_ROWS = 18


def place_legend(ax, **kwargs) -> None:
    """The panel's legend (`kwargs`: ax.legend's): inside it for a few entries; beside it for a
    methods sweep's many (more than 6: inside they covered the curves, 2 models x 6 methods
    squeezed the size figure's panel to a strip), in columns of at most LEGEND_ROWS rows, the
    figure widened by the legend so the panels keep their width."""
    entries = len(ax.get_legend_handles_labels()[1])
    if entries <= 6:
        ax.legend(**kwargs)
        return
    beside = {**kwargs, "fontsize": "x-small", "loc": "upper left", "bbox_to_anchor": (1.01, 1)}
    legend = ax.legend(ncols=math.ceil(entries / LEGEND_ROWS), **beside)
    fig = ax.figure
    width = legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi
    fig.set_figwidth(fig.get_figwidth() + width)


def new_figure(
    ncols: int = 1, width: float = 6.4, height: float = 4.4, nrows: int = 1
) -> tuple[Figure, list]:
    """A figure on its own Agg canvas (no pyplot state) and its axes, row by row."""
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    return fig, list(axes)


def _wrap(text: Text, room: float, renderer: RendererBase, vertical: bool = False) -> bool:
    """Re-wrap `text` to at most `room` pixels long (tall if `vertical`); True if it changed."""
    extent = text.get_window_extent(renderer)
    width = extent.height if vertical else extent.width
    if width <= room or not text.get_text():
        return False
    lines = text.get_text().split("\n")
    # Characters per line from the measured width: exact enough, and re-measured by the caller.
    chars = max(12, int(max(map(len, lines)) * room / width * 0.95))
    wrapped = "\n".join(
        textwrap.fill(line, chars, break_long_words=False, break_on_hyphens=False) for line in lines
    )
    if wrapped == text.get_text():
        return False
    text.set_text(wrapped)
    return True


def fit_titles(fig: Figure) -> None:
    """Wrap titles and axis labels longer than their axes, so the PNG crops no text.

    The figure-level title of a one-panel figure is wider than the panel, and the constrained
    layout only moves axes: it neither shrinks nor wraps text, so savefig cut it at both edges.
    """
    for _ in range(3):  # wrapping changes the layout, which changes the room: settle it
        fig.draw_without_rendering()  # runs the constrained layout: final axes positions
        renderer = fig.canvas.get_renderer()
        changed = False
        for text in fig.texts:  # the suptitle and any other figure-level text
            changed |= _wrap(text, 0.96 * fig.bbox.width, renderer)
        for ax in fig.axes:
            for text in (ax.title, ax.xaxis.label):
                changed |= _wrap(text, ax.bbox.width, renderer)
            changed |= _wrap(ax.yaxis.label, ax.bbox.height, renderer, vertical=True)
        if not changed:
            return


def save_png(fig: Figure, path: Path, dpi: int) -> None:
    """Fit the titles, then write the PNG atomically."""
    fit_titles(fig)
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, dpi=dpi, format="png"))


def n_test_label(rows: dict[Group, list[Row]]) -> str:
    """'n = 10000 test images' when every row was tested on the same number, else 'n varies'."""
    sizes = {
        int(r.mean("data/test_size")) for rs in rows.values() for r in rs if r.has("data/test_size")
    }
    return f"n = {sizes.pop()} test images" if len(sizes) == 1 else "n varies"
