"""The source study's "Sports" images: root/{train,valid,test}/<class>/*.jpg (or val/)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader, has_file_allowed_extension

from prunelab.data.base import ImageDataModule
from prunelab.errors import PrunelabError
from prunelab.fingerprint import content_hash

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
    """The study's setting: 32x32, ImageNet statistics, flip/rotation/colour-jitter augmentation.

    `classes=None` takes every class folder under root/train, sorted by name; `mean`/`std`
    (per RGB channel, in [0, 1] pixel units) replace ImageNet's for images unlike photographs.
    """

    name = "sports"
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(
        self,
        root: str,
        classes: Sequence[str] | None = STUDY_CLASSES,
        image_size: int = 32,
        augment: bool = True,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("val_size", None)  # the layout has its own validation split: all of it
        super().__init__(root, **kwargs)
        # Imported here: validate is also the command line's light-weight checker.
        from prunelab.validate import check_channel_stats, check_classes, check_whole

        check_classes("data.classes", classes)
        check_whole("data.image_size", image_size, 1, nullable=False)
        check_channel_stats("data.mean", mean, 3, positive=False)
        check_channel_stats("data.std", std, 3, positive=True)
        if mean is not None:  # the net's first layer normalises with these (build.data_spec)
            self.mean = tuple(float(v) for v in mean)
        if std is not None:
            self.std = tuple(float(v) for v in std)
        self._classes = None if classes is None else list(classes)
        self._found = classes is None  # class list read from train/: other splits must match it
        self.image_size = image_size
        self.augment = augment
        self.in_shape = (3, image_size, image_size)

    @classmethod
    def files_fingerprint(cls, root: str, classes: Sequence[str] | None = None) -> str | None:
        """A hash of the path and size of every image the loader reads under `root`.

        The baseline cache and a job's `config/hash` leave the folder's location out (a moved
        folder is the same data) but not what it holds: another folder, or images added,
        removed or replaced by ones of another size, train and evaluate afresh. Class folders
        `classes` leaves out, and files no split reads (notes, non-images), change nothing.
        """
        top = Path(root)
        if not top.is_dir():
            raise PrunelabError(
                f"image-folder root not found at {top.resolve()}: expected the layout "
                "root/{train,valid,test}/<class>/*.jpg (val/ also works for valid/)"
            )
        listing = []
        for split in ("train", "valid", "val", "test"):
            split_dir = top / split
            if not split_dir.is_dir():
                continue
            wanted = _class_folders(split_dir) if classes is None else list(classes)
            for name in wanted:
                # As ImageFolder walks a class folder: links followed, images by extension.
                for folder, _, files in os.walk(split_dir / name, followlinks=True):
                    for file in files:
                        path = Path(folder) / file
                        if has_file_allowed_extension(file, IMG_EXTENSIONS):
                            listing.append(
                                f"{path.relative_to(top).as_posix()}:{path.stat().st_size}"
                            )
        return content_hash(sorted(listing))

    @property
    def classes(self) -> list[str]:
        """The class folders used, in label order (found under root/train when not given)."""
        if self._classes is None:
            self._classes = found_classes(Path(self.root) / "train")
        return self._classes

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        """How many classes the labels run over."""
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:  # type: ignore[override]
        """The class names, in label order."""
        return self.classes

    def _folder(self, split: str, train: bool) -> ImageFolder:
        path = Path(self.root) / split
        if not path.is_dir():
            raise PrunelabError(
                f"image-folder split '{split}' not found at {path.resolve()}: expected the layout "
                "root/{train,valid,test}/<class>/*.jpg (val/ also works for valid/)"
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
            folder = _SelectedClasses(
                str(path),
                self.classes,
                transform=transforms.Compose(steps),
                loader=read_image,
            )
        except FileNotFoundError as err:
            # ImageFolder names the empty class folder(s) in its message.
            raise PrunelabError(f"image-folder split '{split}' at {path}: {err}") from err
        if self._found and split != "train":
            extra = sorted(set(_class_folders(path)) - set(self.classes))
            if extra:
                raise PrunelabError(
                    f"class folder(s) {extra} under {path} have none under train/: a class the "
                    "model never sees cannot be scored; add its training images, or list the "
                    "classes to use in data.classes"
                )
        for file, _ in folder.samples:  # headers only: a non-image stops the job before training
            with _named(file), Image.open(file):
                pass
        return folder

    def load(self) -> tuple[Dataset, Dataset | None, Dataset]:
        root = Path(self.root)
        # The study's layout says valid/; many image-folder sets say val/.
        if (root / "val").is_dir() and (root / "valid").is_dir():
            raise PrunelabError(
                f"{root.resolve()} holds both valid/ and val/: keep one as the validation split"
            )
        val = "val" if (root / "val").is_dir() else "valid"
        return (
            self._folder("train", True),
            self._folder(val, False),
            self._folder("test", False),
        )


class ImageFolderDataModule(SportsDataModule):
    """An image folder of one's own (`data=imagefolder`), read and augmented as the sports set
    is; its cache entries are named for it: `<model>-imagefolder-seed<N>-<hash>`."""

    name = "imagefolder"


@contextmanager
def _named(path: str) -> Iterator[None]:
    """Turn PIL's error for a file that is no image (or a truncated one) into one line naming it."""
    try:
        yield
    except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
        why = "not an image PIL can read" if isinstance(err, UnidentifiedImageError) else err
        raise PrunelabError(f"cannot read image {path} ({why}); remove or replace it") from None


def read_image(path: str) -> Image.Image:
    """torchvision's default loader (RGB), failing with the file's name."""
    with _named(path):
        return default_loader(path)


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def found_classes(train_dir: Path) -> list[str]:
    """Every class folder under `train_dir`, sorted (hidden folders skipped); at least 2."""
    if not train_dir.is_dir():
        raise PrunelabError(
            f"image-folder split 'train' not found at {train_dir.resolve()}: expected the layout "
            "root/{train,valid,test}/<class>/*.jpg (val/ also works for valid/)"
        )
    names = _class_folders(train_dir)
    if len(names) < 2:
        raise PrunelabError(
            f"data.classes=null needs at least 2 class folders under {train_dir.resolve()}, "
            f"found {names}"
        )
    return names
