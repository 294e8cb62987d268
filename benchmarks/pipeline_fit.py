"""Section 1's machinery: a Lightning fit with a raw PyTorch twin step before each of its steps.

Both run in one process and alternate step by step (ABAB...): a callback runs one raw step at
the start of every Lightning step, so machine load that drifts over seconds falls on both sides
alike. A Lightning step is timed from one `on_train_batch_start` to the next, so an epoch's
Lightning seconds hold all of its per-step and per-epoch work (hooks, logging, checkpoint,
scheduler, the next loader iterator). Both sides also clock the phases of their steps, and the
job's progress bar, CSV logger and checkpoint are subclasses that clock their own hooks, so
the overhead can be split by phase and by component from the same run.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
from collections.abc import Callable
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from common import conf, datamodule, finetune_optimizer, net_for, sync, train_tensors
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from prunelab.lean import ModelCheckpoint
from prunelab.module import Classifier
from prunelab.seeding import EpochSeed
from prunelab.tracking import CSVLog, StageProgressBar


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
    StageProgressBar,
    ("on_train_start", "on_train_epoch_start", "on_train_batch_end", "on_train_epoch_end"),
)
ClockedCheckpoint = clocked(ModelCheckpoint, ("on_train_batch_end", "on_train_epoch_end"))
ClockedCSV = clocked(CSVLog, ("log_metrics", "log_hyperparams", "save"))


# Phases of one training step, each side's clock points in order (see AlternateWithRaw).
PHASES = ("forward", "zero_grad", "backward", "optimizer", "between")


class RawStep:
    """One plain PyTorch training step per call, over a loader restarted when it runs out.

    A call returns the step's seconds and leaves each phase's seconds in `phases`: `between`
    is fetching the batch, `forward` the net and the loss, then `zero_grad`, `backward` and the
    optimizer's update.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: DataLoader,
        device: torch.device,
    ) -> None:
        self.net, self.optimizer, self.loader, self.device = net, optimizer, loader, device
        self._batches = iter(())
        self.phases: dict[str, float] = {}  # the last call's

    def __call__(self) -> float:
        self.net.train()
        sync(self.device)
        t0 = time.perf_counter()
        batch = next(self._batches, None)
        if batch is None:  # an epoch of the raw loop ends: a new iterator, as a loop would
            self._batches = iter(self.loader)
            batch = next(self._batches)
        x, y = (t.to(self.device) for t in batch)
        with torch.enable_grad():
            t1 = time.perf_counter()
            loss = F.cross_entropy(self.net(x), y)
            t2 = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            loss.backward()
            t4 = time.perf_counter()
            self.optimizer.step()
        sync(self.device)
        t5 = time.perf_counter()
        bounds = zip(PHASES, (t1, t2, t3, t4, t0), (t2, t3, t4, t5, t1), strict=True)
        self.phases = {name: b - a for name, a, b in bounds}
        return t5 - t0


class AlternateWithRaw(L.Callback):
    """Runs one raw step at each Lightning step start; times both, alternating (ABAB...).

    `raw_s` and `lightning_s` hold seconds per epoch (each Lightning step with the interval up
    to the next step's start, so per-epoch work counts in the epoch it ends). The Lightning
    step's phases come from its hooks: `forward` = batch start to `on_before_zero_grad`
    (Lightning's way into the optimizer closure and `training_step`), `zero_grad`, `backward`,
    `optimizer` = `on_after_backward` to `on_train_batch_end` (the update and the hooks around
    it), `between` = the rest up to the next step (the next batch, logging, per-epoch work).
    """

    def __init__(self, raw: RawStep, device: torch.device) -> None:
        self.raw = raw
        self.device = device
        self.raw_s: list[float] = []
        self.lightning_s: list[float] = []
        # Summed seconds per phase of both sides, over the steps after the warm-up epoch.
        self.phases = {"raw": dict.fromkeys(PHASES, 0.0), "lightning": dict.fromkeys(PHASES, 0.0)}
        self.phase_steps = 0
        # On a GPU a phase clock would need a synchronisation of its own, which changes the
        # timing it measures: phases are clocked on the CPU only.
        self.clock_phases = device.type == "cpu"
        self._marks: dict[str, float] = {}
        self._start: float | None = None
        self._epoch = 0
        self._raw_phases: dict[str, float] = {}

    def _mark(self, name: str) -> None:
        if self.clock_phases:
            self._marks[name] = time.perf_counter()

    def _lap(self) -> None:
        sync(self.device)
        now = time.perf_counter()
        if self._start is not None:
            self.lightning_s[self._epoch] += now - self._start
            m = self._marks
            if self.clock_phases and self._epoch > 0 and len(m) == 4:
                points = (self._start, m["zero"], m["backward"], m["after"], m["end"], now)
                for name, a, b in zip(PHASES, points[:-1], points[1:], strict=True):
                    self.phases["lightning"][name] += b - a
                for name, seconds in self._raw_phases.items():
                    self.phases["raw"][name] += seconds
                self.phase_steps += 1
        self._marks = {}
        self._start = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.raw_s.append(0.0)
        self.lightning_s.append(0.0)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._lap()
        self._epoch = len(self.raw_s) - 1
        self.raw_s[-1] += self.raw()
        self._raw_phases = self.raw.phases
        self._start = time.perf_counter()

    def on_before_zero_grad(self, trainer, pl_module, optimizer) -> None:
        self._mark("zero")

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._mark("backward")

    def on_after_backward(self, trainer, pl_module) -> None:
        self._mark("after")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._mark("end")

    def on_train_end(self, trainer, pl_module) -> None:
        self._lap()


BARE: frozenset[str] = frozenset()  # Trainer + Classifier only


def _loggers(extras: frozenset[str], root: Path, model: str) -> list:
    loggers = []
    if "csv" in extras:
        csv = OmegaConf.to_container(conf("logger/default").csv)  # the jobs' CSV logger
        target = csv.pop("_target_")
        assert target == "prunelab.tracking.CSVLog", f"section 1 clocks CSVLog, config has {target}"
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
    raw = RawStep(twin, finetune_optimizer()(twin.parameters()), plain, device)
    clock = AlternateWithRaw(raw, device)
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
        # Mean seconds per step of each phase, both sides (the warm-up epoch dropped).
        "phases_s": {
            side: {k: v / max(clock.phase_steps, 1) for k, v in per.items()}
            for side, per in clock.phases.items()
        },
    }
