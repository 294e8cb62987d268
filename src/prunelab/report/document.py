"""report.md: completeness, key findings, recommendations, tables, figures, how to read it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from prunelab.report.advice import Profile, recommend
from prunelab.report.aggregate import Group, Row, first_value
from prunelab.report.collect import SweepData
from prunelab.report.findings import group_findings, latency_noise
from prunelab.report.plotkit import group_label
from prunelab.report.tables import (
    detail_table,
    headline_table,
    methods_table,
    pgd_setting,
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
    if get("curve") is not None:
        parts.append(f"ε curve: PGD {get('curve.steps')} steps at ε = K/255")
    if get("fgsm_eps") is not None:
        parts.append(f"FGSM at ε = {', '.join(str(e) for e in get('fgsm_eps'))}")
    if get("cascade"):
        parts.append(
            "cascade: each robust accuracy is the per-image worst case over every attack "
            "at that ε or below"
        )
    return "; ".join(parts)


def finetune_text(cfg: object) -> str | None:
    """The pruned models' extra training in words ('10 epochs at lr 0.0001'), if known."""
    from omegaconf import OmegaConf

    try:
        epochs = OmegaConf.select(cfg, "finetune.max_epochs", default=None)  # type: ignore[arg-type]
        lr = OmegaConf.select(cfg, "finetune.optimizer.lr", default=None)  # type: ignore[arg-type]
    except Exception:  # no config, or one that needs a Hydra runtime to resolve
        return None
    if epochs is None:
        return None
    text = f"`finetune.max_epochs` = {epochs} epoch{'s' if epochs != 1 else ''}"
    return text + (f" at lr {lr:g}" if isinstance(lr, int | float) else "")


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
            f"Models: {_values(r['model'] for r in results)} · data: "
            f"{_values(r['data'] for r in results)} · pruning: "
            f"{_values(r['pruning'] for r in results)} · sparsities: "
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
    finetune = finetune_text(data.multirun)
    for group, rs in rows.items():
        out.append(f"**{group_label(group, groups)}**")
        out.append("")
        out += [f"- {f}" for f in group_findings(rs, tolerance, finetune)]
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
    noise = latency_noise([r for rs in rows.values() for r in rs])
    if noise is not None:
        out[-1] += (
            f" **Latency in this sweep is noisy** (p90 up to {noise:.1f}× the median): the "
            "latency-based choices below are provisional."
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
                + " (FGSM and PGD at the study's ε, then the PGD ε curve); in brackets "
                "the change vs dense in points, `~` = within noise:",
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
            "overlap are not distinguishable in accuracy.",
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
        "(recommendations, Pareto) use the bands above.",
        "- Size Reduction = 1 − compressed sparse export / dense baseline's `torch.save` file. "
        "The dense row's own figure is its export's: what compression alone gives, without "
        "pruning.",
        "- Speed Improvement = dense baseline time / pruned time at batch 1, measured interleaved "
        "in the same job; theoretical = dense MACs / non-zero MACs.",
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
