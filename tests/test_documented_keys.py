"""Every key that a pruning method or an optional setting adds to results.json is named in
docs/metrics.md. test_sweep checks the default (magnitude) smoke sweep's keys; the suite's other
runs check theirs where they run (test_pruning_methods: the dense control's jobs;
test_evaluation_job: eval.json, structured and targeted; test_report: dense jobs)."""

from __future__ import annotations

import pytest

from conftest import DATA, job_results, run_train, undocumented

# Every method but magnitude (the smoke sweep's), each with the settings that add keys of their
# own: the dense control, targeted PGD and (structured) the channels removed.
METHODS = ("gradual", "lottery", "random", "layerwise", "structured")


@pytest.fixture(scope="module")
def settings_sweep(tmp_path_factory) -> list[dict]:
    """One end-to-end smoke sweep of METHODS at sparsity 0.5 with finetune.dense_control=true
    and attack.targeted_class=1: every job's results.json (~30 s on 2 cores)."""
    base = tmp_path_factory.mktemp("settings")
    proc = run_train(
        [
            "-m",
            "model=simplecnn",
            f"pruning={','.join(METHODS)}",
            "sparsity=0.5",
            "experiment=smoke",
            "attack.n_images=16",
            "attack.targeted_class=1",
            "finetune.dense_control=true",
            "logger=csv",
            "report.enabled=false",
            f"hydra.sweep.dir={base / 'sweep'}",
            f"paths.cache_dir={base / 'cache'}",
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return job_results(base / "sweep")


@pytest.mark.slow
def test_every_key_each_method_and_setting_writes_is_documented(settings_sweep):
    """The keys the default sweep does not write: those of the other methods, structured's
    channel counts, the dense control's and targeted PGD's."""
    by_method = {r["pruning"]: r for r in settings_sweep}
    assert sorted(by_method) == sorted(METHODS)
    for r in settings_sweep:  # each setting wrote its keys, so the check covers them
        assert r["robust/pgd_target_class"] == 1 and "robust/pgd_targeted_asr_delta_rel" in r
        assert "control/test_acc_delta_ci_low" in r and "vs_control/test_acc_delta_pts" in r
    assert any(r["control/trained"] and "time/control_s" in r for r in settings_sweep)
    channels = {"prune/channel_ratio", "prune/channels_removed", "prune/macs_removed"}
    assert channels <= set(by_method["structured"])
    assert not undocumented(k for r in settings_sweep for k in r)
