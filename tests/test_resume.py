"""Resume: a killed job or stage picks up where it stopped and ends as an uninterrupted run.

Its logs stay whole; the same seed and config give the same metrics.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from collections import Counter

import pytest
from sweep_tools import (
    csv_rows,
    csv_rows_of,
    kill_when,
    killable_sweep_args,
    stable_metrics,
)

from prunelab.fitting import resume_path
from prunelab.pipeline import run
from prunelab.tracking import CSVLog

from conftest import DATA, run_train, sweep_results


@pytest.mark.slow
def test_sigkill_mid_job_then_rerun_finishes_without_recomputing(tmp_path):
    reference = tmp_path / "reference"
    proc = run_train(killable_sweep_args(reference, tmp_path / "cache_ref"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    # Killed once the second job has finished fine-tuning epoch 1 of 3.
    kill_when(killable_sweep_args(sweep, cache), "*-s0.8-*/checkpoints/last.ckpt", sweep)
    (second,) = sweep.glob("*-s0.8-*/checkpoints/last.ckpt")
    interrupted = sweep_results(sweep)
    assert len(interrupted) == 1, "exactly the first job had finished"
    first_name = next(iter(interrupted))
    first_file = sweep / first_name / "results.json"
    first_bytes, first_mtime = first_file.read_bytes(), first_file.stat().st_mtime_ns

    proc = run_train(killable_sweep_args(sweep, cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The killed job went on from its fine-tuning checkpoint rather than starting over.
    log = (second.parents[1] / "train.log").read_text()
    assert f"resuming from {second}" in log, log[-2000:]
    # Its training log kept the epochs run before the kill and goes on after them, without the
    # rows the killed attempt logged for the epoch it ran again: none appears more often than
    # in the uninterrupted run's log, value for value.
    log_rows = csv_rows(second.parents[1] / "csv" / "metrics.csv")
    assert {"0", "1", "2"} <= {dict(r).get("epoch") for r in log_rows}
    reference_log = next(reference.glob(f"{second.parents[1].name}/csv/metrics.csv"))
    assert not Counter(log_rows) - Counter(csv_rows(reference_log))
    resumed = sweep_results(sweep)
    assert len(resumed) == 2
    assert first_file.read_bytes() == first_bytes and first_file.stat().st_mtime_ns == first_mtime
    expected = sweep_results(reference)
    for name, result in resumed.items():
        assert stable_metrics(result) == stable_metrics(expected[name]), name
    leftovers = [p for p in sweep.rglob("*.tmp")] + [p for p in cache.glob(".*") if p.is_dir()]
    assert not leftovers


def test_a_restarted_stage_drops_the_rows_its_killed_attempt_logged(tmp_path):
    """The first row a stage logs clears that stage's rows from its epoch on; other stages'
    rows stay. Here: fine-tuning restarts at epoch 0 (its killed attempt had no checkpoint),
    the baseline resumes at epoch 1 (it had one after epoch 0)."""
    log = tmp_path / "csv" / "metrics.csv"
    log.parent.mkdir()
    log.write_text(
        "baseline_val/acc,epoch,step,val/acc\n"
        "0.5,0,9,\n0.6,1,19,\n0.7,2,29,\n"  # the baseline's killed attempt: epochs 0-2
        ",0,9,0.8\n,1,19,0.9\n"  # a fine-tune's killed attempt (another job's baseline)
    )
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment
    writer.log_metrics({"val/acc": 0.85, "epoch": 0}, step=9)
    writer.save()
    assert csv_rows(log) == csv_rows_of(
        "baseline_val/acc,epoch,step,val/acc\n0.5,0,9,\n0.6,1,19,\n0.7,2,29,\n,0,9,0.85\n", tmp_path
    )
    writer.log_metrics({"baseline_val/acc": 0.65, "epoch": 1}, step=19)
    writer.save()
    expected = "baseline_val/acc,epoch,step,val/acc\n0.5,0,9,\n,0,9,0.85\n0.65,1,19,\n"
    assert csv_rows(log) == csv_rows_of(expected, tmp_path)
    writer.log_metrics({"val/acc": 0.95, "epoch": 1}, step=19)  # later rows: appended as ever
    writer.save()
    assert len(csv_rows(log)) == 4


def test_a_kill_while_the_log_gains_a_column_keeps_its_rows(tmp_path, monkeypatch):
    """A new metric name makes the writer rewrite metrics.csv with a wider header; a kill in
    the middle of that rewrite leaves the old file whole (Lightning's truncated it first), and
    a row cut short by a kill mid-append is dropped before the rerun appends."""
    log = tmp_path / "csv" / "metrics.csv"
    log.parent.mkdir()
    before = "epoch,step,val/acc\n0,9,0.8\n1,19,0.9\n"
    log.write_text(before)
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment
    writer.log_metrics({"val/acc": 0.95, "epoch": 2}, step=29)  # no new key yet: appended
    writer.save()
    writer.log_metrics({"train/acc_epoch": 0.7, "epoch": 2}, step=29)

    def killed(self, rows):
        raise SystemExit("killed mid-write")

    monkeypatch.setattr(csv.DictWriter, "writerows", killed)
    with pytest.raises(SystemExit):
        writer.save()
    monkeypatch.undo()
    assert csv_rows(log) == csv_rows_of(before + "2,29,0.95\n", tmp_path)
    log.write_bytes(log.read_bytes() + b"3,39,0.9")  # and a kill mid-append: a torn last row
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment  # the rerun's
    assert [p.name for p in log.parent.iterdir()] == ["metrics.csv"]  # half-written copy gone
    writer.log_metrics({"val/acc": 0.97, "epoch": 3}, step=39)
    writer.save()
    assert csv_rows(log) == csv_rows_of(before + "2,29,0.95\n3,39,0.97\n", tmp_path)


def test_ctrl_c_before_the_log_gains_its_column_then_the_teardown_save_widens_it(
    tmp_path, monkeypatch
):
    """Ctrl-C can land after the writer noted a new metric name and before it rewrote the
    header; Lightning's teardown then saves the same rows again. They must get the wider header,
    not be appended longer than it (a CI run's rerun crashed reading such a row)."""
    log = tmp_path / "csv" / "metrics.csv"
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment
    writer.log_metrics({"val/acc": 0.8, "epoch": 0}, step=9)
    writer.save()
    writer.log_metrics({"val/acc": 0.9, "train/acc_epoch": 0.7, "epoch": 1}, step=19)

    def interrupted(self, header, rows):
        raise KeyboardInterrupt

    monkeypatch.setattr(type(writer), "_replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        writer.save()
    monkeypatch.undo()
    writer.save()  # the teardown's
    with open(log, newline="") as fh:
        lines = list(csv.reader(fh))
    assert lines[0] == ["epoch", "step", "train/acc_epoch", "val/acc"]
    assert all(len(line) == 4 for line in lines), lines
    expected = "epoch,step,train/acc_epoch,val/acc\n0,9,,0.8\n1,19,0.7,0.9\n"
    assert csv_rows(log) == csv_rows_of(expected, tmp_path)
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment  # the rerun's
    writer.log_metrics({"val/acc": 0.95, "epoch": 1}, step=19)  # reads every row back
    writer.save()
    assert csv_rows(log) == csv_rows_of(expected.replace("1,19,0.7,0.9", "1,19,,0.95"), tmp_path)


@pytest.mark.slow
def test_killed_baseline_and_control_training_resume_from_their_checkpoints(tmp_path):
    """Killed in the baseline's training, then in the dense control's: each goes on from its
    last epoch, and the results equal those of an uninterrupted run."""
    args = [
        "model=simplecnn",
        "sparsity=0.5",
        "experiment=smoke",
        "data.train_size=2048",
        "baseline.max_epochs=3",
        "baseline.patience=3",
        "finetune.max_epochs=2",
        "finetune.dense_control=true",
        f"paths.data_dir={DATA}",
    ]
    ref = run_train([*args, f"hydra.run.dir={tmp_path}/ref", f"paths.cache_dir={tmp_path}/c0"])
    assert ref.returncode == 0, ref.stderr[-3000:]

    cache = tmp_path / "c1"
    cmd = [*args, f"hydra.run.dir={tmp_path}/run", f"paths.cache_dir={cache}"]
    kill_when(cmd, ".*.work/last.ckpt", cache)  # the baseline's, after its first epoch
    assert not [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    # The control's, after epoch 1 of 2 (this attempt resumed the baseline: no Lightning note
    # that its checkpoint folder is not empty, which it never is on a resume).
    said = kill_when(cmd, ".*.control-*.work/last.ckpt", cache)
    assert "resuming from" in said and "exists and is not empty" not in said
    assert not list(cache.glob("*/control-*.json"))

    again = run_train(cmd)
    assert again.returncode == 0, again.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert re.search(r"resuming from \S+\.control-\w+\.work/last\.ckpt", log), log[-2000:]
    a = json.loads((tmp_path / "ref" / "results.json").read_text())
    b = json.loads((tmp_path / "run" / "results.json").read_text())
    # The baseline was finished by the killed second attempt; this run reused it.
    assert a.pop("baseline/trained") and not b.pop("baseline/trained")
    assert stable_metrics(a) == stable_metrics(b)
    assert b["control/trained"] and "control/test_acc" in b
    assert not [p for p in cache.glob(".*") if p.is_dir()]  # no resume folder left behind


def test_same_seed_and_config_give_identical_metrics(make_cfg, tmp_path):
    first = run(make_cfg(f"paths.cache_dir={tmp_path}/a", out=tmp_path / "a"))
    second = run(make_cfg(f"paths.cache_dir={tmp_path}/b", out=tmp_path / "b"))
    assert first["baseline/trained"] and second["baseline/trained"]
    assert stable_metrics(first) == stable_metrics(second)


def test_corrupt_resume_checkpoint_is_set_aside(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    assert resume_path(ckpt) is None
    assert not ckpt.exists() and (tmp_path / "last.ckpt.corrupt").is_file()


def test_a_baseline_that_stopped_early_is_not_trained_on_when_its_job_is_rerun(
    make_cfg, tmp_path, monkeypatch
):
    """Lightning does not checkpoint an early stop: a job killed between the stop and the cache
    publish would resume from last.ckpt, train on and publish another baseline under its key."""
    import torch

    from prunelab import pipeline
    from prunelab.build import build_datamodule, data_spec

    cfg = make_cfg("baseline.max_epochs=8", "baseline.patience=1", "baseline.optimizer.lr=0.05")
    dm = build_datamodule(cfg)
    spec = data_spec(dm)
    state, meta = pipeline.train_baseline(cfg, dm, spec, [], tmp_path / "work")
    assert meta["epochs"] < 8, "the scenario needs an early stop"

    def no_training(*args, **kwargs):
        raise AssertionError("a finished baseline training was started again")

    monkeypatch.setattr(pipeline, "make_trainer", no_training)
    again, meta_again = pipeline.train_baseline(cfg, dm, spec, [], tmp_path / "work")
    assert meta_again == meta
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)


def test_a_baseline_stopped_before_its_first_validation_says_so(make_cfg, tmp_path):
    """+trainer.max_steps (or max_time) ending the first epoch early: prunelab's line, not
    Lightning's "Early stopping conditioned on metric ... which is not available"."""
    from prunelab import pipeline
    from prunelab.build import build_datamodule, data_spec
    from prunelab.errors import PrunelabError

    cfg = make_cfg("+trainer.max_steps=3")  # smoke: 8 steps per epoch
    dm = build_datamodule(cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipeline.quiet_libraries()  # as the job does
        with pytest.raises(PrunelabError, match="the baseline stopped before its first valid"):
            pipeline.train_baseline(cfg, dm, data_spec(dm), [], tmp_path / "work")
    # Nor Lightning's hint to log the metric, which the baseline does once it validates.
    assert not [w for w in caught if "monitored key" in str(w.message)]


def test_a_stage_that_ended_early_is_restored_not_trained_on_when_rerun(tmp_path):
    """Fine-tuning and the dense control checkpoint every epoch but not a stop (an early stop
    or `+trainer.max_time`): a rerun after a kill restores where the fit ended."""
    import functools

    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping
    from torch import nn

    from prunelab.data import FashionMNISTDataModule
    from prunelab.fitting import fit_resumable, resume_checkpoint
    from prunelab.module import Classifier

    class Counting(Classifier):
        def training_step(self, batch, batch_idx):
            self.batches = getattr(self, "batches", 0) + 1
            return super().training_step(batch, batch_idx)

    class FinalTouch(L.Callback):
        """As gradual pruning applies its final masks when a cut-short fit ends."""

        def on_train_end(self, trainer, pl_module):
            with torch.no_grad():
                pl_module.net[1].weight[0, 0] = 42.0

    dm = FashionMNISTDataModule(str(DATA), train_size=64, val_size=32, test_size=32)
    work = tmp_path / "checkpoints"

    def fit() -> tuple[Counting, L.Trainer]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
        # lr 0: validation accuracy never improves, so patience 0 stops after the 2nd epoch.
        module = Counting(net, 10, functools.partial(torch.optim.SGD, lr=0.0), None)
        stop = EarlyStopping(monitor="val/acc", mode="max", patience=0)
        trainer = L.Trainer(
            max_epochs=6,
            callbacks=[resume_checkpoint(work), stop, FinalTouch()],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(tmp_path),
        )
        fit_resumable(trainer, module, dm, work)
        return module, trainer

    first, trainer = fit()
    assert trainer.current_epoch == 2 and first.batches == 2 * 2, "the scenario needs a stop"
    again, trainer = fit()  # as a rerun after a kill in the job's evaluation
    assert getattr(again, "batches", 0) == 0 and trainer.current_epoch == 2
    # Restored as the fit ended, on_train_end's work included (a rerun never calls it).
    torch.testing.assert_close(again.net.state_dict(), first.net.state_dict())
    assert again.net[1].weight[0, 0] == 42.0
    (work / "fit_done.json").unlink()  # without the mark the rerun would train on
    again, trainer = fit()
    assert again.batches > 0 and trainer.current_epoch > 2


def test_finetune_checkpoints_resume_only_onto_the_baseline_they_were_pruned_from(tmp_path):
    """After an upgrade the baseline key changes and a new baseline trains: a resume must not
    fine-tune weights pruned from the old one while results.json names the new."""
    from prunelab.pipeline import own_checkpoints

    ckpt = tmp_path / "checkpoints"
    own_checkpoints(ckpt, "simplecnn-a")
    (ckpt / "last.ckpt").write_bytes(b"epoch 3")
    own_checkpoints(ckpt, "simplecnn-a")  # the same baseline: resume
    assert (ckpt / "last.ckpt").is_file()
    own_checkpoints(ckpt, "simplecnn-b")  # another: start over
    assert not (ckpt / "last.ckpt").exists()
    assert json.loads((ckpt / "baseline.json").read_text()) == {"key": "simplecnn-b"}
    (ckpt / "baseline.json").unlink()  # checkpoints of a run from before the mark
    (ckpt / "last.ckpt").write_bytes(b"epoch 2")
    own_checkpoints(ckpt, "simplecnn-b")
    assert not (ckpt / "last.ckpt").exists()
