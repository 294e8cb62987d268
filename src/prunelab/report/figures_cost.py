"""The report's cost figures: size and latency against sparsity, and accuracy vs latency."""

from __future__ import annotations

import math
from pathlib import Path

from prunelab.report.advice import distinct_rows
from prunelab.report.aggregate import Group, Row, first_value
from prunelab.report.plotkit import (
    group_label,
    new_figure,
    place_legend,
    save_png,
    series_style,
    sparsity_axis,
)


def size_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """File size vs sparsity: the dense torch.save file and the compressed sparse export."""
    if not any(
        r.has("size/disk_bytes") or r.has("size/sparse_disk_bytes")
        for rs in rows.values()
        for r in rs
    ):
        return False
    fig, (ax,) = new_figure()
    groups = list(rows)
    for i, (group, rs) in enumerate(rows.items()):
        style = series_style(i)
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
    place_legend(ax, fontsize="small")
    save_png(fig, path, dpi)
    return True


def latency_vs_sparsity(rows: dict[Group, list[Row]], path: Path, dpi: int) -> bool:
    """Batch-1 latency, and measured vs theoretical speed-up, against sparsity."""
    if not any(r.has("latency/b1_ms") for rs in rows.values() for r in rs):
        return False
    fig, (ax_ms, ax_x) = new_figure(2, width=5.6)
    groups = list(rows)
    device = first_value(rows, "latency/device")
    threads = first_value(rows, "latency/threads")
    batch = next((r.first("latency/batch") for rs in rows.values() for r in rs), None) or "N"
    for i, (group, rs) in enumerate(rows.items()):
        style = series_style(i)
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
    place_legend(ax_ms, title="Model", fontsize="small")
    ax_x.axhline(1.0, color="grey", lw=1)
    ax_x.set_xlabel(sparsity_axis(rows))
    ax_x.set_ylabel("Speed-up over dense (×)")
    ax_x.set_title("Measured vs theoretical speed-up")
    ax_x.grid(alpha=0.3)
    # A methods sweep's 30+ entries in one column collapsed both panels to nothing.
    place_legend(ax_x, fontsize="small")
    where = f" — {device}" + (f", {threads} threads" if threads else "") if device else ""
    if first_value(rows, "latency/fold_batchnorm"):
        where += ", BatchNorm folded (as deployed)"
    fig.suptitle(f"Latency vs sparsity{where}")
    save_png(fig, path, dpi)
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
    """One label per cluster of near-coincident points (overprinted otherwise), each sparsity
    named once: the methods of a model time alike, so their cells of one sparsity coincide
    (the marker colours tell the methods apart)."""
    xs = [p[0] for p in pts]
    lo, hi = min(r.acc().lo for r in cells), max(r.acc().hi for r in cells)  # the y-axis span
    dx, dy = 0.03 * ((max(xs) - min(xs)) or 1.0), 0.04 * ((hi - lo) or 1.0)
    clusters: list[tuple[tuple[float, float], list[str]]] = []
    for (x, y), r in zip(pts, cells, strict=True):
        name = "dense" if r.is_baseline else f"{r.sparsity:g}"
        for (cx, cy), names in clusters:
            if abs(x - cx) <= dx and abs(y - cy) <= dy:
                if name not in names:
                    names.append(name)
                break
        else:
            clusters.append(((x, y), [name]))
    return clusters


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
    # The methods of one model share its dense network: one point, labelled once, not one
    # per method overprinting each other ("densdense").
    cells, _ = distinct_rows(cells)
    fig, (ax,) = new_figure(width=7.0, height=5.0)
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
            **series_style(i),
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
    place_legend(ax, title="Model", fontsize="small")
    save_png(fig, path, dpi)
    return True
