"""Bad input on the command line: one clear line, non-zero exit, nothing written, no training."""

import pytest

from prunelab.errors import PrunelabError
from prunelab.pipeline import run
from prunelab.validate import check_config

from conftest import run_train


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sparsity=-0.1"], "sparsity must be in [0, 1)"),
        (["sparsity=1"], "sparsity must be in [0, 1)"),
        (["sparsity=1.5"], "sparsity must be in [0, 1)"),
        (["sparsity=abc"], "sparsity must be a number"),
        (["-m", "sparsity=0.2,abc"], "sparsity must be a number"),
        (["model=vgg"], "unknown model 'vgg'; choose one of: resnetsmall, simplecnn"),
        (["data=imagenet"], "unknown data 'imagenet'"),
        (["-m", "model=simplecnn,resnet"], "unknown model 'resnet'"),
        (["seed=abc"], "seed must be a whole number >= 0 and < 4294967295, got 'abc'"),
        (["seed=4294967295"], "seed must be a whole number >= 0 and < 4294967295"),
        (["-m", "seed=0,1,x"], "seed must be a whole number"),
        (["data.train_size=-5"], "data.train_size must be a whole number >= 1 or null, got -5"),
        (["attack.fgsm_eps=[0.1,-1]"], "attack.fgsm_eps must be a number >= 0, got -1"),
        # Jobs are told apart by the cell keys only: a sweep over another key would share folders.
        (["-m", "finetune.optimizer.lr=1e-4,1e-3"], "cannot sweep finetune.optimizer.lr"),
        (["-m", "experiment=smoke,paper"], "cannot sweep experiment"),
        (["trainer.devices=2"], "trainer.devices must be 1, got 2: a prunelab job runs on one"),
        (["trainer.devices=auto"], "trainer.devices must be 1, got 'auto'"),
    ],
)
def test_bad_input_is_one_line(args, expected, tmp_path):
    proc = run_train([*args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"])
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("prunelab: error:") and expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.rglob("results.json")) and not (tmp_path / "run").exists()


def test_misspelt_key_is_one_line(tmp_path):
    proc = run_train(["data.trian_size=10", f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "prunelab: error: unknown config key 'data.trian_size' (check its spelling)"
    )
    assert not (tmp_path / "run").exists()


def test_config_values_are_checked_before_anything_is_written(make_cfg, tmp_path):
    check_config(make_cfg())  # the shipped smoke experiment passes
    for override, expected in [
        ("data.batch_size=0", "data.batch_size must be a whole number >= 1, got 0"),
        ("finetune.max_epochs=0", "finetune.max_epochs must be"),
        ("eval.latency.threads=0", "eval.latency.threads must be a whole number >= 1 or null"),
        ("baseline.optimizer.lr=-1e-3", "baseline.optimizer.lr must be a number >= 0"),
    ]:
        out = tmp_path / override.split("=")[0]
        with pytest.raises(PrunelabError, match=expected):
            run(make_cfg(override, out=out))
        assert not out.exists()


def test_a_bad_model_setting_names_target_and_cause(tmp_path):
    proc = run_train(["experiment=smoke", "model.dropout=1.5", f"hydra.run.dir={tmp_path}/run",
                      f"paths.cache_dir={tmp_path}/cache"])  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "prunelab: error: Error in call to target 'prunelab.models.simple_cnn.SimpleCNN': "
        "ValueError: dropout probability has to be between 0 and 1, but got 1.5"
    )
    assert not (tmp_path / "run" / "results.json").exists()
