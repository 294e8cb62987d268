"""prunelab.evaluate's command line: mistakes are one line, the checkpoint's identity is its
own, and the job's record (command.json, .hydra/) is read, named where it cannot be used."""

import json

import pytest

from prunelab.evaluate import main as evaluate_main
from prunelab.io import save_torch


@pytest.fixture
def saved_job(tmp_path, monkeypatch):
    """A job folder whose model.pt has what prunelab.evaluate reads before the data (the
    weights are never reached: loading the data fails the test)."""
    job = tmp_path / "job"
    meta = {"model": "simplecnn", "data": "fashion_mnist", "pruning": "magnitude",
            "sparsity": 0.5, "seed": 0, "baseline/key": None}  # fmt: skip
    spec = {"in_shape": [1, 28, 28], "num_classes": 10}
    save_torch(job / "model.pt", {"state_dict": {}, "model": {}, "data": spec, "meta": meta})

    class DataLoaded(Exception):
        pass

    def no_data(cfg, stage=None):
        raise DataLoaded(f"data loaded: {cfg.data._target_}")

    monkeypatch.setattr("prunelab.build.build_datamodule", no_data)
    return job, DataLoaded


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["-m"],
            "prunelab.evaluate takes no -m (nor Hydra's other flags): it evaluates one "
            "checkpoint with one setting, given as key=value",
        ),  # fmt: skip
        (["--cfg", "job"], "prunelab.evaluate takes no --cfg (nor Hydra's other flags)"),
        (
            ["attack.n_images=8,16"],
            "prunelab.evaluate runs one setting: give attack.n_images one value "
            "(attack.n_images=8,16 sweeps over several)",
        ),  # fmt: skip
        (
            ["--n_images", "5"],
            "unknown option '--n_images': set config values as key=value (attack.n_images=5)",
        ),  # fmt: skip
    ],
)
def test_evaluate_command_line_mistakes_are_one_line(args, expected, saved_job, capsys):
    job, _ = saved_job
    with pytest.raises(SystemExit) as stop:
        evaluate_main([f"ckpt={job}", *args])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith(f"prunelab: error: {expected}")
    assert err.count("\n") == 1 and "train.py" not in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["model=resnetsmall", "sparsity=0.9"],
            "model, sparsity come from the checkpoint (model=simplecnn, sparsity=0.5); "
            "prunelab.evaluate does not change them",
        ),  # fmt: skip
        (["data=cifar10"], "data comes from the checkpoint (data=fashion_mnist)"),
        (
            ["pruning=structured", "seed=1"],
            "pruning, seed come from the checkpoint (pruning=magnitude, seed=0)",
        ),  # fmt: skip
        (["++sparsity=0.2"], "sparsity comes from the checkpoint (sparsity=0.5); prunelab"),
        (
            ["model.widths=[16,32,64]", "finetune.max_epochs=3"],
            "model.widths, finetune.max_epochs: the checkpoint holds its net and was trained "
            "already; prunelab.evaluate would ignore them (the evaluation's own keys are "
            "data.*, attack.*, eval.* and paths.*)",
        ),  # fmt: skip
        (["baseline.max_epochs=5"], "baseline.max_epochs: the checkpoint holds its net and"),
        # The report's settings are prunelab.report's; evaluate never reads them.
        (
            ["report.dpi=5"],
            "report.dpi: report.* is prunelab.report's; prunelab.evaluate would ignore it",
        ),  # fmt: skip
    ],
)
def test_evaluate_refuses_to_relabel_the_checkpoint(args, expected, saved_job, capsys):
    """The checkpoint's model, data, method, sparsity and seed are its own: refused before any
    data is loaded (data=cifar10 would start a download)."""
    job, _ = saved_job
    assert evaluate_main([f"ckpt={job}", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"prunelab: error: {expected}") and err.count("\n") == 1
    # The same where the job's own keys would not compose with the group asked for.
    (job / "command.json").write_text(json.dumps({"overrides": ["model.hidden=32"]}))
    assert evaluate_main([f"ckpt={job}", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"prunelab: error: {expected}") and err.count("\n") == 1


def test_evaluate_takes_settings_under_the_checkpoints_groups(saved_job, tmp_path):
    """Its own values again, data.*, attack.*, eval.* and paths.* pass on to the evaluation."""
    job, data_loaded = saved_job
    # trainer.accelerator: a job trained with =gpu evaluated on a machine without one.
    args = ["model=simplecnn", "sparsity=0.5", "data.test_size=100", "attack.n_images=8",
            f"paths.data_dir={tmp_path}", "eval.device=cpu",
            "trainer.accelerator=auto"]  # fmt: skip
    with pytest.raises(data_loaded):
        evaluate_main([f"ckpt={job}", *args])


def test_a_job_record_that_does_not_compose_is_named(saved_job, capsys):
    """A command.json edited by hand (or by another prunelab version) is the file to fix; one
    the command line mends is used; one that cannot be read is named and passed over."""
    job, data_loaded = saved_job
    record = job / "command.json"
    record.write_text(json.dumps({"overrides": ["model.hiden=3"]}))
    assert evaluate_main([f"ckpt={job}"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"prunelab: error: the job's record {record} does not compose with this config (Could "
        "not override 'model.hiden'); edit that file or set the key on the command line\n"
    )
    record.write_text(json.dumps({"overrides": ["attack=nope"]}))
    with pytest.raises(data_loaded):  # attack=default mends it: on to the data
        evaluate_main([f"ckpt={job}", "attack=default"])
    record.write_text('{"overrides": [')
    with pytest.raises(data_loaded):
        evaluate_main([f"ckpt={job}"])
    out = capsys.readouterr().out
    assert f"note: {record} cannot be read (Expecting value: " in out
    assert "no other record to use" in out and "note: no job record" in out


def test_an_experiment_applies_its_evaluation_settings_and_names_the_rest(
    saved_job, capsys, monkeypatch
):
    """experiment=smoke for a quick look: its data.*, attack.* and eval.* apply; its training
    keys (against the default config here: the checkpoint has no job record) are named as
    ignored, not refused."""
    job, data_loaded = saved_job
    seen = {}

    def record(cfg, stage=None):
        seen.update(n_images=cfg.attack.n_images, test_size=cfg.data.test_size)
        raise data_loaded("stop")

    monkeypatch.setattr("prunelab.build.build_datamodule", record)
    with pytest.raises(data_loaded):
        evaluate_main([f"ckpt={job}", "experiment=smoke"])
    assert seen == {"n_images": 64, "test_size": 512}
    assert (
        "note: experiment=smoke also sets baseline.max_epochs, baseline.patience, "
        "finetune.max_epochs, which prunelab.evaluate ignores (the checkpoint was trained "
        "already); its data.*, attack.* and eval.* settings apply"
    ) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("name", "taken_by", "own"),
    [
        ("best", "best.pt", "eval.best.own.json"),  # eval_name drops .pt: both eval.best.json
        ("old", "model.old.pt", "eval.old.own.json"),  # a set-aside run's eval.old.json
        ("best.ckpt.pt", "best.ckpt", "eval.best.ckpt.pt.json"),
    ],
)
def test_another_checkpoints_eval_file_is_not_written_over(name, taken_by, own, saved_job, capsys):
    job, _ = saved_job
    from prunelab.evaluate import eval_name

    out = job / eval_name(name)
    out.write_text(json.dumps({"checkpoint": str(job / taken_by), "test/acc": 0.9}))
    (job / name).write_bytes((job / "model.pt").read_bytes())
    code = evaluate_main([f"ckpt={job / name}"])
    err = capsys.readouterr().err
    assert code == 2 and err == (
        f"prunelab: error: {out} holds the evaluation of {taken_by}, whose file name gives the "
        f"same eval file as {name}'s; name this one's: out={job / own}\n"
    )
    assert json.loads(out.read_text())["test/acc"] == 0.9  # kept


def test_the_own_eval_file_and_a_set_aside_ones_are_written_again(saved_job):
    """Evaluating model.pt again rewrites its eval.json; a rerun of other settings renamed
    model.pt and eval.json together, so eval.<hash>.json names model.pt and is its own."""
    from prunelab.evaluate import check_own_eval

    job, _ = saved_job
    (job / "eval.json").write_text(json.dumps({"checkpoint": str(job / "model.pt")}))
    check_own_eval(job / "eval.json", job / "model.pt")
    tag = "0123456789ab"
    (job / f"eval.{tag}.json").write_text(json.dumps({"checkpoint": str(job / "model.pt")}))
    check_own_eval(job / f"eval.{tag}.json", job / f"model.{tag}.pt")
    (job / "eval.x.json").write_text("not json")  # not an evaluation: written over, as before
    check_own_eval(job / "eval.x.json", job / "x.pt")
