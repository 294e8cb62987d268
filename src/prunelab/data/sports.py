"""The source study's "Sports" images: root/{train,valid,test}/<class>/*.jpg (or val/)."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
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
from prunelab.presence import missing_image_root

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

    def __init__(self, root: str, classes: Sequence[str], source: str, **kwargs) -> None:
        self._wanted = list(classes)
        self._source = source  # where the list came from, for the error
        super().__init__(root, **kwargs)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        missing = [c for c in self._wanted if not (Path(directory) / c).is_dir()]
        if missing:
            found = _class_folders(Path(directory))
            raise PrunelabError(
                f"class folder(s) {missing} missing under {directory} ({self._source}; it "
                f"holds {found})"
            )
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
        """A hash of the path and bytes of every image the loader reads under `root`.

        The baseline cache and a job's `config/hash` leave the folder's location out (a moved
        or copied folder is the same data) but not what it holds: another folder, or images
        added, removed or replaced, train and evaluate afresh. Class folders
        `classes` leaves out, and files no split reads (notes, non-images), change nothing.

        A job asks for it several times (its config hash, baseline key, recipe hash, the
        baseline's evaluation key), as does each job of a sweep run in one process: it is
        computed once per (folder, classes) and taken again while the folders it walks list the
        same names and keep their stat signature (see `_folders_signature`).
        """
        top = Path(root)
        if not top.is_dir():
            raise PrunelabError(missing_image_root(top))
        key = (os.path.realpath(top), None if classes is None else tuple(classes))
        started = time.time_ns()
        signature, settled = _folders_signature(top, classes, started)
        known = _FINGERPRINTS.get(key)
        if known is not None and known[0] == signature:
            return known[1]
        digest = _listing_hash(top, classes)
        if settled:
            _FINGERPRINTS[key] = (signature, digest)
        else:  # a folder changed moments ago: a change in the same clock tick could hide
            _FINGERPRINTS.pop(key, None)
        return digest

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
            raise missing_split(split, path)
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
                # Unset data.classes means train/'s folders: a test/ folder renamed since is
                # not data.classes' fault.
                "the class folders of train/, data.classes being unset"
                if self._found
                else "data.classes",
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
        for file, _ in folder.samples:  # headers only: a bad image stops the job before training
            check_image(file)
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


# files_fingerprint's results, per (real path of the root, classes): (signature, hash).
_FINGERPRINTS: dict[tuple[str, tuple[str, ...] | None], tuple[tuple, str]] = {}
# A folder modified this close to the signature's reading is not trusted to show a later change
# in its mtime (filesystems keep mtimes at 1 ns to 2 s resolution): no memo then.
_SETTLE_NS = 2_000_000_000


def _walked(top: Path, classes: Sequence[str] | None) -> Iterator[tuple[Path, list[str]]]:
    """(folder, file names) of every folder the loader reads under `top`: each split's class
    folders (links followed, as ImageFolder walks them), in a fixed order."""
    for split in ("train", "valid", "val", "test"):
        split_dir = top / split
        if not split_dir.is_dir():
            continue
        wanted = _class_folders(split_dir) if classes is None else list(classes)
        for name in wanted:
            for folder, _, files in os.walk(split_dir / name, followlinks=True):
                yield Path(folder), files


def _listing_hash(top: Path, classes: Sequence[str] | None) -> str:
    """files_fingerprint's value: every image's path under `top` and a hash of its bytes.

    Reading every image costs about what one epoch's loading does (the loader reads them all
    each epoch), and no replaced image, even one of the same size, keeps an old key.
    """
    listing = []
    for folder, files in _walked(top, classes):
        for file in files:
            if has_file_allowed_extension(file, IMG_EXTENSIONS):
                path = folder / file
                listing.append(f"{path.relative_to(top).as_posix()}:{_file_digest(path)}")
    return content_hash(sorted(listing))


def _file_digest(path: Path) -> str:
    """A short sha256 of one file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):  # Python 3.10: no file_digest
            digest.update(block)
    return digest.hexdigest()[:16]


def _folders_signature(top: Path, classes: Sequence[str] | None, now_ns: int) -> tuple[tuple, bool]:
    """A cheap signature of what files_fingerprint reads, and whether it can be trusted later.

    One stat per folder, not per image: the root, each split folder and every folder walked,
    each with its file names. An image added, removed or renamed, or replaced by a rename over
    it (how copying tools such as rsync write), changes a name or its folder's mtime. An image
    rewritten in place under its name changes neither: that is noticed by the next process
    (each launch, `prunelab.evaluate`, each submitit job) rather than by a later job of a
    sweep running in the same one.
    """
    parts: list = []
    settled = True

    def stamp(path: Path) -> None:
        nonlocal settled
        try:
            st = path.stat()
        except OSError:
            parts.append((str(path), None))
            return
        parts.append((str(path), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        if max(st.st_mtime_ns, st.st_ctime_ns) > now_ns - _SETTLE_NS:
            settled = False

    stamp(top)
    for split in ("train", "valid", "val", "test"):
        stamp(top / split)
    for folder, files in _walked(top, classes):
        stamp(folder)
        parts.append(tuple(sorted(files)))
    return tuple(parts), settled


@contextmanager
def _named(path: str) -> Iterator[None]:
    """Turn PIL's error for a file that is no image (or a truncated one) into one line naming it."""
    try:
        yield
    except (OSError, SyntaxError, ValueError) as err:  # UnidentifiedImageError is an OSError
        why = "not an image PIL can read" if isinstance(err, UnidentifiedImageError) else err
        raise PrunelabError(f"cannot read image {path} ({why}); remove or replace it") from None


# Pixel modes that RGB conversion clips to 0..255 (16-bit, 32-bit integer and float images):
# a 16-bit photo would train as a nearly white picture, with no error.
_WIDE_MODES = ("I", "F")


def check_image(path: str) -> None:
    """Read `path`'s header (and its last bytes): one line naming a file that is no image, whose
    pixels are not 8-bit, or a JPEG/PNG cut short (an interrupted copy), before any training.

    A JPEG must end with its end-of-image marker and a PNG with its IEND chunk; only a file that
    does not is decoded in full to find out, so a complete folder costs a header and a few bytes
    per image, and a JPEG with bytes of its own after the marker (some cameras write them) that
    decodes is kept. Without this, a test image cut short was found after the baseline trained.
    """
    with _named(path), Image.open(path) as image:
        if image.mode.split(";")[0] in _WIDE_MODES:
            raise PrunelabError(
                f"cannot read image {path} (pixel mode {image.mode}: 16-bit or float pixels "
                "would be clipped to 8 bits); convert it to 8-bit RGB or grayscale"
            )
        if not _ends_whole(path, image.format):
            image.load()  # raises for a file cut short; a whole one loads


def _ends_whole(path: str, fmt: str | None) -> bool:
    """Whether a JPEG or PNG ends as a complete one does (other formats: not checked)."""
    if fmt not in ("JPEG", "PNG", "MPO"):
        return True
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - 64))
        tail = f.read()
    if fmt == "PNG":
        return b"IEND" in tail[-12:]
    return tail.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9")


def read_image(path: str) -> Image.Image:
    """torchvision's default loader (RGB), failing with the file's name."""
    with _named(path), warnings.catch_warnings():
        # PIL's advice for a palette PNG with transparency; RGB drops the alpha either way.
        warnings.filterwarnings("ignore", "Palette images with Transparency", UserWarning)
        return default_loader(path)


def _class_folders(split_dir: Path) -> list[str]:
    return sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def found_classes(train_dir: Path) -> list[str]:
    """Every class folder under `train_dir`, sorted (hidden folders skipped); at least 2."""
    if not train_dir.is_dir():
        raise missing_split("train", train_dir)
    names = _class_folders(train_dir)
    if len(names) < 2:
        raise PrunelabError(
            f"data.classes=null needs at least 2 class folders under {train_dir.resolve()}, "
            f"found {names}"
        )
    return names


SPLITS = ("train", "valid", "val", "test")


def missing_split(split: str, path: Path) -> PrunelabError:
    """The error for a split folder the layout lacks, saying what data.root seems to be instead:
    a split folder itself (data.root=.../train), or class folders with no splits above them."""
    root = path.parent
    message = (
        f"image-folder split '{split}' not found at {path.resolve()}: expected the layout "
        "root/{train,valid,test}/<class>/*.jpg (val/ also works for valid/)"
    )
    if root.name in SPLITS and (root.parent / "train").is_dir():
        message += (
            f"; data.root is the '{root.name}' split folder itself: set data.root="
            f"{root.parent.resolve()}"
        )
    elif split == "train" and root.is_dir() and not any((root / s).is_dir() for s in SPLITS):
        found = _class_folders(root)
        if found:
            message += (
                f"; {root.resolve()} holds {found[:3]}{'...' if len(found) > 3 else ''} "
                "directly: move each class folder's images into train/<class>, valid/<class> "
                "and test/<class>"
            )
    return PrunelabError(message)
