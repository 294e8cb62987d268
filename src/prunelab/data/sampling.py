"""Shuffling that depends only on (seed, epoch), never on the global RNG's history."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, Dataset, Sampler


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


class EpochTagged(Sampler[tuple[int, int]]):
    """`sampler`'s indices as (epoch, index) pairs, the epoch read when an epoch's order is.

    Loader workers are copies made when an iterator starts, which for the first epoch of a
    resumed run is before Lightning sets the epoch; the pair carries it to them.
    """

    def __init__(self, sampler: EpochShuffleSampler) -> None:
        self.sampler = sampler

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


class EpochSeededImages(Dataset):
    """Training images whose random augmentation is fixed by (seed, epoch, index).

    Neither the loader's worker count nor a resume changes what an image's flip or rotation
    draws; the process's own RNG (dropout) is left as it was.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(((self.seed * 1_000_003 + epoch) * 1_000_033 + index) % (2**63))
            return self.dataset[index]
