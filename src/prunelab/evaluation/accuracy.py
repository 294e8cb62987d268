"""Test accuracy with a Wilson interval, per-class accuracy and a confusion matrix."""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_confusion_matrix

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion (sane at 0, 1 and small n)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At p = 0 or 1 one bound is exactly 0 or 1; rounding would leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def class_slug(name: str) -> str:
    """A class name as a metric-key segment: 'T-shirt/top' -> 't_shirt_top'."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


@torch.inference_mode()
def predict(
    net: nn.Module, loader: DataLoader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(predictions, labels, mean cross-entropy) of `net` in eval mode over `loader`."""
    preds, labels, loss = [], [], 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = net(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        preds.append(logits.argmax(1).cpu())
        labels.append(y.cpu())
    preds, labels = torch.cat(preds), torch.cat(labels)
    return preds, labels, loss / max(len(labels), 1)


def accuracy_metrics(
    preds: torch.Tensor, labels: torch.Tensor, loss: float, class_names: list[str]
) -> tuple[dict[str, float], list[list[int]]]:
    """`test/...` metrics and the confusion matrix (rows: true class, columns: predicted)."""
    n, correct = len(labels), int((preds == labels).sum())
    low, high = wilson_interval(correct, n)
    confusion = multiclass_confusion_matrix(preds, labels, num_classes=len(class_names))
    per_class = confusion.diag() / confusion.sum(1).clamp(min=1)
    metrics = {
        "test/acc": correct / max(n, 1),
        "test/loss": loss,
        "test/acc_ci_low": low,
        "test/acc_ci_high": high,
        **{
            f"test/acc_class/{class_slug(name)}": float(acc)
            for name, acc in zip(class_names, per_class, strict=True)
        },
    }
    return metrics, confusion.tolist()
