"""Fashion-MNIST, held in memory as float tensors (no per-image PIL decoding)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, TensorDataset
from torchvision.datasets import FashionMNIST

from prunelab.data.base import ImageDataModule
from prunelab.errors import PrunelabError

MISSING_HINT = (
    "Fashion-MNIST not found under {root}/FashionMNIST/raw: run `make data` "
    "(Debian package dataset-fashion-mnist) or set data.download=true where there is network"
)


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
        if self.download:
            try:
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
            raise PrunelabError(MISSING_HINT.format(root=Path(self.root).resolve())) from err
        images = ds.data.unsqueeze(1).float().div_(255.0)
        return TensorDataset(images, ds.targets.long())

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        return self._split(True), None, self._split(False)
