"""report.md: completeness, key findings, recommendations, tables, figures, how to read it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from prunelab.report.advice import Profile, recommend, timing_noise
from prunelab.report.aggregate import Group, Row, first_value
from prunelab.report.collect import SweepData
from prunelab.report.findings import group_findings, latency_noise
from prunelab.report.plotkit import group_label
from prunelab.report.retraining import group_retraining
from prunelab.report.tables import (
    detail_table,
    headline_table,
    methods_table,
    pgd_setting,
    robust_keys,
    robust_tables,
)
from prunelab.report.wandb_summary import WandbOutcome

EVAL_GROUPS = {
    "robust/": "robustness",
    "latency/": "latency",
    "size/": "size",
    "flops/": "FLOPs",
}


def _values(items: Iterable) -> str:
    return ", ".join(sorted({f"{v:g}" if isinstance(v, float) else str(v) for v in items}))


def _in_order(items: Iterable[str]) -> str:
    """Distinct names in the order the report's sections give them (the sweep's)."""
    return ", ".join(dict.fromkeys(items))


def completeness(data: SweepData) -> list[str]:
    """The sweep's missing, failed, unfinished and excluded cells (or that all are there)."""
    lines = ["## Sweep completeness", ""]
    expected = len(data.expected) if data.expected is not None else None
    ok = len(data.ok)
    outside = data.outside
    # Count the grid's own cells only: jobs of earlier launches into this folder are no part
    # of the latest grid, and counting them gave "5 of 1" or "All 1" beside five results.
    grid = set(data.expected or [])
    ok_in_grid = len({j.cell for j in data.ok if j.cell in grid})
    of_latest = " of the latest launch (`multirun.yaml`)" if outside else ""
    if expected is None:
        why = (
            "no readable `multirun.yaml`"
            if data.multirun is None
            else "`multirun.yaml` names no grid of models, data, methods, sparsities and seeds"
        )
        lines.append(
            f"{ok} job{'s' if ok != 1 else ''} with results; the expected grid is unknown "
            f"({why}), so only what is present is reported."
        )
    elif ok_in_grid == expected == 1:
        lines.append(f"The one expected cell{of_latest} has results.")
    elif ok_in_grid == expected:
        lines.append(f"All {expected} expected cells{of_latest} have results.")
    else:
        lines.append(f"**{ok_in_grid} of {expected} expected cells{of_latest} have results.**")
    if outside:
        extra_ok = sum(j.status == "ok" for j in outside)
        names = ", ".join(f"`{j.name}`" for j in outside[:6]) + (" …" if len(outside) > 6 else "")
        lines[-1] += (
            f" This folder also holds {len(outside)} job{'s' if len(outside) != 1 else ''} "
            f"outside that grid ({extra_ok} with results), from earlier launches into the same "
            f"folder: {names}. Their results are tabulated with the rest."
        )
    if expected is not None and (data.failed or data.missing or data.incomplete):
        lines[-1] += " The rest:" if not outside else " Without results:"
    lines.append("")
    earlier = {id(j) for j in outside}
    for job in data.failed:
        tag = " (earlier launch)" if id(job) in earlier else ""
        lines.append(f"- FAILED `{job.name}`{tag}: {job.failed}")
    for job in data.incomplete:
        tag = " (earlier launch)" if id(job) in earlier else ""
        lines.append(
            f"- UNFINISHED `{job.name}`{tag}: neither results.json nor FAILED (killed or running)"
        )
    for cell in data.missing:
        lines.append(f"- MISSING `{cell.label}`: no job folder in this sweep")
    for name, why in data.excluded:
        lines.append(f"- EXCLUDED `{name}`: {why}")
    for note in data.notes:
        lines.append(f"- Note: {note}")
    return lines


def _eval_note(data: SweepData) -> str | None:
    keys = {k for j in data.ok for k in j.results}  # type: ignore[union-attr]
    absent = [
        name for prefix, name in EVAL_GROUPS.items() if not any(k.startswith(prefix) for k in keys)
    ]
    if not absent or not data.ok:
        return None
    return (
        f"The jobs' results.json carry no {', '.join(absent)} measurements (keys "
        f"{', '.join(f'`{p}…`' for p, n in EVAL_GROUPS.items() if n in absent)}): this sweep ran "
        "without them, so the columns, findings, figures and recommendations that need them are "
        "left out below. Rerun the sweep with the evaluation module to fill them in."
    )


def attack_text(cfg: object) -> str | None:
    """The sweep's attack settings in words (steps change between experiments), if known."""
    from omegaconf import OmegaConf

    def get(key: str) -> object:
        try:
            return OmegaConf.select(cfg, f"attack.{key}", default=None)  # type: ignore[arg-type]
        except Exception:
            return None

    if cfg is None or get("pgd") is None:
        return None
    parts = [
        f"PGD {get('pgd.steps')} steps, ε = {get('pgd.eps')}, step {get('pgd.alpha')}, "
        f"on {get('n_images') or 'all'} test images (seed {get('seed')})"
    ]
    # An empty list skips that attack (conf/attack/default.yaml): describe only what ran.
    curve = get("curve.eps_255")
    if curve:
        ks = ", ".join(f"{k:g}" if isinstance(k, float) else str(k) for k in curve)
        parts.append(f"ε curve: PGD {get('curve.steps')} steps at ε = K/255 for K = {ks}")
    fgsm = get("fgsm_eps")
    if fgsm:
        parts.append(f"FGSM at ε = {', '.join(str(e) for e in fgsm)}")
    if get("cascade"):
        parts.append(
            "cascade: each robust accuracy is the per-image worst case over every attack "
            "at that ε or below"
        )
    return "; ".join(parts)


def robust_caption(rows: list[Row]) -> str:
    """Which attacks the robust tables of `rows` hold, in words: only those that ran."""
    keys = [key for key, _ in robust_keys(rows) if any(row.has(key) for row in rows)]
    study = [
        name
        for name, prefix in (("FGSM", "robust/fgsm_acc@"), ("PGD", "robust/pgd_acc"))
        if any(k.startswith(prefix) for k in keys)
    ]
    parts = [f"{' and '.join(study)} at the study's ε"] if study else []
    if any(k.startswith("robust/curve_acc@") for k in keys):
        parts.append("the PGD ε curve")
    return f" ({', then '.join(parts)})" if parts else ""


def render(
    data: SweepData,
    rows: dict[Group, list[Row]],
    profiles: list[Profile],
    figures: list[Path],
    omitted_figures: list[str],
    wandb: WandbOutcome | None,
    tolerance: float,
    attacks: str | None = None,
) -> str:
    """The whole report as markdown; `attacks` describes the attack settings (see attack_text)."""
    groups = list(rows)
    all_rows = [r for rs in rows.values() for r in rs]
    ok = data.ok
    results = [j.results for j in ok]
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"# Sweep report: `{data.name}`", ""]
    if results:
        out.append(
            f"Models: {_in_order(g.model for g in groups)} · data: "
            f"{_in_order(g.data for g in groups)} · pruning: "
            f"{_in_order(g.pruning for g in groups)} · sparsities: "
            f"{_values(float(r['sparsity']) for r in results)} · seeds: "
            f"{_values(int(r['seed']) for r in results)}."
        )
        out.append("")
    out.append(
        f"Generated {now} from `{data.sweep_dir}/*/results.json` "
        f"({len(ok)} job{'s' if len(ok) != 1 else ''}); "
        "every number below is measured in those files. Per-job rows: `results.csv`."
    )
    out += ["", *completeness(data), ""]
    note = _eval_note(data)
    if note:
        out += [f"> {note}", ""]
    if not rows:
        out += ["No job of this sweep has results yet: nothing to tabulate.", ""]
        return "\n".join(out)

    out += ["## Key findings", ""]
    # Each group's own jobs say how they were trained after pruning: the latest multirun.yaml
    # is one launch's, and `pruning=lottery` retrains at its own learning rate.
    retraining = group_retraining(data.ok)
    drawn = {p.name for p in figures}
    for group, rs in rows.items():
        out.append(f"**{group_label(group, groups)}**")
        out.append("")
        out += [f"- {f}" for f in group_findings(rs, tolerance, retraining.get(group), drawn)]
        out.append("")

    out += ["## Deployment recommendations", ""]
    by_data: dict[str, list[Row]] = {}
    for group, rs in rows.items():
        by_data.setdefault(group.data, []).extend(rs)
    device = first_value(rows, "latency/device")
    if device and first_value(rows, "latency/fold_batchnorm"):
        device += " with BatchNorm folded into the convolutions, as deployed"
    out.append(
        "Chosen from the measured cells (dense included): the most accurate cell that fits the "
        "profile, unless another fitting cell within its accuracy noise is more than "
        f"{100 * tolerance:.0f} % faster or smaller, as the profile prefers. Size = the smaller "
        "of the sparse export and the dense file. "
        + (f"Latency was measured on {device}; re" if device else "Re")
        + "-measure latency on the target hardware before deploying."
    )
    noise = latency_noise(all_rows)
    itself = max(timing_noise(all_rows).values(), default=0.0)
    if noise is not None or itself > tolerance:
        why = [f"p90 up to {noise:.1f}× the median"] if noise is not None else []
        if itself > tolerance:
            why.append(
                f"the dense model timed against itself is off 1× by up to {100 * itself:.0f} %"
            )
        out[-1] += (
            f" **Latency in this sweep is noisy** ({'; '.join(why)}): the latency-based "
            "choices below are provisional."
        )
    out.append("")
    for data_name, rs in by_data.items():
        if len(by_data) > 1:
            out += [f"*{data_name}*", ""]
        out += [f"- {recommend(p, rs, tolerance)}" for p in profiles]
        out.append("")

    compared = methods_table(rows, tolerance)
    if compared:
        out += ["## Methods side by side", ""]
        out.append(
            "Every pruned cell against the dense baseline its method shares (sparsity: the "
            "share of prunable weights zeroed; for `structured`, the share of channels removed "
            "per layer, whose weight and MAC shares are in its fuller table)."
        )
        out.append("")
        for title, table in compared:
            out += [f"**{title}**", "", table, ""]

    out += ["## Results", ""]
    for group, rs in rows.items():
        out += [f"### {group_label(group, groups)}", ""]
        dense = rs[0] if rs[0].is_baseline else None
        if dense is None:
            out += ["No dense baseline for this model in the sweep.", ""]
        elif dense.source != "job":
            out += [
                "The dense row comes from the `*_baseline` keys that the pruned jobs carry "
                "(they share one baseline per seed: `baseline/key`)"
                + (
                    "; its latency is the median over those jobs."
                    if dense.has("latency/b1_ms")
                    else "."
                ),
                "",
            ]
        table, omitted = headline_table(rs, tolerance)
        out += [table, ""]
        if omitted:
            out += [f"Columns without data left out: {', '.join(omitted)}.", ""]
        table, _ = detail_table(rs, tolerance)
        out += ["Fuller table:", "", table, ""]
        robust = robust_tables(rs)
        if robust:
            n = dense.mean("robust/n_images") if dense else None
            out += [
                "Robust accuracy by attack and ε"
                + (f" on a fixed subset of {int(n)} test images" if n else "")
                + robust_caption(rs)
                + "; in brackets the change vs dense in points, `~` = within noise:",
                "",
            ]
            for table in robust:
                out += [table, ""]

    out += ["## Figures", ""]
    if not figures and not omitted_figures:
        out += ["Figures were switched off for this report (`report.figures=false`).", ""]
    for path in figures:
        out += [f"![{path.stem.replace('_', ' ')}]({path.name})", ""]
    if any(p.name.startswith("pareto") for p in figures):
        out += [
            "The Pareto front is drawn through point estimates; cells whose accuracy bands "
            "overlap are not distinguishable in accuracy, nor cells whose speed-ups lie within "
            f"the ±{100 * tolerance:.0f} % speed tolerance in latency (the front can pass through "
            "either of them).",
            "",
        ]
    if omitted_figures:
        out += ["Figures left out for lack of data:", ""]
        out += [f"- {line}" for line in omitted_figures]
        out.append("")

    out += ["## Weights & Biases", ""]
    if wandb is None or wandb.skipped:
        out.append(f"No summary run: {wandb.skipped if wandb else 'disabled for this report'}.")
    elif wandb.error:
        out.append(f"The summary run failed ({wandb.error}); this report is complete without it.")
    else:
        out.append(
            f"Summary run `report-{data.name}` in group `{wandb.group}` (mode {wandb.mode})"
            + (f": {wandb.url}" if wandb.url else "")
            + "."
        )
        if wandb.mode in ("offline", "dryrun") and wandb.run_dir:
            out[-1] += (
                f" Upload it and the job runs later with `wandb sync {wandb.run_dir}` "
                f"and `wandb sync {data.sweep_dir}/*/wandb/offline-run-*`."
            )
    out.append("")

    out += [
        "## How to read this report",
        "",
        "- Sparsity = fraction of the prunable weights (all Conv2d and Linear weights) set to "
        "zero; the fuller table shows the zeros measured among those and among all parameters.",
        "- Test accuracy: 95 % Wilson interval on the test split for one seed; with several seeds "
        "mean ± std across seeds, and the band used for comparisons is never narrower than the "
        "test-set interval.",
        "- Changes against dense (Δ acc, Robustness Impact, the robust tables' brackets) are "
        "judged image by image: both models are scored on the same images, and a change is "
        "claimed only where its 95 % paired interval (`_delta_ci_low/high` in results.csv) "
        "excludes 0; with several seeds, the mean change ± the root sum of squares of the "
        "seeds' 95 % half-width (Student t) and that interval's. Results without paired "
        "intervals fall back to non-overlapping bands. Cells compared with each other "
        "(recommendations) are judged paired where they share a dense model: a pruned cell "
        "and that model by the paired interval, two of its pruned cells by whether their "
        "paired intervals overlap; cells of different models (or seeds) by overlapping bands "
        "above, which miss smaller differences.",
        "- Size Reduction = 1 − compressed sparse export / dense baseline's `torch.save` file. "
        "The dense row's own figure is its export's: what compression alone gives, without "
        "pruning.",
        "- Speed Improvement = dense baseline time / pruned time at batch 1, measured interleaved "
        "in the same job; theoretical = dense MACs / non-zero MACs. The dense row's measured "
        'speed-ups ("vs itself") time the dense model against itself the same way: how far '
        "they are off 1× is the timing noise.",
        "- Batch-1 latency (tables, figures, recommendations) is *aligned*: the dense model's "
        "median latency over the sweep's jobs ÷ each cell's in-job speed-up. Absolute times of "
        "different jobs drift with the machine's load; the in-job speed-up does not. Raw "
        "per-job times are `latency/b1_ms` in results.csv.",
        f"- Robustness Impact = change of the study's PGD accuracy ({pgd_setting(all_rows)}) "
        "against the same model's dense baseline, in points and relative %."
        + (f" Attacks as configured for this sweep: {attacks}." if attacks else ""),
        f"- Measured speed-ups within ±{100 * tolerance:.0f} % of 1× count as no speed-up.",
        "",
    ]
    return "\n".join(out)
