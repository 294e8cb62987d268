"""Structured pruning: remove whole output channels by L1/L2 norm and physically shrink the layers.

Unstructured zeros make no dense kernel faster; removing channels does, because every
Conv2d/BatchNorm2d/Linear becomes a smaller dense layer. Torch-Pruning's dependency graph
keeps coupled layers consistent (a residual addition forces the stem, the second conv of each
block and the projection shortcuts of a stage to keep the same channels; a Flatten maps one
conv channel to H*W Linear inputs).

`amount` (the job's `sparsity`) is the fraction of output channels removed from every prunable
layer: all Conv2d and Linear layers except the classifier, rounded down to whole channels as
Torch-Pruning does (kept = floor(C * (1 - amount))). A layer whose inputs and outputs both
shrink loses about 1 - (1 - amount)^2 of its weights, so amount 0.5 removes ~75 % of the
weights and ~75 % of the multiply-accumulates; `measure_removed` reports both exactly. The
network input (and so the first conv's input channels and the Normalize layer) is never pruned.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
import torch_pruning as tp
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunelab.errors import PrunelabError
from prunelab.io import load_torch
from prunelab.pruning.masks import prunable_weights
from prunelab.pruning.shapes import conform

NORMS = (1, 2)


def classifier_layer(net: nn.Module) -> nn.Linear:
    """The last Linear layer: its outputs are the classes, so it is never pruned."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PrunelabError("structured pruning needs a net whose classifier is an nn.Linear")
    return linears[-1]


def _check_amount(amount: float) -> float:
    if not 0.0 <= float(amount) < 1.0:
        raise PrunelabError(f"structured sparsity (channel ratio) must be in [0, 1), got {amount}")
    return float(amount)


def prune_channels(
    net: nn.Module,
    amount: float,
    in_shape: Sequence[int],
    norm: int = 1,
    round_to: int | None = None,
) -> nn.Module:
    """Remove `amount` of the output channels of every prunable layer, lowest L_norm first."""
    amount = _check_amount(amount)
    if norm not in NORMS:
        raise PrunelabError(f"structured pruning norm must be one of {NORMS}, got {norm}")
    if amount == 0.0:
        return net
    was_training = net.training
    device = next(net.parameters()).device
    example = torch.zeros(1, *in_shape, device=device)
    # Tracing needs autograd (the graph is read from grad_fn) and eval mode (a train-mode
    # forward would move BatchNorm's running statistics towards the dummy input).
    net.eval()
    with torch.enable_grad():
        pruner = tp.pruner.MetaPruner(
            net,
            example,
            importance=tp.importance.MagnitudeImportance(p=norm),
            pruning_ratio=amount,
            ignored_layers=[classifier_layer(net)],
            round_to=round_to,
        )
        pruner.step()
    net.train(was_training)
    return net


@torch.no_grad()
def macs_per_image(net: nn.Module, in_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of one image (conv and matmul ops only)."""
    was_training = net.training
    net.eval()
    x = torch.zeros(1, *in_shape, device=next(net.parameters()).device)
    with FlopCounterMode(display=False) as counter:
        net(x)
    net.train(was_training)
    return counter.get_total_flops() // 2  # FlopCounterMode counts a multiply-add as 2 FLOPs


def _out_channels(net: nn.Module) -> int:
    skip = classifier_layer(net)
    return sum(
        m.weight.shape[0]
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and m is not skip
    )


def measure_removed(
    net: nn.Module, reference: nn.Module, in_shape: Sequence[int]
) -> dict[str, float | int]:
    """What shrinking `reference` into `net` removed: channels, weights, parameters, MACs.

    `prune/sparsity_measured` and `prune/sparsity_overall` keep their unstructured meaning
    (share of the dense model's prunable weights / parameters that are gone), so structured
    and unstructured jobs sit on one axis in the report.
    """
    weights = sum(w.numel() for w in prunable_weights(net).values())
    weights_ref = sum(w.numel() for w in prunable_weights(reference).values())
    params = sum(p.numel() for p in net.parameters())
    params_ref = sum(p.numel() for p in reference.parameters())
    macs, macs_ref = macs_per_image(net, in_shape), macs_per_image(reference, in_shape)
    return {
        "prune/channels_removed": 1 - _out_channels(net) / _out_channels(reference),
        "prune/sparsity_measured": 1 - weights / weights_ref,
        "prune/sparsity_overall": 1 - params / params_ref,
        "prune/prunable_params": weights,
        "prune/total_params": params,
        "prune/macs_removed": 1 - macs / macs_ref,
    }


def _net_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The `net.` part of a Lightning checkpoint of a Classifier."""
    state = checkpoint["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}


def _conform_on_load(module: nn.Module, state_dict: dict, prefix: str, *args) -> None:
    """load_state_dict pre-hook: take the incoming tensors' shapes before they are copied in."""
    conform(module, {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)})


class StructuredPruning(L.Callback):
    """Shrink `pl_module.net` by channel pruning in `setup`, before any optimizer exists.

    Lightning 2.x calls `setup` before `configure_optimizers` and before it restores a
    checkpoint, so fine-tuning starts with a fresh optimizer over the new, smaller tensors.
    Resuming: if the checkpoint path is known in `setup` (`trainer.ckpt_path = path` before
    `fit()`), the net is conformed to the checkpoint's shapes instead of being pruned again.
    With `fit(ckpt_path=...)` Lightning reveals the path only after `setup`; then the net is
    pruned and a load_state_dict pre-hook conforms it to the checkpoint's shapes as the
    checkpoint loads (a no-op when they agree, as they do for a given architecture and amount).

    `masks` is always None: there are no zeros to hold, so `MaskGuard` has nothing to check.
    `stats` (after fit start) holds what was removed (see `measure_removed`).
    """

    masks = None

    def __init__(
        self,
        amount: float,
        norm: int = 1,
        round_to: int | None = None,
        in_shape: Sequence[int] | None = None,
    ) -> None:
        self.amount = _check_amount(amount)
        self.norm = int(norm)
        self.round_to = round_to
        self.in_shape = None if in_shape is None else tuple(in_shape)
        self.stats: dict[str, float | int] = {}
        self._reference: nn.Module | None = None
        self._hook = None

    @property
    def state_key(self) -> str:
        return "StructuredPruning"

    def _input_shape(self, trainer: L.Trainer) -> tuple[int, ...]:
        shape = self.in_shape or getattr(trainer.datamodule, "in_shape", None)
        if shape is None:
            raise PrunelabError("StructuredPruning needs in_shape (or a datamodule with in_shape)")
        return tuple(shape)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit" or self._reference is not None or self.stats:
            return  # prune once per callback, even if fit is called again
        net = getattr(pl_module, "net", None)
        if not isinstance(net, nn.Module):
            raise PrunelabError("StructuredPruning prunes `pl_module.net`; this module has none")
        self._reference = copy.deepcopy(net)  # the dense architecture, for the stats
        # A special value ("last", "hpc") is resolved only later: then the pre-hook path below.
        if trainer.ckpt_path and Path(trainer.ckpt_path).is_file():
            conform(net, _net_state(load_torch(trainer.ckpt_path)))
        else:
            prune_channels(net, self.amount, self._input_shape(trainer), self.norm, self.round_to)
            self._hook = net.register_load_state_dict_pre_hook(_conform_on_load)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Any checkpoint is restored by now: later loads must not reshape the net.
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if self._reference is not None:
            removed = measure_removed(pl_module.net, self._reference, self._input_shape(trainer))
            self.stats = {"prune/channel_ratio": self.amount, **removed}
            self._reference = None
            if self.amount > 0 and removed["prune/channels_removed"] == 0:
                # floor(C * (1 - amount)) < C: pruning always removes channels, so an unshrunk
                # net here came from a dense checkpoint, which would fine-tune dense in silence.
                raise PrunelabError(
                    f"structured pruning at {self.amount} left the net dense: the checkpoint "
                    f"{trainer.ckpt_path} holds unpruned weights; resume only a structured run"
                )

    def state_dict(self) -> dict:
        return {"amount": self.amount, "norm": self.norm, "round_to": self.round_to}
