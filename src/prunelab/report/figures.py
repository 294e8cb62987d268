"""The report's figures (PNG via matplotlib's Agg canvas; no pyplot, no global state).

Accuracy, change against dense and robustness here; size, latency and the Pareto plot in
figures_cost; per-layer sparsity in figures_layers; shared styles and helpers in plotkit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from matplotlib import colormaps

from prunelab.report.aggregate import Group, Row
from prunelab.report.figures_cost import latency_vs_sparsity, pareto, pareto_front, size_vs_sparsity
from prunelab.report.figures_layers import layer_sparsity
from prunelab.report.plotkit import (
    CHANNEL_AXIS,
    MIXED_AXIS,
    SPARSITY_AXIS,
    group_label,
    n_test_label,
    new_figure,
    place_legend,
    save_png,
    series_style,
    sparsity_axis,
)
from prunelab.report.tables import HEADLINE_ATTACK, pgd_eps

log = logging.getLogger("prunelab")
CONTROL = ": dense control"  # legend suffix of a model's dense-control level
# Re-exported: the report's one module of figures for its callers and tests.
__all__ = [
    "CHANNEL_AXIS", "MIXED_AXIS", "SPARSITY_AXIS", "FIGURES", "draw_all", "group_label",
    "pareto_front", "sparsity_axis", "change_panels",
]  # fmt: skip


def accuracy_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """Test accuracy vs sparsity per model, with noise bands as error bars."""
    fig, (ax,) = new_figure()
    groups = list(rows)
    for i, (group, rs) in enumerate(rows.items()):
        pts = [(r.sparsity, r.acc()) for r in rs if r.acc() is not None]
        if not pts:
            continue
        xs = [s for s, _ in pts]
        ys = [100 * iv.mean for _, iv in pts]
        err = [
            [100 * (iv.mean - iv.lo) for _, iv in pts],
            [100 * (iv.hi - iv.mean) for _, iv in pts],
        ]
        style = series_style(i)
        ax.errorbar(xs, ys, yerr=err, capsize=4, label=group_label(group, groups), **style)
        if rs[0].is_baseline and rs[0].acc() is not None:
            base = rs[0].acc()
            ax.axhspan(100 * base.lo, 100 * base.hi, color=style["color"], alpha=0.12, lw=0)
    ax.set_xlabel(sparsity_axis(rows))
    ax.set_ylabel("Test accuracy (%)")
    seeds = max(len(r.samples) for rs in rows.values() for r in rs)
    # Several seeds' longer bar legend takes a line of its own: at this width matplotlib
    # wrapped "shaded: dense band" mid-phrase.
    bars = "95 % interval;" if seeds == 1 else "95 % interval, or ± std over seeds if wider\n"
    ax.set_title(
        f"Test accuracy vs sparsity ({n_test_label(rows)})\nbars: {bars} shaded: dense band"
    )
    ax.grid(alpha=0.3)
    place_legend(ax, title="Model")
    save_png(fig, path, dpi)
    return True


def change_panels(rows: dict[Group, list[Row]]) -> list[tuple[str, str, str]]:
    """(key, y label, title) of each panel of change_vs_sparsity; ε as the rows record it."""
    eps = pgd_eps(r for rs in rows.values() for r in rs)
    return [
        ("test/acc", "Δ test accuracy (points)", "Test accuracy"),
        (
            HEADLINE_ATTACK,
            f"Δ PGD accuracy, ε = {eps} (points)",
            "Robustness impact (the study's PGD)",
        ),
    ]


def change_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """Change of test and PGD accuracy against each model's own dense baseline, paired bands."""
    groups, drawn, controls = list(rows), False, 0
    legend_rows = -(-len(groups) // 3)
    panels = change_panels(rows)
    fig, axes = new_figure(len(panels), width=5.6, height=4.4 + 0.25 * legend_rows)
    for ax, (key, ylabel, title) in zip(axes, panels, strict=True):
        ticks: set[float] = set()
        for i, (group, rs) in enumerate(rows.items()):
            pts = [(r.sparsity, r.change(key)) for r in rs if not r.is_baseline]
            pts = [(x, band) for x, band in pts if band is not None]
            if not pts:
                continue
            drawn = True
            ticks.update(x for x, _ in pts)
            shift = 0.006 * (i - (len(groups) - 1) / 2)  # side by side, not on top of each other
            ax.errorbar(
                [x + shift for x, _ in pts],
                [b.mean for _, b in pts],
                yerr=[[b.mean - b.lo for _, b in pts], [b.hi - b.mean for _, b in pts]],
                capsize=4,
                label=group_label(group, groups),
                **series_style(i),
            )
            if key == "test/acc":
                controls += _control_line(ax, rs[0], group_label(group, groups), i)
        ax.axhline(0, color="black", lw=0.8)
        if ticks:  # ticks at the measured sparsities only: the shifts are not sparsities
            ax.set_xticks(sorted(ticks), [f"{t:g}" for t in sorted(ticks)])
            ax.set_xlim(min(ticks) - 0.08, max(ticks) + 0.08)
        ax.set_xlabel(sparsity_axis(rows))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    if not drawn:
        return False
    # One legend below both panels: the series are the same, and inside an axes it covered bars.
    series: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            series.setdefault(label, handle)
    models = [label for label in series if not label.endswith(CONTROL)]
    ncols = min(3, len(models))
    if controls:  # each model's control under it: the legend fills column by column
        order = [x for m in models for x in (m, m + CONTROL) if x in series]
        series, ncols = {x: series[x] for x in order}, len(models)
    fig.legend(
        list(series.values()), list(series), title="Model", fontsize="small",
        loc="outside lower center", ncols=ncols,
    )  # fmt: skip
    seeds = max(len(r.samples) for rs in rows.values() for r in rs)
    bars = "95 % paired interval" if seeds == 1 else "95 % band over seeds and images"
    control = f"\ndashed: the dense control (fine-tuned, unpruned); shaded: its {bars}"
    fig.suptitle(
        "Change against the model's own dense baseline, on the same images\n"
        f"bars: {bars}; a bar that crosses 0 is within noise" + (control if controls else "")
    )
    save_png(fig, path, dpi)
    return True


def _control_line(ax, base: Row, label: str, i: int) -> int:
    """The dense control's change against dense (finetune.dense_control), as a dashed level.

    A pruned point on it gained what the extra fine-tuning alone gains; one below it lost
    that much to pruning. Returns 1 if drawn.
    """
    band = base.change("control/test_acc") if base.is_baseline else None
    if band is None:
        return 0
    color = series_style(i)["color"]
    ax.axhline(band.mean, color=color, ls="--", lw=1.2, label=label + CONTROL)
    ax.axhspan(band.lo, band.hi, color=color, alpha=0.08, lw=0)
    return 1


def _curve_keys(rs: list[Row]) -> list[tuple[float, str]]:
    keys = {
        k
        for r in rs
        for s in r.samples
        for k in s
        if re.fullmatch(r"robust/curve_acc@eps[0-9.]+", k)
    }
    return sorted((float(k.rsplit("eps", 1)[1]), k) for k in keys)


def robust_vs_eps(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """PGD robust accuracy vs eps (k/255), one panel per model, one line per sparsity."""
    panels = [(g, rs, _curve_keys(rs)) for g, rs in rows.items()]
    panels = [p for p in panels if p[2]]
    if not panels:
        return False
    # At most three panels a row: a methods sweep's six in one row read at a sixth of the page.
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = new_figure(ncols, width=5.2, nrows=nrows)
    for spare in axes[len(panels) :]:
        spare.set_visible(False)
    groups = list(rows)
    sparsities = sorted({r.sparsity for _, rs, _ in panels for r in rs})
    shades = colormaps["viridis"]
    for ax, (group, rs, keys) in zip(axes, panels, strict=False):
        for r in rs:
            pts = [(k, r.robust(key)) for k, key in keys]
            pts = [(k, iv) for k, iv in pts if iv is not None]
            if not pts:
                continue
            shade = shades(0.9 * sparsities.index(r.sparsity) / max(1, len(sparsities) - 1))
            ax.errorbar(
                [k for k, _ in pts],
                [100 * iv.mean for _, iv in pts],
                yerr=[
                    [100 * (iv.mean - iv.lo) for _, iv in pts],
                    [100 * (iv.hi - iv.mean) for _, iv in pts],
                ],
                capsize=3,
                marker="o",
                color=shade,
                ls="--" if r.is_baseline else "-",
                label="0 (dense)" if r.is_baseline else f"{r.sparsity:g}",
            )
        ks = [k for k, _ in keys]
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks(ks, [f"{k:g}" for k in ks])
        ax.set_xlabel("PGD ε (× 1/255, pixel scale [0, 1])")
        ax.set_ylabel("Robust accuracy (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.set_title(group_label(group, groups))
        ax.legend(title="Sparsity", fontsize="small")
    n = {
        int(r.mean("robust/n_images"))
        for _, rs, _ in panels
        for r in rs
        if r.has("robust/n_images")
    }
    subset = f"n = {n.pop()} images" if len(n) == 1 else "subset"
    fig.suptitle(f"Robust accuracy vs attack strength (PGD)\nbars: 95 % interval, {subset}")
    save_png(fig, path, dpi)
    return True


# file name -> (drawer, the keys it needs: named when the figure is omitted)
FIGURES: dict[str, tuple[Callable[..., bool], str]] = {
    "accuracy_vs_sparsity.png": (accuracy_vs_sparsity, "test/acc"),
    "change_vs_sparsity.png": (change_vs_sparsity, "paired intervals (`*_delta_ci_low/high`)"),
    "robust_vs_eps.png": (robust_vs_eps, "robust/curve_acc@epsK keys"),
    "size_vs_sparsity.png": (size_vs_sparsity, "size/disk_bytes or size/sparse_disk_bytes"),
    "latency_vs_sparsity.png": (latency_vs_sparsity, "latency/b1_ms"),
    "pareto_accuracy_latency.png": (pareto, "latency/b1_ms"),
    "layer_sparsity.png": (layer_sparsity, "prune/layer/<layer> keys of a pruned job"),
}


def draw_all(
    rows: dict[Group, list[Row]], out: Path, dpi: int = 120
) -> tuple[list[Path], list[str]]:
    """Draw every figure the data allows; return (written paths, 'name: why omitted' lines)."""
    written, omitted = [], []
    for name, (draw, needs) in FIGURES.items():
        path = out / name
        try:
            drawn = bool(rows) and draw(rows, path, dpi)
            why = f"no {needs} in any results.json"
        except Exception as err:  # one broken figure must not cost the sweep its report
            drawn, why = False, f"drawing failed ({type(err).__name__}: {err})"
            log.warning("report: %s %s", name, why)
        if drawn:
            written.append(path)
        else:
            path.unlink(missing_ok=True)  # a stale figure from an earlier report would mislead
            omitted.append(f"{name}: {why}")
    return written, omitted


def remove_figures(out: Path) -> list[Path]:
    """Delete the figures an earlier report drew here (their file names only: a user's own
    PNGs stay); for a report drawing none, so no stale figure outlives the report naming 0."""
    removed = []
    for name in FIGURES:
        path = out / name
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed
