"""A rerun with other settings: the old run set aside whole, the new one run and logged apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunelab.pipeline import run

from conftest import DATA, run_train


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


@pytest.mark.slow
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


@pytest.mark.slow
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
