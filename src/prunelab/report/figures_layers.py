"""Where pruning removes weights: the share pruned in each layer, per model and sparsity."""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prunelab.report.aggregate import LAYER_PREFIX, Group, Row, layer_names
from prunelab.report.plotkit import group_label, save_png


def layer_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """One panel per model (and method): share of each layer's weights pruned, per sparsity."""
    pruned = {group: [r for r in rs if not r.is_baseline] for group, rs in rows.items()}
    panels = [(group, rs, layer_names(rs)) for group, rs in pruned.items()]
    # A group whose layer shares are all unmeasured (NaN) would be an empty panel.
    panels = [
        (g, rs, names)
        for g, rs, names in panels
        if any(r.mean(LAYER_PREFIX + n) is not None for r in rs for n in names)
    ]
    if not panels:
        return False
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    widest = max(len(names) for _, _, names in panels)
    fig = Figure(figsize=(max(6.4, 0.45 * widest + 2) * ncols, 4.8 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    groups = list(rows)
    levels = sorted({r.sparsity for _, rs, _ in panels for r in rs})
    cmap = colormaps["viridis"]
    colour = {s: cmap(0.85 * i / max(1, len(levels) - 1)) for i, s in enumerate(levels)}
    for ax, (group, rs, names) in zip(axes, panels, strict=False):
        xs = range(len(names))
        for row in rs:
            ys = [row.mean(LAYER_PREFIX + name) for name in names]
            points = [(x, 100 * y) for x, y in zip(xs, ys, strict=True) if y is not None]
            if not points:
                continue
            ax.plot(
                [x for x, _ in points],
                [y for _, y in points],
                marker="o",
                color=colour[row.sparsity],
                label=f"{row.sparsity:g}",
            )
            # Structured pruning's `sparsity` is a channel ratio: draw the weights it removed.
            overall = row.mean("prune/sparsity_measured")
            overall = row.sparsity if overall is None else overall
            ax.axhline(100 * overall, color=colour[row.sparsity], ls="--", lw=0.8)
        ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize="small")
        ax.set_ylim(-3, 103)
        ax.set_ylabel("Share of the layer's weights pruned (%)")
        ax.set_title(group_label(group, groups))
        ax.grid(alpha=0.3)
        title = "channel ratio" if group.pruning == "structured" else "sparsity"
        ax.legend(title=title, fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    pooled = any(len(r.seeds) > 1 for _, rs, _ in panels for r in rs)
    fig.suptitle(
        "Where pruning removes weights: share pruned per Conv2d/Linear layer, in network order\n"
        "(dashed: the share pruned over all prunable weights"
        + ("; seeds averaged)" if pooled else ")")
    )
    save_png(fig, path, dpi)
    return True
