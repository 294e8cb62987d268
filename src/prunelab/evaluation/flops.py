"""Multiply-accumulates per image: dense (torch's FlopCounterMode) and effective (nonzero)."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prunelab.pruning.masks import PRUNABLE


@torch.no_grad()
def count_macs(net: nn.Module, in_shape: Sequence[int]) -> dict[str, float]:
    """Dense and nonzero MACs of one image through `net`, and their ratio.

    Each output element of a Conv2d/Linear uses one row of its weight (`weight[0].numel()`
    MACs), so a layer's nonzero MACs are its dense MACs times its weight's density, exactly.
    """
    net = copy.deepcopy(net).cpu().eval()
    layers: dict[nn.Module, int] = {}

    def record(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        layers[module] = layers.get(module, 0) + output.numel() * module.weight[0].numel()

    hooks = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, PRUNABLE)]
    try:
        with FlopCounterMode(display=False) as counter:
            net(torch.zeros(1, *in_shape))
    finally:
        for hook in hooks:
            hook.remove()
    dense = counter.get_total_flops() / 2  # torch counts a multiply-add as two FLOPs
    saved = sum(
        macs * (1 - int(torch.count_nonzero(m.weight)) / m.weight.numel())
        for m, macs in layers.items()
    )
    nonzero = dense - saved
    return {
        "flops/dense_macs": int(dense),
        "flops/nonzero_macs": int(round(nonzero)),
        "flops/theoretical_speedup": dense / nonzero if nonzero > 0 else None,
    }
