"""The report's figures (PNG via matplotlib's Agg canvas; no pyplot, no global state)."""

from __future__ import annotations

import logging
import math
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

from matplotlib import colormaps
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from prunelab.io import atomic_write_bytes
from prunelab.report.aggregate import Group, Row, first_value
from prunelab.report.tables import HEADLINE_ATTACK, pgd_eps

log = logging.getLogger("prunelab")

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


def _style(i: int) -> dict:
    return {"color": COLORS[i % len(COLORS)], "marker": MARKERS[i % len(MARKERS)]}


def _new(ncols: int = 1, width: float = 6.4, height: float = 4.4) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
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


def _save(fig: Figure, path: Path, dpi: int) -> None:
    fit_titles(fig)
    atomic_write_bytes(path, lambda fh: fig.savefig(fh, dpi=dpi, format="png"))


def _test_n(rows: dict[Group, list[Row]]) -> str:
    sizes = {
        int(r.mean("data/test_size")) for rs in rows.values() for r in rs if r.has("data/test_size")
    }
    return f"n = {sizes.pop()} test images" if len(sizes) == 1 else "n varies"


def accuracy_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """Test accuracy vs sparsity per model, with noise bands as error bars."""
    fig, (ax,) = _new()
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
        style = _style(i)
        ax.errorbar(xs, ys, yerr=err, capsize=4, label=group_label(group, groups), **style)
        if rs[0].is_baseline and rs[0].acc() is not None:
            base = rs[0].acc()
            ax.axhspan(100 * base.lo, 100 * base.hi, color=style["color"], alpha=0.12, lw=0)
    ax.set_xlabel(sparsity_axis(rows))
    ax.set_ylabel("Test accuracy (%)")
    seeds = max(len(r.samples) for rs in rows.values() for r in rs)
    bars = "95 % interval" if seeds == 1 else "95 % interval, or ± std over seeds if wider"
    ax.set_title(f"Test accuracy vs sparsity ({_test_n(rows)})\nbars: {bars}; shaded: dense band")
    ax.grid(alpha=0.3)
    ax.legend(title="Model")
    _save(fig, path, dpi)
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
    groups, drawn = list(rows), False
    legend_rows = -(-len(groups) // 3)
    panels = change_panels(rows)
    fig, axes = _new(len(panels), width=5.6, height=4.4 + 0.25 * legend_rows)
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
                **_style(i),
            )
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
    fig.legend(
        list(series.values()), list(series), title="Model", fontsize="small",
        loc="outside lower center", ncols=min(3, len(series)),
    )  # fmt: skip
    seeds = max(len(r.samples) for rs in rows.values() for r in rs)
    bars = "95 % paired interval" if seeds == 1 else "95 % band over seeds and images"
    fig.suptitle(
        "Change against the model's own dense baseline, on the same images\n"
        f"bars: {bars}; a bar that crosses 0 is within noise"
    )
    _save(fig, path, dpi)
    return True


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
    fig, axes = _new(len(panels), width=5.2)
    groups = list(rows)
    sparsities = sorted({r.sparsity for _, rs, _ in panels for r in rs})
    shades = colormaps["viridis"]
    for ax, (group, rs, keys) in zip(axes, panels, strict=True):
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
    _save(fig, path, dpi)
    return True


def size_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """File size vs sparsity: the dense torch.save file and the compressed sparse export."""
    if not any(
        r.has("size/disk_bytes") or r.has("size/sparse_disk_bytes")
        for rs in rows.values()
        for r in rs
    ):
        return False
    fig, (ax,) = _new()
    groups = list(rows)
    for i, (group, rs) in enumerate(rows.items()):
        style = _style(i)
        name = group_label(group, groups)
        dense = [(r.sparsity, r.mean("size/disk_bytes")) for r in rs if r.has("size/disk_bytes")]
        sparse = [
            (r.sparsity, r.mean("size/sparse_disk_bytes"))
            for r in rs
            if r.has("size/sparse_disk_bytes")
        ]
        if dense:
            ax.plot(
                [s for s, _ in dense],
                [b / 1e6 for _, b in dense],
                ls="--",
                mfc="none",
                label=f"{name}: dense file",
                **style,
            )
        if sparse:
            ax.plot(
                [s for s, _ in sparse],
                [b / 1e6 for _, b in sparse],
                ls="-",
                label=f"{name}: sparse export",
                **style,
            )
    ax.set_xlabel(sparsity_axis(rows))
    ax.set_ylabel("Size on disk (MB, 10⁶ bytes)")
    ax.set_ylim(bottom=0)
    ax.set_title("Model file size vs sparsity\n(dense torch.save file vs compressed sparse export)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    _save(fig, path, dpi)
    return True


def latency_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """Batch-1 latency, and measured vs theoretical speed-up, against sparsity."""
    if not any(r.has("latency/b1_ms") for rs in rows.values() for r in rs):
        return False
    fig, (ax_ms, ax_x) = _new(2, width=5.6)
    groups = list(rows)
    device = first_value(rows, "latency/device")
    threads = first_value(rows, "latency/threads")
    batch = next((r.first("latency/batch") for rs in rows.values() for r in rs), None) or "N"
    for i, (group, rs) in enumerate(rows.items()):
        style = _style(i)
        name = group_label(group, groups)
        pts = [r for r in rs if r.has("latency/b1_ms")]
        if pts:
            med = [r.b1_ms() for r in pts]
            p90 = [r.b1_p90_ms() or m for r, m in zip(pts, med, strict=True)]
            ax_ms.errorbar(
                [r.sparsity for r in pts],
                med,
                yerr=[[0] * len(med), [max(0.0, p - m) for p, m in zip(p90, med, strict=True)]],
                capsize=3,
                label=name,
                **style,
            )
        for key, ls, what in (
            ("latency/b1_speedup", "-", "measured, batch 1"),
            ("latency/bN_speedup", ":", f"measured, batch {batch}"),
            ("flops/theoretical_speedup", "--", "theoretical (MACs)"),
        ):
            xs = [r for r in rs if r.has(key)]
            if xs:
                ax_x.plot(
                    [r.sparsity for r in xs],
                    [r.mean(key) for r in xs],
                    ls=ls,
                    mfc="none" if ls != "-" else None,
                    label=f"{name}: {what}",
                    **style,
                )
    ax_ms.set_xlabel(sparsity_axis(rows))
    ax_ms.set_ylabel("Batch-1 latency (ms; dense median ÷ speed-up, bar to p90)")
    values = [r.b1_ms() for rs in rows.values() for r in rs if r.has("latency/b1_ms")]
    if max(values) > 10 * min(values):  # a wide spread (or a noisy run) needs a log axis
        ax_ms.set_yscale("log")
    else:
        ax_ms.set_ylim(bottom=0)
    ax_ms.set_title("Measured batch-1 latency")
    ax_ms.grid(alpha=0.3)
    ax_ms.legend(title="Model", fontsize="small")
    ax_x.axhline(1.0, color="grey", lw=1)
    ax_x.set_xlabel(sparsity_axis(rows))
    ax_x.set_ylabel("Speed-up over dense (×)")
    ax_x.set_title("Measured vs theoretical speed-up")
    ax_x.grid(alpha=0.3)
    if len(ax_x.get_legend_handles_labels()[1]) > 6:  # a methods sweep: keep the curves clear
        ax_x.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax_x.legend(fontsize="small")
    where = f" — {device}" + (f", {threads} threads" if threads else "") if device else ""
    if first_value(rows, "latency/fold_batchnorm"):
        where += ", BatchNorm folded (as deployed)"
    fig.suptitle(f"Latency vs sparsity{where}")
    _save(fig, path, dpi)
    return True


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points that no other point beats on both (lower latency, higher accuracy)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any(
            (l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc)
            for j, (l2, a2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def _label_clusters(
    pts: list[tuple[float, float]], cells: list[Row]
) -> list[tuple[tuple[float, float], list[str]]]:
    """One label per cluster of near-coincident points of one model (overprinted otherwise)."""
    xs = [p[0] for p in pts]
    lo, hi = min(r.acc().lo for r in cells), max(r.acc().hi for r in cells)  # the y-axis span
    dx, dy = 0.03 * ((max(xs) - min(xs)) or 1.0), 0.04 * ((hi - lo) or 1.0)
    clusters: list[tuple[tuple[float, float], Group, list[str]]] = []
    for (x, y), r in zip(pts, cells, strict=True):
        name = "dense" if r.is_baseline else f"{r.sparsity:g}"
        for (cx, cy), group, names in clusters:
            if group == r.group and abs(x - cx) <= dx and abs(y - cy) <= dy:
                names.append(name)
                break
        else:
            clusters.append(((x, y), r.group, [name]))
    return [(xy, names) for xy, _, names in clusters]


def _axis_share(x: float, xs: list[float], log: bool) -> float:
    """Where `x` lies between min(xs) (0) and max(xs) (1), on a log axis if `log`."""
    f = (lambda v: math.log(max(v, 1e-9))) if log else (lambda v: v)
    lo, hi = f(min(xs)), f(max(xs))
    return (f(x) - lo) / (hi - lo) if hi > lo else 0.5


def pareto(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """Accuracy vs batch-1 latency for every cell, the Pareto front marked."""
    cells = [
        r for rs in rows.values() for r in rs if r.has("latency/b1_ms") and r.acc() is not None
    ]
    if not cells:
        return False
    fig, (ax,) = _new(width=7.0, height=5.0)
    groups = list(rows)
    for i, group in enumerate(groups):
        mine = [r for r in cells if r.group == group]
        if not mine:
            continue
        ivs = [r.acc() for r in mine]
        ax.errorbar(
            [r.b1_ms() for r in mine],
            [100 * iv.mean for iv in ivs],
            yerr=[[100 * (iv.mean - iv.lo) for iv in ivs], [100 * (iv.hi - iv.mean) for iv in ivs]],
            ls="none",
            capsize=3,
            label=group_label(group, groups),
            **_style(i),
        )
    pts = [(r.b1_ms(), r.acc().mean) for r in cells]
    lats = [p[0] for p in pts]
    log_x = max(lats) / max(min(lats), 1e-9) > 10
    if log_x:
        ax.set_xscale("log")
    for (x, y), names in _label_clusters(pts, cells):
        # A label right of the rightmost points ran past the figure's edge: put those left.
        left = _axis_share(x, lats, log_x) > 0.8
        ax.annotate(
            ", ".join(names), (x, 100 * y), textcoords="offset points",
            xytext=(-6 if left else 6, 4), ha="right" if left else "left", fontsize="small",
        )  # fmt: skip
    front = pareto_front(pts)
    ax.plot(
        [pts[i][0] for i in front],
        [100 * pts[i][1] for i in front],
        color="black",
        lw=1,
        ls="-",
        marker="o",
        mfc="none",
        ms=14,
        label="Pareto front",
        drawstyle="steps-post",
    )
    ax.set_xlabel("Batch-1 latency (ms; dense median ÷ speed-up; lower is better)")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(
        "Accuracy vs latency (labels: sparsity)\n"
        "Pareto front: no other cell is both faster and more accurate"
    )
    ax.grid(alpha=0.3)
    ax.legend(title="Model", fontsize="small")
    _save(fig, path, dpi)
    return True


# file name -> (drawer, the keys it needs: named when the figure is omitted)
FIGURES: dict[str, tuple[Callable[..., bool], str]] = {
    "accuracy_vs_sparsity.png": (accuracy_vs_sparsity, "test/acc"),
    "change_vs_sparsity.png": (change_vs_sparsity, "paired intervals (`*_delta_ci_low/high`)"),
    "robust_vs_eps.png": (robust_vs_eps, "robust/curve_acc@epsK keys"),
    "size_vs_sparsity.png": (size_vs_sparsity, "size/disk_bytes or size/sparse_disk_bytes"),
    "latency_vs_sparsity.png": (latency_vs_sparsity, "latency/b1_ms"),
    "pareto_accuracy_latency.png": (pareto, "latency/b1_ms"),
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
