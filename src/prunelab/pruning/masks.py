"""Masks over the prunable weights (all Conv2d and Linear weights; no biases, no BatchNorm).

A mask is a bool tensor shaped like its weight, True where the weight is kept.
"""

from __future__ import annotations

import torch
from torch import nn

PRUNABLE = (nn.Conv2d, nn.Linear)


def prunable_weights(net: nn.Module) -> dict[str, nn.Parameter]:
    """The weight of every Conv2d and Linear, keyed by state_dict name."""
    return {
        f"{name}.weight" if name else "weight": module.weight
        for name, module in net.named_modules()
        if isinstance(module, PRUNABLE)
    }


def n_to_prune(amount: float, total: int) -> int:
    """How many of `total` weights `amount` removes (rounded, as torch.nn.utils.prune does)."""
    if not 0.0 <= amount < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {amount}")
    return round(amount * total)


@torch.no_grad()
def global_magnitude_masks(
    weights: dict[str, torch.Tensor], amount: float
) -> dict[str, torch.Tensor]:
    """Remove the `amount` fraction of all weights with the smallest |w|, ranked across layers."""
    flat = torch.cat([w.detach().abs().reshape(-1) for w in weights.values()])
    k = n_to_prune(amount, flat.numel())
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k > 0:
        keep[torch.topk(flat, k, largest=False).indices] = False
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = keep[start : start + w.numel()].view_as(w).clone()
        start += w.numel()
    return masks


@torch.no_grad()
def apply_masks(net: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every pruned weight in place."""
    weights = prunable_weights(net)
    for name, mask in masks.items():
        weights[name].mul_(mask.to(weights[name].device))


@torch.no_grad()
def mask_violations(net: nn.Module, masks: dict[str, torch.Tensor]) -> dict[str, int]:
    """Layers whose pruned positions hold nonzero values, with how many."""
    weights = prunable_weights(net)
    found = {}
    for name, mask in masks.items():
        n = int((weights[name][~mask.to(weights[name].device)] != 0).sum())
        if n:
            found[name] = n
    return found


@torch.no_grad()
def measure_sparsity(net: nn.Module) -> dict[str, float]:
    """Fraction of exact zeros among prunable weights (target) and among all parameters."""
    weights = prunable_weights(net).values()
    w_total = sum(w.numel() for w in weights)
    w_zero = sum(int((w == 0).sum()) for w in weights)
    p_total = sum(p.numel() for p in net.parameters())
    p_zero = sum(int((p == 0).sum()) for p in net.parameters())
    return {
        "prune/sparsity_measured": w_zero / max(w_total, 1),
        "prune/sparsity_overall": p_zero / max(p_total, 1),
        "prune/prunable_params": w_total,
        "prune/total_params": p_total,
    }
