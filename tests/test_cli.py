"""Bad input on the command line: one clear line, non-zero exit, nothing written, no training."""

import re
import subprocess
import sys

import pytest
import torch
from hydra.errors import InstantiationException
from omegaconf import OmegaConf

from prunelab.cli import check_argv, check_overrides
from prunelab.errors import PrunelabError
from prunelab.flags import arrange
from prunelab.pipeline import run
from prunelab.suggest import compose_config
from prunelab.sweep_checks import sweep_values
from prunelab.targets import find_target, targets
from prunelab.validate import CONF_DIR, check_before_training, check_config, options

from conftest import ROOT, run_train


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
        # One radius twice (0.01 and 0.010 name one key, robust/fgsm_acc@0.01): attacked twice.
        (["attack.fgsm_eps=[0.01,0.010]"], "attack.fgsm_eps lists 0.01 more than once; give"),
        (["attack.curve.eps_255=[0,4,4.0]"], "attack.curve.eps_255 lists 4 more than once"),
        (["data=sports", "data.classes=[tshirt,tshirt]"], "data.classes names 'tshirt' more than"),
        (["data=sports", "data.classes=[]"], "data.classes must name at least 2 class folders"),
        (["data=sports", "data.classes=[tshirt]"], "data.classes must name at least 2 class"),
        # Folders named 1, 2: Hydra reads numbers, the line says how to quote them.
        (["data=imagefolder", "data.classes=[1,2]"], """quote them: 'data.classes=["1","2"]'"""),
        (["data=sports", "data.image_size=abc"], "data.image_size must be a whole number >= 1"),
        (["data=imagefolder", "data.std=[0.2,0,0.2]"], "data.std must be null or 3 positive"),
        (["data=imagefolder", "data.mean=[0.5]"], "data.mean must be null or 3 numbers (one per"),
        (["+foo=1"], "unknown config key 'foo' (nothing reads it)"),
        (
            ["+attack=pure"],
            "+attack=pure: attack is a group of the config's defaults already; choose it with "
            "attack=pure (no +)",
        ),  # fmt: skip
        (["+model=simplecnn"], "choose it with model=simplecnn (no +)"),
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
        # A repeated cell value runs one job twice: into one folder at once (a race under
        # joblib), or, spelt apart, into a second folder of the same cell (s0 and s0.0).
        (
            ["-m", "sparsity=0.5,0.50"],
            "sparsity=0.5,0.50 gives sparsity 0.5 twice: two jobs would run one cell into one "
            "folder; give each value once",
        ),
        (
            ["-m", "sparsity=0,0.0"],
            "sparsity 0 twice (as 0 and 0.0): two jobs would run one cell in two folders;",
        ),
        (["-m", "seed=0,1,0"], "seed=0,1,0 gives seed 0 twice"),
        (["-m", "model=simplecnn,simplecnn"], "gives model simplecnn twice"),
        # Listed by Python's rule and rounded to 10 decimals (listed_ranges): steps below that
        # give one value again and again.
        (["-m", "sparsity=range(0.1,0.1000000001,1e-11)"], "gives sparsity 0.1 twice"),
        # The training order's seed: a traceback in the job (holding the baseline lock) before.
        (
            ["data.shuffle_seed=abc"],
            "data.shuffle_seed must be a whole number >= 0 and < 4294967296, got 'abc'",
        ),
        (["data.shuffle_seed=1.5"], "data.shuffle_seed must be a whole number >= 0 and < 4294"),
        (["data.shuffle_seed=18446744073709551616"], "data.shuffle_seed must be a whole number"),
        (["data.split_seed=1.5"], "data.split_seed must be a whole number >= 0 and < 4294967296"),
        (["trainer.devices=2"], "trainer.devices must be 1, got 2: a prunelab job runs on one"),
        (["trainer.devices=auto"], "trainer.devices must be 1, got 'auto'"),
        # A method's own checks and the devices run with the command line's, before any job.
        (["pruning=gradual", "pruning.every=0"], "pruning.every must be a whole number >= 1"),
        (
            ["-m", "pruning=gradual", "pruning.end=1.5", "sparsity=0.2,0.5"],
            "pruning.start and pruning.end must satisfy 0 <= start < end <= 1",
        ),
        (["eval.device=gpu"], "eval.device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        # A key of one swept method only: Hydra composed lottery's jobs once the sweep ran,
        # and failed there in six lines.
        (
            ["-m", "pruning=gradual,lottery", "pruning.every=10"],
            "unknown config key 'pruning.every' (pruning.every belongs to pruning=gradual; "
            "the chosen pruning=lottery has no such key)",
        ),
        (  # the first sparsity passes; the job at the second failed once the sweep ran
            ["-m", "pruning=gradual", "pruning.initial_amount=0.3", "sparsity=0.5,0.2"],
            "pruning.initial_amount must be in [0, amount=0.2], got 0.3",
        ),
        (  # a channel ratio that empties a layer: the net's shapes (meta device) say so
            ["-m", "model=simplecnn,resnetsmall", "pruning=structured", "sparsity=0.5,0.99"],
            "structured pruning at channel ratio 0.99 would remove every channel of features.1 "
            "(32 channels: floor(32 * 0.01) = 0); the largest ratio that keeps one channel in "
            "every layer is 0.968",
        ),
        # No validation: the baseline trained every epoch, then had no best epoch to keep.
        (
            ["+trainer.limit_val_batches=0"],
            "trainer.limit_val_batches=0 turns validation off, and the baseline needs it",
        ),
        (
            ["+trainer.check_val_every_n_epoch=5"],
            "trainer.check_val_every_n_epoch=5 validates the baseline after none of its "
            "baseline.max_epochs=1 epochs",
        ),
        (  # likewise a layer-wise sparsity that empties SimpleCNN's smallest layer
            ["-m", "pruning=layerwise", "sparsity=0.5,0.999"],
            "layer-wise pruning at sparsity=0.999 would prune every weight of features.1 "
            "(288 weights: round(0.999 * 288) = 288); the largest sparsity that keeps a weight "
            "in every layer is 0.998",
        ),
        (
            ["-m", "pruning=gradual,structured", "pruning.scope=layer"],
            "the chosen pruning=structured has no such key",
        ),
        (
            ["-m", "sparsity=0.2,0.5", "hydra.sweep.subdir=same"],
            "hydra.sweep.subdir=same gives jobs of different sparsity one folder: include "
            "${sparsity} (or ${hydra.job.num}) in it",
        ),
        (
            ["-m", "model=simplecnn,resnetsmall", "hydra.sweep.subdir=s${sparsity}"],
            "include ${hydra.runtime.choices.model} (or ${hydra.job.num})",
        ),
        # Hydra's lexer takes letters beyond ASCII only in quotes: the line quotes them.
        (
            ["data=imagefolder", "data.classes=[écureuil,b]"],
            """Hydra reads letters beyond ASCII only in quotes: 'data.classes=["écureuil","b"]'""",
        ),
        (["data.root=/tmp/é"], """only in quotes: 'data.root="/tmp/é"'"""),
        # A sweep's missing dataset is found at launch, not after the earlier jobs trained.
        (
            ["-m", "data=fashion_mnist,imagefolder"],  # data/images: none in a fresh clone
            "data.root: image-folder root not found at ",
        ),
        (
            ["-m", "sparsity=0.2,0.5", "paths.data_dir=/nonexistent-prunelab"],
            "Fashion-MNIST not found under /nonexistent-prunelab/FashionMNIST/raw: run `make data`",
        ),
        (
            ["-m", "data=fashion_mnist,cifar10", "data.download=false"],  # none in a fresh clone
            "CIFAR-10 not found under ",
        ),
    ],
)
def test_bad_input_is_one_line(args, expected, tmp_path, capsys, monkeypatch):
    """Each mistake stops train.py's checks (check_argv) with one line and status 2, before
    Hydra starts; run in this process (a train.py process each took 5 s of the suite), and
    the whole command for a sample of them below."""
    monkeypatch.chdir(ROOT)  # as train.py is run: relative paths are the clone's
    with pytest.raises(SystemExit) as stop:
        check_argv(_smoke(args, tmp_path), launch=True)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert stop.value.code == 2 and len(lines) == 1 and not out.strip(), err
    assert lines[0].startswith("prunelab: error:") and expected in lines[0]
    assert not list(tmp_path.iterdir())  # no folder claimed, nothing written


def _smoke(args: list[str], tmp_path) -> list[str]:
    """`args` smoke-sized and cached under tmp_path: a case that slipped through ends quickly."""
    keys = {a.split("=", 1)[0] for a in args}  # a key given twice is a mistake of its own
    safe = [a for a in ("experiment=smoke", f"paths.cache_dir={tmp_path}/cache")
            if a.split("=", 1)[0] not in keys]  # fmt: skip
    return [*safe, *args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sparsity=1.5"], "sparsity must be in [0, 1)"),
        (["-m", "model=simplecnn,resnet"], "unknown model 'resnet'"),
        (["+foo=1"], "unknown config key 'foo' (nothing reads it)"),
        (["-m", "pruning=gradual", "pruning.end=1.5", "sparsity=0.2,0.5"], "pruning.start and"),
        (["-m", "data=fashion_mnist,cifar10", "data.download=false"], "CIFAR-10 not found under "),
    ],
)
def test_bad_input_is_one_line_from_train_py(args, expected, tmp_path):
    """A value, a group, a key, a method's own check, a missing dataset: the whole command."""
    proc = run_train(_smoke(args, tmp_path))
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
        # A key of another option of its group: name the option, not a +key that would fail.
        (
            ["pruning.every=2"],
            "'pruning.every' (pruning.every belongs to pruning=gradual; the chosen "
            "pruning=magnitude has no such key)",
        ),  # fmt: skip
        (
            ["pruning.seed=3"],
            "'pruning.seed' (pruning.seed belongs to pruning=lottery or pruning=random; the "
            "chosen pruning=magnitude has no such key)",
        ),  # fmt: skip
        (  # the group's other keys stay out when another option is composed
            ["model=resnetsmall", "model.blocks=3", "model.hiden=64"],
            "'model.hiden' (check its spelling; did you mean 'model.hidden' (a key of "
            "model=simplecnn)?)",
        ),  # fmt: skip
        (
            ["model.blcks=3"],
            "'model.blcks' (check its spelling; did you mean 'model.blocks' (a key of "
            "model=resnetsmall)?)",
        ),  # fmt: skip
        (
            ["data.qwertyuiop=1"],
            "'data.qwertyuiop' (the config has no such key: check its spelling, or add it with "
            "+data.qwertyuiop=1 if prunelab.data.FashionMNISTDataModule takes it)",
        ),  # fmt: skip
        # Spelt right, but not there: an argument the optimizer may take, or a key set elsewhere.
        (
            ["finetune.optimizer.momentum=0.9"],
            "'finetune.optimizer.momentum' (the config has no such key: check its spelling, or "
            "add it with +finetune.optimizer.momentum=0.9 if torch.optim.Adam takes it)",
        ),  # fmt: skip
        (
            ["trainer.max_epochs=3"],
            "'trainer.max_epochs' (trainer has no max_epochs; did you mean "
            "'baseline.max_epochs' or 'finetune.max_epochs'?)",
        ),  # fmt: skip
        (
            ["finetune.lr=1e-3"],
            "'finetune.lr' (check its spelling; did you mean 'finetune.optimizer.lr'?)",
        ),  # fmt: skip
        # Misspelt and swept: the spelling is the mistake to name, not the sweep.
        (
            ["-m", "lr=0.1,0.2"],
            "'lr' (check its spelling; did you mean 'baseline.optimizer.lr' or "
            "'finetune.optimizer.lr'?)",
        ),  # fmt: skip
        (
            ["weight_decay=0"],
            "'weight_decay' (check its spelling; did you mean "
            "'baseline.optimizer.weight_decay' or 'finetune.optimizer.weight_decay'?)",
        ),  # fmt: skip
    ],
)
def test_misspelt_key_is_one_line(args, expected, tmp_path):
    proc = run_train([*args, f"hydra.run.dir={tmp_path}/run"])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"prunelab: error: unknown config key {expected}"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["pruning=null"], "pruning=null: choose one of: gradual, layerwise, lottery,"),
        (["experiment=null"], "experiment=null: choose one of: paper, smoke (or leave it out"),
        # YAML's off/no are strings to Hydra, and true to Python.
        (["attack.cascade=off"], "attack.cascade must be true or false, got 'off'"),
        (["data.download=no"], "data.download must be true or false, got 'no'"),
        # Lightning takes any string as deterministic=True, and profiler typos only once built.
        (["trainer.deterministic=off"], "trainer.deterministic must be true, false or warn"),
        (["trainer.profiler=simpel"], "trainer.profiler must be one of simple, advanced, pytorch"),
        (["+trainer.gradient_clip_val=abc"], "trainer.gradient_clip_val must be a number >= 0"),
        (["model.dropout=abc"], "model.dropout must be a number, got 'abc'"),
        # The nets' own limits, checked before the data loads (not 7 s later, when built).
        (["model.dropout=1.5"], "model.dropout must be a number in [0, 1], got 1.5"),
        (["model.widths=[0,64]"], "model.widths must be a non-empty list of whole numbers >= 1"),
        (["model=resnetsmall", "model.blocks=0"], "model.blocks must be a whole number >= 1"),
        (["attack.fgsm_eps=0.1"], "attack.fgsm_eps must be a list (attack.fgsm_eps=[a,b,...])"),
        (["pruning.amount=0.8"], "pruning.amount follows sparsity: set sparsity=0.8 instead"),
        (
            ["pruning=lottery", "pruning.seed=3", "baseline.rewind_epochs=[1]"],
            "pruning.seed follows seed: rewinding to epoch 0 rebuilds the baseline's "
            "initialisation from it",
        ),
        (["pruning=lottery", "pruning.seed=3"], "; set seed=3 instead (a baseline of its own)"),
        (
            ["pruning=lottery", "pruning.model=null"],
            "pruning.model follows model: pruning=lottery rebuilds the baseline's initialisation "
            "from it; set model=... or model.<key>=... instead (a baseline of its own)",
        ),
        (
            ["pruning=lottery", "pruning.model.hidden=64"],
            "unknown config key 'pruning.model.hidden' (pruning.model has no hidden; did you mean "
            "'model.hidden'?)",
        ),  # fmt: skip
        (["attack.curve.alpha_factor=0"], "attack.curve.alpha_factor must be a number > 0, got 0"),
        (["finetune.scheduler=cosin"], "finetune.scheduler must be cosine or null (no schedule)"),
        (["report.dpi=abc"], "report.dpi must be a whole number >= 1, got 'abc'"),
        (["report.speedup_tolerance=-1"], "report.speedup_tolerance must be a number >= 0"),
        (
            ["report.profiles.mobile.prefer=sizee"],
            "report.profiles.mobile.prefer must be one of accuracy, latency, size, got 'sizee'",
        ),  # fmt: skip
        (
            ["+report.profiles.mobile.max_latncy_ms=2"],
            "unknown profile setting 'report.profiles.mobile.max_latncy_ms'; did you mean "
            "'max_latency_ms'?",
        ),  # fmt: skip
        (
            ["report.profiles.edge.min_latency_ms=10"],
            "report.profiles.edge.min_latency_ms (10) is above report.profiles.edge."
            "max_latency_ms (5.0): no latency fits",
        ),  # fmt: skip
        # A key added under a node nothing passes to a constructor is read by nobody.
        (
            ["+finetune.max_epoch=3"],
            "unknown config key 'finetune.max_epoch' (nothing reads it; did you mean "
            "'finetune.max_epochs'?)",
        ),  # fmt: skip
        (["+eval.latency.nothing_like_it=5"], "unknown config key 'eval.latency.nothing_like_it'"),
        (["~sparsity"], "cannot remove 'sparsity': prunelab reads it (set a value instead)"),
        (["~logger"], "cannot remove 'logger'"),
        (
            ["hydra/launcher=joblb"],
            "unknown hydra/launcher 'joblb'; choose one of: basic, joblib, submitit_local, "
            "submitit_slurm",
        ),  # fmt: skip
        (["sparsity=0.2;0.5"], "cannot read the override 'sparsity=0.2;0.5' (LexerNoViable"),
        # The shell splits `sparsity=0.2, 0.5` in two.
        (["-m", "sparsity=0.2,", "0.5"], "'0.5' is not an override: write key=value"),
        (["sparsity=0.3", "--cfg"], "option '--cfg' needs a value (--cfg VALUE)"),
        (
            ["--sparsity", "0.5"],
            "unknown option '--sparsity': set config values as key=value (sparsity=0.5)",
        ),  # fmt: skip
        # An argparse-style option names the config key it means, wherever that lives.
        (
            ["--n_images", "5"],
            "unknown option '--n_images': set config values as key=value (attack.n_images=5); "
            "Hydra's options: python train.py --hydra-help",
        ),  # fmt: skip
        (["--n-images=5"], "(attack.n_images=5)"),
        # Hydra runs one command: -m with --cfg/--info is a traceback of Hydra's otherwise.
        (
            ["-m", "--cfg", "job"],
            "--cfg prints one job's config and cannot be combined with -m; drop -m",
        ),  # fmt: skip
        (["-m", "--cfg", "hydra"], "--cfg prints one job's config and cannot be combined with -m"),
        (
            ["-m", "sparsity=0.2,0.5", "--cfg", "job"],
            "cannot be combined with -m; drop -m and give sparsity one value",
        ),  # fmt: skip
        (["-m", "--info"], "--info prints Hydra's information on one job and cannot be combined"),
        (["--cfg", "job", "--info", "plugins"], "--cfg and --info cannot be combined: give one"),
        (
            ["--cfg", "job", "sparsity=0.2,0.5"],
            "--cfg prints one job's config: give sparsity one value (sparsity=0.2)",
        ),  # fmt: skip
        (["-m", "sparsity=0.2,0.5", "--help"], "--help shows the config of one job: give sparsity"),
        # A continuous range is for an optimizing sweeper; the basic sweeper lists values.
        (
            ["-m", "sparsity=interval(0,1)"],
            "sparsity=interval(0,1) is a continuous range that a sweep cannot list; give values "
            "(sparsity=0.25,0.5) or range(0,1,0.25)",
        ),  # fmt: skip
        (["-m", "seed=interval(0,5)"], "give values (seed=0,1) or range(0,5)"),
        (["-m", "model=interval(0,1)"], "give the options to sweep (model=resnetsmall,simplecnn)"),
        (
            ["-m", "model=glob(vgg*)"],
            "model=glob(vgg*) matches none of the model options: resnetsmall, simplecnn",
        ),  # fmt: skip
        (["-m", "sparsity=glob(*)"], "glob(...) picks options of a config group"),
        # Hydra's own flags, checked as Hydra would (each a traceback or a usage screen there).
        (
            ["--shell-completion"],
            "--shell-completion needs one of install=SHELL, uninstall=SHELL or query=SHELL "
            "(SHELL: bash, fish, zsh)",
        ),  # fmt: skip
        (["-sc", "install=tcsh"], "no tab completion for 'tcsh'; shells: bash, fish, zsh"),
        (["--resolve"], "--resolve goes with --cfg or --help"),
        (["--cfg", "bogus"], "--cfg takes job, hydra or all, got 'bogus'"),
        (["--info", "bogus"], "--info takes all, config, defaults, defaults-tree, plugins or"),
        (["-cn", "nothere", "--cfg", "job"], "-cn nothere: no config nothere.yaml in"),
        (["-cd", "/nonexistent-prunelab"], "-cd /nonexistent-prunelab: no such folder"),
        (["--experimental-rerun", "no.pickle"], "--experimental-rerun no.pickle: no such file"),
        (["seed=0", "seed=1"], "seed is given twice (seed=0, seed=1): give it once, several"),
        (["pruning@x=gradual"], "bad override: Could not override 'pruning@x'"),
        (["-m", "sparsity=0.2", "sparsity=0.5"], "sparsity is given twice"),
        # Hints that lead somewhere: a key no sweep varies is not told to use -m.
        (
            ["paths.cache_dir=/a", "paths.cache_dir=/b"],
            "(paths.cache_dir=/a, paths.cache_dir=/b): give it once",
        ),
        (
            ["finetune.max_epochs=2,3"],
            "a list is written finetune.max_epochs=[a,b]; a sweep varies",
        ),
        (["sparsity=interval(0,1)"], "continuous range that a sweep cannot list; give values"),
        (["-m", "seed=range(3,3)"], "seed=range(3,3) holds no values: give at least one"),
        (["-m", "sparsity=range(0.5,0.1,0.1)"], "holds no values: give at least one"),
        (["-m", "sparsity=range(0,1,0)"], "sparsity=range(0,1,0): range() arg 3 must not be zero"),
        (["=5"], "'=5' names no key: write key=value"),
        (["baseline.rewind_epochs=[abc]"], "rewind_epochs must be null or a list of whole"),
        (["baseline.rewind_epochs=[-1]"], "baseline.rewind_epochs must be null or a list of whole"),
        (["progress_bar.lines=maybe"], "progress_bar.lines must be true, false or null, got"),
        (["progress_bar.refresh_rate=-3"], "progress_bar.refresh_rate must be a whole number >= 0"),
    ],
)
def test_typos_are_refused_before_anything_runs(args, expected, tmp_path):
    where = [f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep"]
    with pytest.raises(PrunelabError) as info:
        check_overrides(arrange([*args, *where]))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_hydra_flags_may_stand_after_the_overrides():
    """argparse takes Hydra's flags only before the overrides; arrange() moves them there."""
    args = ["experiment=smoke", "-m", "sparsity=0.2,0.5", "--cfg", "job", "--info", "plugins"]
    assert arrange(args) == ["-m", "--cfg", "job", "--info", "plugins", "experiment=smoke",
                             "sparsity=0.2,0.5"]  # fmt: skip
    assert arrange(["~experiment", "-cn=config", "seed=1"]) == ["-cn=config", "~experiment",
                                                                "seed=1"]  # fmt: skip
    # --info without its value goes last: before an override it would take it as its value.
    assert arrange(["seed=1", "--info", "-m"]) == ["-m", "seed=1", "--info"]
    proc = run_train(["experiment=smoke", "--cfg", "job", "sparsity=0.3"])  # prints, runs nothing
    assert proc.returncode == 0, proc.stderr
    assert "sparsity: 0.3" in proc.stdout and "max_epochs: 1" in proc.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "--cfg", "job"],
        ["-m", "sparsity=interval(0,1)"],
        ["--shell-completion"],
        ["experiment=smoke", "-m", "--info"],
    ],
)
def test_hydra_flag_mistakes_are_one_line(args, tmp_path):
    """Mistakes Hydra itself would answer with a traceback (ValueError, HydraException)."""
    proc = run_train([*args, f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sw"])
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("prunelab: error: ") and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


def test_hydra_help_shows_with_our_overrides_given(tmp_path):
    """--hydra-help composes Hydra's config alone: ours would stop it, so they are left out."""
    assert check_argv(["experiment=smoke", "--hydra-help", "hydra/launcher=joblib"]) == [
        "--hydra-help",
        "hydra/launcher=joblib",
    ]
    proc = run_train(["experiment=smoke", "sparsity=0.3", "--hydra-help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Hydra (") and "Traceback" not in proc.stderr


def test_help_says_what_the_tool_does_and_shows_the_config_asked_for():
    proc = run_train(["model=resnetsmall", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("prunelab: what does magnitude pruning cost and buy")
    assert "python train.py -m model=simplecnn,resnetsmall sparsity=0.2,0.5,0.8" in proc.stdout
    assert "_target_: prunelab.models.ResNetSmall" in proc.stdout
    assert proc.stdout.rstrip().endswith("--hydra-help")


def test_a_float_range_is_listed_without_rounding_errors_or_its_end():
    """Hydra's range(0.1,0.4,0.1) gives 0.1, 0.2, 0.30000000000000004 and 0.4: a job folder
    named s0.30000000000000004 and a fourth job the range's end should have left out."""
    argv = check_argv(["-m", "sparsity=range(0.1,0.4,0.1)", "seed=range(2)", "experiment=smoke"])
    assert argv == ["-m", "sparsity=0.1,0.2,0.3", "seed=range(2)", "experiment=smoke"]
    assert check_argv(["-m", "sparsity=range(0.8,0.1,-0.3)"]) == ["-m", "sparsity=0.8,0.5,0.2"]
    assert check_argv(["-m", "sparsity=shuffle(range(0,0.3,0.1))"]) == [
        "-m",
        "sparsity=shuffle(0.0,0.1,0.2)",
    ]


def test_glob_sweeps_the_options_hydra_would():
    """`model=glob(*)` in a sweep: the same options Hydra's sweeper expands it to."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    lines = ["model=glob(*)", "pruning=glob([l*,m*],exclude=lottery)", "data=glob(*,exclude=s*)"]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())
        hydra_says = [list(o.sweep_string_iterator()) for o in parser.parse_overrides(lines)]
    GlobalHydra.instance().clear()
    ours = [sweep_values(o) for o in OverridesParser.create().parse_overrides(lines)]
    assert ours == hydra_says
    assert ours == [["resnetsmall", "simplecnn"], ["layerwise", "magnitude"],
                    ["cifar10", "fashion_mnist", "imagefolder"]]  # fmt: skip
    check_overrides(["-m", "model=glob(*)", "hydra.sweep.dir=/tmp/prunelab-never-written"])


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
        ["pruning=random", "pruning.seed=3"],  # its masks' own draw: not the baseline's seed
        # The dense row (sparsity 0) runs no schedule: refused the whole sweep before.
        ["-m", "pruning=gradual", "pruning.initial_amount=0.1", "sparsity=0,0.5"],
        ["finetune.optimizer._target_=torch.optim.SGD"],
        ["-m", "hydra/launcher=joblib", "pruning=structured", "data=cifar10", "logger=csv"],
        ["+report.profiles.tiny.max_latency_ms=0.3"],  # a deployment profile of one's own
        ["~trainer.precision"],  # a constructor's argument: its default applies
        ["~experiment"],
        ["finetune.scheduler=null", "model.dropout=0", "attack.cascade=false"],
        ["data.train_size=null", "eval.latency.threads=2", "trainer.deterministic=true"],
        ["data.shuffle_seed=4294967295", "data.split_seed=7"],
        ["-m", "sparsity=0,0.5", "seed=0,1", "model=glob(*)"],  # distinct values in each key
        # A cluster's nodes may mount the data where the launching machine has none.
        ["-m", "hydra/launcher=submitit_slurm", "paths.data_dir=/nonexistent-prunelab"],
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


def test_device_names_are_checked_with_the_config(make_cfg):
    """A device name torch does not know fails with the command line's checks (exit 2)."""
    for ok in ("eval.device=auto", "eval.device=cpu", "eval.device=cuda:7"):
        check_config(make_cfg(ok))
    for bad, expected in [
        ("eval.device=gpu", "eval.device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
        ("trainer.accelerator=gpuu", "trainer.accelerator must be one of auto, cpu, cuda, gpu,"),
        ("trainer.precision=16-mix", "trainer.precision must be one of 64, 32, 16, "),
    ]:
        with pytest.raises(PrunelabError, match=re.escape(expected)) as err:
            check_config(make_cfg(bad))
        names = str(err.value).split(" one of ")[-1].split(", got ")[0].split(", ")
        assert len(names) == len(set(names)), names  # each name once
    for ok in ("trainer.precision=bf16-mixed", "trainer.precision=16"):  # 16 is the node's to run
        check_config(make_cfg(ok))
    # A GPU sweep launched from a cluster's CPU login node: its jobs run where the GPUs are.
    check_overrides(["-m", "hydra/launcher=submitit_slurm", "trainer.accelerator=gpu",
                     "eval.device=cuda", "sparsity=0.2,0.5"])  # fmt: skip


@pytest.mark.parametrize(
    "subdir",
    [
        "j${hydra:job.num}",
        "${hydra:runtime.choices.pruning}-s${sparsity}",
        "${hydra.job.override_dirname}",
    ],  # fmt: skip
)
def test_a_sweep_subdir_that_tells_the_jobs_apart_passes(subdir):
    check_overrides(["-m", "pruning=magnitude,random", "sparsity=0,0.5",
                     f"hydra.sweep.subdir={subdir}"])  # fmt: skip


def test_a_sweep_subdir_without_an_excluded_key_is_refused():
    """override_dirname leaves out its exclude_keys: those jobs would share folders."""
    with pytest.raises(PrunelabError, match="gives jobs of different sparsity one folder"):
        check_overrides(["-m", "sparsity=0,0.5", "hydra.sweep.subdir=${hydra.job.override_dirname}",
                         "hydra.job.config.override_dirname.exclude_keys=[sparsity]"])  # fmt: skip


def test_check_before_training(make_cfg):
    """Checks on the job's own machine (a cluster launcher starts it elsewhere than the launch
    check ran: a GPU is the compute node's to have) and against the data's spec."""
    spec = {"num_classes": 10}
    check_before_training(make_cfg("attack.targeted_class=9"), spec)
    gpus = torch.cuda.device_count()
    for bad, expected in [
        (f"eval.device=cuda:{gpus}", f"eval.device=cuda:{gpus} but this machine has"),
        ("attack.targeted_class=10", "attack.targeted_class must be in 0..9 (the data has 10"),
    ]:
        with pytest.raises(PrunelabError, match=re.escape(expected)):
            check_before_training(make_cfg(bad), spec)
    if not torch.cuda.is_available():
        with pytest.raises(PrunelabError, match="eval.device=cuda but this machine has no cuda"):
            check_before_training(make_cfg("eval.device=cuda"), spec)
        with pytest.raises(PrunelabError, match="trainer.accelerator=gpu but this machine has no"):
            check_before_training(make_cfg("trainer.accelerator=gpu"), spec)
        # Lightning would run bf16 instead, with a warning, under a config that says 16.
        for fp16 in ("trainer.precision=16", "trainer.precision=16-mixed"):
            with pytest.raises(PrunelabError, match="fp16 mixed precision. needs a GPU; on this"):
                check_before_training(make_cfg(fp16), spec)
        check_before_training(make_cfg("trainer.precision=bf16-mixed"), spec)


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


def test_a_bad_pruning_setting_stops_the_job_before_the_baseline(make_cfg, tmp_path):
    out = tmp_path / "job"
    with pytest.raises(InstantiationException) as info:
        run(make_cfg("pruning=gradual", "pruning.every=0", out=out))
    assert "pruning.every must be" in str(info.value.__cause__)
    assert not out.exists() and not (tmp_path / "cache").exists()
    # A channel ratio that would empty a layer needs the net's widths: known before training.
    with pytest.raises(PrunelabError, match="would remove every channel of features.1"):
        run(make_cfg("pruning=structured", "sparsity=0.99", out=out))
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("simplecnn-*"))


def test_a_bad_model_setting_names_target_and_cause(tmp_path):
    """An argument the net does not take: refused at launch, naming the target; and where a
    target fails inside a job (what no launch check foresees), one line naming it and why."""
    from hydra.utils import instantiate

    from prunelab.errors import instantiation_message

    proc = run_train(["experiment=smoke", "+model.foo=1", f"hydra.run.dir={tmp_path}/run",
                      f"paths.cache_dir={tmp_path}/cache"])  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "prunelab: error: unknown config key 'model.foo' (prunelab.models.SimpleCNN takes no "
        "argument 'foo')"
    ]
    assert not (tmp_path / "run").exists()
    node = {"_target_": "prunelab.models.SimpleCNN", "in_shape": [1, 28, 28], "foo": 1}
    with pytest.raises(Exception) as info:
        instantiate(node, num_classes=10, mean=[0.5], std=[0.25])
    assert instantiation_message(info.value) == (
        "Error in call to target 'prunelab.models.simple_cnn.SimpleCNN': "
        "TypeError: SimpleCNN.__init__() got an unexpected keyword argument 'foo'"
    )


def test_an_option_that_does_not_compose_gives_no_hint_and_no_traceback(monkeypatch):
    """Hints compose the group's other options; a broken one (bad YAML) is left out."""
    import prunelab.suggest as suggest

    real = suggest.compose_config

    def broken(overrides):
        if "pruning=gradual" in overrides:
            raise ValueError("while parsing a block mapping")
        return real(overrides)

    monkeypatch.setattr(suggest, "compose_config", broken)
    assert suggest.why_unknown("pruning.every", "pruning.every=2", []) == (
        "the config has no such key: check its spelling, or add it with +pruning.every=2 if "
        "prunelab.pruning.MagnitudePruning takes it"
    )
    assert "belongs to pruning=lottery or pruning=random" in suggest.why_unknown(
        "pruning.seed", "pruning.seed=1", []
    )


def test_a_joblib_sweep_of_no_jobs_at_a_time_is_refused_before_its_folder_exists(tmp_path):
    """joblib refuses n_jobs=0 in a traceback, after Hydra has made the sweep folder."""
    args = ["-m", "sparsity=0.2,0.5", "hydra/launcher=joblib", f"hydra.sweep.dir={tmp_path}/s"]
    with pytest.raises(PrunelabError, match=r"hydra.launcher.n_jobs must be .* got 0$"):
        check_overrides([*args, "hydra.launcher.n_jobs=0"])
    with pytest.raises(PrunelabError, match=r"n_jobs=abc: Value 'abc' of type 'str' could not"):
        check_overrides([*args, "hydra.launcher.n_jobs=abc"])  # said no more than 'Error merging'
    check_overrides([*args, "hydra.launcher.n_jobs=-1"])  # one per core: joblib's rule
    check_overrides([*args, "hydra.launcher.n_jobs=2"])
    assert not (tmp_path / "s").exists()
