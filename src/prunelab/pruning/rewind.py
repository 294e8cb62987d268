"""Lottery-ticket rewinding: prune the trained baseline, rewind survivors to an earlier state.

Frankle & Carbin 2019 rewind to initialisation (epoch 0); Frankle et al. 2020 ("Linear mode
connectivity and the lottery ticket hypothesis") rewind to an early epoch k of the same training
run. "Epoch k" here means the net's state after k complete epochs of baseline training.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import DictConfig

from prunelab.build import build_net, data_spec
from prunelab.errors import PrunelabError
from prunelab.io import load_torch, save_torch
from prunelab.pruning.callback import MagnitudePruning
from prunelab.pruning.checks import whole
from prunelab.pruning.masks import prunable_weights

SCOPES = ("all", "prunable")


def rewind_file(dirpath: str | Path, epoch: int) -> Path:
    """Where SaveWeightsAt stores the net's state after `epoch` epochs (0 = initialisation)."""
    return Path(dirpath) / f"epoch{int(epoch)}.pt"


def load_rewind_weights(dirpath: str | Path, epoch: int) -> dict[str, torch.Tensor]:
    """The net's state dict saved by SaveWeightsAt for `epoch`."""
    path = rewind_file(dirpath, epoch)
    if not path.is_file():
        raise PrunelabError(
            f"no baseline weights at epoch {epoch} ({path} missing): list {epoch} in the "
            "baseline's saved rewind epochs, or the baseline stopped early before that epoch"
        )
    return load_torch(path)


def _net_state_copy(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


class SaveWeightsAt(L.Callback):
    """Save the net's full state dict (weights, biases, BatchNorm stats) at chosen epochs.

    Epoch 0 is the initialisation (saved when training starts from step 0); epoch k >= 1 is the
    state after k complete training epochs. Files are `rewind_file(dirpath, k)`, written atomically;
    a resumed fit finds the earlier ones in place and saves only the later ones.
    """

    def __init__(self, epochs: Sequence[int], dirpath: str | Path) -> None:
        self.epochs = sorted({int(e) for e in epochs})
        if any(e < 0 for e in self.epochs):
            raise PrunelabError(f"rewind epochs must be >= 0, got {list(epochs)}")
        self.dirpath = Path(dirpath)

    def _save(self, pl_module: L.LightningModule, epoch: int) -> None:
        if epoch in self.epochs:
            save_torch(rewind_file(self.dirpath, epoch), _net_state_copy(pl_module.net))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:  # a fresh fit, not a resumed one: these are the init weights
            self._save(pl_module, 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._save(pl_module, trainer.current_epoch + 1)


@contextmanager
def _rng_preserved() -> Iterator[None]:
    """Leave the global RNGs (python, numpy, torch CPU/CUDA) and Lightning's seed as they were."""
    states = random.getstate(), np.random.get_state()
    env = {k: os.environ.get(k) for k in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS")}
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def initial_state(
    model_cfg: DictConfig | dict, spec: dict[str, Any], seed: int
) -> dict[str, torch.Tensor]:
    """The baseline's weights at initialisation, rebuilt as train_baseline() builds them.

    train_baseline() calls L.seed_everything(seed, workers=True) and then build_net(); repeating
    the two calls gives the same tensors. Global RNG states are restored afterwards, so calling
    this inside a fit does not change that fit's randomness.
    """
    with _rng_preserved():
        L.seed_everything(int(seed), workers=True, verbose=False)
        return _net_state_copy(build_net(model_cfg, spec))


@torch.no_grad()
def rewind_weights(
    net: torch.nn.Module,
    state: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    scope: str = "all",
) -> None:
    """Load `state` into `net` (everything, or only the prunable weights), then zero the pruned.

    scope="all": every parameter and buffer comes from `state` (Conv/Linear weights, biases,
    BatchNorm affine parameters and running statistics), as open_lth rewinds. scope="prunable":
    only Conv2d/Linear weights are rewound; biases and BatchNorm keep their trained values.
    """
    if scope not in SCOPES:
        raise PrunelabError(f"pruning.scope must be one of {SCOPES}, got '{scope}'")
    if scope == "all":
        missing, unexpected = net.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise PrunelabError(
                f"rewind weights do not fit this net (missing {missing}, unexpected {unexpected})"
            )
    else:
        for name, w in prunable_weights(net).items():
            if name not in state or state[name].shape != w.shape:
                raise PrunelabError(f"rewind weights lack '{name}' shaped {tuple(w.shape)}")
            w.copy_(state[name])
    for name, w in prunable_weights(net).items():
        w.mul_(masks[name].to(w.device))


class LotteryRewinding(MagnitudePruning):
    """One-shot lottery ticket: global magnitude masks from the trained baseline, then rewind.

    At fit start (unless masks were restored from a checkpoint) the masks are computed on the
    trained weights, the net is rewound to its state at baseline epoch `rewind_epoch` (see
    rewind_weights for what `scope` rewinds), and the pruned weights are zeroed; the fit then
    retrains the sparse net with the masks held. The rewind state comes from, in this order:
    `rewind_state` (a state dict set by the caller), `rewind_dir` (files of SaveWeightsAt), or, for
    epoch 0 only, a rebuild of the initialisation from `model` and `seed` (see initial_state).
    """

    def __init__(
        self,
        amount: float,
        rewind_epoch: int = 0,
        scope: str = "all",
        rewind_dir: str | None = None,
        model: DictConfig | dict | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(amount)
        self.rewind_epoch = whole("pruning.rewind_epoch", rewind_epoch, 0)
        if scope not in SCOPES:
            raise PrunelabError(f"pruning.scope must be one of {SCOPES}, got '{scope}'")
        if rewind_dir is not None and not isinstance(rewind_dir, str | os.PathLike):
            raise PrunelabError(f"pruning.rewind_dir must be a folder or null, got {rewind_dir!r}")
        if model is not None and not isinstance(model, DictConfig | dict):
            raise PrunelabError(f"pruning.model must be a model config or null, got {model!r}")
        self.scope = scope
        self.rewind_dir = rewind_dir
        self.model = model
        self.seed = whole("pruning.seed", seed, 0, nullable=True)
        self.rewind_state: dict[str, torch.Tensor] | None = None

    def resolve_rewind_state(self, trainer: L.Trainer) -> dict[str, torch.Tensor]:
        """The state to rewind to (see the class docstring for where it comes from)."""
        if self.rewind_state is not None:
            return self.rewind_state
        if (
            self.rewind_dir is not None
            and rewind_file(self.rewind_dir, self.rewind_epoch).is_file()
        ):
            return load_rewind_weights(self.rewind_dir, self.rewind_epoch)
        if self.rewind_epoch == 0 and self.model is not None and self.seed is not None:
            return initial_state(self.model, data_spec(trainer.datamodule), self.seed)
        where = self.rewind_dir or "no rewind_dir given"
        k = self.rewind_epoch
        raise PrunelabError(
            f"pruning.rewind_epoch={k} needs the baseline's weights after epoch {k} ({where}): "
            f"set baseline.rewind_epochs to include {k} (and baseline.max_epochs >= {k}; "
            "early stopping may also have ended the baseline before it)"
        )

    def prune(self, trainer: L.Trainer, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Masks from the trained weights; then the net is rewound and the pruned weights zeroed."""
        masks = self.compute_masks(net)
        rewind_weights(net, self.resolve_rewind_state(trainer), masks, self.scope)
        return masks

    def state_dict(self) -> dict:
        return {**super().state_dict(), "rewind_epoch": self.rewind_epoch, "scope": self.scope}
