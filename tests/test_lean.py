"""prunelab.lean: the cheaper Lightning parts behave, to Lightning, as the ones they replace."""

import inspect
import logging

import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch import callbacks
from lightning.pytorch.profilers import SimpleProfiler
from lightning.pytorch.utilities.signature_utils import is_param_in_hook_signature

from prunelab.lean import ModelCheckpoint, NullProfiler
from prunelab.module import Classifier
from prunelab.pipeline import quiet_libraries


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"monitor": "val/acc", "mode": "max"}, {"every_n_train_steps": 5}, {"every_n_epochs": 2}],
)
def test_checkpoint_state_key_is_lightnings(kwargs, tmp_path):
    # Checkpoints store the callback's state under this key: a resume must find it either way.
    ours = ModelCheckpoint(dirpath=tmp_path, **kwargs)
    assert ours.state_key == callbacks.ModelCheckpoint(dirpath=tmp_path, **kwargs).state_key
    assert ours.state_key == ours.state_key  # cached, unchanged


def test_training_step_signature_still_asks_for_batch_idx():
    module = Classifier(torch.nn.Linear(4, 3), 3)
    assert inspect.getfullargspec(module.training_step).args == ["self", "batch", "batch_idx"]
    assert is_param_in_hook_signature(module.training_step, "batch_idx", min_args=2)


def test_job_trainer_uses_the_null_profiler_and_a_user_can_pick_lightnings(make_cfg):
    trainer = instantiate(make_cfg().trainer, logger=False)
    assert isinstance(trainer.profiler, NullProfiler)
    with trainer.profiler.profile("a"), trainer.profiler.profile("b"):  # nests, records nothing
        pass
    assert trainer.profiler.summary() == ""
    trainer = instantiate(make_cfg("trainer.profiler=simple").trainer, logger=False)
    assert isinstance(trainer.profiler, SimpleProfiler)


def test_a_chosen_profilers_report_is_not_silenced():
    quiet_libraries()
    assert not logging.getLogger("lightning.pytorch.trainer").isEnabledFor(logging.INFO)
    # Lightning's profilers print their report at INFO (trainer.profiler=simple).
    assert logging.getLogger("lightning.pytorch.profilers.profiler").isEnabledFor(logging.INFO)
