"""A prototype of the change suggested for `prunelab.module.Classifier`, for section 1 to measure.

`Classifier._step` calls `self.log` twice per training step: the loss (on_step and on_epoch)
and the torchmetrics object. Each call walks Lightning's result collection (`_ResultMetric.to`
with `apply_to_collection`, the metric object's `.to(device)`), a few hundred µs per call on
this CPU, which is several % of a SimpleCNN step. This subclass keeps the logged names and
values (`train/loss_step` every `log_every_n_steps` steps, when Lightning writes logs anyway;
`train/loss_epoch` and `train/acc` once per epoch) but calls `self.log` only then.
"""

from __future__ import annotations

import torch

from prunelab.errors import PrunelabError
from prunelab.module import Classifier


class LeanLoggingClassifier(Classifier):
    """Classifier whose training step logs only on logging steps; epoch figures at epoch end."""

    def on_train_epoch_start(self) -> None:
        self._loss_sum = torch.zeros((), device=self.device)
        self._seen = 0

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        logits = self.net(x)
        loss = self.loss(logits, y)
        self.train_acc.update(logits.detach(), y)
        self._loss_sum += loss.detach() * len(y)
        self._seen += len(y)
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log(f"{self.prefix}train/loss_step", loss, on_step=True, prog_bar=True)
        if not torch.isfinite(loss):
            raise PrunelabError(f"loss became {loss.item()}: lower the learning rate")
        return loss

    def on_train_epoch_end(self) -> None:
        prefix = self.prefix
        self.log(f"{prefix}train/loss_epoch", self._loss_sum / max(self._seen, 1))
        self.log(f"{prefix}train/acc", self.train_acc.compute(), prog_bar=True)
        self.train_acc.reset()
