"""SimpleCNN: three conv blocks and a two-layer MLP head."""

from collections.abc import Sequence

import torch
from torch import nn

from prunelab.errors import PrunelabError
from prunelab.models.layers import Normalize, check_sizes


class SimpleCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool blocks (widths from config), then Linear-ReLU-Dropout-Linear."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        widths: Sequence[int] = (32, 64, 128),
        hidden: int = 128,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        widths = check_sizes(widths, hidden=hidden)
        channels, height, width = in_shape
        if height >> len(widths) == 0 or width >> len(widths) == 0:
            most = min(height, width).bit_length() - 1
            way_out = (
                f"give model.widths at most {most} entries"
                if most >= 1
                else "images need at least 2x2 pixels (data.image_size)"
            )
            raise PrunelabError(
                f"SimpleCNN's {len(widths)} conv blocks halve {height}x{width} images to "
                f"nothing; {way_out}"
            )
        layers: list[nn.Module] = [Normalize(mean, std)]
        for out in widths:
            layers += [
                nn.Conv2d(channels, out, 3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels, height, width = out, height // 2, width // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * height * width, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
