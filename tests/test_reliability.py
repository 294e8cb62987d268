"""Reliability: resume after SIGKILL, parallel launchers, one-line runtime errors, determinism."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest

from prunelab.fitting import resume_path
from prunelab.pipeline import job_lock, run
from prunelab.tracking import CSVLog

from conftest import DATA, ROOT, run_train

VOLATILE = ("latency/", "time/")  # wall-clock measurements differ between runs by nature


def _metrics(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith(VOLATILE)}


def _results(sweep: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sweep.glob("*/results.json")}


def _args(sweep: Path, cache: Path) -> list[str]:
    # Three 1-epoch-long fine-tuning epochs on 2,048 images: long enough to kill one mid-way.
    return [
        "-m",
        "model=simplecnn",
        "sparsity=0.5,0.8",
        "experiment=smoke",
        "data.train_size=2048",
        "finetune.max_epochs=3",
        f"hydra.sweep.dir={sweep}",
        f"paths.cache_dir={cache}",
        f"paths.data_dir={DATA}",
    ]


def test_sigkill_mid_job_then_rerun_finishes_without_recomputing(tmp_path):
    reference = tmp_path / "reference"
    proc = run_train(_args(reference, tmp_path / "cache_ref"))
    assert proc.returncode == 0, proc.stderr[-3000:]

    sweep, cache = tmp_path / "sweep", tmp_path / "cache"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *_args(sweep, cache)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    second = None
    while time.time() < deadline and child.poll() is None:
        second = next(iter(sweep.glob("*-s0.8-*/checkpoints/last.ckpt")), None)
        if second is not None:  # the second job finished fine-tuning epoch 1 of 3: kill it now
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    if child.poll() is None and second is None:
        child.kill()
    child.wait(timeout=60)
    assert second is not None, "the sweep ended (or stalled) before it could be interrupted"
    assert child.returncode == -signal.SIGKILL
    interrupted = _results(sweep)
    assert len(interrupted) == 1, "exactly the first job had finished"
    first_name = next(iter(interrupted))
    first_file = sweep / first_name / "results.json"
    first_bytes, first_mtime = first_file.read_bytes(), first_file.stat().st_mtime_ns

    proc = run_train(_args(sweep, cache))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The killed job went on from its fine-tuning checkpoint rather than starting over.
    log = (second.parents[1] / "train.log").read_text()
    assert f"resuming from {second}" in log, log[-2000:]
    # Its training log kept the epochs run before the kill and goes on after them, without the
    # rows the killed attempt logged for the epoch it ran again: none appears more often than
    # in the uninterrupted run's log, value for value.
    log_rows = _csv_rows(second.parents[1] / "csv" / "metrics.csv")
    assert {"0", "1", "2"} <= {dict(r).get("epoch") for r in log_rows}
    reference_log = next(reference.glob(f"{second.parents[1].name}/csv/metrics.csv"))
    assert not Counter(log_rows) - Counter(_csv_rows(reference_log))
    resumed = _results(sweep)
    assert len(resumed) == 2
    assert first_file.read_bytes() == first_bytes and first_file.stat().st_mtime_ns == first_mtime
    expected = _results(reference)
    for name, result in resumed.items():
        assert _metrics(result) == _metrics(expected[name]), name
    leftovers = [p for p in sweep.rglob("*.tmp")] + [p for p in cache.glob(".*") if p.is_dir()]
    assert not leftovers


def _csv_rows(path: Path) -> list[tuple]:
    """A metrics.csv's rows as sorted (column, value) pairs of their non-empty cells."""
    with open(path, newline="") as fh:
        return [tuple(sorted((k, v) for k, v in row.items() if v)) for row in csv.DictReader(fh)]


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
    assert _csv_rows(log) == _csv_rows_of(
        "baseline_val/acc,epoch,step,val/acc\n0.5,0,9,\n0.6,1,19,\n0.7,2,29,\n,0,9,0.85\n", tmp_path
    )
    writer.log_metrics({"baseline_val/acc": 0.65, "epoch": 1}, step=19)
    writer.save()
    expected = "baseline_val/acc,epoch,step,val/acc\n0.5,0,9,\n,0,9,0.85\n0.65,1,19,\n"
    assert _csv_rows(log) == _csv_rows_of(expected, tmp_path)
    writer.log_metrics({"val/acc": 0.95, "epoch": 1}, step=19)  # later rows: appended as ever
    writer.save()
    assert len(_csv_rows(log)) == 4


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
    assert _csv_rows(log) == _csv_rows_of(before + "2,29,0.95\n", tmp_path)
    log.write_bytes(log.read_bytes() + b"3,39,0.9")  # and a kill mid-append: a torn last row
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment  # the rerun's
    assert [p.name for p in log.parent.iterdir()] == ["metrics.csv"]  # half-written copy gone
    writer.log_metrics({"val/acc": 0.97, "epoch": 3}, step=39)
    writer.save()
    assert _csv_rows(log) == _csv_rows_of(before + "2,29,0.95\n3,39,0.97\n", tmp_path)


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
    assert _csv_rows(log) == _csv_rows_of(expected, tmp_path)
    writer = CSVLog(save_dir=str(tmp_path), name="csv", version="").experiment  # the rerun's
    writer.log_metrics({"val/acc": 0.95, "epoch": 1}, step=19)  # reads every row back
    writer.save()
    assert _csv_rows(log) == _csv_rows_of(expected.replace("1,19,0.7,0.9", "1,19,,0.95"), tmp_path)


def _csv_rows_of(text: str, tmp_path: Path) -> list[tuple]:
    path = tmp_path / "expected.csv"
    path.write_text(text)
    return _csv_rows(path)


def _kill_when(cmd: list[str], pattern: str, where: Path) -> str:
    """Run train.py with `cmd`, SIGKILL it once a file matching `pattern` appears in `where`;
    return what it wrote (stdout and stderr)."""
    err = tempfile.TemporaryFile(mode="w+")
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *cmd],
        cwd=ROOT,
        stdout=err,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 300
    while time.time() < deadline and child.poll() is None:
        if list(where.glob(pattern)):
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    if child.poll() is None:
        child.kill()
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"the run ended before {pattern} appeared"
    err.seek(0)
    return err.read()


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
    _kill_when(cmd, ".*.work/last.ckpt", cache)  # the baseline's, after its first epoch
    assert not [p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".")]
    # The control's, after epoch 1 of 2 (this attempt resumed the baseline: no Lightning note
    # that its checkpoint folder is not empty, which it never is on a resume).
    said = _kill_when(cmd, ".*.control-*.work/last.ckpt", cache)
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
    assert _metrics(a) == _metrics(b)
    assert b["control/trained"] and "control/test_acc" in b
    assert not [p for p in cache.glob(".*") if p.is_dir()]  # no resume folder left behind


def test_joblib_two_workers_train_the_baseline_once(tmp_path):
    proc = run_train(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "model=simplecnn",
            "sparsity=0.2,0.5",
            "experiment=smoke",
            f"hydra.sweep.dir={tmp_path}/sweep",
            f"paths.cache_dir={tmp_path}/cache",
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = list(_results(tmp_path / "sweep").values())
    assert len(results) == 2
    assert sum(r["baseline/trained"] for r in results) == 1
    assert len({r["baseline/key"] for r in results}) == 1
    # The two jobs' console lines interleave: each names its job ('baseline: trained' alone did
    # not say which job trained it and which waited).
    jobs = tuple(f"{name}: " for name in _results(tmp_path / "sweep"))
    lines = [line.split("] - ", 1)[1] for line in proc.stdout.splitlines() if "[prunelab]" in line]
    assert lines and all(line.startswith(jobs) for line in lines), lines
    assert sum("baseline: trained" in line for line in lines) == 1


def test_submitit_local_launcher_runs_jobs(tmp_path):
    proc = run_train(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "hydra.launcher.timeout_min=10",
            "model=simplecnn",
            "sparsity=0.5",
            "experiment=smoke",
            f"hydra.sweep.dir={tmp_path}/sweep",
            f"paths.cache_dir={tmp_path}/cache",
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result,) = _results(tmp_path / "sweep").values()
    assert result["sparsity"] == 0.5 and result["baseline/trained"]
    # The jobs' logs are kept; submitit's literal, empty "%j" folder is not.
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert not (tmp_path / "sweep" / ".submitit" / "%j").exists()


def test_ctrl_c_under_submitit_says_so_on_the_launching_terminal(tmp_path):
    """submitit's jobs write their lines into <sweep>/.submitit/<job id>/: the terminal that
    launched them showed no prunelab line at Ctrl-C, only submitit's own tracebacks."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", "sparsity=0.5", "experiment=smoke",
            "data.train_size=2048", "finetune.max_epochs=3", f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={DATA}"]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # Ctrl-C at a terminal reaches its whole process group
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline and child.poll() is None:
        if list(sweep.glob("*/checkpoints/last.ckpt")):  # fine-tuning
            os.killpg(child.pid, signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith("prunelab:")]
    assert ours == [
        "prunelab: interrupted; run the same command again to resume where it stopped "
        f"(jobs' logs: {sweep}/.submitit/)"
    ], err[-3000:]
    (job,) = sweep.glob("*/FAILED")
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.err"))
    assert "prunelab: interrupted; run the same command again" in logs


def test_the_same_sweep_started_twice_runs_each_job_once(tmp_path):
    """A second launch into a running sweep's folder (another terminal, a resume while the first
    still runs) waits for the job the first is running, then skips it: it ran it again at the
    same time, two W&B runs of one id writing and deleting each other's checkpoints."""
    sweep = tmp_path / "sweep"
    args = [*_args(sweep, tmp_path / "cache")]
    args[args.index("sparsity=0.5,0.8")] = "sparsity=0.5"
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        if list(sweep.glob("*/checkpoints/last.ckpt")):  # the first is fine-tuning
            break
        time.sleep(0.02)
    # Paused mid-job, the first cannot finish before the second has started (on a busy machine
    # a smoke fine-tune ends within the seconds the second takes to import torch).
    first.send_signal(signal.SIGSTOP)
    import threading

    wake = threading.Timer(120, first.send_signal, (signal.SIGCONT,))  # never paused for good
    wake.start()
    try:
        second = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        said = []
        for line in second.stdout:  # type: ignore[union-attr]
            said.append(line)
            if "another process is running this job in this folder; waiting" in line:
                break
    finally:
        first.send_signal(signal.SIGCONT)
        wake.cancel()
    rest, _ = second.communicate(timeout=300)
    said = "".join(said) + rest
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, out[-2000:] + said[-2000:]
    assert "resuming from" not in out + said
    assert "another process is running this job in this folder; waiting" in said
    assert "complete results.json found, skipping" in said
    (job,) = sweep.glob("*/results.json")
    assert len(list(job.parent.glob("wandb/offline-run-*"))) == 1


def test_ctrl_c_while_waiting_for_another_processs_job_leaves_its_folder_alone(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    held = job_lock(out)
    held.acquire()  # as another process running this job would
    try:
        args = ["experiment=smoke", f"hydra.run.dir={out}", f"paths.data_dir={DATA}",
                f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
        child = subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal
        )
        for line in child.stdout:  # type: ignore[union-attr]
            if "another process is running this job in this folder; waiting" in line:
                child.send_signal(signal.SIGINT)
                break
        _, err = child.communicate(timeout=60)
    finally:
        held.release()
    assert child.returncode == 130, err[-3000:]
    assert err.strip().splitlines() == [
        "prunelab: interrupted while another process ran this job; it goes on"
    ]
    assert not (out / "FAILED").exists()


def _one_line_failure(proc: subprocess.CompletedProcess, expected: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("prunelab: error:"), proc.stderr[-3000:]
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_data_root(tmp_path):
    proc = run_train(
        [
            "experiment=smoke",
            f"paths.data_dir={tmp_path}/none",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
        ]
    )
    _one_line_failure(proc, "Fashion-MNIST not found")
    assert not (tmp_path / "run" / "results.json").exists()
    # The job folder says why too, not only the console that may be gone.
    log = (tmp_path / "run" / "train.log").read_text()
    # Hydra's log format names the logger and level once: "[...][prunelab][ERROR] - <text>".
    assert "[prunelab][ERROR] - Fashion-MNIST not found" in log
    assert "prunelab: error:" not in log


def test_warnings_reach_the_jobs_log_file_once(tmp_path, capsys):
    """A job's warning goes to the console and to train.log (Hydra's file handler), once each."""
    import logging

    from prunelab.data.base import capped_size

    handler = logging.FileHandler(tmp_path / "train.log")
    logging.getLogger().addHandler(handler)
    try:
        assert capped_size("data.test_size", 20, 10, "test images") == 10
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    text = "data.test_size=20 but there are only 10 test images; using all 10"
    assert capsys.readouterr().err.count(f"prunelab: warning: {text}") == 1
    # The log record carries the level, so its text does not repeat "prunelab: warning:".
    log = (tmp_path / "train.log").read_text()
    assert log.count(text) == 1 and "prunelab: warning" not in log


def test_empty_sports_class_folder(tmp_path):
    from test_data import _sports_layout

    classes = ["golf", "tennis"]
    _sports_layout(tmp_path / "sports", classes, per_split=2)
    for f in (tmp_path / "sports" / "valid" / "tennis").iterdir():
        f.unlink()
    proc = run_train(
        [
            "data=sports",
            f"data.root={tmp_path}/sports",
            "data.classes=[golf,tennis]",
            "experiment=smoke",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
        ]
    )
    _one_line_failure(proc, "tennis")
    assert not (tmp_path / "run" / "results.json").exists()


def test_unwritable_output_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    proc = run_train(["experiment=smoke", f"hydra.run.dir={blocker}/run"])
    _one_line_failure(proc, "is a file")
    assert proc.returncode == 2


def test_nan_loss_stops_with_a_clear_message(tmp_path):
    proc = run_train(
        [
            "experiment=smoke",
            "baseline.optimizer.lr=1e30",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
            f"paths.data_dir={DATA}",
        ]
    )
    _one_line_failure(proc, "loss became nan")
    assert (tmp_path / "run" / "FAILED").is_file()
    assert not (tmp_path / "run" / "results.json").exists()
    assert not [
        p
        for p in (tmp_path / "c").iterdir()
        if not p.name.startswith(".") and not p.name.endswith(".lock")
    ]


def test_weights_gone_nan_while_fine_tuning_say_so_in_one_line(tmp_path, monkeypatch):
    """A diverged fine-tune is named as such, not as masks that failed (NaN is not zero); and
    wandb's own ~25 console lines stay off, its run named in one log line instead."""
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    proc = run_train(
        [
            "experiment=smoke",
            "finetune.optimizer.lr=1e30",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
            f"paths.data_dir={DATA}",
        ]
    )
    _one_line_failure(proc, "training diverged in epoch 0: weights became NaN or infinite")
    assert "W&B run (offline): wandb sync " in proc.stdout
    assert not (tmp_path / "run" / "results.json").exists()


def test_wandb_settings_of_ones_own_are_passed_on_not_replaced(make_cfg, monkeypatch, tmp_path):
    """The job silences wandb's console with its own Settings, unless the user gave some."""
    from prunelab import tracking

    given = []

    class Stop(Exception):
        pass

    def started(logger_cfg, kwargs):
        given.append(kwargs)
        raise Stop

    monkeypatch.setattr(tracking, "started", started)
    monkeypatch.delenv("WANDB_SILENT", raising=False)
    for extra in ([], ["+logger.wandb.settings={console: wrap}"]):
        with pytest.raises(Stop):
            tracking.Tracker(make_cfg(*extra), {}, tmp_path, "abc")
    import wandb

    assert isinstance(given[0]["settings"], wandb.Settings)  # the job's: silent
    assert given[1]["settings"] == {"console": "wrap"}  # the user's, as wandb.init reads it


@pytest.mark.parametrize(
    "env", [{}, {"WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}]
)
def test_wandb_online_without_credentials_or_network_falls_back_offline(tmp_path, monkeypatch, env):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    start = time.time()
    proc = run_train(
        [
            "experiment=smoke",
            f"hydra.run.dir={tmp_path}/run",
            f"paths.cache_dir={tmp_path}/c",
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.time() - start < 120
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("prunelab: warning")]
    assert len(warnings) == 1 and "offline" in warnings[0]
    assert (tmp_path / "run" / "results.json").is_file()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.parametrize("mode", ["run", "shared"])
def test_wandbs_other_online_modes_fall_back_offline_too(mode, tmp_path, monkeypatch, capsys):
    from prunelab.tracking import resolve_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    assert resolve_mode(mode) == "offline"
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"prunelab: warning: W&B {mode} mode unavailable (no W&B API key")


@pytest.mark.parametrize(
    ("override", "says"),
    [
        ("+finetune.optimizer.momentum=0.9", "finetune.optimizer (torch.optim.Adam): TypeError:"),
        ("+baseline.optimizer.betas=[0.9]", "baseline.optimizer (torch.optim.Adam): "),
    ],
)
def test_an_optimizer_that_cannot_be_built_stops_before_training(override, says, make_cfg):
    """Adam takes no momentum: found by the config check, not after the baseline's training."""
    from prunelab.errors import PrunelabError
    from prunelab.validate import check_config

    with pytest.raises(PrunelabError) as err:
        check_config(make_cfg(override))
    assert str(err.value).startswith(says) and "\n" not in str(err.value)


@pytest.mark.parametrize(("value", "hint"), [("50", True), ("80.0", True), ("1.5", False)])
def test_a_sparsity_given_in_percent_gets_a_hint(value, hint):
    from prunelab.errors import PrunelabError
    from prunelab.validate import check_sparsity

    with pytest.raises(PrunelabError) as err:
        check_sparsity(value)
    assert ("(a fraction: " in str(err.value)) == hint


def test_same_seed_and_config_give_identical_metrics(make_cfg, tmp_path):
    first = run(make_cfg(f"paths.cache_dir={tmp_path}/a", out=tmp_path / "a"))
    second = run(make_cfg(f"paths.cache_dir={tmp_path}/b", out=tmp_path / "b"))
    assert first["baseline/trained"] and second["baseline/trained"]
    assert _metrics(first) == _metrics(second)


def test_corrupt_resume_checkpoint_is_set_aside(tmp_path):
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    assert resume_path(ckpt) is None
    assert not ckpt.exists() and (tmp_path / "last.ckpt.corrupt").is_file()


def test_unloadable_files_give_one_line_naming_them(tmp_path):
    import argparse

    import torch

    from prunelab.errors import PrunelabError
    from prunelab.io import load_torch

    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(8)}, good)
    (tmp_path / "half.pt").write_bytes(good.read_bytes()[:200])
    (tmp_path / "tail.pt").write_bytes(good.read_bytes()[:-30])  # torch says "Errno 22" only
    (tmp_path / "text.pt").write_text("hello\n")  # torch says "KeyError: 104" only
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save({"ns": argparse.Namespace(x=1)}, tmp_path / "object.pt")
    for name, why in [
        ("half.pt", "truncated or damaged (200 bytes"),
        ("tail.pt", "truncated or damaged"),
        ("text.pt", "not a file written by torch.save"),
        ("empty.pt", "the file is empty"),
        ("object.pt", "(argparse.Namespace) that weights_only=True refuses"),
    ]:
        with pytest.raises(PrunelabError) as err:
            load_torch(tmp_path / name)
        message = str(err.value)
        assert "\n" not in message and str(tmp_path / name) in message and why in message
        assert "weights_only` set to `False`" not in message  # never relay the unsafe advice


def test_rerun_with_other_settings_runs_again_and_keeps_the_old_results(make_cfg, tmp_path, capsys):
    out = tmp_path / "job"
    first = run(make_cfg(out=out))
    mtime = (out / "results.json").stat().st_mtime_ns
    (out / "error.log").write_text("Traceback (most recent call last): an earlier attempt\n")
    (out / "FAILED").write_text("prunelab: error: RuntimeError: an earlier attempt\n")
    assert run(make_cfg(out=out)) == first  # same settings: skipped, file untouched
    assert (out / "results.json").stat().st_mtime_ns == mtime
    # That earlier attempt's failure is over: its mark and traceback go.
    assert not (out / "error.log").exists() and not (out / "FAILED").exists()
    # Only where files go or how runs are shown changed: still the same job.
    assert run(make_cfg("trainer.enable_progress_bar=true", out=out)) == first

    second = run(make_cfg("finetune.max_epochs=2", out=out))
    assert second["config/hash"] != first["config/hash"]
    assert "finetune.max_epochs: 1 -> 2" in capsys.readouterr().err
    kept = out / f"results.{first['config/hash']}.json"
    assert json.loads(kept.read_text()) == json.loads(json.dumps(first))
    old_log = (out / f"csv.{first['config/hash']}" / "metrics.csv").read_text()
    assert old_log.count("\n") > 1 and "prune/sparsity_measured" in old_log.splitlines()[0]
    assert json.loads((out / "config.json").read_text())["finetune"]["max_epochs"] == 2


def test_ctrl_c_says_how_to_go_on(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    args = ["experiment=smoke", "data.train_size=2048", "baseline.max_epochs=3",
            "baseline.patience=3", f"paths.data_dir={DATA}", f"paths.cache_dir={cache}",
            f"hydra.run.dir={out}"]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as at a terminal: a suite started in the background (`make test &`) passes
        # its children SIGINT as ignored, and Python then never raises KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while time.time() < deadline and child.poll() is None:
        if list(cache.glob(".*.work/last.ckpt")):  # inside the baseline's training
            child.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last == "prunelab: interrupted; run the same command again to resume where it stopped"
    assert "Traceback" not in err
    assert (out / "FAILED").is_file() and not (out / "results.json").exists()


def test_ctrl_c_in_a_sweep_of_hydras_timed_folder_names_the_folder_to_resume(tmp_path):
    """The default sweep folder is named by the launch time: the same command again would start
    a new one and fine-tune from scratch. The line names the folder, and that command resumes."""
    args = ["-m", "sparsity=0.5", "experiment=smoke", "data.train_size=2048",
            "finetune.max_epochs=3", f"paths.data_dir={DATA}",
            f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as at a terminal
    )
    deadline = time.time() + 300
    while time.time() < deadline and child.poll() is None:
        if list(tmp_path.glob("multirun_sweeps/*/*/checkpoints/last.ckpt")):  # fine-tuning
            child.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    (sweep,) = (tmp_path / "multirun_sweeps").iterdir()
    last = err.strip().splitlines()[-1]
    hint = f"hydra.sweep.dir=multirun_sweeps/{sweep.name}"
    assert last == f"prunelab: interrupted; run the same command again with {hint} to resume " \
        "where it stopped", err[-3000:]  # fmt: skip
    proc = run_train([*args, hint], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "multirun_sweeps").iterdir()] == [sweep.name]
    (job,) = sweep.glob("*/results.json")
    assert not (job.parent / "FAILED").exists()


@pytest.mark.parametrize("entry", ["train", "evaluate", "report"])
def test_ctrl_c_outside_a_job_is_one_line_too(entry, tmp_path):
    """Ctrl-C while train.py checks its command line (seconds of composing and importing), or
    in prunelab.evaluate or prunelab.report: one line and status 130, no traceback."""
    stop = "def stop(*args, **kwargs):\n    raise KeyboardInterrupt\n"
    script = {
        "train": "import prunelab.cli\nprunelab.cli.check_argv = stop\n"
        f"import runpy, sys\nsys.argv = ['train.py', 'sparsity=0.5']\n"
        f"runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n",
        "evaluate": "import sys, prunelab.evaluate as e\ne.run = stop\n"
        f"sys.exit(e.main(['ckpt={tmp_path}']))\n",
        "report": "import sys, prunelab.report as r\nr.build = stop\n"
        "from prunelab.report.__main__ import main\n"
        f"sys.exit(main([{str(tmp_path)!r}]))\n",
    }[entry]
    proc = subprocess.run(
        [sys.executable, "-c", stop + script], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 130, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunelab: interrupted"), proc.stderr


def test_report_command_line_mistakes_are_one_line(tmp_path, capsys):
    from prunelab.report.__main__ import main

    for argv, says in (
        ([str(tmp_path), "report.figures=false"], "report.figures=false is written --no-figures"),
        ([], "the following arguments are required: sweep_dir (usage: python -m prunelab.report"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert stop.value.code == 2 and "\n" not in err and err.startswith("prunelab: error:")
        assert says in err


def test_a_killed_run_of_other_settings_keeps_its_log_apart(tmp_path, capsys):
    # Killed during the baseline: config.json and a CSV log, no results.json, no checkpoints.
    from prunelab.identity import config_hash, previous_results, set_aside

    old = {"baseline": {"lr": 1e-3}, "seed": 0}
    new = {"baseline": {"lr": 2e-3}, "seed": 0}
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,val/loss\n0,0.658\n")
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert previous_results(tmp_path, {"seed": 0}, new) is None
    set_aside(tmp_path, new)
    kept = tmp_path / f"csv.{config_hash(old)}" / "metrics.csv"
    assert kept.read_text() == "epoch,val/loss\n0,0.658\n" and not (tmp_path / "csv").exists()
    assert "baseline.lr: 0.001 -> 0.002" in capsys.readouterr().err
    assert json.loads((tmp_path / "config.json").read_text()) == new
    assert json.loads((tmp_path / f"config.{config_hash(old)}.json").read_text()) == old


def test_a_rerun_with_other_settings_leaves_no_file_of_the_old_run_beside_the_new(tmp_path, capsys):
    """Not eval.json, not model.pt: every file of the old run is set aside under its hash, and
    a rerun refused before training (here: no data) leaves the old run's folder whole."""
    from prunelab.evaluate import main as evaluate
    from prunelab.identity import aside_name
    from prunelab.io import load_torch

    out = tmp_path / "run"
    args = ["experiment=smoke", f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={out}"]
    proc = run_train([*args, f"paths.data_dir={DATA}", "model.widths=[8,16,32]"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert evaluate([f"ckpt={out}", "attack.n_images=8"]) == 0
    names = ("results.json", "config.json", "eval.json", "model.pt", "model.sparse", "command.json")
    old = {name: (out / name).read_bytes() for name in names}
    tag = json.loads(old["results.json"])["config/hash"]

    proc = run_train([*args, "paths.data_dir=/nonexistent"])  # and model.widths back to default
    assert proc.returncode == 1 and (out / "FAILED").is_file()
    assert {name: (out / name).read_bytes() for name in names} == old
    # Hydra rewrote .hydra/ for the refused attempt; the run's own command.json still says how
    # its model was trained and where its data lie.
    assert evaluate([f"ckpt={out}", "attack.n_images=8"]) == 0
    old["eval.json"] = (out / "eval.json").read_bytes()
    proc = run_train([*args, f"paths.data_dir={DATA}", "model.widths=[8,16,32]"])
    assert "complete results.json found, skipping" in proc.stdout + proc.stderr
    assert proc.returncode == 0 and not (out / "FAILED").exists()
    (out / "error.log").write_text("Traceback (most recent call last): an earlier attempt\n")

    proc = run_train([*args, f"paths.data_dir={DATA}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "model.widths: [8, 16, 32] -> [32, 64, 128]" in proc.stderr
    for name in names:
        assert (out / aside_name(name, tag)).read_bytes() == old[name], name
    assert (out / f"csv.{tag}").is_dir() and (out / f"wandb.{tag}").is_dir()
    left = {p.name for p in out.iterdir()}
    assert not {"eval.json", "error.log", "FAILED", "checkpoints"} & left, sorted(left)
    assert load_torch(out / "model.pt")["model"]["widths"] == [32, 64, 128]
    assert json.loads((out / "results.json").read_text())["config/hash"] != tag
    # The old model evaluated again: its eval file is the old run's, not the new run's eval.json.
    capsys.readouterr()
    assert evaluate([f"ckpt={out / f'model.{tag}.pt'}", "attack.n_images=8"]) == 0
    assert "set aside" not in capsys.readouterr().out  # its own command.{tag}.json: no caveat
    assert json.loads((out / f"eval.{tag}.json").read_text())["checkpoint"].endswith(f".{tag}.pt")
    assert not (out / "eval.json").exists()


KILLED_RUN = """
import os, signal, subprocess, sys, wandb
wandb.setup()  # a W&B service in the parent: children inherit it through WANDB_SERVICE
child = '''
import os, signal, sys
from omegaconf import OmegaConf
from prunelab.tracking import started
cfg = OmegaConf.create({"_target_": "prunelab.tracking.WandbRunLogger", "project": "p",
                        "save_dir": sys.argv[1]})
logger = started(cfg, {"mode": "offline", "id": "job-run-id", "resume": "allow"})
print("run", logger.experiment.id, flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
logger.experiment.finish()
'''
subprocess.run([sys.executable, "-c", child, sys.argv[1], "kill"])
sys.exit(subprocess.run([sys.executable, "-c", child, sys.argv[1], "rerun"]).returncode)
"""


def test_a_rerun_after_sigkill_logs_even_if_its_run_id_is_still_held(tmp_path):
    """A killed job's W&B run stays 'in use' in a service shared with a parent process; the
    rerun must not fail on it (it did: ServerResponseError 'run ID ... is in use')."""
    env = {**os.environ, **{v: str(tmp_path / v.lower()) for v in ("WANDB_DIR", "WANDB_CACHE_DIR",
           "WANDB_CONFIG_DIR", "WANDB_DATA_DIR")}, "WANDB_SILENT": "true"}  # fmt: skip
    env.pop("WANDB_SERVICE", None)
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "run job-run-id\n" in proc.stdout  # the killed attempt
    assert "run job-run-id-" in proc.stdout  # the rerun, under a fresh id
    assert "is still held by an earlier, killed attempt" in proc.stderr


def test_a_rerun_with_other_settings_logs_to_a_new_wandb_run(tmp_path):
    """Online, the same id resumes the old run: a rerun with other settings (its files set
    aside) would have mixed its curves into the old settings' run."""
    from prunelab.tracking import run_id

    assert run_id(tmp_path / "job", "aaa") == run_id(tmp_path / "job", "aaa")  # a resume
    assert run_id(tmp_path / "job", "aaa") != run_id(tmp_path / "job", "bbb")
    assert run_id(tmp_path / "job", "aaa") != run_id(tmp_path / "other", "aaa")


def test_only_a_set_aside_model_reads_the_records_of_its_run():
    """model.<hash>.pt reads results.<hash>.json; one's own model.best.pt reads no run's
    records, and its eval file is its own, not the job's eval.json."""
    from prunelab.evaluate import eval_name, run_file

    def names(ckpt: str) -> tuple[str, str | None]:
        return eval_name(ckpt), run_file(ckpt, "results")

    tag = "0123456789ab"
    assert names("model.pt") == ("eval.json", "results.json")
    assert names(f"model.{tag}.pt") == (f"eval.{tag}.json", f"results.{tag}.json")
    assert run_file("model.old.pt", "config") == "config.old.json"
    # One's own model.best.pt and a copy named best.pt: two files, neither overwrites the other.
    assert names("model.best.pt") == ("eval.model.best.json", None)
    assert names("best.pt") == ("eval.best.json", "results.json")
    # A copy named like a set-aside run's tag keeps its .pt: not that run's eval file.
    assert names("old.pt")[0] == "eval.old.pt.json" != eval_name("model.old.pt")
    # Copies under names of one's own: each its own eval file, next to the others.
    assert names("pruned-80.pt") == ("eval.pruned-80.json", "results.json")
    assert names("copied.model.pt") == ("eval.copied.model.json", "results.json")


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


def _leave_run(out: Path, settings: dict, name: str, complete: bool) -> None:
    """What a run of `settings` leaves in its job folder: each file says `name`."""
    from prunelab.identity import config_hash, set_aside

    set_aside(out, settings)  # as the pipeline does before its loggers open
    (out / "command.json").write_text(json.dumps({"overrides": [name]}))
    (out / "csv").mkdir()
    (out / "csv" / "metrics.csv").write_text(f"epoch,{name}\n")
    (out / "wandb").mkdir()
    (out / "wandb" / "run.txt").write_text(name)
    (out / "model.pt").write_text(name)
    if complete:
        results = {"config/hash": config_hash(settings), "time/total_s": 1.0, "by": name}
        (out / "results.json").write_text(json.dumps(results))


def _files(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*")) if p.is_file()}


def test_a_killed_attempt_never_overwrites_the_set_aside_complete_run_of_its_settings(
    tmp_path, capsys
):
    """X complete, Y complete (X set aside), an X attempt killed before its results.json, Y
    rerun: the killed attempt's logs and command would have replaced the complete X run's,
    beside that run's results.X.json and model.X.pt."""
    from prunelab.identity import config_hash, set_aside

    x, y = {"lr": 1e-3, "seed": 0}, {"lr": 2e-3, "seed": 0}
    tag = config_hash(x)
    _leave_run(tmp_path, x, "complete X", complete=True)
    _leave_run(tmp_path, y, "complete Y", complete=True)
    kept = {name: text for name, text in _files(tmp_path).items() if f".{tag}" in name}
    assert len(kept) == 6  # results, config, command, model, csv/ and wandb/ of complete X
    _leave_run(tmp_path, x, "killed X", complete=False)
    capsys.readouterr()
    set_aside(tmp_path, y)  # the rerun of Y
    assert {name: text for name, text in _files(tmp_path).items() if f".{tag}" in name} == kept
    assert not {"csv", "wandb", "command.json", "model.pt"} & {p.name for p in tmp_path.iterdir()}
    assert json.loads((tmp_path / "config.json").read_text()) == y
    assert "were deleted, not set over those" in capsys.readouterr().err
    assert not (tmp_path / ".aside.json").exists()


def test_a_set_aside_cut_short_is_finished_as_begun(tmp_path, monkeypatch):
    """A kill after set_aside renamed the complete Y run's results.json leaves Y's other files
    looking like a stopped run's: the next attempt must set them aside, not delete them. And
    the tag then holds that run's files only, not an earlier Y run's eval beside them."""
    from prunelab import identity
    from prunelab.identity import config_hash, set_aside

    y, z = {"lr": 2e-3, "seed": 0}, {"lr": 3e-3, "seed": 0}
    tag = config_hash(y)
    (tmp_path / f"results.{tag}.json").write_text("{}")  # an earlier complete run of Y...
    (tmp_path / f"eval.{tag}.json").write_text("earlier Y")  # ...evaluated
    _leave_run(tmp_path, y, "complete Y", complete=True)
    run_y = {name: text for name, text in _files(tmp_path).items() if f".{tag}" not in name}
    move = identity._move

    class Killed(Exception):
        pass

    moved = []

    def killed_after_one(src: Path, dst: Path) -> None:
        if moved:
            raise Killed
        moved.append(src.name)
        move(src, dst)

    monkeypatch.setattr(identity, "_move", killed_after_one)
    with pytest.raises(Killed):
        set_aside(tmp_path, z)
    assert moved == ["results.json"] and (tmp_path / "model.pt").exists()
    monkeypatch.setattr(identity, "_move", move)
    set_aside(tmp_path, z)  # the next attempt

    def aside(name: str) -> str:
        top, slash, rest = name.partition("/")
        return identity.aside_name(top, tag) + slash + rest

    left = _files(tmp_path)
    assert json.loads(left.pop("config.json")) == z
    # Earlier Y's eval.<tag>.json is gone too: it evaluated another model than model.<tag>.pt.
    assert left == {aside(name): text for name, text in run_y.items()}


@pytest.mark.parametrize("content", [b"\xff\xfe not UTF-8", b"[1, 2]", b'"text"', b'{"a": 1'])
def test_a_corrupt_json_file_is_named_and_a_corrupt_cache_entry_rebuilt(content, tmp_path):
    """Not UTF-8 (UnicodeDecodeError) or JSON but no object (AttributeError in the caller)
    crashed where a torn file gave the one-line error and the cache rebuilt its entry."""
    import torch

    from prunelab.cache import BaselineCache
    from prunelab.errors import PrunelabError
    from prunelab.io import read_json

    (tmp_path / "file.json").write_bytes(content)
    with pytest.raises(PrunelabError) as err:
        read_json(tmp_path / "file.json")
    assert str(tmp_path / "file.json") in str(err.value) and "\n" not in str(err.value)
    cache = BaselineCache(tmp_path / "cache")
    entry = cache.entry("key")
    entry.mkdir(parents=True)
    torch.save({"w": torch.ones(2)}, entry / "model.pt")
    (entry / "meta.json").write_bytes(content)
    (entry / "test.json").write_bytes(content)
    assert cache.load("key") is None  # so get_or_train rebuilds it
    assert cache.cached_json("key", "test", lambda: {"test/acc": 0.9}) == {"test/acc": 0.9}
