"""Content-addressed baseline cache: a dense model is trained once per key and reused.

Key = hash of everything that determines the trained weights (architecture, data selection,
training recipe, seed, and the source and library versions that train it). Entries are published
atomically (temp dir + rename) under a file lock, so concurrent jobs train a baseline once and
the others wait and reuse it.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock
from omegaconf import DictConfig, OmegaConf

from prunelab.errors import PrunelabError
from prunelab.fingerprint import code_fingerprint, content_hash, versions
from prunelab.io import load_torch, read_json, save_torch, write_json

log = logging.getLogger("prunelab")

CACHE_VERSION = 1
# What train(work) writes under <work>/publish/ is published inside the entry (rewind weights).
PUBLISH = "publish"
# Data keys that do not change which images train the baseline or how.
DATA_KEYS_IGNORED = {"root", "num_workers", "download", "eval_batch_size", "test_size"}
# Trainer keys that only change what is shown or recorded; the rest (precision, devices,
# gradient clipping, accumulation, ...) change the trained weights.
TRAINER_KEYS_IGNORED = {
    "enable_progress_bar",
    "enable_model_summary",
    "log_every_n_steps",
    "profiler",
}


def _device(accelerator: str) -> str:
    """The device an accelerator name trains on here (`auto` and `gpu` as Lightning picks)."""
    import torch

    if accelerator in ("auto", "gpu"):
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu" if accelerator == "auto" else "gpu"
    return accelerator


def trainer_settings(trainer: dict) -> dict:
    """The trainer keys that change a trained model, the accelerator as the device it trains
    on here: `auto` and `cpu` on a CPU-only machine share a baseline, while a GPU node and a
    CPU node sharing one cache (whose kernels give other weights) do not."""
    out = {k: v for k, v in trainer.items() if k not in TRAINER_KEYS_IGNORED}
    accelerator = out.get("accelerator")
    if isinstance(accelerator, str):
        out["accelerator"] = _device(accelerator)
    return out


def data_files(data: DictConfig) -> dict[str, str]:
    """`{"files": hash}` for an image folder of one's own (its root is ignored, not its
    contents), `{}` for a published dataset, whose keys stay as they were."""
    from prunelab.data import files_fingerprint  # lightning: not on the command line's fast path

    digest = files_fingerprint(data)
    return {} if digest is None else {"files": digest}


def data_settings(data: DictConfig) -> dict:
    """The data keys that select the images and how they load, with an own folder's files."""
    plain = OmegaConf.to_container(data, resolve=True)
    return {k: v for k, v in plain.items() if k not in DATA_KEYS_IGNORED} | data_files(data)


def training_code() -> dict:
    """Fingerprint of the code and libraries that train a baseline (nets, data, loop, seeding)."""
    from prunelab import build, data, fitting, lean, models, module, pipeline, seeding
    from prunelab.pruning.rewind import SaveWeightsAt

    return {
        # build: the net's input statistics; lean: which checkpoints are kept and resumed;
        # SaveWeightsAt: the rewind states published in the entry.
        "code": code_fingerprint(
            models,
            data,
            module,
            seeding,
            build,
            lean,
            SaveWeightsAt,
            pipeline.train_baseline,
            fitting.make_trainer,
        ),
        **versions("torch", "torchvision", "lightning"),
    }


def baseline_key_material(cfg: DictConfig) -> dict:
    """Everything that determines the baseline's trained weights, its training code included."""
    import torch

    trainer = trainer_settings(OmegaConf.to_container(cfg.trainer, resolve=True))
    material = {
        "version": CACHE_VERSION,
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "data": data_settings(cfg.data),
        "baseline": OmegaConf.to_container(cfg.baseline, resolve=True),
        "trainer": trainer,
        "seed": int(cfg.seed),
        "training": training_code(),
    }
    if trainer.get("accelerator", "cpu") == "cpu":
        # CPU kernels split their sums over the threads: a joblib worker's 1-thread baseline
        # has other weights than a 2-thread one, so a sweep's numbers would depend on which
        # launcher happened to train the baseline first.
        material["threads"] = torch.get_num_threads()
    return material


def baseline_key(cfg: DictConfig, material: dict | None = None) -> str:
    """A readable, content-addressed key such as `simplecnn-fashionmnist-seed0-1a2b3c4d5e6f`
    (the net's and the DataModule's class names).

    `material`: baseline_key_material(cfg) when the caller has it already (it reads the source).
    """
    material = material or baseline_key_material(cfg)
    digest = content_hash(material)
    model = Path(str(material["model"]["_target_"])).suffix.lstrip(".").lower()
    data = Path(str(material["data"]["_target_"])).suffix.lstrip(".").lower()
    return f"{model}-{data.removesuffix('datamodule')}-seed{material['seed']}-{digest}"


class BaselineCache:
    """One folder per key under `root`: model.pt (weights_only-loadable) and meta.json."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def entry(self, key: str) -> Path:
        """The folder of the entry `key` (whether or not it exists yet)."""
        return self.root / key

    def work_dir(self, key: str, name: str = "") -> Path:
        """Where `key`'s training (or that of its side result `name`) keeps resume checkpoints."""
        return self.root / (f".{key}.{name}.work" if name else f".{key}.work")

    def lock(self, key: str, timeout: float = -1) -> FileLock:
        """The lock serialising training and publishing of `key`."""
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / f"{key}.lock"), timeout=timeout)

    def load(self, key: str) -> tuple[dict, dict] | None:
        """(state_dict, meta) of a complete entry, or None if absent or corrupt."""
        entry = self.entry(key)
        if not (entry / "meta.json").is_file() or not (entry / "model.pt").is_file():
            return None
        try:
            return load_torch(entry / "model.pt"), read_json(entry / "meta.json")
        except PrunelabError:
            return None

    def get_or_train(
        self, key: str, material: dict, train: Callable[[Path], tuple[dict, dict]]
    ) -> tuple[dict, dict, bool]:
        """Return (state_dict, meta, trained_here); `train(workdir)` runs only if needed."""
        with self.lock(key):
            found = self.load(key)
            if found is not None:
                return found[0], found[1], False
            entry = self.entry(key)
            if entry.exists():  # corrupt or partial: rebuild rather than crash the sweep
                log.warning(
                    "baseline cache entry %s is unreadable or incomplete: retraining", entry
                )
                shutil.rmtree(entry)
            work = self.work_dir(key)  # kept across interruptions: holds resume checkpoints
            work.mkdir(parents=True, exist_ok=True)
            state, meta = train(work)
            meta = {**meta, "key": key, "material": material}
            staging = Path(tempfile.mkdtemp(dir=self.root, prefix=f".{key}.publish-"))
            if (work / PUBLISH).is_dir():
                shutil.copytree(work / PUBLISH, staging, dirs_exist_ok=True)
            save_torch(staging / "model.pt", state)
            write_json(staging / "meta.json", meta)
            staging.rename(entry)
            shutil.rmtree(work, ignore_errors=True)
            return state, meta, True

    def cached_json(self, key: str, name: str, compute: Callable[[], dict[str, Any]]) -> dict:
        """A JSON side result of an entry (e.g. its test metrics), computed once under the lock."""
        path = self.entry(key) / f"{name}.json"
        with self.lock(key):
            if path.is_file():
                try:
                    return read_json(path)
                except PrunelabError:
                    path.unlink()
            result = compute()
            write_json(path, result)
            return result
