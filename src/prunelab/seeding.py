"""Per-epoch reseeding, so a run resumed from an epoch checkpoint repeats the uninterrupted run."""

from __future__ import annotations

import random

import lightning as L
import numpy as np
import torch


class EpochSeed(L.Callback):
    """Reseed torch, numpy and random at the start of every training epoch from (seed, epoch).

    Dropout then depends only on the epoch, not on how many epochs this process ran: resuming
    after a kill gives the same numbers as never stopping. (The training order and image
    augmentation have their own (seed, epoch) draws: prunelab.data.sampling.)
    """

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch) % (2**32)
        torch.manual_seed(value)
        np.random.seed(value)
        random.seed(value)
