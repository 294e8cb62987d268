"""Pruning: mask computation (masks.py) and the Lightning callbacks that apply and guard them."""

from prunelab.pruning.callback import MagnitudePruning, MaskGuard
from prunelab.pruning.masks import (
    apply_masks,
    global_magnitude_masks,
    mask_violations,
    measure_sparsity,
    prunable_weights,
)

__all__ = [
    "MagnitudePruning",
    "MaskGuard",
    "apply_masks",
    "global_magnitude_masks",
    "mask_violations",
    "measure_sparsity",
    "prunable_weights",
]
