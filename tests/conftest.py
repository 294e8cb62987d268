"""Shared fixtures: real Fashion-MNIST slices, composed Hydra configs, offline W&B in temp dirs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
DATA = ROOT / "data"
RAW = DATA / "FashionMNIST" / "raw"
METRICS_DOC = ROOT / "docs" / "metrics.md"


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist each worker gets its share of the cores: two workers with two torch
    # threads each on two cores spin-wait on each other and run slower than one worker.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        threads = max(1, (cores or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for the train.py runs it starts
        torch.set_num_threads(threads)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # xdist hands the tests out in this order (after --dist loadgroup's groups): the slow ones
    # first, so that no worker is left with a minute-long test while the other one idles.
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionstart(session: pytest.Session) -> None:
    # The suite runs on the real dataset; `make test` fetches it. Fail early and say how.
    if not (RAW / "t10k-images-idx3-ubyte").is_file():
        raise pytest.UsageError(f"Fashion-MNIST missing under {RAW}: run `make data` first")


@pytest.fixture(scope="session", autouse=True)
def offline_wandb(tmp_path_factory: pytest.TempPathFactory) -> None:
    """W&B never logs in, never leaves files in the repo, never prints; nor the suite in /tmp."""
    base = tmp_path_factory.mktemp("wandb")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR"):
        os.environ[var] = str(base / var.lower())
    os.environ["WANDB_MODE"] = "offline"
    os.environ["WANDB_SILENT"] = "true"
    # The processes the suite kills on purpose leave their temp files (W&B's media folders,
    # job locks, a launcher's ack folder): in pytest's own temp dir, pruned with its old runs.
    os.environ["TMPDIR"] = str(tmp_path_factory.mktemp("tmp"))
    tempfile.tempdir = None  # this process's next temp files too (gettempdir caches)


def compose_cfg(overrides: list[str], out: Path, multirun: bool = False):
    """Compose the real config with `overrides`, as Hydra would for one job writing to `out`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
        cfg.paths.data_dir = str(DATA)
    HydraConfig().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path: Path):
    """Factory: compose a smoke-sized job config writing under tmp_path."""

    def make(*overrides: str, out: Path | None = None):
        return compose_cfg(
            ["experiment=smoke", f"paths.cache_dir={tmp_path / 'cache'}", *overrides],
            out or tmp_path / "job",
        )

    yield make
    GlobalHydra.instance().clear()


def run_train(args: list[str], cwd: Path = ROOT, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run `python train.py ARGS` as a user would."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One end-to-end offline `-m` sweep at smoke size, shared by the tests that read its output."""
    base = tmp_path_factory.mktemp("sweep")
    sweep = base / "sweep"
    proc = run_train(
        [
            "-m",
            "model=simplecnn,resnetsmall",
            "sparsity=0.2,0.5,0.8",
            "experiment=smoke",
            f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={base / 'cache'}",
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return sweep


def sweep_results(sweep: Path) -> dict[str, dict]:
    """Every job's results.json in `sweep`, by job folder name, in name order."""
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))}


def job_results(sweep: Path) -> list[dict]:
    """Every results.json of a sweep."""
    return list(sweep_results(sweep).values())


# docs/metrics.md names a family once: `robust/fgsm_acc@E`, `test/acc_class/<class>`, and `X`
# for its `X_baseline`, `X_delta_pts`, ... (the suffix table at its top).
SUFFIXES = ("_delta_ci_low", "_delta_ci_high", "_delta_pts", "_delta_rel", "_baseline", "_ci_low",
            "_ci_high")  # fmt: skip


def documented_name(key: str) -> str:
    """The name docs/metrics.md gives `key`'s family."""
    key = re.sub(r"^test/acc_class/.+?(?=(_baseline)?$)", "test/acc_class/<class>", key)
    key = re.sub(r"^prune/layer/.+$", "prune/layer/<layer>", key)
    key = re.sub(r"@eps\d+", "@epsK", re.sub(r"@(?!eps)[\d.]+", "@E", key))
    stripped = True
    while stripped:
        stripped = False
        for suffix in SUFFIXES:
            if key.endswith(suffix) and key != suffix:
                key, stripped = key.removesuffix(suffix), True
    return key


def undocumented(keys: Iterable[str], doc: Path = METRICS_DOC) -> list[str]:
    """The keys of results.json / eval.json files that `doc` names neither as themselves nor
    by their family (`documented_name`): what a test of a job's output asserts is empty."""
    named = set(re.findall(r"`([^`\s]+)`", doc.read_text()))
    return sorted({k for k in keys if k not in named and documented_name(k) not in named})


def quiet_trainer(epochs: int, callbacks: list, root, **kwargs):
    """A CPU Lightning Trainer without logger, progress bar or sanity steps, for unit tests.

    Checkpointing is on only when a ModelCheckpoint is among `callbacks`; `kwargs` add limits.
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    return L.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        num_sanity_val_steps=0,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        **kwargs,
    )
