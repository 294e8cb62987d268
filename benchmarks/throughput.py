"""1. Training throughput: the Lightning pipeline against a minimal raw PyTorch loop."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from common import Section, conf, paired_ratio, progress, table, verdict
from pipeline_fit import BARE, measure_pair
from torch import nn

from prunelab.data import FashionMNISTDataModule

TARGET = 0.95
JOB_STEPS_PER_EPOCH = 125  # train_size 4000 / batch 32 in conf/data/fashion_mnist.yaml
PROBE_JOB = "job setup"
PROBE_NO_BAR = "job setup, progress bar off"
PROBE_BARE = "bare Trainer"


def job_extras(wandb: bool) -> frozenset[str]:
    """The job's extras: CSV log, EpochSeed, checkpoint, and the bar if the config has it on."""
    extras = {"csv", "checkpoint", "epoch_seed"}
    if conf("trainer/default").get("enable_progress_bar", True):
        extras.add("progress_bar")
    if wandb:
        extras.add("wandb")
    return frozenset(extras)


def overhead_probe(p: dict, extras: frozenset[str], root: Path, device) -> dict[str, float]:
    """Seconds of Lightning overhead per step with a near-zero-compute net, per setup.

    With a single Linear layer the step's compute is tens of µs, so the overhead per step is
    measured precisely however busy the machine is; it carries over to real models as an
    estimate (the same Python work per step). The setups peel the job apart: without the
    progress bar, then without logger, checkpoint and `EpochSeed` (the bare Trainer: Lightning's
    loop and `Classifier` alone).
    """
    c, h, w = FashionMNISTDataModule.in_shape
    tiny = lambda: nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 10))  # noqa: E731
    setups = {PROBE_JOB: extras, PROBE_NO_BAR: extras - {"progress_bar"}, PROBE_BARE: BARE}
    if "progress_bar" not in extras:  # the config has the bar off: that row would repeat
        del setups[PROBE_NO_BAR]
    progress(f"throughput: overhead probe, {len(setups)} setups x {p['rounds']} rounds (tiny net)")
    out = {}
    for i, (name, ex) in enumerate(setups.items()):
        r = measure_pair("tiny", p["steps"], p["rounds"], ex, root / f"probe{i}", device, tiny)
        pairs = zip(r["lightning_s"], r["raw_s"], strict=True)
        out[name] = statistics.median((a - b) / p["steps"] for a, b in pairs)
    return out


def _miss_note(model: str, ratio: float, raw: float, numbers: dict, found: dict) -> str:
    """Why `model` misses the target: its overhead by phase, against the probe's figure."""
    split = numbers["split_s_per_step"]
    us = lambda s: f"{1e6 * s:.0f} µs"  # noqa: E731
    job = found[PROBE_JOB]
    diff = phase_differences(numbers["phases_s"])
    ranked = sorted(diff.items(), key=lambda kv: -kv[1])
    by_phase = ", ".join(f"{PHASE_NAMES[k]} {1e6 * v:+.0f} µs" for k, v in ranked)
    text = (
        f"- **{model} misses the target** ({ratio:.3f}): the pipeline adds "
        f"{us(split['overhead_s'])} per step to a {1e3 * raw:.1f} ms raw step; by phase: "
        f"{by_phase}. The probe (near-zero-compute net) measures the same job setup's overhead "
        f"at {us(job)} per step: between real training kernels the same Python work takes "
        f"{split['overhead_s'] / job:.1f}× as long as in the probe's tight loop (most likely "
        "caches and branch predictors gone cold during the step's compute), and no setting of "
        "the job removes it."
    )
    bare = found[PROBE_BARE]
    return text + (
        f" Of the probe's {us(job)}, {us(bare)} is the bare Trainer: Lightning's loop (hook "
        "dispatch, the optimizer closure, the result collection) and `Classifier` (which keeps "
        "per-step outputs as they are and does its bookkeeping once per logging window)."
    )


PHASE_NAMES = {
    "forward": "forward (Lightning: its way into the optimizer closure, `training_step`)",
    "zero_grad": "`zero_grad`",
    "backward": "backward",
    "optimizer": "optimizer update (Lightning: with its hooks around it)",
    "between": "between steps (next batch, hooks, logging, per-epoch work)",
}


def phase_differences(phases: dict) -> dict[str, float]:
    """Seconds per step the pipeline spends over the raw loop, per phase."""
    return {k: phases["lightning"][k] - phases["raw"][k] for k in phases["raw"]}


def _phase_rows(model: str, phases: dict) -> list[list[str]]:
    """Rows of the phase table: raw and pipeline µs per step and the difference."""
    if not phases["raw"] or not any(phases["raw"].values()):
        return []  # not clocked (GPU)
    row = lambda name, raw, ours: [  # noqa: E731
        model,
        name,
        f"{1e6 * raw:.0f}",
        f"{1e6 * ours:.0f}",
        f"{1e6 * (ours - raw):+.0f}",
    ]
    rows = [row(n, phases["raw"][k], phases["lightning"][k]) for k, n in PHASE_NAMES.items()]
    rows.append(row("**step**", sum(phases["raw"].values()), sum(phases["lightning"].values())))
    return rows


def _breakdown(model: str, job: dict, steps: int) -> tuple[list, dict]:
    """Per-step overhead split by component (µs per step and % of the raw step)."""
    raw_step = statistics.median(job["raw_s"]) / steps
    overhead = statistics.median(
        (a - b) / steps for a, b in zip(job["lightning_s"], job["raw_s"], strict=True)
    )
    parts = {k: s / job["steps_total"] for k, s in job["component_s"].items()}
    parts["rest"] = overhead - sum(parts.values())
    cell = lambda s: f"{1e6 * s:+.0f} µs ({100 * s / raw_step:+.2f} %)"  # noqa: E731
    row = [model, f"{1e3 * raw_step:.1f} ms", cell(overhead)]
    row += [cell(parts[k]) if k in parts else "off" for k in ("progress_bar", "csv", "checkpoint")]
    if "checkpoint" in parts:  # per epoch: a job's epochs are longer than this run's
        row[-1] += f"; {cell(parts['checkpoint'] * steps / JOB_STEPS_PER_EPOCH)} at 125 steps/epoch"
    row.append(cell(parts["rest"]))
    return row, {"raw_step_s": raw_step, "overhead_s": overhead, **parts}


def run(plan: dict, probe: dict, root: Path, device: torch.device, wandb: bool = False) -> Section:
    """Section 1 for every model of `plan` ({model: {"steps", "rounds", "bare_rounds"}}).

    `probe` ({"steps", "rounds"}) sizes the overhead probe with a near-zero-compute net.
    """
    section = Section("1. Training throughput: Lightning pipeline vs raw PyTorch loop")
    rows, split_rows, phase_rows, notes = [], [], [], []
    extras = job_extras(wandb)
    for model, p in plan.items():
        steps = p["steps"]
        progress(f"throughput {model}: job setup, {p['rounds']} rounds of {steps} steps")
        job = measure_pair(model, steps, p["rounds"], extras, root / f"{model}-job", device)
        progress(f"throughput {model}: bare Trainer, {p['bare_rounds']} rounds")
        bare = measure_pair(model, steps, p["bare_rounds"], BARE, root / f"{model}-bare", device)
        # Same images per epoch on both sides: throughput ratio = raw seconds / Lightning seconds.
        r_job = paired_ratio(job["raw_s"], job["lightning_s"])
        r_bare = paired_ratio(bare["raw_s"], bare["lightning_s"])
        split_row, split = _breakdown(model, job, steps)
        split_rows.append(split_row)
        phase_rows += _phase_rows(model, job["phases_s"])
        ips = {k: 32 * steps / statistics.median(job[k]) for k in ("raw_s", "lightning_s")}
        word = verdict(r_job, TARGET, True)
        rows.append(
            [model, steps, f"{ips['raw_s']:,.0f}", f"{ips['lightning_s']:,.0f}", r_job.text()]
            + [word, r_bare.text()]
        )
        section.summary.append(
            [f"1. pipeline ÷ raw images/s, {model}", f"≥ {TARGET}", r_job.text(), word]
        )
        section.numbers[model] = {
            "ratio_job": r_job.__dict__,
            "ratio_bare": r_bare.__dict__,
            "images_per_s": ips,
            "split_s_per_step": split,
            "phases_s": job["phases_s"],
        }
    found = overhead_probe(probe, extras, root, device)
    raw_steps = {m: section.numbers[m]["split_s_per_step"]["raw_step_s"] for m in plan}
    probe_rows = [
        [name, f"{1e6 * s:.0f} µs"] + [f"{raw / (raw + s):.3f}" for raw in raw_steps.values()]
        for name, s in found.items()
    ]
    section.numbers["overhead_probe_s_per_step"] = found
    for model, raw in raw_steps.items():
        ratio = section.numbers[model]["ratio_job"]["median"]
        if ratio < TARGET:
            notes.append(_miss_note(model, ratio, raw, section.numbers[model], found))
    section.lines += [
        f"Target: images/s of the pipeline ÷ images/s of the raw loop ≥ {TARGET}. "
        "Ratio = median over epochs of (raw seconds ÷ Lightning seconds over the epoch's "
        "steps). The two sides alternate step by step in one process (a raw step before each "
        "Lightning step), so machine load that drifts over seconds falls on both alike; a "
        "Lightning step runs from one `on_train_batch_start` to the next, so per-epoch work "
        "counts too. Epoch 0 is warm-up and dropped.",
        "",
        *table(
            [
                "model",
                "steps/epoch",
                "raw img/s",
                "pipeline img/s",
                "ratio (job setup)",
                "verdict",
                "ratio (bare Trainer)",
            ],
            rows,
        ),
        "",
        "Where the pipeline's extra time per step goes (same run; the progress bar, CSV logger "
        "and checkpoint clock their own hooks; 'rest' = paired overhead − those, i.e. "
        "Lightning's loop and hooks and `Classifier.training_step`, which keeps each step's "
        "logits, labels and loss as they are and checks them for NaN, sums them and calls "
        "`self.log` once per logging window; noisy, as a difference):",
        "",
        *table(
            [
                "model",
                "raw step",
                "pipeline overhead",
                "progress bar",
                "CSV logger",
                "checkpoint (per epoch, spread over its steps)",
                "rest",
            ],
            split_rows,
        ),
        "",
        "The same run by phase of a step (µs per step, mean over the measured epochs; each "
        "side's phases are clocked inside its own steps, the pipeline's from its hooks: "
        "`on_train_batch_start`, `on_before_zero_grad`, `on_before_backward`, "
        "`on_after_backward`, `on_train_batch_end`). The raw loop's `optimizer.step()` is one "
        "phase; the pipeline enters `optimizer.step` before `training_step` (Lightning runs "
        "forward and backward in the optimizer's closure), so part of that call's cost shows "
        "in its forward phase:",
        "",
        *table(["model", "phase", "raw µs", "pipeline µs", "difference"], phase_rows),
        "",
        "**Overhead probe** (where the per-step overhead lies): the same pairing with a "
        "near-zero-compute net (one Linear layer), so each setup's Lightning overhead per step "
        "is measured precisely; the projected ratio is raw step ÷ (raw step + that overhead), "
        "with each model's raw step from the table above. Setups: the job setup as above; "
        + ("the same with the progress bar off; " if "progress_bar" in extras else "")
        + "the bare Trainer (no logger, bar, checkpoint or `EpochSeed`). All use `Classifier` "
        "as it is: `self.log` of the step loss only on logging steps (every "
        "`log_every_n_steps`), the epoch loss and accuracy once in `on_train_epoch_end`. With "
        "almost no compute between them, the hooks run with warm caches: the probe is the "
        "floor of Lightning's per-step cost, the phase table above its cost in a real run.",
        "",
        *table(
            ["setup", "Lightning overhead per step"]
            + [f"projected ratio, {m} ({1e3 * raw:.1f} ms step)" for m, raw in raw_steps.items()],
            probe_rows,
        ),
        "",
        "- **Pipeline (job setup)**: `Classifier` (fine-tuning optimizer and cosine schedule of "
        "conf/config.yaml) + `FashionMNISTDataModule(...).train_dataloader()` "
        "(conf/data/fashion_mnist.yaml) + the `lightning.Trainer` of conf/trainer/default.yaml "
        "(`log_every_n_steps`, `deterministic`, the `NullProfiler` of prunelab/lean.py, ...) "
        "with the fine-tuning stage's callbacks minus pruning (`EpochSeed`, per-epoch "
        "`ModelCheckpoint(save_last)`, prunelab/lean.py's, as in a job), "
        + (
            "CSV logger (conf/logger/csv.yaml) + offline W&B logger (this run: `--wandb`), "
            if wandb
            else "CSV logger (conf/logger/csv.yaml; the offline W&B logger only with `--wandb`), "
        )
        + (
            "**progress bar on** as in a job (conf/config.yaml `progress_bar`: Lightning's TQDM "
            "bar redrawn every `refresh_rate` steps, rendered to /dev/null: "
            "its formatting and writes are paid, the terminal is not). "
            if "progress_bar" in extras
            else "progress bar off (as conf/trainer/default.yaml says). "
        )
        + "Validation off (`limit_val_batches=0`): this is training throughput and the raw "
        "loop does not validate either.",
        "- **Bare Trainer**: the same `Trainer`/`Classifier`, no logger, no progress bar, no "
        "checkpoint: the cost of Lightning's loop and our module alone.",
        "- **Raw loop**: the same initial weights and Adam settings, a plain "
        "`DataLoader(TensorDataset(train images), batch_size=32, shuffle=True)` over the same "
        "in-memory training tensors, `zero_grad / cross_entropy / backward / step`, no logging. "
        "Its loader looks up each image and stacks them, where the pipeline's gathers a batch "
        "with one index op per tensor (`prunelab.data.base.TensorBatches`; the same images in "
        "the same order): that difference is in the 'between steps' phase.",
        f"- Epochs are shortened to `steps/epoch` batches (`limit_train_batches`), which bills "
        f"per-epoch costs over fewer steps than a job's {JOB_STEPS_PER_EPOCH}: conservative.",
        *notes,
    ]
    return section
