"""CIFAR-10 through torchvision (downloads where there is network)."""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import CIFAR10, cifar

from prunelab.data.base import ImageDataModule, download_lock
from prunelab.errors import PrunelabError
from prunelab.presence import CIFAR_MISSING


def intact(root: str) -> bool:
    """True when every CIFAR-10 file is under `root` with its checksum (torchvision's test).

    Taken without the lock: a file mid-write fails its checksum, so a complete set is final.
    One pass over the files, where torchvision's download=True reads them four times.
    """
    tv = cifar.CIFAR10  # torchvision's class (tests stand in for the name imported above)
    files = [*tv.train_list, *tv.test_list, (tv.meta["filename"], tv.meta["md5"])]
    folder = Path(root) / tv.base_folder
    return all(cifar.check_integrity(str(folder / name), md5) for name, md5 in files)


class CIFAR10DataModule(ImageDataModule):
    """32x32 RGB, 10 classes; flip + crop augmentation on the training split."""

    name = "cifar10"
    in_shape = (3, 32, 32)
    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    # torchvision reads these from the files' meta data, per instance: the class has none.
    class_names = [
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
    ]  # fmt: skip

    def __init__(self, root: str, download: bool = True, augment: bool = True, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.download = download
        self.augment = augment

    def prepare_data(self) -> None:
        """Download and unpack CIFAR-10 into the root unless it is there, one job at a time."""
        if not self.download or intact(self.root):
            return
        try:
            with download_lock(self.root, self.name):
                # torchvision checks the files again: a job that waited finds them in place.
                for train in (True, False):
                    CIFAR10(self.root, train=train, download=True)
        except Exception as err:  # network errors come in many types
            why = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise PrunelabError(
                f"CIFAR-10 download into {Path(self.root).resolve()} failed ({why}); "
                "place cifar-10-batches-py there by hand and set data.download=false"
            ) from err

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        plain = transforms.ToTensor()
        train_tf = plain
        if self.augment:
            train_tf = transforms.Compose(
                [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), plain]
            )
        try:
            train = CIFAR10(self.root, train=True, transform=train_tf)
            # The validation split must not be augmented: a second view of the same files.
            val_view = CIFAR10(self.root, train=True, transform=plain)
            test = CIFAR10(self.root, train=False, transform=plain)
        except RuntimeError as err:
            raise PrunelabError(CIFAR_MISSING.format(root=Path(self.root).resolve())) from err
        self._val_view = val_view
        return train, None, test

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        super().setup(stage)
        # Validation indices come from the training file; read them without augmentation.
        self.val_set.dataset = self._val_view
