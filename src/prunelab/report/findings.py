"""Key findings, derived from the numbers; no claim of a difference that lies within noise."""

from __future__ import annotations

from collections.abc import Collection

from prunelab.report.aggregate import LAYER_PREFIX, Row, difference, layer_names, number
from prunelab.report.retraining import Retraining
from prunelab.report.tables import HEADLINE_ATTACK, megabytes, pct, pgd_setting, signed, times

# Batch-1 timings whose p90 exceeds this multiple of the median are called noisy.
NOISY_SPREAD = 1.5


def _noise_note(row: Row) -> str:
    n = row.mean("data/test_size")
    seeds = len(row.samples)
    test = f"n = {int(n)} test images" if n else "test-set size unknown"
    return f"{test}, {seeds} seed{'s' if seeds != 1 else ''}"


def _where(chosen: list[float], everything: list[float]) -> str:
    """'up to 0.5' when `chosen` is a run from the lowest sparsity, else 'at 0.2, 0.8'."""
    ordered = sorted(everything)
    if len(chosen) > 1 and sorted(chosen) == ordered[: len(chosen)]:
        return f"up to sparsity {max(chosen):g}"
    return "at sparsity " + ", ".join(f"{s:g}" for s in sorted(chosen))


def finetune_caveat(retraining: Retraining | None) -> str:
    """Why a small accuracy change against dense need not be pruning's doing."""
    retraining = retraining or Retraining()
    if retraining.rewound:
        how = f" ({retraining.text})" if retraining.text else ""
        return (
            "Caveat: these lottery-ticket models were not fine-tuned on top of the dense "
            "baseline's training: their surviving weights were rewound and retrained with the "
            f"masks{how}. A change against dense therefore compares two separate trainings "
            "(this retraining and the dense model's own), not extra epochs on top of the dense "
            "model's, and part of it can come from how each was trained rather than from pruning."
        )
    extra = (
        f" ({retraining.text})"
        if retraining.text
        else " (`finetune.max_epochs`, at `finetune`'s lr)"
    )
    return (
        f"Caveat: the pruned models had the fine-tuning epochs{extra} on top of the dense "
        "baseline's training, which the dense reference did not, so a small gain (or a loss "
        "smaller than pruning alone would cause) can be that extra training rather than pruning."
    )


def band_digits(*values: float) -> int:
    """Decimals that keep a change and its interval readable: 2 where one would round to ±0.0.

    '-0.2 pts; 95 % interval -0.3 to -0.0' hides that the interval excludes 0 (it ends at
    -0.04); '-0.16 pts; 95 % interval -0.28 to -0.04' shows it.
    """
    return 2 if any(abs(value) < 0.05 for value in values) else 1


def _change(row: Row, key: str, change: float) -> str:
    """'0.8 (-2.3 pts; 95 % interval -3.1 to -1.5)': a change with its paired band if known."""
    band = row.change(key)
    digits = 1 if band is None else band_digits(100 * change, band.lo, band.hi)
    text = f"{row.sparsity:g} ({signed(100 * change, ' pts', digits)}"
    if band is not None:
        what = "95 % band over seeds and images" if band.n_seeds > 1 else "95 % interval"
        text += f"; {what} {signed(band.lo, '', digits)} to {signed(band.hi, '', digits)}"
    return text + ")"


def accuracy_finding(rows: list[Row], retraining: Retraining | None = None) -> str:
    """Where pruning costs accuracy beyond noise, and up to which sparsity it does not.

    `retraining` describes the pruned models' training after pruning (retraining.py) for the
    caveat that follows any stated change.
    """
    if not rows or not rows[0].is_baseline:
        return "Accuracy: no dense baseline in this sweep, so no change can be judged."
    base_row, pruned = rows[0], rows[1:]
    base = base_row.acc()
    if base is None or not pruned:
        return " ".join(
            filter(None, ["Accuracy: no pruned cell with results.", control_finding(base_row)])
        )
    ivs = [(row, row.acc()) for row in pruned]
    ivs = [(row, iv) for row, iv in ivs if iv is not None]
    everything = [row.sparsity for row, _ in ivs]
    beyond = {row.sparsity for row, _ in ivs if row.differs("test/acc", base_row)}
    overlap = [row.sparsity for row, _ in ivs if row.sparsity not in beyond]
    # Point estimates inside the dense band, among the cells within noise only.
    inside = [row.sparsity for row, iv in ivs if row.sparsity in overlap and base.contains(iv.mean)]
    changes = [(row, difference(row, "test/acc", iv.mean, base.mean)) for row, iv in ivs]
    below = [(row, d) for row, d in changes if row.sparsity in beyond and d < 0]
    above = [(row, d) for row, d in changes if row.sparsity in beyond and d > 0]
    band = f"{pct(base.mean)}, band {pct(base.lo)}–{pct(base.hi)}; {_noise_note(base_row)}"
    parts = [f"Accuracy (dense {band}):"]
    if overlap:
        where = _where(overlap, everything)
        highest = "" if "up to" in where or len(overlap) == 1 else f" (highest {max(overlap):g})"
        if inside == overlap:  # naming the same sparsities twice reads as a misprint
            each = "its point estimate" if len(inside) == 1 else "each point estimate"
            tail = f", {each} inside the dense band."
        elif inside:
            tail = f"; point estimates inside the dense band {_where(inside, everything)}."
        else:
            tail = "."
        parts.append(f"within noise of dense {where}{highest}{tail}")
    else:
        parts.append("every pruned cell differs from dense beyond noise.")
    if below:
        worst = ", ".join(_change(row, "test/acc", d) for row, d in below)
        parts.append(f"Below the dense model beyond noise at sparsity {worst}.")
    if above:
        best = ", ".join(_change(row, "test/acc", d) for row, d in above)
        parts.append(f"Above the dense model beyond noise at sparsity {best}.")
    if not below and not above:
        seeds = len(base_row.seeds)
        limit = f"with {seeds} seeds" if seeds > 1 else "at this test-set size"
        parts.append(f"No accuracy difference is measurable at any sparsity {limit}.")
    else:
        parts.append(finetune_caveat(retraining))
    rewound = retraining is not None and retraining.rewound
    parts += filter(None, [control_finding(base_row), vs_control_finding(pruned, rewound)])
    return " ".join(parts)


def vs_control_finding(pruned: list[Row], rewound: bool = False) -> str | None:
    """Each pruned cell against the dense control: pruning's own effect, extra epochs cancelled
    (`rewound`: lottery tickets, whose change holds the rewinding too)."""
    bands = [(row, row.change("vs_control/test_acc")) for row in pruned]
    bands = [(row, band) for row, band in bands if band is not None]
    if not bands:
        return None
    cells = [_change(row, "vs_control/test_acc", band.mean / 100) for row, band in bands]
    beyond = [f"{row.sparsity:g}" for row, band in bands if not band.contains(0.0)]
    verdict = (
        "no change beyond noise at any sparsity"
        if not beyond
        else f"beyond noise at sparsity {', '.join(beyond)}"
    )
    what = (
        "Pruning and rewinding together (each rewound, retrained model against the dense "
        "control, which kept its trained weights; scored on the same images)"
        if rewound
        else "Pruning's own effect (each pruned model against the dense control, scored on the "
        "same images)"
    )
    return f"{what}: sparsity {', '.join(cells)}: {verdict}."


def control_finding(base_row: Row) -> str | None:
    """What the fine-tuning epochs alone do to the dense model (finetune.dense_control jobs)."""
    deltas = base_row.values("control/test_acc_delta_pts")
    if not deltas:
        return None
    what = "Dense control (the dense model fine-tuned for the same epochs, without pruning):"
    if len(deltas) == 1:
        low = base_row.values("control/test_acc_delta_ci_low")
        high = base_row.values("control/test_acc_delta_ci_high")
        band, d = "", 1
        if low and high:
            d = band_digits(deltas[0], low[0], high[0])
            band = f" (95 % paired interval {signed(low[0], '', d)} to {signed(high[0], '', d)})"
        return f"{what} {signed(deltas[0], ' pts', d)}{band} against the dense model."
    mean = sum(deltas) / len(deltas)
    return (
        f"{what} {signed(mean, ' pts')} on average over {len(deltas)} seeds (seed by seed "
        f"{signed(min(deltas))} to {signed(max(deltas))}) against the dense model."
    )


def size_finding(rows: list[Row]) -> str | None:
    """What the sparse export saves, and that the dense file does not shrink."""
    pruned = [r for r in rows if not r.is_baseline and r.has("size/reduction_pct")]
    if not pruned:
        return None
    top = max(pruned, key=lambda r: r.sparsity)
    text = (
        f"Size: the compressed sparse export at sparsity {top.sparsity:g} takes "
        f"{megabytes(top.mean('size/sparse_disk_bytes'))}, "
        f"{top.mean('size/reduction_pct'):.1f} % less than the dense baseline's file"
        f" ({megabytes(top.mean('size/disk_bytes_baseline'))})."
    )
    alone = rows[0].mean("size/reduction_pct") if rows and rows[0].is_baseline else None
    if alone is not None:
        text += (
            f" The dense model's own sparse export is already {alone:.1f} % smaller than its "
            "file: that much is compression alone, without pruning."
        )
    dense = [r.mean("size/disk_bytes") for r in rows if r.has("size/disk_bytes")]
    if dense and max(dense) <= 1.01 * min(dense):
        text += (
            f" The dense `torch.save` file stays at {megabytes(max(dense))} at every sparsity: "
            "zeros in dense tensors take the same space."
        )
    return text


def latency_noise(rows: list[Row]) -> float | None:
    """The worst p90 / median of batch-1 latency across rows, if beyond NOISY_SPREAD."""
    spreads = [s for s in (r.latency_spread() for r in rows) if s is not None]
    worst = max(spreads) if spreads else None
    return worst if worst is not None and worst > NOISY_SPREAD else None


def _shrunk(row: Row) -> bool:
    """Whether pruning physically removed parameters (structured), not just zeroed them."""
    params, dense = row.mean("size/params"), row.mean("size/params_baseline")
    return params is not None and dense is not None and params < dense


def _outside(cells: list[tuple[Row, float]], tolerance: float, batch: str = "b1") -> str:
    """'0.5 (1.15×; outside the ±10 % tolerance and the timing spread)' for claimed cells."""
    spread = all(
        r.has(f"latency/{batch}_p90_ms") and r.has(f"latency/{batch}_p90_ms_baseline")
        for r, _ in cells
    )
    why = f"outside the ±{100 * tolerance:.0f} % tolerance" + (
        " and the timing spread" if spread else ""
    )
    if len(cells) == 1:
        ((row, speedup),) = cells
        return f"{row.sparsity:g} ({times(speedup)}; {why})"
    return ", ".join(f"{r.sparsity:g} ({times(m)})" for r, m in cells) + f", each {why}"


def _claims(
    rows: list[Row], pruned: list[Row], tolerance: float, batch: str
) -> tuple[list[tuple[Row, float]], list[tuple[Row, float]]]:
    """The cells measured faster and slower than dense at `batch` ("b1", "bN"), beyond the
    tolerance and the timing spread; none where the dense job timed itself off by more."""
    itself = rows[0].self_speedup(batch) if rows[0].is_baseline else None
    if itself is not None and abs(itself - 1) > tolerance:
        return [], []
    faster, slower = [], []
    for r in pruned:
        speedup = r.mean(f"latency/{batch}_speedup")
        if speedup is None or (r.latency_spread(batch) or 0) > NOISY_SPREAD:
            continue
        verdict = r.speed_verdict(tolerance, batch)
        if verdict in ("faster", "slower"):
            (faster if verdict == "faster" else slower).append((r, speedup))
    return faster, slower


def _batch_n(
    faster: list[tuple[Row, float]], slower: list[tuple[Row, float]], size: object, tolerance: float
) -> str:
    """' At batch 256: faster than dense at 0.8 (2.10×; ...).' or '' (nothing to claim)."""
    parts = [f"{word} than dense at {_outside(cells, tolerance, 'bN')}"
             for word, cells in (("faster", faster), ("slower", slower)) if cells]  # fmt: skip
    if not parts:
        return ""
    return f" At batch {size if size is not None else 'N'}: " + "; ".join(parts) + "."


def speed_finding(rows: list[Row], tolerance: float) -> str | None:
    """Measured against theoretical speed-up; flags unstructured zeros that buy no time.

    No speed-up or slow-down is claimed where the group's dense job, timing the dense model
    against itself in the same interleaved way, measured a speed-up off 1 beyond `tolerance`:
    that is the timing noise itself. Batch 1 is judged first (the deployment latency); a
    batch-N gain or loss beyond noise is added, as batch N can gain where batch 1 does not.
    """
    pruned = [r for r in rows if not r.is_baseline and r.has("latency/b1_speedup")]
    if not pruned:
        return None
    measured = [(r, r.mean("latency/b1_speedup"), r.speed_verdict(tolerance)) for r in pruned]
    lo = min(measured, key=lambda m: m[1])
    hi = max(measured, key=lambda m: m[1])
    theory = [(r, r.mean("flops/theoretical_speedup")) for r in pruned]
    theory = [(r, t) for r, t in theory if t is not None]
    device = pruned[0].first("latency/device")
    threads = pruned[0].first("latency/threads")
    plural = "" if number(threads) == 1 else "s"
    where = f" on {device}" + (f", {threads} thread{plural}" if threads else "") if device else ""
    if len(measured) == 1:
        span = f"{times(lo[1])} (sparsity {lo[0].sparsity:g})"
    elif times(lo[1]) == times(hi[1]):  # "ranges 1.00x to 1.00x" would read as a misprint
        span = f"{times(lo[1])} at every sparsity"
    else:
        span = (
            f"ranges {times(lo[1])} (sparsity {lo[0].sparsity:g}) to {times(hi[1])} "
            f"(sparsity {hi[0].sparsity:g})"
        )
    text = f"Speed{where}: measured batch-1 speed-up {span}"
    top = max(theory, key=lambda t: t[1]) if theory else None
    if top:
        most = "" if len(theory) == 1 else "up to "
        text += f"; the MAC count promises {most}{times(top[1])} (sparsity {top[0].sparsity:g})"
    noise = latency_noise(rows)
    # A cell whose own timings (its model's or its baseline's) spread beyond NOISY_SPREAD
    # says nothing either way: a busy machine's tail, not the model, set its medians apart.
    measured = [
        (r, m, "same" if (r.latency_spread() or 0) > NOISY_SPREAD else v) for r, m, v in measured
    ]
    itself = rows[0].self_speedup() if rows[0].is_baseline else None
    noisy_itself = itself is not None and abs(itself - 1) > tolerance
    if noisy_itself:
        text += (
            "; no speed-up or slow-down is claimed: the dense job timed the dense model against "
            f"itself, interleaved as every job times its pruned model, and measured "
            f"{times(itself)}, off 1× by more than the ±{100 * tolerance:.0f} % tolerance, so "
            "these timings are noisy."
        )
        if noise is None:
            text += " Re-measure on an idle machine before relying on any speed number."
    else:
        faster, slower = _claims(rows, pruned, tolerance, "b1")
        faster_n, slower_n = _claims(rows, pruned, tolerance, "bN")
        if faster:
            text += f"; faster than dense at {_outside(faster, tolerance)}"
        if slower:
            text += f"; slower than dense at {_outside(slower, tolerance)}"
        # Cells off 1x by more than the tolerance but not past the timing spread: named, so
        # "no speed-up" does not read as contradicting the 1.14x printed just before it.
        spread = [(r, m) for r, m, v in measured if v == "same" and abs(m - 1) > tolerance]
        cells = ", ".join(f"{times(m)} at {r.sparsity:g}" for r, m in spread)
        verb = "lies" if len(spread) == 1 else "lie"
        if (faster or slower) and spread:
            text += f"; not claimed: {cells}, which {verb} within the timing spread"
        elif spread:
            text += (
                f"; no speed-up or slow-down is claimed: {cells} {verb} outside the "
                f"±{100 * tolerance:.0f} % tolerance but within the timing spread"
            )
        elif not faster and not slower:
            text += (
                f"; no speed-up or slow-down outside the ±{100 * tolerance:.0f} % tolerance and "
                "the timing spread"
            )
            if top and top[1] > 1 + tolerance and noise is None:
                if any(_shrunk(r) for r in pruned):
                    text += ". The smaller tensors' fewer multiply-adds did not turn into " \
                        "batch-1 time here"  # fmt: skip
                elif not faster_n:  # else said below
                    text += (
                        ". Unstructured zeros do not speed up dense kernels: only structured "
                        "pruning (smaller tensors) or sparse kernels would turn them into time"
                    )
        size = pruned[0].first("latency/batch")
        text += "." + _batch_n(faster_n, slower_n, size, tolerance)
    if noise is not None:
        busy = "the median; was the machine busy?"
        text += (
            f" Their p90 reaches {noise:.1f}× the median (was the machine busy?):"  # noisy: above
            if noisy_itself
            else f" These timings are noisy (p90 up to {noise:.1f}× {busy}):"
        ) + " re-measure on an idle machine before relying on any speed number."
    return text


def robustness_finding(rows: list[Row], figures: Collection[str] = ()) -> str | None:
    """How the study's PGD accuracy moves with sparsity, judged against subset noise;
    `figures`: the file names drawn for this report (a finding points only at those)."""
    if not rows or not rows[0].is_baseline:
        return None
    base = rows[0].robust(HEADLINE_ATTACK)
    pruned = [(r, r.robust(HEADLINE_ATTACK)) for r in rows[1:]]
    pruned = [(r, iv) for r, iv in pruned if iv is not None]
    if base is None or not pruned:
        return None
    n = rows[0].mean("robust/n_images")
    subset = f"n = {int(n)} images" if n else "subset size unknown"
    setting = pgd_setting(rows)
    text = f"Robustness (the study's PGD, {setting}; dense {pct(base.mean)}, {subset}):"
    beyond = [(r, iv) for r, iv in pruned if r.differs(HEADLINE_ATTACK, rows[0])]
    if not beyond:
        deltas = [100 * difference(r, HEADLINE_ATTACK, iv.mean, base.mean) for r, iv in pruned]
        text += (
            f" a change of {signed(deltas[0], ' pts')} lies"
            if len(deltas) == 1
            else f" changes of {signed(min(deltas), ' pts')} to {signed(max(deltas), ' pts')} "
            "all lie"
        ) + " within noise: no robustness effect of pruning is measurable here."
    else:
        text += " sparsity " + ", ".join(
            _change(r, HEADLINE_ATTACK, difference(r, HEADLINE_ATTACK, iv.mean, base.mean))
            for r, iv in beyond
        )
        rest = len(pruned) - len(beyond)
        text += " differ" + ("s" if len(beyond) == 1 else "") + " from dense beyond noise"
        text += (
            f"; {'the other sparsities do' if rest > 1 else 'the other does'} not." if rest else "."
        )
    if any(r.change(HEADLINE_ATTACK) is not None for r, _ in pruned):
        text += (
            " (Judged image by image: both models are attacked on the same images, so the "
            "change has a paired interval, narrower than two separate intervals.)"
        )
    if base.mean < 0.05:
        where = (
            "the ε curve (figure `robust_vs_eps.png`)"
            if "robust_vs_eps.png" in figures
            else "the robust-accuracy tables by ε"
        )
        text += (
            f" The dense model is already near 0 % at this ε: read {where} for where they differ."
        )
    return text


def layer_finding(rows: list[Row], figures: Collection[str] = ()) -> str | None:
    """How the highest sparsity spreads over the layers; names any layer pruned entirely
    (`figures`: as in robustness_finding)."""
    pruned = [r for r in rows if not r.is_baseline and layer_names([r])]
    if not pruned:
        return None
    top = max(pruned, key=lambda r: r.sparsity)
    shares = {n: top.mean(LAYER_PREFIX + n) for n in layer_names([top])}
    shares = {n: v for n, v in shares.items() if v is not None}
    if not shares:
        return None
    level = "channel ratio" if top.group.pruning == "structured" else "sparsity"
    low, high = min(shares, key=shares.__getitem__), max(shares, key=shares.__getitem__)
    if shares[high] - shares[low] < 0.005:
        text = f"Per layer at {level} {top.sparsity:g}: every layer loses {pct(shares[low], 0)}."
    else:
        text = (
            f"Per layer at {level} {top.sparsity:g}: from {pct(shares[low], 0)} of `{low}`'s "
            f"weights to {pct(shares[high], 0)} of `{high}`'s"
            + (" (figure `layer_sparsity.png`)." if "layer_sparsity.png" in figures else ".")
        )
    emptied = [
        f"`{n}` ({level} {r.sparsity:g})"
        for r in pruned
        for n in layer_names([r])
        if r.values(LAYER_PREFIX + n) and max(r.values(LAYER_PREFIX + n)) >= 1.0
    ]
    if emptied:
        text += (
            f" Pruned entirely in at least one seed: {', '.join(emptied)}; only a residual "
            "path carries a signal past such a layer."
        )
    return text


def seeds_note(rows: list[Row]) -> str | None:
    """Where pruned rows hold other seeds than the dense row (a failed or excluded job), say
    that each change is paired with the dense model of its own seeds, not the rows' means."""
    dense = rows[0] if rows and rows[0].is_baseline else None
    if dense is None:
        return None
    own = sorted(set(dense.seeds))
    other = [r for r in rows[1:] if sorted(set(r.seeds)) != own]
    if not other:
        return None
    names = "; ".join(f"{r.sparsity:g}: {_seed_list(r.seeds)}" for r in other)
    return (
        f"**Seeds differ between rows** (dense: {_seed_list(own)}; sparsity {names}): each "
        "change is against the dense model of the same seeds, so it is not the difference "
        "of the rows' means."
    )


def _seed_list(seeds: list[int]) -> str:
    ordered = sorted(set(seeds))
    return ("seed " if len(ordered) == 1 else "seeds ") + ", ".join(str(s) for s in ordered)


def group_findings(
    rows: list[Row],
    tolerance: float,
    retraining: Retraining | None = None,
    figures: Collection[str] = (),
) -> list[str]:
    """All findings for one model, in reading order (`retraining`: see accuracy_finding;
    `figures`: the figure file names drawn, which a finding may point at)."""
    found = [f for f in (seeds_note(rows), accuracy_finding(rows, retraining)) if f]
    extras = (size_finding(rows), speed_finding(rows, tolerance), robustness_finding(rows, figures))
    for extra in (*extras, layer_finding(rows, figures)):
        if extra:
            found.append(extra)
    return found
