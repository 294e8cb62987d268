"""The one LightningModule: wraps any classifier net with metrics, optimizer and schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from prunelab.errors import PrunelabError
from prunelab.lean import fixed_signature

# Attributes that only ever hold plain Python values; see Classifier.__setattr__.
_PLAIN_ATTRIBUTES = frozenset({"_current_fx_name", "_checked"})


class Classifier(L.LightningModule):
    """Cross-entropy classification of any `net`; logs `<prefix><split>/{loss,acc}`.

    Training logs `train/loss` (every `log_every_n_steps`), `train/loss_epoch` (the epoch's
    mean) and `train/acc`; validation and test log `val/loss`, `val/acc`, `test/loss`, `test/acc`.

    `optimizer` is a partial (params -> Optimizer), `scheduler` either None or "cosine"
    (cosine annealing over the trainer's max_epochs). `prefix` keeps the baseline's curves
    apart from the fine-tuning curves in one W&B run (`baseline_train/loss` vs `train/loss`).
    `channels_last` runs the net in NHWC memory layout.
    """

    def __init__(
        self,
        net: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: str | None = "cosine",
        prefix: str = "",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.net = net
        self.optimizer_factory = optimizer
        self.scheduler = scheduler
        self.prefix = prefix
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        # This epoch's per-step outputs, kept as they are (an append is ~1 µs): argmax, loss sum
        # and the finiteness check run on whole windows of steps (a few ops per window instead
        # of a few per step, ~150 µs per SimpleCNN step on CPU; benchmarks/RESULTS.md section 1).
        self._logits: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []
        self._losses: list[torch.Tensor] = []
        self._checked = 0  # batches of this epoch whose loss is known to be finite
        # Read when an epoch starts (the trainer's properties walk its loops at every call):
        self._first_step = 0  # optimizer steps taken before this epoch
        self._log_every = 1  # trainer.log_every_n_steps
        self._accumulate = 1  # trainer.accumulate_grad_batches
        self._epoch_batches = -1  # trainer.num_training_batches, -1 when unknown

    def __setattr__(self, name: str, value) -> None:
        # Lightning sets `_current_fx_name` before and after every hook it calls, ~44 times a
        # training step (counted under cProfile); nn.Module.__setattr__ first tests each value
        # against Parameter, Buffer and Module, pointless for a str or an int.
        if name in _PLAIN_ATTRIBUTES:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def setup(self, stage: str) -> None:
        # Before configure_optimizers; `.to` keeps the Parameter objects, so masks and
        # optimizers see the same tensors. Weights stay channels-last in checkpoints.
        if self.channels_last:
            self.net.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._input(x))

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        """NHWC images when channels_last: ~20 % faster CPU convolutions, the same function."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def _step(self, batch, split: str, metric: MulticlassAccuracy) -> torch.Tensor:
        x, y = batch
        logits = self.net(self._input(x))
        loss = F.cross_entropy(logits, y)
        metric.update(logits.detach(), y)
        self.log(f"{self.prefix}{split}/loss", loss, on_epoch=True, batch_size=len(y))
        self.log(
            f"{self.prefix}{split}/acc",
            metric,
            on_step=False,
            on_epoch=True,
            prog_bar=split == "val",
            batch_size=len(y),
        )
        return loss

    def on_train_epoch_start(self) -> None:
        self._logits, self._targets, self._losses = [], [], []
        self._checked = 0
        trainer = self.trainer
        self._first_step = self.global_step  # also right after a resume
        self._log_every = max(1, int(trainer.log_every_n_steps))
        self._accumulate = max(1, int(trainer.accumulate_grad_batches))
        batches = trainer.num_training_batches
        self._epoch_batches = int(batches) if math.isfinite(batches) else -1

    @fixed_signature  # Lightning reads it at every step to decide whether to pass batch_idx
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(self._input(x))
        loss = F.cross_entropy(logits, y)
        self._logits.append(logits.detach())
        self._targets.append(y)
        self._losses.append(loss.detach())
        # self.log walks Lightning's result collection (several % of a SimpleCNN step), so log
        # the step loss only on the batches whose values Lightning writes: the one that ends an
        # optimizer step (under gradient accumulation, the window's last) when that step's
        # number is a multiple of log_every_n_steps (RESULTS.md of e5b7006, section 1).
        batches = len(self._losses)
        if batches % self._accumulate and batches != self._epoch_batches:
            return loss
        step = self._first_step + -(-batches // self._accumulate)  # 1-based, as Lightning's
        if step % self._log_every == 0:
            self._check_finite()
            window = (batches - 1) % self._accumulate + 1
            # What the optimizer stepped on: the mean loss of the window's batches.
            value = loss if window == 1 else torch.stack(self._losses[-window:]).mean()
            self.log(f"{self.prefix}train/loss", value, prog_bar=True)
        return loss

    def _check_finite(self) -> None:
        """Stop with a clear message if a loss since the last check is NaN or infinite."""
        if self._checked == len(self._losses):
            return
        window = torch.stack(self._losses[self._checked :])
        finite = torch.isfinite(window)
        if not bool(finite.all()):
            first = int((~finite).nonzero()[0, 0])
            batch = self._checked + first  # in this epoch, 0-based
            step = self._first_step + batch // self._accumulate  # 0-based, as global_step
            raise PrunelabError(
                f"loss became {window[first].item()} at epoch {self.current_epoch}, "
                f"step {step}: lower the learning rate"
            )
        self._checked = len(self._losses)

    def on_train_epoch_end(self) -> None:
        if self._losses:
            self._check_finite()
            losses = torch.stack(self._losses)
            sizes = [len(y) for y in self._targets]  # the last batch may be smaller
            sizes = torch.tensor(sizes, dtype=losses.dtype, device=losses.device)
            mean = (losses * sizes).sum() / sizes.sum()
            preds = torch.cat(self._logits).argmax(dim=1)
            self.train_acc.update(preds, torch.cat(self._targets))
            self.log(f"{self.prefix}train/loss_epoch", mean)
            self.log(f"{self.prefix}train/acc", self.train_acc.compute(), prog_bar=True)
        self.train_acc.reset()
        self._logits, self._targets, self._losses = [], [], []

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test", self.test_acc)

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.net.parameters())
        if self.scheduler is None:
            return optimizer
        if self.scheduler != "cosine":
            raise PrunelabError(f"unknown scheduler '{self.scheduler}' (known: cosine, null)")
        epochs = self.trainer.max_epochs
        epochs = epochs if epochs and epochs > 0 and math.isfinite(epochs) else 1
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule, "interval": "epoch"},
        }
