"""DataModules on real images: splits, ranges, the sports layout, clear errors."""

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from filelock import FileLock, Timeout
from PIL import Image
from torchvision.datasets import FashionMNIST

from prunelab.data import CIFAR10DataModule, FashionMNISTDataModule, SportsDataModule
from prunelab.errors import PrunelabError

from conftest import DATA


def _indices(subset) -> set[int]:
    return set(subset.indices)


def test_fashion_mnist_split_is_fixed_disjoint_and_in_unit_range():
    a = FashionMNISTDataModule(str(DATA), train_size=300, val_size=200, test_size=100)
    b = FashionMNISTDataModule(str(DATA), train_size=300, val_size=200, test_size=100)
    a.setup(), b.setup()
    assert len(a.train_set) == 300 and len(a.val_set) == 200 and len(a.test_set) == 100
    assert _indices(a.train_set) == _indices(b.train_set)
    assert _indices(a.val_set) == _indices(b.val_set)
    assert not _indices(a.train_set) & _indices(a.val_set)
    x, y = next(iter(a.train_dataloader()))
    assert x.shape == (32, 1, 28, 28) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
    assert y.dtype == torch.long and 0 <= y.min() and y.max() < 10


def test_validation_split_does_not_depend_on_train_size():
    small = FashionMNISTDataModule(str(DATA), train_size=100, val_size=500)
    full = FashionMNISTDataModule(str(DATA), train_size=None, val_size=500)
    small.setup(), full.setup()
    assert _indices(small.val_set) == _indices(full.val_set)
    assert len(full.train_set) == 59_500 and len(full.test_set) == 10_000


def test_batched_loader_gives_the_images_a_per_image_loader_gives():
    """TensorBatches: the same batches, in the same order, per epoch, as per-image loading."""
    from lightning.fabric.utilities.data import _set_sampler_epoch
    from torch.utils.data import DataLoader

    dm = FashionMNISTDataModule(str(DATA), train_size=100, val_size=50, test_size=70)
    dm.setup()
    fast = dm.train_dataloader()
    assert fast.batch_size is None  # the batched path: the dataset gets whole index lists
    plain = DataLoader(dm.train_set, batch_size=32, sampler=dm.train_sampler)
    orders = []
    for epoch in (0, 1):
        _set_sampler_epoch(fast, epoch)  # what Lightning calls at each epoch start
        assert dm.train_sampler.epoch == epoch
        got, want = list(fast), list(plain)
        assert [len(y) for _, y in got] == [32, 32, 32, 4]
        for (x, y), (x0, y0) in zip(got, want, strict=True):
            assert torch.equal(x, x0) and torch.equal(y, y0) and y.dtype == y0.dtype
        orders.append(torch.cat([y for _, y in got]))
    assert not torch.equal(orders[0], orders[1])  # each epoch its own shuffle
    test = torch.cat([x for x, _ in dm.test_dataloader()])
    assert torch.equal(test, torch.stack([dm.test_set[i][0] for i in range(70)]))


def test_missing_fashion_mnist_is_one_clear_line(tmp_path):
    dm = FashionMNISTDataModule(str(tmp_path / "nowhere"))
    with pytest.raises(PrunelabError, match="make data") as err:
        dm.setup()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("sizes", "split", "kept", "expected"),
    [
        (
            {"train_size": 999_999}, "train_set", 59_000,
            "data.train_size=999999 but there are only 59000 training "
            "images left after the validation split; using all 59000",
        ),
        (
            {"test_size": 10_001}, "test_set", 10_000,
            "data.test_size=10001 but there are only 10000 test images; using all 10000",
        ),
    ],
)  # fmt: skip
def test_a_split_larger_than_the_data_is_capped_with_one_warning(
    sizes, split, kept, expected, capsys
):
    """Never silently: asking for more images than a split holds says what is used."""
    dm = FashionMNISTDataModule(str(DATA), **{"val_size": 1000, **sizes})
    dm.setup()
    assert len(getattr(dm, split)) == kept
    err = capsys.readouterr().err.strip()
    assert err == f"prunelab: warning: {expected} (null = all of them)"


@pytest.mark.parametrize("val_size", [60_000, None])
def test_a_validation_split_that_leaves_no_training_image_is_one_clear_line(val_size):
    dm = FashionMNISTDataModule(str(DATA), val_size=val_size)
    with pytest.raises(PrunelabError, match=re.escape("data.val_size must be in 1..59999")) as err:
        dm.setup()
    assert "\n" not in str(err.value)


def test_sizes_equal_to_the_data_are_all_of_it():
    dm = FashionMNISTDataModule(str(DATA), train_size=59_000, val_size=1000, test_size=10_000)
    dm.setup()
    assert len(dm.train_set) == 59_000 and len(dm.test_set) == 10_000


def _sports_layout(root: Path, classes: list[str], per_split: int = 4, val: str = "valid") -> None:
    """The study's folder layout, filled with real Fashion-MNIST images saved as JPEG."""
    images = FashionMNIST(str(DATA), train=False).data
    i = 0
    for split in ("train", val, "test"):
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for j in range(per_split):
                Image.fromarray(images[i].numpy()).resize((64, 48)).save(folder / f"{j}.jpg")
                i += 1


def test_sports_layout_selects_classes_and_resizes(tmp_path):
    _sports_layout(tmp_path, ["golf", "tennis", "rugby"])
    dm = SportsDataModule(str(tmp_path), classes=["tennis", "golf"], batch_size=4)
    dm.setup()
    assert dm.in_shape == (3, 32, 32) and dm.num_classes == 2
    assert len(dm.train_set) == 8 and len(dm.val_set) == 8 and len(dm.test_set) == 8
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape[1:] == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert set(y.tolist()) <= {0, 1}


def test_sports_empty_class_folder_is_named(tmp_path):
    _sports_layout(tmp_path, ["golf", "tennis"])
    for f in (tmp_path / "train" / "golf").iterdir():
        f.unlink()
    dm = SportsDataModule(str(tmp_path), classes=["golf", "tennis"])
    with pytest.raises(PrunelabError, match="golf"):
        dm.setup()


def test_sports_missing_root_is_clear(tmp_path):
    with pytest.raises(PrunelabError, match="layout"):
        SportsDataModule(str(tmp_path / "none")).setup()


@pytest.mark.parametrize(
    ("module", "dataset", "torchvision_class", "hint"),
    [
        ("fashion_mnist", FashionMNISTDataModule, "FashionMNIST", "make data"),
        ("cifar10", CIFAR10DataModule, "CIFAR10", "place cifar-10-batches-py there by hand"),
    ],
)
def test_a_failed_download_is_one_line_naming_the_folder_and_the_way_out(
    module, dataset, torchvision_class, hint, tmp_path, monkeypatch
):
    """Network errors arrive as many types and many lines; the user gets one of each."""
    import importlib
    from urllib.error import URLError

    def offline(*args, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution\nretrying mirror 2 ...")

    source = importlib.import_module(f"prunelab.data.{module}")
    monkeypatch.setattr(source, torchvision_class, offline)
    with pytest.raises(PrunelabError, match=hint) as err:
        dataset(str(tmp_path / "here"), download=True).prepare_data()
    message = str(err.value)
    assert "\n" not in message and "name resolution" in message
    assert str((tmp_path / "here").resolve()) in message


def _fake_download(lock: Path, calls: list):
    """A stand-in for torchvision's dataset class that records whether `lock` is held."""

    def download(root: str, train: bool, download: bool) -> None:
        probe = FileLock(str(lock), timeout=0)
        try:
            probe.acquire()
        except Timeout:
            calls.append(("held", train))
        else:  # free: another job could have written the same archive at once
            probe.release()
            calls.append(("free", train))

    return download


@pytest.mark.parametrize(
    ("module", "dataset", "torchvision_class"),
    [
        ("fashion_mnist", FashionMNISTDataModule, "FashionMNIST"),
        ("cifar10", CIFAR10DataModule, "CIFAR10"),
    ],
)
def test_a_download_holds_a_lock_in_the_data_root(
    module, dataset, torchvision_class, tmp_path, monkeypatch
):
    """Parallel jobs on a fresh machine: one downloads and unpacks, the others wait for it."""
    import importlib

    lock, calls = tmp_path / "data" / f".{dataset.name}.download.lock", []
    monkeypatch.setattr(
        importlib.import_module(f"prunelab.data.{module}"),
        torchvision_class,
        _fake_download(lock, calls),
    )
    dataset(str(tmp_path / "data"), download=True).prepare_data()
    assert calls == [("held", True), ("held", False)]
    with FileLock(str(lock), timeout=0):  # and let go of once done
        pass


def _idx_file(path: Path, dims: tuple[int, ...], cut: int = 0) -> None:
    """An idx file of unsigned bytes (Fashion-MNIST's format), `cut` bytes short."""
    header = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.write_bytes((header + bytes(math.prod(dims)))[: -cut or None])


def test_present_files_are_not_downloaded_again_nor_locked(cifar_root, tmp_path, monkeypatch):
    """The files in place: no lock file (a read-only data root works), no torchvision call."""
    import prunelab.data.cifar10 as cifar10
    import prunelab.data.fashion_mnist as fashion_mnist

    def never(*args, **kwargs):
        raise AssertionError("downloaded files that are in place")

    monkeypatch.setattr(fashion_mnist, "FashionMNIST", never)
    monkeypatch.setattr(cifar10, "CIFAR10", never)
    FashionMNISTDataModule(str(DATA), download=True).prepare_data()
    assert not list(DATA.glob(".*.lock"))
    # cifar_root's checksums are waived: the files count as CIFAR-10's own.
    CIFAR10DataModule(str(cifar_root), download=True).prepare_data()
    assert not list(cifar_root.glob(".*.lock"))


def test_a_fashion_mnist_file_cut_short_is_fetched_again(tmp_path, monkeypatch):
    """torchvision only asks whether a file exists: one cut short by a kill would stay."""
    import prunelab.data.fashion_mnist as fashion_mnist

    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for split, n in (("train", 3), ("t10k", 2)):
        _idx_file(raw / f"{split}-images-idx3-ubyte", (n, 28, 28), cut=100 if n == 3 else 0)
        _idx_file(raw / f"{split}-labels-idx1-ubyte", (n,))
    calls: list = []
    lock = tmp_path / ".fashion_mnist.download.lock"
    monkeypatch.setattr(fashion_mnist, "FashionMNIST", _fake_download(lock, calls))
    FashionMNISTDataModule(str(tmp_path), download=True).prepare_data()
    assert calls == [("held", True), ("held", False)]
    assert not (raw / "train-images-idx3-ubyte").exists()  # set for torchvision to fetch again
    assert (raw / "t10k-images-idx3-ubyte").exists()


@pytest.mark.parametrize("dataset", [FashionMNISTDataModule, CIFAR10DataModule])
def test_a_published_dataset_names_each_of_its_classes(dataset):
    """The confusion matrix and per-class keys are sized by the names: one per class."""
    names = dataset.class_names
    assert len(names) == dataset.num_classes == len(set(names))
    assert all(isinstance(n, str) and n for n in names)


def test_cifar10_class_names_are_its_label_order():
    """Label i is CIFAR-10's i-th class in its batches.meta (airplane 0, ..., truck 9)."""
    assert CIFAR10DataModule.class_names[0] == "airplane"
    assert CIFAR10DataModule.class_names[9] == "truck"


def test_cifar10_offline_without_files_is_clear(tmp_path):
    with pytest.raises(PrunelabError, match="CIFAR-10"):
        CIFAR10DataModule(str(tmp_path), download=False).setup()


def test_sports_classes_null_takes_every_folder_sorted_and_val_works_for_valid(tmp_path):
    _sports_layout(tmp_path, ["tennis", "golf", "rugby"], per_split=2, val="val")
    (tmp_path / "train" / ".cache").mkdir()  # hidden folders are not classes
    dm = SportsDataModule(str(tmp_path), classes=None, batch_size=4)
    assert dm.num_classes == 3 and dm.class_names == ["golf", "rugby", "tennis"]
    dm.setup()
    assert len(dm.train_set) == 6 and len(dm.val_set) == 6 and len(dm.test_set) == 6
    labels = torch.cat([y for _, y in dm.test_dataloader()])
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2]


def test_sports_refuses_both_valid_and_val(tmp_path):
    """Which would be the validation split is a guess: refused, not one silently ignored."""
    _sports_layout(tmp_path, ["tennis", "golf"], per_split=1)
    _sports_layout(tmp_path / "more", ["tennis", "golf"], per_split=1, val="val")
    (tmp_path / "more" / "val").rename(tmp_path / "val")
    with pytest.raises(PrunelabError, match="holds both valid/ and val/: keep one"):
        SportsDataModule(str(tmp_path), classes=None).setup()


def test_sports_classes_null_refuses_a_test_class_with_no_training_folder(tmp_path):
    """Its images would be scored against labels the model never had: refused, not dropped."""
    _sports_layout(tmp_path, ["tennis", "golf"], per_split=2)
    _sports_layout(tmp_path / "extra", ["rugby"], per_split=2)
    (tmp_path / "extra" / "test" / "rugby").rename(tmp_path / "test" / "rugby")
    with pytest.raises(PrunelabError, match=r"\['rugby'\] under .*test have none under train/"):
        SportsDataModule(str(tmp_path), classes=None).setup()
    # Named classes select folders: others in any split are left out by choice.
    dm = SportsDataModule(str(tmp_path), classes=["golf", "tennis"])
    dm.setup()
    assert len(dm.test_set) == 4
    # A class named that a split lacks (a typo, a folder left out): named, with what is there.
    dm = SportsDataModule(str(tmp_path), classes=["golf", "tenis"])
    with pytest.raises(PrunelabError) as err:
        dm.setup()
    assert str(err.value) == (
        f"class folder(s) ['tenis'] missing under {tmp_path / 'train'} (data.classes; it holds "
        "['golf', 'tennis'])"
    )
    # Unset, the classes are train/'s folders: a test/ folder renamed since is not blamed on
    # data.classes.
    (tmp_path / "test" / "golf").rename(tmp_path / "test" / "golfing")
    (tmp_path / "test" / "rugby").rename(tmp_path / "rugby")
    with pytest.raises(PrunelabError) as err:
        SportsDataModule(str(tmp_path), classes=None).setup()
    assert str(err.value) == (
        f"class folder(s) ['golf'] missing under {tmp_path / 'test'} (the class folders of "
        "train/, data.classes being unset; it holds ['golfing', 'tennis'])"
    )


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        (["tennis", "tennis"], "data.classes names 'tennis' more than once"),
        ([], "data.classes must name at least 2 class folders"),
        (["tennis"], "data.classes must name at least 2 class folders"),
    ],
)
def test_sports_needs_two_distinct_classes(classes, expected, tmp_path):
    with pytest.raises(PrunelabError, match=re.escape(expected)):
        SportsDataModule(str(tmp_path), classes=classes)


def test_own_images_can_bring_their_own_normalisation(tmp_path):
    """data.mean/std replace ImageNet's statistics in the net's first layer; null keeps them."""
    from prunelab.build import build_net, data_spec
    from prunelab.models.layers import Normalize

    _sports_layout(tmp_path, ["golf", "tennis"], per_split=1)
    spec = data_spec(SportsDataModule(str(tmp_path), classes=None))
    assert spec["mean"] == [0.485, 0.456, 0.406] and spec["std"] == [0.229, 0.224, 0.225]
    dm = SportsDataModule(str(tmp_path), classes=None, mean=[0.5, 0.5, 0.5], std=[0.25] * 3)
    spec = data_spec(dm)
    assert spec["mean"] == [0.5] * 3 and spec["std"] == [0.25] * 3
    for model in ("SimpleCNN", "ResNetSmall"):
        net = build_net({"_target_": f"prunelab.models.{model}"}, spec)
        (norm,) = [m for m in net.modules() if isinstance(m, Normalize)]
        pixels = torch.tensor([0.5, 0.75, 0.0]).view(1, 3, 1, 1).expand(1, 3, 32, 32)
        assert torch.equal(norm(pixels)[0, :, 0, 0], torch.tensor([0.0, 1.0, -2.0]))
    with pytest.raises(PrunelabError, match=re.escape("data.std must be null or 3 positive")):
        SportsDataModule(str(tmp_path), std=[0.2, 0.0, 0.2])


def test_sports_null_classes_with_one_folder_is_clear(tmp_path):
    _sports_layout(tmp_path, ["golf"], per_split=1)
    dm = SportsDataModule(str(tmp_path), classes=None)
    with pytest.raises(PrunelabError, match=r"at least 2 class folders under .*found \['golf'\]"):
        dm.setup()


def test_sports_sizes_beyond_the_folders_are_capped(tmp_path, capsys):
    """experiment=smoke asks for 128 validation images; a small folder of one's own has fewer."""
    _sports_layout(tmp_path, ["golf", "tennis"], per_split=2)
    dm = SportsDataModule(str(tmp_path), classes=["golf", "tennis"], val_size=128)
    dm.setup()
    assert len(dm.val_set) == 4
    assert "data.val_size=128 but there are only 4 validation" in capsys.readouterr().err


def test_own_image_folder_runs_end_to_end_as_imagefolder(tmp_path):
    """`data=imagefolder data.root=...`: every class folder found, a whole job, named for it."""
    from conftest import run_train

    _sports_layout(tmp_path / "images", ["cats", "dogs"], per_split=6)
    sweep = tmp_path / "sweep"
    proc = run_train(
        [
            "-m", "data=imagefolder", f"data.root={tmp_path / 'images'}", "data.image_size=16",
            "sparsity=0.5", "experiment=smoke", "report.enabled=false",
            f"hydra.sweep.dir={sweep}", f"paths.cache_dir={tmp_path / 'cache'}",
        ]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (job,) = sweep.glob("simplecnn-imagefolder-magnitude-s0.5-seed0/results.json")
    results = json.loads(job.read_text())
    assert results["data"] == "imagefolder" and results["data/test_size"] == 12
    assert results["baseline/key"].startswith("simplecnn-imagefolder-seed0-")
    assert "data.train_size=256 but there are only 12" in proc.stderr  # smoke asks for more


def test_evaluate_checks_data_keys_against_the_jobs_own_dataset(tmp_path, capsys):
    """prunelab.evaluate on an image-folder job: its keys (data.image_size) are known, a key
    of another dataset (data.download) is one line naming the job's data=imagefolder."""
    from prunelab.evaluate import main

    from conftest import run_train

    _sports_layout(tmp_path / "images", ["cats", "dogs"], per_split=6)
    proc = run_train(
        [
            "data=imagefolder", f"data.root={tmp_path / 'images'}", "data.image_size=16",
            "sparsity=0.5", "experiment=smoke", f"hydra.run.dir={tmp_path / 'job'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
        ]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main([f"ckpt={tmp_path / 'job'}", "data.download=true"])
    err = capsys.readouterr().err.strip()
    assert stop.value.code == 2 and "\n" not in err
    assert "unknown config key 'data.download'" in err and "data=imagefolder" in err
    out = tmp_path / "again.json"
    assert main([f"ckpt={tmp_path / 'job'}", "data.image_size=16", f"out={out}"]) == 0
    assert json.loads(out.read_text())["data"] == "imagefolder"
    # Only the test split is evaluated: the other splits' sizes go unmentioned.
    shown = capsys.readouterr()
    assert "data.train_size=256 but there are only" not in shown.err + shown.out
    assert "not those the job ran on" not in shown.out
    # One more test image since the job ran: evaluated as the folder is now, with a note.
    extra = tmp_path / "images" / "test" / "cats"
    shutil.copy(next(extra.iterdir()), extra / "added.jpg")
    assert main([f"ckpt={tmp_path / 'job'}", "data.image_size=16", f"out={out}"]) == 0
    shown = capsys.readouterr().out
    assert "note: the images under data.root=" in shown and "not those the job ran on" in shown
    assert json.loads(out.read_text())["data/test_size"] == 13
    # The same images under class folders that sort the other way: labels 0 and 1 swap, and
    # the model would score near 0 % with no error. Refused, naming both class lists.
    renamed = tmp_path / "renamed"
    for split in ("train", "valid", "test"):
        for old, new in (("cats", "z_cats"), ("dogs", "a_dogs")):
            shutil.copytree(tmp_path / "images" / split / old, renamed / split / new)
    assert (
        main([f"ckpt={tmp_path / 'job'}", f"data.root={renamed}", f"out={tmp_path / 'no.json'}"])
        == 1
    )
    (err,) = [x for x in capsys.readouterr().err.splitlines() if x.startswith("prunelab: error")]
    assert "['cats', 'dogs']" in err and "['a_dogs', 'z_cats']" in err, err
    assert not (tmp_path / "no.json").exists()


def test_a_file_that_is_no_image_is_named_before_training(tmp_path):
    """A non-image or truncated file anywhere in the folder: one line naming it, at setup."""
    _sports_layout(tmp_path, ["golf", "tennis"], per_split=2)
    broken = tmp_path / "test" / "tennis" / "notes.jpg"
    broken.write_text("not an image")
    with pytest.raises(PrunelabError, match=r"notes\.jpg \(not an image PIL can read\)"):
        SportsDataModule(str(tmp_path), classes=["golf", "tennis"]).setup()
    broken.unlink()
    cut = tmp_path / "train" / "golf" / "0.jpg"
    cut.write_bytes(cut.read_bytes()[:200])
    dm = SportsDataModule(str(tmp_path), classes=["golf", "tennis"], augment=False)
    with pytest.raises(PrunelabError, match=r"cannot read image .*0\.jpg .*remove or replace it"):
        dm.setup()
        list(dm.train_dataloader())  # a header that reads: decoding the pixels finds the cut


def test_a_test_image_cut_short_or_of_16_bit_pixels_is_named_before_training(tmp_path):
    """An interrupted copy leaves a JPEG or PNG whose header reads: it was named only when first
    decoded (a test image: after the baseline trained). A 16-bit image converts to RGB clipped
    to 255 (nearly white) without an error: refused. Whole files, trailing bytes after a JPEG's
    end marker included, still load."""
    import numpy as np

    _sports_layout(tmp_path, ["golf", "tennis"], per_split=2)
    kept = tmp_path / "test" / "tennis" / "1.jpg"
    kept.write_bytes(kept.read_bytes() + b"camera notes")  # decodes: not refused
    dm = SportsDataModule(str(tmp_path), classes=["golf", "tennis"])
    dm.setup()
    cut = tmp_path / "test" / "golf" / "0.jpg"
    whole = cut.read_bytes()
    cut.write_bytes(whole[: len(whole) * 6 // 10])
    with pytest.raises(
        PrunelabError, match=r"cannot read image .*golf/0\.jpg \(image file is trunc"
    ):
        SportsDataModule(str(tmp_path), classes=["golf", "tennis"]).setup()
    cut.unlink()
    png = tmp_path / "valid" / "tennis" / "2.png"
    Image.open(kept).convert("RGB").save(png)
    data = png.read_bytes()
    png.write_bytes(data[: len(data) - 40])
    with pytest.raises(PrunelabError, match=r"cannot read image .*2\.png"):
        SportsDataModule(str(tmp_path), classes=["golf", "tennis"]).setup()
    wide = (np.asarray(Image.open(kept).convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(png)
    assert Image.open(png).mode.startswith("I")
    with pytest.raises(PrunelabError, match=r"2\.png \(pixel mode I;16: 16-bit .* convert it to 8"):
        SportsDataModule(str(tmp_path), classes=["golf", "tennis"]).setup()


@pytest.mark.parametrize("split", ["train", "test"])
def test_a_root_at_a_split_folder_says_to_use_its_parent(split, tmp_path):
    _sports_layout(tmp_path / "images", ["golf", "tennis"], per_split=1)
    for classes in (None, ["golf", "tennis"]):
        dm = SportsDataModule(str(tmp_path / "images" / split), classes=classes)
        with pytest.raises(PrunelabError) as err:
            dm.setup()
        expected = f"data.root is the '{split}' split folder itself: set data.root={tmp_path}"
        assert str(err.value).endswith(f"{expected}/images")


def test_class_folders_without_splits_are_named_as_such(tmp_path):
    """root/<class>/*.jpg, a common layout of its own: the splits it lacks are named."""
    _sports_layout(tmp_path / "images", ["golf", "tennis"], per_split=1)
    flat = (tmp_path / "images" / "train").rename(tmp_path / "flat")
    for classes in (None, ["golf", "tennis"]):
        with pytest.raises(PrunelabError, match=r"holds \['golf', 'tennis'\] directly: move each"):
            SportsDataModule(str(flat), classes=classes).setup()


def test_files_fingerprint_is_computed_once_per_folder_and_follows_its_files(
    tmp_path, monkeypatch, make_cfg
):
    """A job asks for it four times (config hash, baseline key, recipe hash, evaluation key),
    each job of an in-process sweep again: one walk of every image, unless the files changed.
    Its value is the hash of every image's path and bytes: an image replaced by another of the
    same size changes it too."""
    import hashlib
    import os
    import time

    import prunelab.data.sports as sports
    from prunelab.cache import data_files, data_settings
    from prunelab.fingerprint import content_hash

    _sports_layout(tmp_path / "img", ["golf", "tennis"], per_split=2)
    (tmp_path / "img" / "test" / "golf" / "notes.txt").write_text("not read")
    root = tmp_path / "img"
    listing = sorted(
        f"{p.relative_to(root).as_posix()}:{hashlib.sha256(p.read_bytes()).hexdigest()[:16]}"
        for p in root.rglob("*.jpg")
    )
    walks: list = []
    real = sports._listing_hash
    monkeypatch.setattr(sports, "_listing_hash", lambda *a: walks.append(a) or real(*a))

    def settle() -> None:  # past the window in which a folder's mtime is not trusted
        time.sleep(0.3)

    # Folders changed within the window (2 s; here all of them): recomputed every time.
    monkeypatch.setattr(sports, "_SETTLE_NS", 10**18)
    first = SportsDataModule.files_fingerprint(str(root))
    assert SportsDataModule.files_fingerprint(str(root)) == first == content_hash(listing)
    assert len(walks) == 2
    monkeypatch.setattr(sports, "_SETTLE_NS", 100_000_000)
    settle()
    for _ in range(4):
        assert SportsDataModule.files_fingerprint(str(root / ".")) == first
    assert len(walks) == 3
    only = SportsDataModule.files_fingerprint(str(root), ["golf"])  # an entry of its own
    assert only != first and len(walks) == 4
    # A change is noticed: an image added (and removed again) ...
    added = root / "train" / "golf" / "9.jpg"
    added.write_bytes((root / "train" / "golf" / "0.jpg").read_bytes())
    assert SportsDataModule.files_fingerprint(str(root)) != first
    added.unlink()
    assert SportsDataModule.files_fingerprint(str(root)) == first
    settle()
    assert SportsDataModule.files_fingerprint(str(root)) == first
    # ... or replaced by a rename over it (as rsync writes), with another size.
    settle()
    walks.clear()
    swap = root / "test" / "tennis" / "new.jpg"
    swap.write_bytes((root / "test" / "tennis" / "0.jpg").read_bytes() + b"more")
    os.replace(swap, root / "test" / "tennis" / "1.jpg")
    assert SportsDataModule.files_fingerprint(str(root)) != first and len(walks) == 1
    # An image rewritten in place with other bytes of the same size: the next process (no memo)
    # gives another key.
    image = root / "train" / "golf" / "1.jpg"
    before, data = SportsDataModule.files_fingerprint(str(root)), bytearray(image.read_bytes())
    data[len(data) // 2] ^= 0xFF
    image.write_bytes(bytes(data))
    monkeypatch.setattr(sports, "_FINGERPRINTS", {})
    assert SportsDataModule.files_fingerprint(str(root)) != before
    # Through the config, as the job's callers ask for it: one walk for all of them.
    settle()
    walks.clear()
    cfg = make_cfg("data=imagefolder", f"data.root={root}")
    keys = {data_files(cfg.data)["files"], data_settings(cfg.data)["files"]}
    keys.add(SportsDataModule.files_fingerprint(str(root)))
    assert len(keys) == 1 and len(walks) == 1


# The resuming Trainer has no ModelCheckpoint on purpose: Lightning's note about it is expected.
@pytest.mark.filterwarnings("ignore:Be aware that when using")
def test_a_resumed_fit_on_augmented_images_repeats_the_uninterrupted_one(tmp_path):
    """Loader workers draw an epoch's order when they start, and the augmentation: both follow
    (seed, epoch, image), so neither a resume nor data.num_workers changes a weight."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from prunelab.models import SimpleCNN
    from prunelab.module import Classifier
    from prunelab.seeding import EpochSeed

    from conftest import quiet_trainer

    _sports_layout(tmp_path / "img", ["golf", "tennis"], per_split=12)

    def fit(workers: int, epochs: int, callbacks: list, ckpt: str | None = None) -> dict:
        dm = SportsDataModule(str(tmp_path / "img"), classes=None, num_workers=workers,
                              batch_size=8)  # fmt: skip
        torch.manual_seed(0)
        net = SimpleCNN(dm.in_shape, 2, dm.mean, dm.std)
        # No cosine schedule: it spans max_epochs, which the 1-epoch run would shorten.
        model = Classifier(net, 2, lambda p: torch.optim.Adam(p, lr=1e-2), scheduler=None)
        trainer = quiet_trainer(epochs, [EpochSeed(7), *callbacks], tmp_path)
        trainer.fit(model, dm, ckpt_path=ckpt)
        return {k: v.clone() for k, v in net.state_dict().items()}

    straight = fit(0, 3, [])
    for workers in (0, 1):
        last = tmp_path / f"ck{workers}" / "last.ckpt"
        fit(workers, 1, [ModelCheckpoint(dirpath=last.parent, save_last=True, save_top_k=0)])
        resumed = fit(workers, 3, [], str(last))
        assert all(torch.equal(straight[k], resumed[k]) for k in straight), workers
    with_workers = fit(1, 3, [])
    assert all(torch.equal(straight[k], with_workers[k]) for k in straight)


def _cifar_layout(root: Path, per_class: int = 6) -> None:
    """CIFAR-10's python layout (cifar-10-batches-py/: five data batches, a test batch, the meta
    file) holding real Fashion-MNIST images as 32x32 RGB, for torchvision's own reader."""
    import pickle

    import numpy as np

    images = FashionMNIST(str(DATA), train=False)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        pixels, labels = [], []
        for i in range(b * 10 * per_class, (b + 1) * 10 * per_class):
            img = np.pad(images.data[i].numpy(), 2)  # 28x28 -> 32x32
            pixels.append(np.stack([img, img, img]).reshape(-1))
            labels.append(int(images.targets[i]))
        batch = {"data": np.stack(pixels).astype(np.uint8), "labels": labels}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": list(CIFAR10DataModule.class_names)}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))


@pytest.fixture
def cifar_root(tmp_path, monkeypatch):
    """A CIFAR-10 folder torchvision reads; only its checksums (of the real files) are waived."""
    import torchvision.datasets.cifar as cifar

    _cifar_layout(tmp_path / "cifar")
    monkeypatch.setattr(cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    return tmp_path / "cifar"


def test_cifar10_splits_and_an_unaugmented_validation_view(cifar_root):
    dm = CIFAR10DataModule(str(cifar_root), download=False, val_size=60, batch_size=16)
    dm.setup()
    assert len(dm.train_set) == 240 and len(dm.val_set) == 60 and len(dm.test_set) == 60
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and 0 <= x.min() and x.max() <= 1 and y.max() < 10
    # The validation images are the training file's, as stored: no crop, no flip.
    v, _ = dm.val_set[0]
    index = dm.val_set.indices[0]
    raw = torch.from_numpy(dm.val_set.dataset.data[index]).permute(2, 0, 1).float() / 255
    assert torch.equal(v, raw)


def test_a_cifar10_job_runs_end_to_end_with_a_key_per_class(cifar_root, make_cfg):
    """The path that once failed after training (no class names): trained, evaluated, saved."""
    from prunelab.pipeline import run

    cfg = make_cfg("data=cifar10", f"data.root={cifar_root}", "data.download=false",
                   "data.val_size=60", "data.test_size=null", "attack.n_images=16")  # fmt: skip
    result = run(cfg)
    assert result["data"] == "cifar10" and result["data/test_size"] == 60
    assert {f"test/acc_class/{n}" for n in CIFAR10DataModule.class_names} <= set(result)
    assert abs(result["prune/sparsity_measured"] - 0.5) < 1e-3


def test_the_launch_check_looks_for_the_files_torchvision_reads(tmp_path):
    """prunelab.presence names Fashion-MNIST's files without importing torchvision."""
    from omegaconf import OmegaConf

    from prunelab.data.fashion_mnist import raw_files
    from prunelab.presence import FASHION_FILES, data_problem

    assert sorted(p.name for p in raw_files(str(tmp_path))) == sorted(FASHION_FILES)
    data = OmegaConf.create(
        {"_target_": "prunelab.data.FashionMNISTDataModule", "root": str(tmp_path)}
    )
    assert data_problem(data).startswith(f"Fashion-MNIST not found under {tmp_path}")
    assert data_problem(OmegaConf.merge(data, {"download": True})) is None
    assert data_problem(OmegaConf.create({**data, "root": str(DATA)})) is None


def test_the_launch_check_looks_for_the_cifar10_files_torchvision_reads(tmp_path):
    """With data.download=false a sweep over data=cifar10 is refused at launch, not at its job."""
    import torchvision.datasets.cifar as cifar
    from omegaconf import OmegaConf

    from prunelab.presence import CIFAR_FILES, data_problem

    tv = cifar.CIFAR10
    assert {n for n, _ in [*tv.train_list, *tv.test_list]} | {tv.meta["filename"]} == set(
        CIFAR_FILES
    )
    data = OmegaConf.create(
        {"_target_": "prunelab.data.CIFAR10DataModule", "root": str(tmp_path), "download": False}
    )
    missing = f"CIFAR-10 not found under {tmp_path}/cifar-10-batches-py: set data.download=true"
    assert data_problem(data).startswith(missing)
    assert data_problem(OmegaConf.merge(data, {"download": True})) is None  # its job downloads
    _cifar_layout(tmp_path)
    assert data_problem(data) is None
    (tmp_path / tv.base_folder / "test_batch").unlink()
    assert data_problem(data).startswith(missing)
    with pytest.raises(PrunelabError, match=re.escape(missing)):  # the job's own line: the same
        CIFAR10DataModule(str(tmp_path), download=False).setup()


def test_a_palette_image_with_transparency_loads_without_pils_advice(tmp_path):
    """PIL warns that such a PNG should become RGBA; the loader makes RGB of it either way."""
    import warnings

    from prunelab.data.sports import read_image

    image = Image.new("P", (8, 8))
    image.putpalette([0] * 768)
    image.save(tmp_path / "p.png", transparency=b"\x00\x10")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(str(tmp_path / "p.png")).mode == "RGB"
