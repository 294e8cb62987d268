"""Shared DataModule logic: seeded validation split, training subset, loaders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from filelock import FileLock
from hydra.utils import get_class
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset, SequentialSampler, Subset, TensorDataset

from prunelab.data.sampling import (
    EpochBatchSampler,
    EpochSeededImages,
    EpochShuffleSampler,
    EpochTagged,
)
from prunelab.errors import PrunelabError, warn


def capped_size(key: str, size: int, available: int, what: str, quiet: bool = False) -> int:
    """A requested split size, capped at what the data has, with a warning when it is.

    Capping, not failing: `experiment=smoke` asks for a few hundred images, which a small
    image folder of one's own may not hold; but never silently (999999 meant "all"? say so),
    unless `quiet`: a split the caller does not use.
    """
    if size > available and not quiet:
        warn(
            f"{key}={size} but there are only {available} {what}; "
            f"using all {available} (null = all of them)"
        )
    return min(size, available)


def download_lock(root: str, name: str) -> FileLock:
    """The lock in the data root under which one job at a time downloads and unpacks `name`.

    Parallel jobs (hydra/launcher=joblib) on a fresh machine would otherwise have torchvision
    write the same archive from each at once. The lock lives in the data root, which cluster
    nodes share, and stays there: filelock never deletes a lock file on Unix, since unlinking
    one a waiting process holds open would let it and a newcomer both hold the lock.
    """
    Path(root).mkdir(parents=True, exist_ok=True)
    return FileLock(str(Path(root) / f".{name}.download.lock"))


def seeded_indices(n: int, seed: int) -> torch.Tensor:
    """A permutation of range(n) that depends only on `seed`."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


class TensorBatches(Dataset):
    """A TensorDataset, or Subsets of one, read a whole batch at a time.

    `dataset[list_of_positions]` returns the batch `(images, labels)` with one index op per
    tensor, where a DataLoader would look up each image and stack them (~150 µs per batch of
    32 on CPU). The values and their order are the same.
    """

    def __init__(self, dataset: Dataset) -> None:
        base, chain = _unwrap(dataset)
        index: torch.Tensor | None = None  # position -> row of the base tensors
        for indices in chain:
            rows = torch.as_tensor(indices, dtype=torch.long)
            index = rows if index is None else rows[index]
        self.tensors = base.tensors
        self.index = index

    def __len__(self) -> int:
        return len(self.index) if self.index is not None else len(self.tensors[0])

    def __getitem__(self, positions: list[int]) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(positions, dtype=torch.long)
        if self.index is not None:
            rows = self.index[rows]
        return tuple(t.index_select(0, rows) for t in self.tensors)


def _unwrap(dataset: Dataset) -> tuple[Dataset, list[Sequence[int]]]:
    """The dataset under any Subsets, and the Subsets' indices from the outermost in."""
    chain = []
    while isinstance(dataset, Subset):
        chain.append(dataset.indices)
        dataset = dataset.dataset
    return dataset, chain


def in_memory(dataset: Dataset) -> bool:
    """True for tensors held in memory (a TensorDataset, or Subsets of one): no per-image code."""
    return isinstance(_unwrap(dataset)[0], TensorDataset)


class ImageDataModule(L.LightningDataModule):
    """Base class: subclasses fill train/val/test datasets in `load()`.

    Training batches are shuffled by (shuffle_seed, epoch) alone (see EpochShuffleSampler).
    `val_size` images are split off the training set with `split_seed` when the dataset
    has no validation split; `train_size` (None = all) and `test_size` (None = all) cap
    the other splits with the same fixed seed, so every job sees the same images.
    """

    name: str = "data"
    in_shape: tuple[int, int, int]
    num_classes: int
    mean: Sequence[float]
    std: Sequence[float]
    class_names: list[str]

    def __init__(
        self,
        root: str,
        batch_size: int = 32,
        eval_batch_size: int = 256,
        num_workers: int = 0,
        train_size: int | None = None,
        val_size: int | None = 5000,
        test_size: int | None = None,
        split_seed: int = 0,
        shuffle_seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = root
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.train_size = train_size
        self.val_size = val_size
        self.test_size = test_size
        self.split_seed = split_seed
        self.shuffle_seed = shuffle_seed
        self.train_sampler: EpochShuffleSampler | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        """Return (train, val or None, test) datasets of (image in [0,1], label)."""
        raise NotImplementedError

    @classmethod
    def files_fingerprint(cls, root: str, classes: Sequence[str] | None = None) -> str | None:
        """A hash of the files under `root` where they are the user's own; None here.

        A published dataset (Fashion-MNIST, CIFAR-10) is the same files wherever it lies, so its
        folder stays out of the cache keys; an image folder of one's own overrides this.
        """
        return None

    def setup(self, stage: str | None = None) -> None:
        """Load once and apply the seeded split and subset sizes (`stage` "test": only the
        test split is used, so the others are capped without a warning)."""
        if self.train_set is not None:
            return
        quiet = stage == "test"
        train, val, test = self.load()
        order = seeded_indices(len(train), self.split_seed)
        if val is None:
            n_val = self.val_size or 0
            if n_val <= 0 or n_val >= len(train):
                raise PrunelabError(
                    f"data.val_size must be in 1..{len(train) - 1} (it is split off the "
                    f"{len(train)} training images), got {self.val_size}"
                )
            val = Subset(train, order[:n_val].tolist())
            order = order[n_val:]
        elif self.val_size is not None:
            n_val = capped_size(
                "data.val_size", self.val_size, len(val), "validation images", quiet
            )
            if n_val < len(val):
                kept = seeded_indices(len(val), self.split_seed)[:n_val]
                val = Subset(val, kept.tolist())
        if self.train_size is not None:
            left = " left after the validation split" if len(order) < len(train) else ""
            what = f"training images{left}"
            n_train = capped_size("data.train_size", self.train_size, len(order), what, quiet)
            order = order[:n_train]
        self.train_set = Subset(train, order.tolist())
        self.train_sampler = EpochShuffleSampler(len(self.train_set), self.shuffle_seed)
        self.val_set = val
        if self.test_size is not None:
            n_test = capped_size("data.test_size", self.test_size, len(test), "test images")
            if n_test < len(test):
                kept = seeded_indices(len(test), self.split_seed)[:n_test]
                test = Subset(test, kept.tolist())
        self.test_set = test

    def _loader(self, dataset: Dataset, batch_size: int, sampler=None) -> DataLoader:
        # Its own generator: creating an iterator must not draw from the global RNG
        # (DataLoader draws a worker base seed), or resumed runs would diverge.
        common = {
            "generator": torch.Generator().manual_seed(self.shuffle_seed),
            "num_workers": self.num_workers,
            "persistent_workers": self.num_workers > 0,
        }
        if in_memory(dataset):
            order = sampler if sampler is not None else SequentialSampler(dataset)
            batches = EpochBatchSampler(order, batch_size, drop_last=False)
            return DataLoader(TensorBatches(dataset), batch_size=None, sampler=batches, **common)
        if sampler is not None:  # training: augmentation drawn per (seed, epoch, image)
            dataset, sampler = EpochSeededImages(dataset, self.shuffle_seed), EpochTagged(sampler)
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **common)

    def train_dataloader(self) -> DataLoader:
        if self.trainer is not None and self.train_sampler is not None:
            # Lightning asks for the loader, and starts its workers (which draw the epoch's
            # order at once), before it sets the epoch on the sampler: a resumed run's first
            # epoch would get epoch 0's order. Take the epoch Lightning will set.
            self.train_sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return self._loader(self.train_set, self.batch_size, self.train_sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.eval_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.eval_batch_size)

    def describe(self) -> dict:
        """Sizes of each split, for logs and results."""
        self.setup()
        return {
            "data/train_size": len(self.train_set),
            "data/val_size": len(self.val_set),
            "data/test_size": len(self.test_set),
        }


def files_fingerprint(data_cfg: DictConfig) -> str | None:
    """The configured dataset's `files_fingerprint` (None for a published dataset)."""
    classes = data_cfg.get("classes")
    classes = None if classes is None else [str(c) for c in classes]
    return get_class(str(data_cfg._target_)).files_fingerprint(str(data_cfg.root), classes)
