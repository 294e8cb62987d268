"""Whether a job's dataset is on disk, asked at a sweep's launch without importing torch.

A sweep over `data=a,b` whose second dataset is missing would otherwise find out when that job
starts, after the first one's training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

FASHION_MISSING = (
    "Fashion-MNIST not found under {root}/FashionMNIST/raw: run `make data` "
    "(Debian package dataset-fashion-mnist) or set data.download=true where there is network"
)
# The unpacked files torchvision's FashionMNIST reads (tests check them against torchvision's).
FASHION_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
CIFAR_MISSING = (
    "CIFAR-10 not found under {root}/cifar-10-batches-py: set data.download=true where there is "
    "network, or place the unpacked cifar-10-batches-py there"
)
# The files torchvision's CIFAR10 reads from cifar-10-batches-py (tests check them too).
CIFAR_FILES = (
    *(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    "batches.meta",
)
IMAGE_FOLDERS = ("SportsDataModule", "ImageFolderDataModule")


def missing_image_root(top: Path) -> str:
    """The line for an image-folder root that is not there."""
    return (
        f"data.root: image-folder root not found at {top.resolve()}: expected the layout "
        "root/{train,valid,test}/<class>/*.jpg (val/ also works for valid/)"
    )


def data_problem(data: Any) -> str | None:
    """Why the dataset of a composed `data` config is not on disk, or None (present, to be
    downloaded, or of a kind checked only when its job loads it). A download cannot be judged
    without the network: its job says so if it fails."""
    try:
        kind = str(data.get("_target_", "")).rsplit(".", 1)[-1]
        root = data.get("root")
        download = bool(data.get("download", False))
    except Exception:  # an interpolation only Hydra's run resolves: the job checks it
        return None
    if not isinstance(root, str) or not root:
        return None
    top = Path(root).expanduser()
    if kind == "FashionMNISTDataModule" and not download:
        raw = top / "FashionMNIST" / "raw"
        if not all((raw / name).is_file() for name in FASHION_FILES):
            return FASHION_MISSING.format(root=top.resolve())
    if kind == "CIFAR10DataModule" and not download:  # present: its job checks the checksums
        folder = top / "cifar-10-batches-py"
        if not all((folder / name).is_file() for name in CIFAR_FILES):
            return CIFAR_MISSING.format(root=top.resolve())
    if kind in IMAGE_FOLDERS and not top.is_dir():
        return missing_image_root(top)
    return None
