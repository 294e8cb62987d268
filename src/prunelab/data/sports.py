"""The source study's "Sports" images: root/{train,valid,test}/<class>/*.jpg."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder

from prunelab.data.base import ImageDataModule
from prunelab.errors import PrunelabError

STUDY_CLASSES = (
    "baseball",
    "basketball",
    "football",
    "golf",
    "hockey",
    "rugby",
    "swimming",
    "tennis",
    "volleyball",
    "weightlifting",
)


class _SelectedClasses(ImageFolder):
    """ImageFolder restricted to an ordered list of class folders."""

    def __init__(self, root: str, classes: Sequence[str], **kwargs) -> None:
        self._wanted = list(classes)
        super().__init__(root, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        missing = [c for c in self._wanted if not (Path(directory) / c).is_dir()]
        if missing:
            raise PrunelabError(f"class folder(s) {missing} missing under {directory}")
        return self._wanted, {c: i for i, c in enumerate(self._wanted)}


class SportsDataModule(ImageDataModule):
    """The study's setting: 32x32, ImageNet statistics, flip/rotation/colour-jitter augmentation."""

    name = "sports"
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(
        self,
        root: str,
        classes: Sequence[str] = STUDY_CLASSES,
        image_size: int = 32,
        augment: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(root, **kwargs)
        self.classes = list(classes)
        self.image_size = image_size
        self.augment = augment
        self.in_shape = (3, image_size, image_size)
        self.num_classes = len(self.classes)
        self.class_names = self.classes

    def _folder(self, split: str, train: bool) -> ImageFolder:
        path = Path(self.root) / split
        if not path.is_dir():
            raise PrunelabError(
                f"sports split '{split}' not found at {path.resolve()}: expected the layout "
                "root/{train,valid,test}/<class>/*.jpg"
            )
        steps: list = [transforms.Resize((self.image_size, self.image_size))]
        if train and self.augment:
            steps += [
                transforms.RandomHorizontalFlip(0.5),
                transforms.RandomRotation(10),
                transforms.ColorJitter(brightness=0.2, contrast=0.2),
            ]
        steps.append(transforms.ToTensor())
        try:
            return _SelectedClasses(
                str(path),
                self.classes,
                transform=transforms.Compose(steps),  # default loader gives RGB
            )
        except FileNotFoundError as err:
            # ImageFolder names the empty class folder(s) in its message.
            raise PrunelabError(f"sports split '{split}' at {path}: {err}") from err

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        return (
            self._folder("train", True),
            self._folder("valid", False),
            self._folder("test", False),
        )
