"""Bad input on the command line: one clear line, non-zero exit, nothing written, no training."""

import re
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from prunelab.cli import check_overrides, compose_config
from prunelab.errors import PrunelabError
from prunelab.pipeline import run
from prunelab.targets import find_target, targets
from prunelab.validate import check_before_training, check_config, options

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
        (["attack.fgsm_eps=[0.1,-1]"], "attack.fgsm_eps must be a number in [0, 1], got -1"),
        # eps is an L-inf radius on images in [0, 1]: beyond 1 (255/255) it means nothing.
        (["attack.fgsm_eps=[2]"], "attack.fgsm_eps must be a number in [0, 1], got 2"),
        (["attack.pgd.eps=1.5"], "attack.pgd.eps must be a number in [0, 1], got 1.5"),
        (["attack.curve.eps_255=[300]"], "attack.curve.eps_255 must be a number in [0, 255]"),
        (["data=sports", "data.classes=[tshirt,tshirt]"], "data.classes names 'tshirt' more than"),
        (["data=sports", "data.classes=[]"], "data.classes must name at least 2 class folders"),
        (["data=sports", "data.classes=[tshirt]"], "data.classes must name at least 2 class"),
        (["data=sports", "data.image_size=abc"], "data.image_size must be a whole number >= 1"),
        (["data=imagefolder", "data.std=[0.2,0,0.2]"], "data.std must be null or 3 positive"),
        (["data=imagefolder", "data.mean=[0.5]"], "data.mean must be null or 3 numbers (one per"),
        (["+foo=1"], "unknown config key 'foo' (nothing reads it)"),
        (["+foo.bar=1"], "unknown config key 'foo' (nothing reads it)"),
        (["logger.wandb.mode=bogus"], "logger.wandb.mode must be one of online, offline, disabled"),
        (
            ["finetune.optimizer._target_=torch.optim.Adamm"],
            "cannot import 'torch.optim.Adamm' (finetune.optimizer._target_); did you mean "
            "'torch.optim.Adam'?",
        ),  # fmt: skip
        (["model._target_=prunelab.modls.SimpleCNN"], "cannot import 'prunelab.modls.SimpleCNN'"),
        (["model=simplecnn,resnetsmall"], "sweeps over several values: add -m"),
        (
            ["pruning=lottery", "pruning.rewind_epoch=5"],
            "pruning.rewind_epoch=5 needs baseline.rewind_epochs to include 5 (it is [0, 1])",
        ),
        (
            [
                "pruning=lottery",
                "pruning.rewind_epoch=3",
                "baseline.rewind_epochs=[0,3]",
                "baseline.max_epochs=2",
            ],
            "pruning.rewind_epoch=3 needs baseline.max_epochs >= 3 (it is 2)",
        ),
        # Jobs are told apart by the cell keys only: a sweep over another key would share folders.
        (["-m", "finetune.optimizer.lr=1e-4,1e-3"], "cannot sweep finetune.optimizer.lr"),
        (["-m", "experiment=smoke,paper"], "cannot sweep experiment"),
        (["trainer.devices=2"], "trainer.devices must be 1, got 2: a prunelab job runs on one"),
        (["trainer.devices=auto"], "trainer.devices must be 1, got 'auto'"),
    ],
)
def test_bad_input_is_one_line(args, expected, tmp_path):
    # Smoke-sized and cached under tmp_path: a case that slipped through would end quickly.
    safe = ["experiment=smoke", f"paths.cache_dir={tmp_path}/cache"]
    proc = run_train([*safe, *args, f"hydra.run.dir={tmp_path}/run",
                      f"hydra.sweep.dir={tmp_path}/sweep"])  # fmt: skip
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("prunelab: error:") and expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not list(tmp_path.rglob("results.json")) and not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["data.trian_size=10"],
            "'data.trian_size' (check its spelling; did you mean 'data.train_size'?)",
        ),  # fmt: skip
        (["sparsty=0.2"], "'sparsty' (check its spelling; did you mean 'sparsity'?)"),
        (
            ["dta.train_size=10"],
            "'dta.train_size' (check its spelling; did you mean 'data.train_size'?)",
        ),  # fmt: skip
        (
            ["pruning=lottery", "pruning.rewnd_epoch=1"],
            "'pruning.rewnd_epoch' (check its spelling; did you mean 'pruning.rewind_epoch'?)",
        ),  # fmt: skip
        (["data.qwertyuiop=1"], "'data.qwertyuiop' (check its spelling)"),
    ],
)
def test_misspelt_key_is_one_line(args, expected, tmp_path):
    proc = run_train([*args, f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"prunelab: error: unknown config key {expected}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["+trainer.max_time=null"],  # an addition under an existing node reaches its constructor
        ["++trainer.gradient_clip_val=1.0"],
        ["data=sports", "data.classes=null"],  # every class folder found under root/train
        ["data=sports", "data.classes=[a,b]", "data.image_size=64"],
        ["-m", "model=simplecnn,resnetsmall"],
        ["hydra.mode=MULTIRUN", "model=simplecnn,resnetsmall"],
        ["logger.wandb.mode=disabled", "attack.pgd.eps=1", "attack.curve.eps_255=[0,255]"],
        ["pruning=lottery", "pruning.rewind_epoch=1"],
        ["finetune.optimizer._target_=torch.optim.SGD"],
        ["-m", "hydra/launcher=joblib", "pruning=structured", "data=cifar10", "logger=csv"],
    ],
)
def test_good_input_passes_the_checks(args, tmp_path):
    check_overrides([*args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sw"])


@pytest.mark.parametrize("group", ["model", "data", "pruning", "attack", "logger", "experiment"])
def test_every_shipped_target_is_found(group):
    """The `_target_` check must never refuse a shipped option (it reads sources, not imports)."""
    for option in options(group):
        cfg = compose_config([f"{group}={option}"])
        found = dict(targets(OmegaConf.to_container(cfg, resolve=False)))
        assert found and all(find_target(t) is None for t in found.values()), (option, found)


def test_a_bad_target_is_refused_without_importing_torch():
    """The check runs before torch loads; a typo must not cost torch's import time."""
    code = (
        "import sys\n"
        "from prunelab.cli import check_overrides\n"
        "from prunelab.errors import PrunelabError\n"
        "try:\n"
        "    check_overrides(['finetune.optimizer._target_=torch.optim.Adamm'])\n"
        "except PrunelabError:\n"
        "    print(sorted(m for m in ('torch', 'lightning', 'wandb') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_check_before_training(make_cfg):
    """Checks that need the data's spec: the evaluation device and the targeted class."""
    spec = {"num_classes": 10}
    for ok in ("eval.device=auto", "eval.device=cpu", "attack.targeted_class=9"):
        check_before_training(make_cfg(ok), spec)
    gpus = torch.cuda.device_count()
    for bad, expected in [
        (f"eval.device=cuda:{gpus}", f"eval.device=cuda:{gpus} but this machine has"),
        ("eval.device=gpu", "eval.device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("attack.targeted_class=10", "attack.targeted_class must be in 0..9 (the data has 10"),
    ]:
        with pytest.raises(PrunelabError, match=re.escape(expected)):
            check_before_training(make_cfg(bad), spec)
    if not torch.cuda.is_available():
        with pytest.raises(PrunelabError, match="eval.device=cuda but this machine has no cuda"):
            check_before_training(make_cfg("eval.device=cuda"), spec)


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
