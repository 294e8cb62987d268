"""Layers shared by the architectures."""

from collections.abc import Sequence

import torch
from torch import nn


class Normalize(nn.Module):
    """Per-channel (x - mean) / std, so attacks and users feed raw [0, 1] pixels."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def check_sizes(widths: Sequence[int], **counts: int) -> list[int]:
    """`widths` a non-empty list and every count a whole number >= 1, else one clear error."""
    from prunelab.errors import PrunelabError
    from prunelab.validate import check_whole, is_whole

    widths = list(widths)
    if not widths or not all(is_whole(w, 1) for w in widths):
        rule = "a non-empty list of whole numbers >= 1"
        raise PrunelabError(f"model.widths must be {rule}, got {widths}")
    for name, value in counts.items():
        check_whole(f"model.{name}", value, 1, nullable=False)
    return widths
