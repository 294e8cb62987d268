"""prunelab.lean: the cheaper Lightning parts behave, to Lightning, as the ones they replace."""

import functools
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


class _Seen(callbacks.Callback):
    """The epoch stored in last.ckpt at the start of every training epoch (None: no file)."""

    def __init__(self, path):
        self.path, self.epochs = path, []

    def on_train_epoch_start(self, trainer, pl_module):
        found = self.path.is_file()
        self.epochs.append(torch.load(self.path, weights_only=True)["epoch"] if found else None)


class _Val(Classifier):
    """Validation accuracy that only falls, so a monitored checkpoint improves once only."""

    def on_validation_epoch_end(self):
        self.log("val/score", -float(self.current_epoch))


@pytest.mark.parametrize("kwargs", [{"save_top_k": 0}, {"monitor": "val/score", "mode": "max"}])
def test_last_checkpoint_is_written_after_every_epoch(kwargs, tmp_path):
    # Lightning alone writes last.ckpt only with a top-k save: a killed fine-tune (top-k 0) or a
    # baseline past its best epoch would resume from nothing or from an older epoch.
    import lightning as L

    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_on_train_epoch_end=True, **kwargs)
    seen = _Seen(tmp_path / "last.ckpt")
    trainer = L.Trainer(
        max_epochs=3, callbacks=[ckpt, seen], logger=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    module = _Val(torch.nn.Linear(4, 3), 3, functools.partial(torch.optim.SGD, lr=0.1))
    trainer.fit(module, loader, loader)
    assert seen.epochs == [None, 0, 1]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epoch"] == 2
