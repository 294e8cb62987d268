"""End to end: the smoke `-m` sweep, offline, as a user runs it."""

import json

import pytest
import torch

from prunelab.models import ResNetSmall, SimpleCNN
from prunelab.pruning import mask_violations, measure_sparsity

from conftest import METRICS_DOC, documented_name, job_results, undocumented

# `make test` runs the suite under pytest-xdist: the modules reading the smoke sweep share one
# worker, so that sweep runs once.
pytestmark = pytest.mark.xdist_group("smoke_sweep")

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
        assert not (job / "checkpoints").exists()  # resume points go once results are written
        results = json.loads((job / "results.json").read_text())
        headline = f"{job.name}: test/acc {100 * results['test/acc']:.1f} %"
        assert headline in (job / "train.log").read_text()  # printed when the job ends
        masks = saved["masks"]  # the masks the fine-tune held, saved beside the weights
        if saved["meta"]["sparsity"] > 0:
            assert masks and mask_violations(net, masks) == {}
            assert sum(int((~m).sum()) for m in masks.values()) == round(
                saved["meta"]["sparsity"] * sum(m.numel() for m in masks.values())
            )


EVALUATED = [
    *(f"robust/{m}@{e}" for m in ("fgsm_acc", "fgsm_asr") for e in ("0.01", "0.03", "0.05", "0.1")),
    "robust/pgd_acc",
    "robust/pgd_asr",
    "robust/pgd_acc_baseline",
    "robust/pgd_acc_delta_pts",
    "robust/pgd_acc_delta_rel",
    *(f"robust/curve_acc@eps{k}" for k in (0, 1, 2, 4, 8, 16)),
    "latency/b1_ms",
    "latency/bN_ms",
    "latency/b1_speedup",
    "latency/threads",
    "latency/device",
    "latency/fold_batchnorm",
    "size/sparse_disk_bytes",
    "size/disk_bytes_baseline",
    "size/reduction_pct",
    "flops/dense_macs",
    "flops/nonzero_macs",
    "flops/theoretical_speedup",
    "test/acc_ci_low",
    "test/acc_ci_high",
    "time/eval_s",
]


def test_every_job_carries_robustness_latency_size_and_flops(smoke_sweep):
    results = job_results(smoke_sweep)
    for r in results:
        assert all(k in r for k in EVALUATED), sorted(set(EVALUATED) - set(r))
        assert 0 <= r["robust/pgd_acc"] <= r["robust/clean_acc"] <= 1
        assert r["robust/curve_acc@eps0"] == r["robust/clean_acc"]
        assert r["size/sparse_disk_bytes"] < r["size/disk_bytes_baseline"]
        if r["sparsity"] == 0.8:
            assert r["size/sparse_disk_bytes"] <= 0.25 * r["size/disk_bytes_baseline"]
        assert r["flops/theoretical_speedup"] > 1
    for model in ("simplecnn", "resnetsmall"):
        rows = [r for r in results if r["model"] == model]
        assert len({(r["robust/pgd_acc_baseline"], r["flops/dense_macs"]) for r in rows}) == 1


def test_every_key_of_every_job_is_documented(smoke_sweep):
    """A key added to results.json (and so to W&B and results.csv) must be named in the docs.
    The keys only other settings write are checked where the suite runs those settings:
    test_pruning_methods (every method, structured, dense control, targeted PGD),
    test_evaluation_job (eval.json) and test_report (dense jobs)."""
    assert not undocumented(k for r in job_results(smoke_sweep) for k in r)


def test_the_documented_key_check_matches_families_and_misses_a_removed_key(tmp_path):
    assert documented_name("robust/fgsm_acc@0.03_delta_ci_low") == "robust/fgsm_acc@E"
    assert documented_name("robust/curve_acc@eps16_baseline") == "robust/curve_acc@epsK"
    assert documented_name("test/acc_class/t_shirt_top_baseline") == "test/acc_class/<class>"
    assert documented_name("prune/layer/stages.0.conv1") == "prune/layer/<layer>"
    assert documented_name("robust/pgd_targeted_asr_delta_rel") == "robust/pgd_targeted_asr"
    # A key the docs stop naming is reported, its family's other keys with it.
    keys = ["prune/channels_removed", "robust/pgd_targeted_acc_delta_ci_low", "test/acc"]
    assert undocumented(keys) == []
    doc = tmp_path / "metrics.md"
    text = METRICS_DOC.read_text()
    doc.write_text(text.replace("`prune/channels_removed`", "channels removed"))
    assert undocumented(keys, doc) == ["prune/channels_removed"]
    doc.write_text(text.replace("`robust/pgd_targeted_acc`", "targeted accuracy"))
    assert undocumented(keys, doc) == ["robust/pgd_targeted_acc_delta_ci_low"]


def test_sparse_export_of_every_job_loads_back_to_its_weights(smoke_sweep):
    from prunelab.evaluation import load_sparse

    for job in (p.parent for p in smoke_sweep.glob("*/results.json")):
        saved = torch.load(job / "model.pt", weights_only=True)["state_dict"]
        back = load_sparse(job / "model.sparse")
        assert list(back) == list(saved)
        for k, v in saved.items():
            assert back[k].dtype == v.dtype and torch.equal(back[k], v), k
            if v.is_floating_point():  # bit for bit: the sign of every zero too
                assert torch.equal(torch.signbit(back[k]), torch.signbit(v)), k
