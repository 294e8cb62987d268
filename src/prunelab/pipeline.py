"""One Hydra job: baseline (cached), prune, fine-tune with masks held, test, save, log."""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from pathlib import Path

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from prunelab.build import build_datamodule, build_net, choice, data_spec
from prunelab.cache import BaselineCache, baseline_key, baseline_key_material
from prunelab.errors import PrunelabError
from prunelab.io import load_torch, save_torch, write_json
from prunelab.module import Classifier
from prunelab.pruning import MaskGuard, measure_sparsity
from prunelab.tracking import Tracker
from prunelab.validate import check_sparsity

log = logging.getLogger("prunelab")


def quiet_libraries() -> None:
    """Keep the console to progress bars and our own lines (Lightning's tips, known noise)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (
        ".*isinstance\\(treespec, LeafSpec\\).*",
        ".*smaller than the logging interval.*",
        ".*does not have many workers.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def _trainer(cfg: DictConfig, max_epochs: int, callbacks: list, logger, root: Path) -> L.Trainer:
    return instantiate(
        cfg.trainer,
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(root),
    )


def _net_state(checkpoint: dict) -> dict:
    """The net's weights from a Lightning checkpoint of a Classifier."""
    return {
        k.removeprefix("net."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }


def train_baseline(cfg: DictConfig, dm, spec: dict, loggers: list, work: Path) -> tuple[dict, dict]:
    """Train the dense model with early stopping on validation accuracy; keep the best epoch."""
    L.seed_everything(cfg.seed, workers=True)
    net = build_net(cfg.model, spec)
    module = Classifier(
        net,
        spec["num_classes"],
        instantiate(cfg.baseline.optimizer),
        cfg.baseline.scheduler,
        prefix="baseline_",
    )
    best = ModelCheckpoint(
        dirpath=work,
        filename="best",
        monitor="baseline_val/acc",
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    stop = EarlyStopping(monitor="baseline_val/acc", mode="max", patience=cfg.baseline.patience)
    trainer = _trainer(cfg, cfg.baseline.max_epochs, [best, stop], loggers, work)
    resume = work / "last.ckpt"
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume.is_file() else None)
    state = _net_state(load_torch(best.best_model_path))
    meta = {
        "epochs": trainer.current_epoch,
        "best_val_acc": float(best.best_model_score),
        "train_seconds": time.perf_counter() - start,
    }
    return state, meta


def test_accuracy(cfg: DictConfig, net, dm, spec: dict, loggers, prefix: str, root: Path) -> dict:
    """Accuracy and loss of `net` on the configured test split."""
    module = Classifier(net, spec["num_classes"], prefix=prefix)
    trainer = _trainer(cfg, 1, [], loggers, root)
    (metrics,) = trainer.test(module, datamodule=dm, verbose=False)
    return {
        "acc": float(metrics[f"{prefix}test/acc"]),
        "loss": float(metrics[f"{prefix}test/loss"]),
    }


def finetune(cfg: DictConfig, net, dm, spec: dict, loggers: list, out: Path) -> tuple[dict, dict]:
    """Prune (callback, at fit start) and fine-tune with the masks held; returns (masks, meta)."""
    L.seed_everything(cfg.seed + 1, workers=True)
    pruning = instantiate(cfg.pruning)
    module = Classifier(
        net, spec["num_classes"], instantiate(cfg.finetune.optimizer), cfg.finetune.scheduler
    )
    ckpt_dir = out / "checkpoints"
    last = ModelCheckpoint(
        dirpath=ckpt_dir, save_last=True, save_top_k=0, enable_version_counter=False
    )
    trainer = _trainer(
        cfg, cfg.finetune.max_epochs, [pruning, MaskGuard(pruning), last], loggers, out
    )
    resume = ckpt_dir / "last.ckpt"
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=str(resume) if resume.is_file() else None)
    return pruning.masks, {"time/finetune_s": time.perf_counter() - start}


def run(cfg: DictConfig) -> dict:
    """Run one job and return its results (also written to results.json, last and atomically)."""
    sparsity = check_sparsity(cfg.sparsity)
    quiet_libraries()
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    names = {"model": choice("model"), "data": choice("data"), "pruning": choice("pruning")}
    dm = build_datamodule(cfg)
    spec = data_spec(dm)
    tracker = Tracker(cfg, names, out)
    try:
        cache = BaselineCache(cfg.paths.cache_dir)
        key = baseline_key(cfg)
        state, meta, trained = cache.get_or_train(
            key,
            baseline_key_material(cfg),
            lambda work: train_baseline(cfg, dm, spec, tracker.loggers, work),
        )
        baseline = build_net(cfg.model, spec)
        baseline.load_state_dict(state)
        test_tag = f"test-{dm.describe()['data/test_size']}"
        base_test = cache.cached_json(
            key,
            test_tag,
            lambda: test_accuracy(cfg, baseline, dm, spec, tracker.loggers, "baseline_", out),
        )

        net = build_net(cfg.model, spec)
        net.load_state_dict(state)
        masks, timing = None, {"time/finetune_s": 0.0}
        if sparsity > 0:
            masks, timing = finetune(cfg, net, dm, spec, tracker.loggers, out)
        test = (
            test_accuracy(cfg, net, dm, spec, tracker.loggers, "", out)
            if sparsity > 0
            else base_test
        )

        results = {
            **names,
            "sparsity": sparsity,
            "seed": int(cfg.seed),
            "test/acc": test["acc"],
            "test/loss": test["loss"],
            "test/acc_baseline": base_test["acc"],
            "test/acc_retention": test["acc"] / base_test["acc"] if base_test["acc"] else None,
            "prune/sparsity_target": sparsity,
            **measure_sparsity(net),
            "baseline/key": key,
            "baseline/trained": trained,
            "baseline/epochs": meta["epochs"],
            "baseline/best_val_acc": meta["best_val_acc"],
            **dm.describe(),
            **timing,
        }
        save_torch(
            out / "model.pt",
            {
                "state_dict": net.state_dict(),
                "masks": masks,
                "model": OmegaConf.to_container(cfg.model, resolve=True),
                "data": spec,
                "meta": {
                    k: results[k] for k in ("model", "data", "sparsity", "seed", "baseline/key")
                },
            },
        )
        results["time/total_s"] = time.perf_counter() - started
        tracker.summary(results)
        write_json(out / "results.json", results)
        tracker.finish(0)
        return results
    except BaseException:
        tracker.finish(1)
        raise


def main(cfg: DictConfig) -> dict | None:
    """Hydra task: run a job; turn known errors into one line and a failure mark."""
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        return run(cfg)
    except PrunelabError as err:
        message = f"prunelab: error: {err}"
    except Exception as err:
        log.error(traceback.format_exc())
        message = f"prunelab: error: {type(err).__name__}: {err}"
    out = Path(cfg.paths.output_dir)
    if out.is_dir():
        (out / "FAILED").write_text(message + "\n")
    log.error(message)
    if multirun:
        return None  # the sweep goes on; the multirun-end callback reports failures and exits 1
    raise SystemExit(1)
