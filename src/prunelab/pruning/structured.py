"""Structured pruning: remove whole output channels by L1/L2 norm and physically shrink the layers.

Unstructured zeros make no dense kernel faster; removing channels does, because every
Conv2d/BatchNorm2d/Linear becomes a smaller dense layer. Torch-Pruning's dependency graph
keeps coupled layers consistent (a residual addition forces the stem, the second conv of each
block and the projection shortcuts of a stage to keep the same channels; a Flatten maps one
conv channel to H*W Linear inputs).

`amount` (the job's `sparsity`) is the fraction of output channels removed from every prunable
layer: all Conv2d and Linear layers except the classifier, rounded down to whole channels as
Torch-Pruning does: kept = int(C * (1 - amount)) in floats, which can fall one short where
C * (1 - amount) is a whole number (C = 20 at amount 0.8 keeps 3, not 4; the default widths
32/64/128 at the usual ratios are exact). A layer whose inputs and outputs both
shrink loses about 1 - (1 - amount)^2 of its weights, so amount 0.5 removes ~75 % of the
weights and ~75 % of the multiply-accumulates; `measure_removed` reports both exactly. The
network input (and so the first conv's input channels and the Normalize layer) is never pruned.

Torch-Pruning silently leaves a layer whole where the rule would keep no channel, so
`prune_channels` refuses such a ratio up front (naming the largest one that works) and checks
afterwards that every layer has exactly the channels the rule gives.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import lightning as L
import torch
import torch_pruning as tp
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunelab.errors import PrunelabError
from prunelab.io import load_torch
from prunelab.pruning.checks import is_number, one_of, shape, whole
from prunelab.pruning.masks import prunable_weights
from prunelab.pruning.shapes import conform

NORMS = (1, 2)


def classifier_layer(net: nn.Module) -> nn.Linear:
    """The last Linear layer: its outputs are the classes, so it is never pruned."""
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise PrunelabError("structured pruning needs a net whose classifier is an nn.Linear")
    return linears[-1]


def prunable_layers(net: nn.Module) -> dict[str, nn.Module]:
    """The Conv2d and Linear layers that lose output channels, by name: all but the classifier."""
    skip = classifier_layer(net)
    return {
        name: m
        for name, m in net.named_modules()
        if isinstance(m, nn.Conv2d | nn.Linear) and m is not skip
    }


def kept_channels(channels: int, amount: float, round_to: int | None = None) -> int:
    """Output channels a layer of `channels` keeps at `amount`: int(C * (1 - amount)) in floats."""
    # The same float expression as Torch-Pruning's MetaPruner, so the two never disagree by one.
    kept = int(channels * (1 - amount))
    if round_to and kept < channels:  # Torch-Pruning rounds only a layer that loses channels
        kept -= kept % round_to
    return kept


def max_channel_ratio(widths: Iterable[int], round_to: int | None = None) -> float | None:
    """The largest ratio (to 3+ decimals) keeping a channel in every layer; None if only 0 does."""
    widths = list(widths)
    least = round_to or 1  # a rounded layer keeps a multiple of round_to, so at least round_to
    smallest = min(widths)
    # kept >= least  <=>  C * (1 - ratio) >= least  <=>  ratio <= 1 - least / C, exactly.
    bound = 1 - Fraction(least, smallest)
    unit = Fraction(1, 10 ** max(3, len(str(smallest))))  # finer than one channel of the layer
    ratio = math.floor(bound / unit) * unit
    # The float nearest a decimal can fall just above it (1 - 0.9 < 0.1): step down until the
    # stated ratio is one that prune_channels itself accepts.
    while ratio > 0 and any(kept_channels(c, float(ratio), round_to) < 1 for c in widths):
        ratio -= unit
    return float(ratio) if ratio > 0 else None


def _factor(channels: int, amount: float) -> str:
    """1 - amount, printed with just the digits that keep floor(C * it) what the float gives."""
    exact = 1 - amount
    for digits in range(3, 18):
        shown = f"{exact:.{digits}g}"
        if int(channels * float(shown)) == int(channels * exact):
            return shown
    return repr(exact)


def _check_keeps_a_channel(
    widths: dict[str, int], amount: float, round_to: int | None
) -> dict[str, int]:
    """Channels each layer will keep; PrunelabError if any would keep none."""
    kept = {name: kept_channels(c, amount, round_to) for name, c in widths.items()}
    starved = [name for name in widths if kept[name] < 1]
    if not starved:
        return kept
    name = min(starved, key=widths.__getitem__)  # the smallest layer decides the largest ratio
    c = widths[name]
    floor = int(c * (1 - amount))
    rule = f"floor({c} * {_factor(c, amount)}) = {floor}"
    if round_to and floor > 0:
        rule += f", rounded down to a multiple of round_to={round_to}: 0"
    message = (
        f"structured pruning at channel ratio {amount} would remove every channel of {name} "
        f"({c} channels: {rule})"
    )
    keeps = f"{round_to} channels (round_to)" if round_to and round_to > 1 else "one channel"
    best = max_channel_ratio(widths.values(), round_to)
    if best is None:
        raise PrunelabError(f"{message}; no ratio above 0 keeps {keeps} in {name}: lower round_to")
    raise PrunelabError(f"{message}; the largest ratio that keeps {keeps} in every layer is {best}")


def _check_amount(amount: float) -> float:
    if not is_number(amount) or not 0.0 <= amount < 1.0:  # NaN fails the range too
        raise PrunelabError(
            f"structured sparsity (channel ratio) must be in [0, 1), got {amount!r}"
        )
    return float(amount)


def _check_norm(norm: object) -> int:
    one_of("pruning.norm", norm, NORMS)
    return int(norm)  # type: ignore[call-overload]


def _check_round_to(round_to: object) -> int | None:
    # 0 and negative values would be taken as null (or grow a layer) in silence.
    return whole("pruning.round_to", round_to, 1, nullable=True)


def _check_in_shape(in_shape: Sequence[int], data_shape: Sequence[int] | None) -> None:
    """The shape traced for pruning and counted for MACs must be the data's."""
    if data_shape is not None and tuple(in_shape) != tuple(data_shape):
        raise PrunelabError(
            f"pruning.in_shape={list(in_shape)} does not match the data's {list(data_shape)} "
            "(leave it null)"
        )


def prune_channels(
    net: nn.Module,
    amount: float,
    in_shape: Sequence[int],
    norm: int = 1,
    round_to: int | None = None,
) -> nn.Module:
    """Remove `amount` of the output channels of every prunable layer, lowest L_norm first."""
    amount = _check_amount(amount)
    norm = _check_norm(norm)
    round_to = _check_round_to(round_to)
    if amount == 0.0:
        return net
    head = classifier_layer(net)
    widths = {name: m.weight.shape[0] for name, m in prunable_layers(net).items()}
    expected = _check_keeps_a_channel(widths, amount, round_to)
    head_width = head.weight.shape[0]
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
    _check_kept(net, widths, expected, amount)
    if head.weight.shape[0] != head_width:
        raise PrunelabError(f"structured pruning removed classes from the classifier at {amount}")
    return net


def _check_kept(
    net: nn.Module, widths: dict[str, int], expected: dict[str, int], amount: float
) -> None:
    """PrunelabError unless every prunable layer has exactly the channels the rule gives."""
    # Torch-Pruning skips a group it deems over-pruned without a word; a net it cannot follow
    # (grouped convs, odd couplings) must fail here rather than report a ratio it did not get.
    layers = prunable_layers(net)
    wrong = [name for name, m in layers.items() if m.weight.shape[0] != expected.get(name)]
    if wrong:
        name = wrong[0]
        raise PrunelabError(
            f"structured pruning at channel ratio {amount} left {name} with "
            f"{layers[name].weight.shape[0]} of {widths[name]} channels, not the "
            f"{expected[name]} that floor(C * (1 - ratio)) gives ({len(wrong)} layers differ); "
            "Torch-Pruning cannot prune this net as documented"
        )


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
    return sum(m.weight.shape[0] for m in prunable_layers(net).values())


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
        self.norm = _check_norm(norm)
        self.round_to = _check_round_to(round_to)
        self.in_shape = shape("pruning.in_shape", in_shape)
        self.stats: dict[str, float | int] = {}
        self._reference: nn.Module | None = None
        self._hook = None

    @property
    def state_key(self) -> str:
        return "StructuredPruning"

    def check_net(self, net: nn.Module, in_shape: Sequence[int] | None = None) -> None:
        """PrunelabError now, before any training, if the ratio would empty a layer of `net` or
        remove nothing, or if `in_shape` was set and differs from the data's (`in_shape`)."""
        if self.in_shape is not None:
            _check_in_shape(self.in_shape, in_shape)
        if self.amount == 0.0:
            return
        widths = {name: m.weight.shape[0] for name, m in prunable_layers(net).items()}
        if not widths:
            raise PrunelabError(
                "structured pruning needs a Conv2d or Linear layer besides the classifier; "
                f"{type(net).__name__} has none"
            )
        kept = _check_keeps_a_channel(widths, self.amount, self.round_to)
        if all(kept[name] == c for name, c in widths.items()):
            raise PrunelabError(
                f"structured pruning at channel ratio {self.amount} would remove no channel: "
                "1 - ratio rounds to 1.0, so floor(C * (1 - ratio)) = C in every layer; "
                "use a larger ratio"
            )

    def _input_shape(self, trainer: L.Trainer) -> tuple[int, ...]:
        data_shape = getattr(trainer.datamodule, "in_shape", None)
        if self.in_shape is not None:
            _check_in_shape(self.in_shape, data_shape)
            return self.in_shape
        if data_shape is None:
            raise PrunelabError("StructuredPruning needs in_shape (or a datamodule with in_shape)")
        return tuple(data_shape)

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
                # prune_channels checks its own result, so an unshrunk net after resuming came
                # from a dense checkpoint, which would fine-tune dense in silence.
                if trainer.ckpt_path:
                    raise PrunelabError(
                        f"structured pruning at {self.amount} left the net dense: the checkpoint "
                        f"{trainer.ckpt_path} holds unpruned weights; resume only a structured run"
                    )
                # Fresh: only a ratio so small that 1 - ratio rounds to 1.0 gets here.
                raise PrunelabError(
                    f"structured pruning at channel ratio {self.amount} removed no channel: "
                    "floor(C * (1 - ratio)) = C in every layer; use a larger ratio"
                )

    def state_dict(self) -> dict:
        return {"amount": self.amount, "norm": self.norm, "round_to": self.round_to}
