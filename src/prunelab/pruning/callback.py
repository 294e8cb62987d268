"""Lightning callbacks: prune at the start of fine-tuning, hold the masks, guard them.

One-shot methods differ only in `compute_masks`: global magnitude (the study's method), layer-wise
magnitude and random (reference baselines, as in ShrinkBench). Gradual pruning and lottery-ticket
rewinding build on MagnitudePruning in gradual.py and rewind.py.
"""

from __future__ import annotations

import lightning as L
import torch

from prunelab.errors import PrunelabError, warn
from prunelab.pruning.checks import fraction, whole
from prunelab.pruning.masks import (
    apply_masks,
    check_keeps_a_weight,
    emptied_layers,
    global_magnitude_masks,
    layerwise_magnitude_masks,
    mask_violations,
    measure_sparsity,
    prunable_weights,
    random_masks,
)


class MagnitudePruning(L.Callback):
    """Global unstructured L1 pruning of Conv2d/Linear weights to exactly `amount` of them.

    Prunes in `on_fit_start` (before the first fine-tuning step) unless masks were restored
    from a checkpoint. Masks are held by re-zeroing the pruned weights after every optimizer
    step (and their gradients before it, where the step is not elementwise); they are saved
    in the checkpoint's callback state.
    """

    # True where each layer loses `amount` of its own weights rather than of the whole net's.
    per_layer = False

    def __init__(self, amount: float) -> None:
        # `amount` is the job's `sparsity` (checked before); here for a direct pruning.amount.
        self.amount = fraction("pruning.amount (the sparsity)", amount)
        self.masks: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        # The class name, so a checkpoint's masks are only restored into the same method.
        return type(self).__qualname__

    def check_net(self, net: torch.nn.Module, in_shape=None) -> None:
        """PrunelabError now, before any training, if `amount` would prune all of `net`'s weights
        (or, per layer, all of one layer's): the masks' counts depend on the shapes alone.

        `in_shape` (the data's) is for StructuredPruning; masks do not depend on it.
        """
        check_keeps_a_weight(
            prunable_weights(net), self.amount, self.per_layer, type(net).__name__, self.label
        )

    @property
    def label(self) -> str:
        """How check_net names a per-layer method in its message."""
        return "layer-wise pruning"

    def compute_masks(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Masks for `net`'s current weights."""
        return global_magnitude_masks(prunable_weights(net), self.amount)

    def prune(self, trainer: L.Trainer, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The masks to hold from the first step on (called once, when none were restored)."""
        return self.compute_masks(net)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        net = pl_module.net
        if self.masks is None:
            self.masks = self.prune(trainer, net)
        device = next(net.parameters()).device
        self.masks = {k: m.to(device) for k, m in self.masks.items()}
        apply_masks(net, self.masks)

    def _held(self, net: torch.nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Masked weights and their masks as float lists, rebuilt only when `masks` changes.

        One fused `_foreach_mul_` over cached lists costs a fifth of a per-layer walk with
        bool masks (benchmarks/RESULTS.md of e5b7006, section 2): most of the hold's overhead.
        """
        if getattr(self, "_cache_of", None) is not self.masks:
            weights = prunable_weights(net)
            params = [weights[name] for name in self.masks]
            masks = self.masks.values()
            floats = [m.to(p.device, p.dtype) for p, m in zip(params, masks, strict=True)]
            self._cache, self._cache_of = (params, floats), self.masks
        return self._cache

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # An elementwise optimizer updates each weight from its own gradient and state alone,
        # and the pruned weights are re-zeroed after the step, so their gradients need no mask:
        # surviving weights come out bit-identical either way (pruned ones are 0 either way;
        # only the sign bit of such a zero can differ, which the sparse export keeps). Masking
        # would pin Adam's second moment at exactly 0, whose sqrt takes a slow path on some CPUs
        # (+20-40 % of Adam's step here: benchmarks/RESULTS.md, section 2). Norm clipping and
        # other optimizers see the whole gradient, so there the pruned part is zeroed first.
        if not _needs_gradient_mask(trainer, optimizer):
            return
        params, floats = self._held(pl_module.net)
        pairs = [(p.grad, m) for p, m in zip(params, floats, strict=True) if p.grad is not None]
        if pairs:
            torch._foreach_mul_([g for g, _ in pairs], [m for _, m in pairs])

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        params, floats = self._held(pl_module.net)
        torch._foreach_mul_(params, floats)

    def state_dict(self) -> dict:
        masks = None if self.masks is None else {k: m.cpu() for k, m in self.masks.items()}
        return {"amount": self.amount, "masks": masks}

    def load_state_dict(self, state_dict: dict) -> None:
        if state_dict.get("masks") is not None:
            self.masks = dict(state_dict["masks"])


# Optimizers whose update of each element depends on that element's gradient and state only.
ELEMENTWISE = (
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.SGD,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Rprop,
)


def _needs_gradient_mask(trainer, optimizer) -> bool:
    """Whether pruned gradients could change the step of surviving weights."""
    if getattr(trainer, "gradient_clip_val", None):
        return True
    optimizer = getattr(optimizer, "optimizer", optimizer)  # a LightningOptimizer wraps it
    return type(optimizer) not in ELEMENTWISE


class LayerwiseMagnitudePruning(MagnitudePruning):
    """Layer-wise L1 pruning: every Conv2d/Linear loses `amount` of its own weights (rounded).

    The network-wide count can differ from global pruning's round(amount * n) by the per-layer
    rounding (at most half a weight per layer).
    """

    per_layer = True

    def compute_masks(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Per-layer magnitude masks for `net`'s current weights."""
        return layerwise_magnitude_masks(prunable_weights(net), self.amount)


class RandomPruning(MagnitudePruning):
    """Random unstructured pruning: round(amount * n) weights drawn uniformly across the network.

    The same count as global magnitude pruning, so it is the chance-level reference that a
    ranking criterion has to beat. The draw depends only on `seed`.
    """

    def __init__(self, amount: float, seed: int = 0) -> None:
        super().__init__(amount)
        self.seed = whole("pruning.seed", seed, 0)

    def compute_masks(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Seeded random masks shaped like `net`'s prunable weights."""
        return random_masks(prunable_weights(net), self.amount, self.seed)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "seed": self.seed}


class MaskGuard(L.Callback):
    """Logs measured sparsity every epoch and stops training if a pruned weight comes back.

    Warns once when the masks empty a layer: global ranking can take every weight of a layer
    whose weights are all small, which cuts a plain chain of layers (SimpleCNN) in two.
    """

    def __init__(self, pruning: MagnitudePruning) -> None:
        self.pruning = pruning
        self._emptied: set[str] = set()

    def _check(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        if self.pruning.masks is None:
            return
        if not all(bool(torch.isfinite(p).all()) for p in pl_module.net.parameters()):
            # NaN is not zero: a diverged run would otherwise read as masks that failed.
            raise PrunelabError(
                f"training diverged {when}: weights became NaN or infinite; lower the learning rate"
            )
        bad = mask_violations(pl_module.net, self.pruning.masks)
        if bad:
            raise PrunelabError(f"pruned weights came back {when}: {bad} (layer: count)")
        self._warn_emptied(self.pruning.masks)
        stats = measure_sparsity(pl_module.net)
        pl_module.log("prune/sparsity_measured", stats["prune/sparsity_measured"])
        pl_module.log("prune/sparsity_overall", stats["prune/sparsity_overall"])

    def _warn_emptied(self, masks: dict[str, torch.Tensor]) -> None:
        new = [name for name in emptied_layers(masks) if name not in self._emptied]
        if not new:
            return
        self._emptied.update(new)
        shown = ", ".join(new[:4]) + (f" and {len(new) - 4} more" if len(new) > 4 else "")
        warn(
            f"the masks (pruning to sparsity={self.pruning.amount}) "
            f"remove every weight of {len(new)} layer(s): {shown}; only a residual path can "
            "carry a signal past such a layer (prune/layer/<layer> in results.json)"
        )

    def on_train_start(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module, "before fine-tuning")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._check(trainer, pl_module, f"in epoch {trainer.current_epoch}")

    def on_train_end(self, trainer, pl_module) -> None:
        # Gradual pruning applies its final masks here when the fit stopped before its schedule
        # ended (it runs first: the guard comes after it in the callbacks).
        if self.pruning.masks is not None:
            self._warn_emptied(self.pruning.masks)
