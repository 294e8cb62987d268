"""End to end: the smoke `-m` sweep, offline, as a user runs it."""

import pytest
import torch

from prunelab.models import ResNetSmall, SimpleCNN
from prunelab.pruning import measure_sparsity

from conftest import job_results

REQUIRED = [
    "model",
    "data",
    "sparsity",
    "seed",
    "test/acc",
    "test/acc_baseline",
    "test/acc_retention",
    "prune/sparsity_target",
    "prune/sparsity_measured",
    "baseline/key",
    "baseline/trained",
]


def test_sweep_writes_one_complete_result_per_cell(smoke_sweep):
    results = job_results(smoke_sweep)
    cells = {(r["model"], r["sparsity"]) for r in results}
    assert cells == {(m, s) for m in ("simplecnn", "resnetsmall") for s in (0.2, 0.5, 0.8)}
    for r in results:
        assert all(k in r for k in REQUIRED), sorted(set(REQUIRED) - set(r))
        assert abs(r["prune/sparsity_measured"] - r["sparsity"]) < 1e-3
        assert 0.0 <= r["test/acc"] <= 1.0
        assert r["test/acc_retention"] == pytest.approx(r["test/acc"] / r["test/acc_baseline"])


def test_each_baseline_trained_exactly_once_and_shared(smoke_sweep):
    results = job_results(smoke_sweep)
    for model in ("simplecnn", "resnetsmall"):
        rows = [r for r in results if r["model"] == model]
        assert len({r["baseline/key"] for r in rows}) == 1
        assert sum(r["baseline/trained"] for r in rows) == 1
        assert len({r["test/acc_baseline"] for r in rows}) == 1


def test_one_offline_wandb_run_per_job(smoke_sweep):
    for job in (p.parent for p in smoke_sweep.glob("*/results.json")):
        runs = list((job / "wandb").glob("offline-run-*"))
        assert len(runs) == 1, job
        assert list(runs[0].glob("run-*.wandb"))
        assert (job / "csv" / "metrics.csv").is_file()


def test_saved_model_loads_with_weights_only_and_keeps_its_sparsity(smoke_sweep):
    for job in (p.parent for p in smoke_sweep.glob("*/results.json")):
        saved = torch.load(job / "model.pt", weights_only=True)
        cls = {"simplecnn": SimpleCNN, "resnetsmall": ResNetSmall}[saved["meta"]["model"]]
        spec = saved["data"]
        net = cls(spec["in_shape"], spec["num_classes"], spec["mean"], spec["std"])
        net.load_state_dict(saved["state_dict"])
        measured = measure_sparsity(net)["prune/sparsity_measured"]
        assert abs(measured - saved["meta"]["sparsity"]) < 1e-3
