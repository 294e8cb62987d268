"""Per-epoch reseeding, so a run resumed from an epoch checkpoint repeats the uninterrupted run."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


class EpochSeed(L.Callback):
    """Reseed torch, numpy and random at the start of every training epoch from (seed, epoch).

    Shuffling and dropout then depend only on the epoch, not on how many epochs this process
    ran: resuming after a kill gives the same numbers as never stopping.
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed fit builds its first training iterator before any epoch hook runs.
        sampler = getattr(trainer.datamodule, "train_sampler", None)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(trainer.current_epoch)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch) % (2**32)
        torch.manual_seed(value)
        np.random.seed(value)
        random.seed(value)
