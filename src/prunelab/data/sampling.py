"""Shuffling that depends only on (seed, epoch), never on the global RNG's history."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, Sampler


class EpochShuffleSampler(Sampler[int]):
    """A new permutation per epoch, fixed by (seed, epoch).

    Lightning creates the first training iterator of a resumed run before any epoch hook;
    with this sampler that iterator still yields the order the uninterrupted run saw.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n = n
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of `epoch` (Lightning calls this every epoch)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n


class EpochBatchSampler(BatchSampler):
    """Batches of indices from `sampler`, passing `set_epoch` on (Lightning calls it per epoch).

    A DataLoader with `batch_size=None` and this as its sampler hands each list of indices to
    the dataset at once, so in-memory tensors are gathered with one indexing op per batch.
    """

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler, if it shuffles by epoch."""
        set_epoch = getattr(self.sampler, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
