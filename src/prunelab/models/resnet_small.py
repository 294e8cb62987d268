"""ResNetSmall: a CIFAR-style ResNet with three stages of basic blocks."""

from collections.abc import Sequence

import torch
from torch import nn

from prunelab.models.layers import Normalize, check_sizes


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNetSmall(nn.Module):
    """Stem conv, stages of `blocks` basic blocks (stride 2 between stages), GAP, Linear."""

    def __init__(
        self,
        in_shape: Sequence[int],
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        widths: Sequence[int] = (32, 64, 128),
        blocks: int = 2,
        stem_stride: int = 1,
    ) -> None:
        super().__init__()
        widths = check_sizes(widths, blocks=blocks, stem_stride=stem_stride)
        channels = in_shape[0]
        self.stem = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(channels, widths[0], 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        cin = widths[0]
        for i, cout in enumerate(widths):
            for j in range(blocks):
                stages.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))
