"""Lightning callbacks: prune at the start of fine-tuning, hold the masks, guard them."""

from __future__ import annotations

import lightning as L
import torch

from prunelab.errors import PrunelabError
from prunelab.pruning.masks import (
    apply_masks,
    global_magnitude_masks,
    mask_violations,
    measure_sparsity,
    prunable_weights,
)


class MagnitudePruning(L.Callback):
    """Global unstructured L1 pruning of Conv2d/Linear weights to exactly `amount` of them.

    Prunes in `on_fit_start` (before the first fine-tuning step) unless masks were restored
    from a checkpoint. Masks are held by zeroing the pruned gradients before every optimizer
    step (so Adam's moments stay zero there) and re-zeroing the weights after it; they are
    saved in the checkpoint's callback state.
    """

    def __init__(self, amount: float) -> None:
        self.amount = float(amount)
        self.masks: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        return "MagnitudePruning"

    def compute_masks(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Masks for `net`'s current weights."""
        return global_magnitude_masks(prunable_weights(net), self.amount)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        if self.masks is None:
            self.masks = self.compute_masks(net)
        device = next(net.parameters()).device
        self.masks = {k: m.to(device) for k, m in self.masks.items()}
        apply_masks(net, self.masks)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        weights = prunable_weights(pl_module.net)
        for name, mask in self.masks.items():
            grad = weights[name].grad
            if grad is not None:
                grad.mul_(mask)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        apply_masks(pl_module.net, self.masks)

    def state_dict(self) -> dict:
        masks = None if self.masks is None else {k: m.cpu() for k, m in self.masks.items()}
        return {"amount": self.amount, "masks": masks}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("masks") is not None:
            self.masks = dict(state_dict["masks"])


class MaskGuard(L.Callback):
    """Logs measured sparsity every epoch and stops training if a pruned weight comes back."""

    def __init__(self, pruning: MagnitudePruning) -> None:
        self.pruning = pruning

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        if self.pruning.masks is None:
            return
        bad = mask_violations(pl_module.net, self.pruning.masks)
        if bad:
            raise PrunelabError(f"pruned weights came back {when}: {bad} (layer: count)")
        stats = measure_sparsity(pl_module.net)
        pl_module.log("prune/sparsity_measured", stats["prune/sparsity_measured"])
        pl_module.log("prune/sparsity_overall", stats["prune/sparsity_overall"])

    def on_train_start(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module, "before fine-tuning")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module, f"in epoch {trainer.current_epoch}")
