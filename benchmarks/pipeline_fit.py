"""Section 1's machinery: a Lightning fit with a raw PyTorch twin epoch before each epoch.

Both run in one process and alternate epoch by epoch: a callback runs one raw epoch at the start
of every Lightning epoch, so each Lightning epoch has a raw twin measured seconds before it.
A Lightning epoch is timed from one `on_train_epoch_start` to the next, which bills it for all
per-epoch work (epoch-end logging, checkpoint, scheduler, the next loader iterator). The job's
progress bar, CSV logger and checkpoint are subclasses that also clock their own hooks, so the
overhead can be split by component from the same run.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from common import conf, datamodule, finetune_optimizer, net_for, sync, train_tensors
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from prunelab.module import Classifier
from prunelab.seeding import EpochSeed


def clocked(base: type, methods: tuple[str, ...]) -> type:
    """A subclass of `base` whose `methods` add their wall time to `self.seconds`."""

    def wrap(name: str):
        def method(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return getattr(super(cls, self), name)(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return method

    cls = type(f"Clocked{base.__name__}", (base,), {n: wrap(n) for n in methods})
    cls.seconds = 0.0
    return cls


# Every hook of these components that runs during training.
ClockedBar = clocked(
    TQDMProgressBar,
    ("on_train_start", "on_train_epoch_start", "on_train_batch_end", "on_train_epoch_end"),
)
ClockedCheckpoint = clocked(ModelCheckpoint, ("on_train_batch_end", "on_train_epoch_end"))
ClockedCSV = clocked(CSVLogger, ("log_metrics", "log_hyperparams", "save"))


def raw_epoch(
    net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: DataLoader,
    steps: int,
    device: torch.device,
) -> Callable[[], float]:
    """A function that trains `steps` batches the plain PyTorch way and returns the seconds."""

    def run() -> float:
        net.train()
        sync(device)
        start = time.perf_counter()
        with torch.enable_grad():
            for x, y in islice(loader, steps):
                x, y = x.to(device), y.to(device)
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
                optimizer.step()
        sync(device)
        return time.perf_counter() - start

    return run


class AlternateWithRaw(L.Callback):
    """Runs a raw epoch at each Lightning epoch start; times both, alternating (ABAB...)."""

    def __init__(self, raw: Callable[[], float], device: torch.device) -> None:
        self.raw = raw
        self.device = device
        self.raw_s: list[float] = []
        self.lightning_s: list[float] = []
        self._start: float | None = None

    def _lap(self) -> None:
        sync(self.device)
        if self._start is not None:
            self.lightning_s.append(time.perf_counter() - self._start)
        self._start = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._lap()
        self.raw_s.append(self.raw())
        self._start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self._lap()


BARE: frozenset[str] = frozenset()  # Trainer + Classifier only


def _loggers(extras: frozenset[str], root: Path, model: str) -> list:
    loggers = []
    if "csv" in extras:
        csv = OmegaConf.to_container(conf("logger/csv").csv)  # as conf/logger/csv.yaml says
        target = csv.pop("_target_")
        assert target.endswith("CSVLogger"), f"section 1 clocks a CSVLogger, config has {target}"
        loggers.append(ClockedCSV(**{**csv, "save_dir": str(root)}))
    if "wandb" in extras:
        from prunelab.tracking import WandbRunLogger

        for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
            os.environ[var] = str(root / var.lower())
        os.environ.setdefault("WANDB_SILENT", "true")
        loggers.append(
            WandbRunLogger(project="prunelab-bench", mode="offline", save_dir=str(root), name=model)
        )
    return loggers


def _callbacks(extras: frozenset[str], root: Path) -> list:
    callbacks: list = []
    if "epoch_seed" in extras:
        callbacks.append(EpochSeed(0))
    if "progress_bar" in extras:
        # The job's bar (conf/config.yaml progress_bar), clocked.
        callbacks.append(ClockedBar(refresh_rate=int(conf("config").progress_bar.refresh_rate)))
    if "checkpoint" in extras:
        callbacks.append(
            ClockedCheckpoint(
                dirpath=root / "checkpoints",
                save_last=True,
                save_top_k=0,
                enable_version_counter=False,
                save_on_train_epoch_end=True,
            )
        )
    return callbacks


def measure_pair(
    model: str,
    steps: int,
    rounds: int,
    extras: frozenset[str],
    root: Path,
    device: torch.device,
    net_factory: Callable[[], torch.nn.Module] | None = None,
) -> dict[str, list[float]]:
    """Seconds per epoch of `steps` batches: Lightning with `extras` and its raw twins.

    `extras` from {"csv", "wandb", "progress_bar", "checkpoint", "epoch_seed"} add the job's
    parts to the Trainer of conf/trainer/default.yaml and the Classifier; BARE adds none.
    `net_factory` swaps in another net (the overhead probe of section 1).
    """
    dm = datamodule()
    net = net_factory() if net_factory else net_for(model, dm)
    twin = copy.deepcopy(net).to(device)
    images, labels = train_tensors(dm)
    plain = DataLoader(
        TensorDataset(images, labels),
        batch_size=dm.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    clock = AlternateWithRaw(
        raw_epoch(twin, finetune_optimizer()(twin.parameters()), plain, steps, device), device
    )
    loggers = _loggers(extras, root, model)
    trainer = instantiate(
        conf("trainer/default"),
        max_epochs=rounds + 1,  # epoch 0 is warm-up
        limit_train_batches=steps,
        limit_val_batches=0,  # training throughput: the raw loop does not validate either
        callbacks=[clock, *_callbacks(extras, root)],
        logger=loggers or False,
        enable_progress_bar="progress_bar" in extras,
        enable_checkpointing="checkpoint" in extras,
        default_root_dir=str(root),
    )
    module = Classifier(
        net, dm.num_classes, finetune_optimizer(), conf("config").finetune.scheduler
    )
    # The progress bar (tqdm on stdout) renders to /dev/null: formatting and writes are paid,
    # the console stays readable.
    with (
        open(os.devnull, "w") as null,
        contextlib.redirect_stdout(null),
        contextlib.redirect_stderr(null),
    ):
        trainer.fit(module, datamodule=dm)
    for logger in loggers:
        if hasattr(logger, "experiment") and hasattr(logger.experiment, "finish"):
            logger.experiment.finish()
    parts = {"progress_bar": ClockedBar, "checkpoint": ClockedCheckpoint, "csv": ClockedCSV}
    found = [c for c in (*trainer.callbacks, *trainer.loggers) if hasattr(c, "seconds")]
    seconds = {
        name: sum(c.seconds for c in found if isinstance(c, cls)) for name, cls in parts.items()
    }
    return {
        "raw_s": clock.raw_s[1:],
        "lightning_s": clock.lightning_s[1:],
        # Component seconds over every epoch (warm-up included), and the steps they cover.
        "component_s": {k: v for k, v in seconds.items() if k in extras},
        "steps_total": steps * (rounds + 1),
    }
