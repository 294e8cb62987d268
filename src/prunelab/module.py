"""The one LightningModule: wraps any classifier net with metrics, optimizer and schedule."""

from __future__ import annotations

import math
from collections.abc import Callable

import lightning as L
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from prunelab.errors import PrunelabError


class Classifier(L.LightningModule):
    """Cross-entropy classification of any `net`; logs `<prefix><split>/{loss,acc}`.

    Training logs `train/loss_step` (every `log_every_n_steps`), `train/loss_epoch` and
    `train/acc`; validation and test log `val/loss`, `val/acc`, `test/loss`, `test/acc`.

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
        self.loss = nn.CrossEntropyLoss()
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self._loss_sum: torch.Tensor | None = None  # this epoch's summed training loss
        self._seen = 0
        # This epoch's predicted and true labels: train_acc is updated once per epoch, since a
        # torchmetrics update per step costs ~80 µs (0.4 % of a SimpleCNN step on CPU).
        self._preds: list[torch.Tensor] = []
        self._targets: list[torch.Tensor] = []

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
        loss = self.loss(logits, y)
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
        self._loss_sum, self._seen = None, 0
        self._preds, self._targets = [], []

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(self._input(x))
        loss = self.loss(logits, y)
        self._preds.append(logits.detach().argmax(dim=1))
        self._targets.append(y)
        if self._loss_sum is None:  # also after a mid-epoch resume
            self._loss_sum = torch.zeros((), device=loss.device)
        self._loss_sum += loss.detach() * len(y)
        self._seen += len(y)
        # self.log walks Lightning's result collection (several % of a SimpleCNN step), so log
        # the step loss only on the steps Lightning writes (RESULTS.md of e5b7006, section 1).
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log(f"{self.prefix}train/loss_step", loss, prog_bar=True)
        if not torch.isfinite(loss):
            raise PrunelabError(
                f"loss became {loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step}: "
                "lower the learning rate"
            )
        return loss

    def on_train_epoch_end(self) -> None:
        if self._seen:
            self.train_acc.update(torch.cat(self._preds), torch.cat(self._targets))
            self.log(f"{self.prefix}train/loss_epoch", self._loss_sum / self._seen)
            self.log(f"{self.prefix}train/acc", self.train_acc.compute(), prog_bar=True)
        self.train_acc.reset()
        self._preds, self._targets = [], []

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
