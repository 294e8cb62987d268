"""Fashion-MNIST, held in memory as float tensors (no per-image PIL decoding)."""

from __future__ import annotations

import math
import struct
from pathlib import Path

from torch.utils.data import Dataset, TensorDataset
from torchvision.datasets import FashionMNIST, mnist

from prunelab.data.base import ImageDataModule, download_lock
from prunelab.errors import PrunelabError
from prunelab.presence import FASHION_MISSING


def raw_files(root: str) -> list[Path]:
    """The four unpacked idx files torchvision reads under `root`."""
    tv = mnist.FashionMNIST  # torchvision's class (tests stand in for the name imported above)
    raw = Path(root) / tv.__name__ / "raw"
    return [raw / Path(name).name.removesuffix(".gz") for name, _ in tv.resources]


def complete(path: Path) -> bool:
    """True for an idx file as long as its header says (unsigned bytes, Fashion-MNIST's type).

    torchvision only asks whether the file exists; one being unpacked by another job, or cut
    short by a kill, exists too.
    """
    try:
        with path.open("rb") as f:
            magic = f.read(4)
            if len(magic) != 4 or magic[:3] != b"\x00\x00\x08":
                return False
            dims = struct.unpack(f">{magic[3]}I", f.read(4 * magic[3]))
        return path.stat().st_size == 4 + 4 * len(dims) + math.prod(dims)
    except (OSError, struct.error):
        return False


class FashionMNISTDataModule(ImageDataModule):
    """The default dataset: 60k/10k grayscale 28x28 images, 10 clothing classes."""

    name = "fashion_mnist"
    in_shape = (1, 28, 28)
    num_classes = 10
    mean = (0.2860,)
    std = (0.3530,)
    class_names = list(FashionMNIST.classes)

    def __init__(self, root: str, download: bool = False, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.download = download

    def prepare_data(self) -> None:
        """Download and unpack Fashion-MNIST into the root unless it is there, one job at a time."""
        if not self.download or all(complete(f) for f in raw_files(self.root)):
            return
        try:
            with download_lock(self.root, self.name):
                # torchvision would keep a file cut short (it only asks whether one exists); a
                # job that waited finds the files complete and torchvision leaves them.
                for path in raw_files(self.root):
                    if path.exists() and not complete(path):
                        path.unlink()
                for train in (True, False):
                    FashionMNIST(self.root, train=train, download=True)
        except Exception as err:  # network errors come in many types, often many lines
            why = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise PrunelabError(
                f"Fashion-MNIST download into {Path(self.root).resolve()} failed ({why}); "
                "without network, `make data` gets it from Debian's dataset-fashion-mnist"
            ) from err

    def _split(self, train: bool) -> TensorDataset:
        try:
            ds = FashionMNIST(self.root, train=train, download=False)
        except RuntimeError as err:
            raise PrunelabError(FASHION_MISSING.format(root=Path(self.root).resolve())) from err
        images = ds.data.unsqueeze(1).float().div_(255.0)
        return TensorDataset(images, ds.targets.long())

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        return self._split(True), None, self._split(False)
