"""Pruning: mask computation (masks.py) and the Lightning callbacks that apply and guard them."""

from prunelab.pruning.callback import (
    LayerwiseMagnitudePruning,
    MagnitudePruning,
    MaskGuard,
    RandomPruning,
)
from prunelab.pruning.gradual import GradualMagnitudePruning
from prunelab.pruning.masks import (
    apply_masks,
    global_magnitude_masks,
    layer_sparsity,
    layerwise_magnitude_masks,
    mask_violations,
    measure_sparsity,
    prunable_weights,
    random_masks,
)
from prunelab.pruning.rewind import (
    LotteryRewinding,
    SaveWeightsAt,
    initial_state,
    load_rewind_weights,
    rewind_weights,
)
from prunelab.pruning.schedules import CubicSchedule, cubic_sparsity
from prunelab.pruning.shapes import conform
from prunelab.pruning.structured import StructuredPruning, measure_removed, prune_channels

__all__ = [
    "CubicSchedule",
    "GradualMagnitudePruning",
    "LayerwiseMagnitudePruning",
    "LotteryRewinding",
    "MagnitudePruning",
    "MaskGuard",
    "RandomPruning",
    "SaveWeightsAt",
    "StructuredPruning",
    "apply_masks",
    "conform",
    "cubic_sparsity",
    "global_magnitude_masks",
    "initial_state",
    "layer_sparsity",
    "layerwise_magnitude_masks",
    "load_rewind_weights",
    "mask_violations",
    "measure_removed",
    "measure_sparsity",
    "prunable_weights",
    "prune_channels",
    "random_masks",
    "rewind_weights",
]
