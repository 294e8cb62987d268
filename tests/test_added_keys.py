"""`+key=...` additions checked before any job starts: against the constructor they reach, and
never for a key the pipeline sets itself (its value would be overridden without a word)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from prunelab.cli import check_overrides
from prunelab.errors import PrunelabError
from prunelab.flags import arrange
from prunelab.shape import takes
from prunelab.validate import CONF_DIR


def _check(args: list[str], tmp_path) -> None:
    check_overrides(arrange([*args, f"hydra.run.dir={tmp_path}/run",
                             f"hydra.sweep.dir={tmp_path}/sweep"]))  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["+model.hiden=64"],
            "unknown config key 'model.hiden' (prunelab.models.SimpleCNN takes "
            "no argument 'hiden'; did you mean 'model.hidden'?)",
        ),
        (
            ["+data.trian_size=5"],
            "unknown config key 'data.trian_size' (prunelab.data."
            "FashionMNISTDataModule takes no argument 'trian_size'; did you "
            "mean 'data.train_size'?)",
        ),
        (
            ["model=resnetsmall", "+model.hidden=64"],
            "unknown config key 'model.hidden' (prunelab.models.ResNetSmall takes no argument",
        ),
        (["data=sports", "+data.augmnt=true"], "did you mean 'data.augment'?"),
        (
            ["+trainer.foo=1"],
            "unknown config key 'trainer.foo' (lightning.Trainer takes no argument 'foo')",
        ),
        (["+trainer.profiler.foo=1"], "(prunelab.lean.NullProfiler takes no argument 'foo')"),
        (
            ["+logger.csv.foo=1"],
            "unknown config key 'logger.csv.foo' (prunelab.tracking.CSVLog "
            "takes no argument 'foo')",
        ),
        (
            ["+logger.wandb.foo=1"],
            "unknown config key 'logger.wandb.foo' (prunelab.tracking."
            "WandbRunLogger takes no argument 'foo')",
        ),
        (
            ["+progress_bar.foo=1"],
            "unknown config key 'progress_bar.foo' (prunelab.tracking."
            "StageProgressBar takes no argument 'foo')",
        ),
        # The pipeline's own keys: who sets them, what to set instead.
        (
            ["+trainer.max_epochs=3"],
            "cannot set trainer.max_epochs: the pipeline sets it for "
            "each training stage: set baseline.max_epochs or "
            "finetune.max_epochs instead",
        ),
        (["++trainer.max_epochs=3"], "cannot set trainer.max_epochs"),
        (["+trainer.max_epoch=3"], "nor can 'trainer.max_epochs' be set: the pipeline sets it"),
        (["+trainer.callbacks=[]"], "cannot set trainer.callbacks: the pipeline sets"),
        (["+trainer.logger=false"], "cannot set trainer.logger: the pipeline passes the loggers"),
        (["+trainer.default_root_dir=/tmp/x"], "set hydra.run.dir or hydra.sweep.dir instead"),
        (
            ["+logger.wandb.id=abc"],
            "cannot set logger.wandb.id: the pipeline derives each job's "
            "W&B run id from its folder and settings",
        ),
        (["+logger.wandb.version=abc"], "cannot set logger.wandb.version: the pipeline derives"),
        (
            ["+logger.wandb.resume=must"],
            "cannot set logger.wandb.resume: the pipeline sets "
            "resume=allow with a run id derived from each job's",
        ),
        (
            ["pruning=lottery", "+pruning.rewind_dir=/tmp/x"],
            "cannot set pruning.rewind_dir: the pipeline sets it to the baseline cache's rewind",
        ),
        (["+model.num_classes=5"], "cannot set model.num_classes: the pipeline passes every net"),
        # A target set on the command line: its own arguments count.
        (
            ["model._target_=torch.nn.Linear", "+model.bais=false"],
            "(torch.nn.Linear takes no argument 'bais'; did you mean 'model.bias'?)",
        ),
        # Built by the launch checks themselves: their own messages, as before.
        (["+pruning.foo=1"], "MagnitudePruning.__init__() got an unexpected keyword argument"),
        (["+finetune.optimizer.momentum=0.9"], "finetune.optimizer (torch.optim.Adam): TypeError"),
    ],
)
def test_an_added_key_nothing_takes_is_refused_in_one_line(args, expected, tmp_path):
    with pytest.raises(PrunelabError) as info:
        _check(args, tmp_path)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["+trainer.max_time=00:00:05:00"],
        ["+trainer.gradient_clip_val=1.0"],
        ["++trainer.gradient_clip_val=1.0"],
        ["+trainer.max_steps=5"],
        ["+logger.wandb.tags=[a]"],  # wandb.init's, through WandbLogger's **kwargs
        ["+logger.wandb.notes=hi"],
        ["+logger.csv.prefix=p"],  # Lightning's CSVLogger's, under prunelab's CSVLog
        ["+progress_bar.leave=true"],  # TQDMProgressBar's, passed on by StageProgressBar
        ["+model._recursive_=false"],  # Hydra's own key
        ["finetune.optimizer._target_=torch.optim.SGD", "+finetune.optimizer.momentum=0.9"],
        ["model._target_=torch.nn.Linear", "+model.bias=false"],
    ],
)
def test_an_added_argument_the_target_takes_passes(args, tmp_path):
    _check(args, tmp_path)


def test_a_datamodule_takes_its_base_classes_arguments():
    """FashionMNISTDataModule's **kwargs go to ImageDataModule: those names count, and no
    other (LightningDataModule's bare **kwargs is not reached: ImageDataModule has none).
    conf/data/ sets every argument already, so no `+data.` key passes on the command line."""
    names, more = takes("prunelab.data.FashionMNISTDataModule")
    assert {"root", "download", "train_size", "split_seed", "shuffle_seed"} <= set(names)
    assert not more


def test_kwargs_that_go_nowhere_readable_are_not_refused(tmp_path):
    """A **kwargs passed to a base whose signature says nothing (object's): accepted."""
    assert takes("prunelab.tracking.WandbRunLogger")[1] is False  # wandb.init has no **kwargs
    assert takes(f"{__name__}.Open") == (["a"], True)
    _check([f"model._target_={__name__}.Open", "+model.anything=1"], tmp_path)


class _Base:
    def __init__(self, *args, **kwargs) -> None:
        super().__init__()


class Open(_Base):
    """A constructor passing **kwargs on to a base with a bare **kwargs of its own."""

    def __init__(self, a: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)


def test_lottery_rewind_dir_is_the_pipelines_to_set(tmp_path):
    """The pipeline sets LotteryRewinding.rewind_dir to the baseline cache's rewind folder: the
    shipped null stays (earlier jobs' settings hash with it), a value of one's own is refused."""
    lottery = OmegaConf.load(CONF_DIR / "pruning" / "lottery.yaml")
    assert lottery.pruning.rewind_dir is None
    with pytest.raises(PrunelabError, match=r"cannot set pruning.rewind_dir: the pipeline sets"):
        _check(["pruning=lottery", "pruning.rewind_dir=/tmp/x"], tmp_path)
