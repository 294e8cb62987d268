"""Masks over the prunable weights (all Conv2d and Linear weights; no biases, no BatchNorm).

A mask is a bool tensor shaped like its weight, True where the weight is kept.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction

import torch
from torch import nn

from prunelab.errors import PrunelabError, warn

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


def max_amount(sizes: Iterable[int]) -> float | None:
    """The largest sparsity (a short decimal) at which every group of `sizes` keeps a weight.

    A group of n weights keeps one while round(amount * n) < n, i.e. amount < 1 - 1 / (2n)
    (up to round's ties): the smallest group decides. None if only 0 works (no group).
    """
    sizes = [int(n) for n in sizes if n > 0]
    if not sizes:
        return None
    smallest = min(sizes)
    bound = 1 - Fraction(1, 2 * smallest)
    unit = Fraction(1, 10 ** max(3, len(str(2 * smallest))))  # finer than half a weight
    ratio = math.floor(bound / unit) * unit
    # At the bound itself round() breaks the tie, and a float product can land on either side:
    # step down until the stated value is one that the masks themselves accept.
    while ratio > 0 and any(n_to_prune(float(ratio), n) >= n for n in sizes):
        ratio -= unit
    return float(ratio) if ratio > 0 else None


def check_keeps_a_weight(
    weights: dict[str, torch.Tensor],
    amount: float,
    per_layer: bool = False,
    net_name: str = "the net",
    method: str = "layer-wise pruning",
) -> None:
    """PrunelabError if `amount` would prune every weight the masks rank together.

    Global ranking (per_layer=False) prunes round(amount * n) of all n prunable weights: at n the
    net computes a constant. Per layer, round(amount * n_layer) = n_layer cuts the net in two.
    Either way the job would report a result for a net that no longer looks at its input.
    """
    sizes = {name.removesuffix(".weight"): w.numel() for name, w in weights.items()}
    if amount == 0 or not sizes:
        return
    total = sum(sizes.values())
    counts = (
        [n_to_prune(amount, n) for n in sizes.values()]
        if per_layer
        else [n_to_prune(amount, total)]
    )
    if not any(counts):  # 1e-9: rounds to nothing; the numbers would be the dense model's
        warn(
            f"sparsity={amount} prunes no weight of {net_name} "
            f"({total:,} prunable weights); this job measures the dense model"
        )
    if per_layer:
        starved = [name for name, n in sizes.items() if n_to_prune(amount, n) >= n]
        if not starved:
            return
        name = min(starved, key=sizes.__getitem__)  # the smallest layer decides the largest amount
        n = sizes[name]
        best = max_amount(sizes.values())
        raise PrunelabError(
            f"{method} at sparsity={amount} would prune every weight of {name} ({n:,} weights: "
            f"round({amount} * {n}) = {n_to_prune(amount, n)}); the largest sparsity that keeps "
            f"a weight in every layer is {best}"
        )
    if n_to_prune(amount, total) < total:
        return
    raise PrunelabError(
        f"sparsity={amount} would prune all {total:,} prunable weights of {net_name} "
        f"(round({amount} * {total}) = {n_to_prune(amount, total)}); use at most "
        f"{max_amount([total])}"
    )


def _keep_all_but_lowest(flat: torch.Tensor, k: int) -> torch.Tensor:
    """A flat keep-mask removing the `k` lowest scores (ties broken as torch.topk breaks them)."""
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k > 0:
        keep[torch.topk(flat, k, largest=False).indices] = False
    return keep


@torch.no_grad()
def global_masks_from_scores(
    scores: dict[str, torch.Tensor], amount: float
) -> dict[str, torch.Tensor]:
    """Remove the `amount` fraction of all entries with the lowest score, ranked across layers."""
    flat = torch.cat([s.detach().reshape(-1) for s in scores.values()])
    keep = _keep_all_but_lowest(flat, n_to_prune(amount, flat.numel()))
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = keep[start : start + s.numel()].view_as(s).clone()
        start += s.numel()
    return masks


@torch.no_grad()
def layerwise_masks_from_scores(
    scores: dict[str, torch.Tensor], amount: float
) -> dict[str, torch.Tensor]:
    """Remove the `amount` fraction of each layer's entries with the lowest score, per layer."""
    return {
        name: _keep_all_but_lowest(s.detach().reshape(-1), n_to_prune(amount, s.numel())).view_as(s)
        for name, s in scores.items()
    }


@torch.no_grad()
def magnitude_scores(
    weights: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """|w|, with already pruned positions scored -1 so that they always rank first (masks grow)."""
    scores = {name: w.detach().abs() for name, w in weights.items()}
    for name, mask in (masks or {}).items():
        scores[name] = scores[name].masked_fill(~mask.to(scores[name].device), -1.0)
    return scores


@torch.no_grad()
def global_magnitude_masks(
    weights: dict[str, torch.Tensor], amount: float
) -> dict[str, torch.Tensor]:
    """Remove the `amount` fraction of all weights with the smallest |w|, ranked across layers."""
    return global_masks_from_scores(magnitude_scores(weights), amount)


@torch.no_grad()
def layerwise_magnitude_masks(
    weights: dict[str, torch.Tensor], amount: float
) -> dict[str, torch.Tensor]:
    """Remove the `amount` fraction of each layer's weights with the smallest |w| in that layer."""
    return layerwise_masks_from_scores(magnitude_scores(weights), amount)


@torch.no_grad()
def random_masks(
    weights: dict[str, torch.Tensor], amount: float, seed: int
) -> dict[str, torch.Tensor]:
    """Remove a seeded uniformly random `amount` fraction of all weights (same count as global)."""
    # A private CPU generator: the draw depends on the seed only, not on the device or on how
    # much of the global RNG stream training has used.
    generator = torch.Generator().manual_seed(int(seed))
    scores = {
        name: torch.rand(w.shape, generator=generator).to(w.device) for name, w in weights.items()
    }
    return global_masks_from_scores(scores, amount)


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


@torch.no_grad()
def layer_sparsity(net: nn.Module, reference: nn.Module | None = None) -> dict[str, float]:
    """`prune/layer/<layer>`: share of each prunable layer's dense weights that `net` lacks.

    Zeros for mask-based pruning; for a net shrunk by structured pruning, give the dense
    `reference`: weights removed with their channels count as pruned too.
    """
    dense = prunable_weights(reference if reference is not None else net)
    weights = prunable_weights(net)
    return {
        f"prune/layer/{name.removesuffix('.weight')}": 1 - int(torch.count_nonzero(w)) / n
        for name, w in weights.items()
        if name in dense and (n := dense[name].numel()) > 0
    }


def emptied_layers(masks: dict[str, torch.Tensor]) -> list[str]:
    """Layers whose mask keeps none of their weights (their output no longer depends on input)."""
    return [name.removesuffix(".weight") for name, m in masks.items() if not bool(m.any())]
