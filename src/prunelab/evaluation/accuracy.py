"""Test accuracy with a Wilson interval, per-class accuracy and a confusion matrix."""

from __future__ import annotations

import re
import unicodedata

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.functional.classification import multiclass_confusion_matrix

from prunelab.stats import Z95, wilson


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of `successes` out of `n` (sane at 0, n and small n)."""
    return wilson(successes / n if n else 0.0, n, z)


def class_slug(name: str) -> str:
    """A class name as a metric-key segment: 'T-shirt/top' -> 't_shirt_top', 'Écureuil' ->
    'ecureuil' (accents dropped, not the letters they sit on)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^0-9a-z]+", "_", plain.lower()).strip("_")


def class_slugs(names: list[str]) -> list[str]:
    """Each class's key segment, one per class: slugs that two folders share ('Cats', 'cats'),
    that are empty, or that read as another's `_baseline` key get the label index appended."""
    plain = [class_slug(n) for n in names]
    taken: set[str] = set()
    out = []
    for i, slug in enumerate(plain):
        clash = not slug or plain.count(slug) > 1 or slug.endswith("_baseline")
        if clash:
            slug = f"{slug}_{i}".lstrip("_")
            while slug in plain or slug in taken:
                slug += f"_{i}"
        taken.add(slug)
        out.append(slug)
    return out


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
) -> tuple[dict[str, float | None], list[list[int]]]:
    """`test/...` metrics and the confusion matrix (rows: true class, columns: predicted)."""
    n, correct = len(labels), int((preds == labels).sum())
    low, high = wilson_interval(correct, n)
    confusion = multiclass_confusion_matrix(preds, labels, num_classes=len(class_names))
    # A class without test images has no accuracy (None), not 0 %.
    per_class = [
        float(hit) / int(total) if total else None
        for hit, total in zip(confusion.diag(), confusion.sum(1), strict=True)
    ]
    metrics = {
        "test/acc": correct / max(n, 1),
        "test/loss": loss,
        "test/acc_ci_low": low,
        "test/acc_ci_high": high,
        **{
            f"test/acc_class/{slug}": acc
            for slug, acc in zip(class_slugs(class_names), per_class, strict=True)
        },
    }
    return metrics, confusion.tolist()
