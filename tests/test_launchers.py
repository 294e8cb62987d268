"""Parallel and cluster launchers, one sweep started twice: each job and baseline runs once."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
from sweep_tools import killable_sweep_args, start_train, wait_for

from conftest import DATA, run_train, sweep_results


@pytest.mark.slow
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
    results = list(sweep_results(tmp_path / "sweep").values())
    assert len(results) == 2
    assert sum(r["baseline/trained"] for r in results) == 1
    assert len({r["baseline/key"] for r in results}) == 1
    # The two jobs' console lines interleave: each names its job ('baseline: trained' alone did
    # not say which job trained it and which waited).
    jobs = tuple(f"{name}: " for name in sweep_results(tmp_path / "sweep"))
    lines = [line.split("] - ", 1)[1] for line in proc.stdout.splitlines() if "[prunelab]" in line]
    assert lines and all(line.startswith(jobs) for line in lines), lines
    assert sum("baseline: trained" in line for line in lines) == 1


@pytest.mark.slow
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
    (result,) = sweep_results(tmp_path / "sweep").values()
    assert result["sparsity"] == 0.5 and result["baseline/trained"]
    # The jobs' logs are kept; submitit's literal, empty "%j" folder is not.
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert not (tmp_path / "sweep" / ".submitit" / "%j").exists()


@pytest.mark.slow
def test_the_same_sweep_started_twice_runs_each_job_once(tmp_path):
    """A second launch into a running sweep's folder (another terminal, a resume while the first
    still runs) waits for the job the first is running, then skips it: it ran it again at the
    same time, two W&B runs of one id writing and deleting each other's checkpoints."""
    sweep = tmp_path / "sweep"
    args = [*killable_sweep_args(sweep, tmp_path / "cache")]
    args[args.index("sparsity=0.5,0.8")] = "sparsity=0.5"
    first = start_train(args, stderr=subprocess.STDOUT)
    wait_for(first, sweep, "*/checkpoints/last.ckpt")  # the first is fine-tuning
    # Paused mid-job, the first cannot finish before the second has started (on a busy machine
    # a smoke fine-tune ends within the seconds the second takes to import torch).
    first.send_signal(signal.SIGSTOP)
    import threading

    wake = threading.Timer(120, first.send_signal, (signal.SIGCONT,))  # never paused for good
    wake.start()
    try:
        unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}
        second = start_train(args, env=unbuffered, stderr=subprocess.STDOUT)
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
