"""Small made-up sweeps for the report's unit tests (layout and rules only; no results)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from prunelab.report.aggregate import Group, Row
from prunelab.report.collect import Job, make_cell

MODELS = {"simplecnn": (0.43, 1_000_000), "resnetsmall": (2.6, 2_800_000)}


def fake_result(model: str, sparsity: float, seed: int = 0, acc: float = 0.88) -> dict:
    """One job's results.json with every key group of docs/metrics.md."""
    ms, disk = MODELS[model]
    base = 0.89
    r = {
        "model": model,
        "data": "fashion_mnist",
        "pruning": "magnitude",
        "sparsity": sparsity,
        "seed": seed,
        "test/acc": acc,
        "test/acc_ci_low": acc - 0.006,
        "test/acc_ci_high": acc + 0.006,
        "test/acc_baseline": base,
        "test/acc_baseline_ci_low": base - 0.006,
        "test/acc_baseline_ci_high": base + 0.006,
        "data/test_size": 10000,
        "prune/sparsity_measured": sparsity,
        "baseline/key": f"{model}-seed{seed}",
        "robust/n_images": 500,
        "robust/pgd_acc": 0.1,
        "robust/pgd_acc_baseline": 0.12,
        "robust/pgd_acc_delta_pts": -2.0,
        "robust/pgd_acc_delta_rel": -16.7,
        "robust/pgd_acc_delta_ci_low": -3.5,
        "robust/pgd_acc_delta_ci_high": -0.5,
        "test/acc_delta_pts": 100 * (acc - base),
        "test/acc_delta_ci_low": 100 * (acc - base) - 0.5,
        "test/acc_delta_ci_high": 100 * (acc - base) + 0.5,
        "latency/b1_ms": ms,
        "latency/b1_ms_baseline": ms,
        "latency/b1_speedup": 1.0,
        "latency/device": "cpu",
        "size/disk_bytes": disk,
        "size/sparse_disk_bytes": int(disk * (1.1 - sparsity)),
        "size/disk_bytes_baseline": disk,
        "size/reduction_pct": 100 * (sparsity - 0.1),
        "flops/theoretical_speedup": 1 / (1 - sparsity),
        # Global ranking: the large middle layer gives up more than `sparsity`, the ends less.
        "prune/layer/features.1": sparsity / 2,
        "prune/layer/head.1": min(1.0, 1.1 * sparsity),
        "prune/layer/head.4": sparsity / 2,
    }
    for k in (0, 1, 2, 4, 8, 16):
        r[f"robust/curve_acc@eps{k}"] = acc / (1 + k)
        r[f"robust/curve_acc@eps{k}_baseline"] = base / (1 + k)
    return r


def make_sweep(root: Path, results: list[dict], task: list[str]) -> Path:
    """A sweep folder as Hydra lays it out: multirun.yaml, job folders with .hydra/hydra.yaml."""
    sweep = root / "sweep"
    sweep.mkdir()
    multirun = {
        "hydra": {
            "sweep": {"dir": str(sweep)},
            "overrides": {"task": task},
            "runtime": {
                "cwd": str(root),
                "choices": {"model": "simplecnn", "data": "fashion_mnist", "pruning": "magnitude"},
            },
        },
        "sparsity": 0.5,
        "seed": 0,
        "logger": {"csv": {}},
    }
    OmegaConf.save(OmegaConf.create(multirun), sweep / "multirun.yaml")
    for r in results:
        job = sweep / make_cell(r).label
        (job / ".hydra").mkdir(parents=True)
        hydra = {"hydra": {"runtime": {"output_dir": str(job)}}}
        OmegaConf.save(OmegaConf.create(hydra), job / ".hydra" / "hydra.yaml")
        (job / "results.json").write_text(json.dumps(r))
    return sweep


def acc_rows(accs: dict[float, float], n: int = 500) -> list[Row]:
    """Rows of one group with the given test accuracy per sparsity, on `n` test images."""
    g = Group("m", "d", "p")
    return [
        Row(g, s, [{"seed": 0, "test/acc": a, "data/test_size": n}], "job") for s, a in accs.items()
    ]


def pgd_rows(changes: list[tuple[float, float, float]] | None) -> list[Row]:
    """Dense 48.6 % PGD accuracy on 1,000 images; the pruned cell 4.9 points lower per seed."""
    g = Group("m", "d", "p")
    dense = {"seed": 0, "robust/pgd_acc": 0.486, "robust/n_images": 1000, "test/acc": 0.88}
    pruned = []
    for seed, (pts, lo, hi) in enumerate(changes or [(-4.9, None, None)]):
        sample = {**dense, "seed": seed, "robust/pgd_acc": 0.486 + pts / 100}
        sample["robust/pgd_acc_delta_pts"] = pts
        sample["robust/pgd_acc_delta_rel"] = pts / 0.486
        if lo is not None:
            sample["robust/pgd_acc_delta_ci_low"], sample["robust/pgd_acc_delta_ci_high"] = lo, hi
        pruned.append(sample)
    return [Row(g, 0.0, [dense], "job"), Row(g, 0.5, pruned, "job")]


def job_of(results: dict) -> Job:
    """A collected job of `results`, as the report gets it from a folder."""
    return Job(make_cell(results).label, Path("."), make_cell(results), results)


def job_settings(sparsity: float, epochs: int = 1, lr: float = 1e-4, rewind: int | None = None):
    """A job's config.json, reduced to the keys the report reads (and one that follows sparsity)."""
    pruning: dict = {"amount": sparsity}
    if rewind is not None:
        pruning["rewind_epoch"] = rewind
    finetune = {"max_epochs": epochs, "optimizer": {"lr": lr, "weight_decay": 1e-4}}
    return {"sparsity": sparsity, "seed": 0, "pruning": pruning, "finetune": finetune}


def write_settings(sweep: Path, result: dict, settings: dict) -> None:
    """Give `result`'s job folder in `sweep` the config.json `settings`."""
    (sweep / make_cell(result).label / "config.json").write_text(json.dumps(settings))


def findings_of(report: str, label: str) -> str:
    """The key findings of one group (its bold label up to the next blank-line paragraph)."""
    return report.split(f"**{label}**\n\n", 1)[1].split("\n\n", 1)[0]


def timed_result(sparsity: float, speedup: float, seed: int = 0) -> dict:
    """Timings whose p90s do not overlap: only the tolerance and the dense self-timing judge."""
    base = 1.0
    return {
        "seed": seed,
        "latency/b1_speedup": speedup,
        "latency/b1_ms": base / speedup,
        "latency/b1_p90_ms": 1.01 * base / speedup,
        "latency/b1_ms_baseline": base,
        "latency/b1_p90_ms_baseline": 1.01 * base,
        "latency/device": "cpu",
        "latency/threads": 1,
    }
