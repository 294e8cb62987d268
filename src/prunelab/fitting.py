"""Training stages' shared machinery: the configured Trainer, and fits a rerun resumes."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from prunelab.errors import PrunelabError
from prunelab.io import load_torch, read_json_if_any, write_json
from prunelab.lean import ModelCheckpoint
from prunelab.module import Classifier

log = logging.getLogger("prunelab")


def make_trainer(
    cfg: DictConfig, stage: str, max_epochs: int, callbacks: list, logger, root: Path
) -> L.Trainer:
    """The configured Trainer for one training stage, with its progress display."""
    if cfg.trainer.get("enable_progress_bar", True) and cfg.get("progress_bar") is not None:
        bar = instantiate(cfg.progress_bar)
        if hasattr(bar, "stage"):  # prunelab.tracking.StageProgressBar; another bar keeps its own
            bar.stage = stage
        callbacks = [*callbacks, bar]
    return instantiate(
        cfg.trainer,
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=logger,
        default_root_dir=str(root),
    )


def finetune_module(cfg: DictConfig, net: torch.nn.Module, spec: dict) -> Classifier:
    """`net` wrapped for the fine-tuning recipe (`finetune`: optimizer, schedule, layout)."""
    return Classifier(
        net,
        spec["num_classes"],
        instantiate(cfg.finetune.optimizer),
        cfg.finetune.scheduler,
        channels_last=bool(cfg.finetune.channels_last),
    )


def resume_path(ckpt: Path) -> str | None:
    """`ckpt` if it is a loadable checkpoint to resume from; a corrupt one is set aside."""
    if not ckpt.is_file():
        return None
    try:
        load_torch(ckpt)
    except PrunelabError as err:
        aside = ckpt.with_name(ckpt.name + ".corrupt")
        ckpt.replace(aside)
        log.warning("%s; moved to %s, starting this stage over", err, aside.name)
        return None
    log.info("resuming from %s", ckpt)
    return str(ckpt)


def resume_checkpoint(dirpath: Path) -> ModelCheckpoint:
    """Writes `dirpath/last.ckpt` after every training epoch: what a rerun resumes from."""
    return ModelCheckpoint(
        dirpath=dirpath,
        save_last=True,
        save_top_k=0,
        enable_version_counter=False,
        save_on_train_epoch_end=True,
    )


def fit_resumable(
    trainer: L.Trainer, module: Classifier, dm: L.LightningDataModule, work: Path
) -> None:
    """Fit, resuming from `work/last.ckpt`; a fit that had ended is restored, not trained on.

    Lightning checkpoints no stop: a fit that an early stop or `trainer.max_time` ended, killed
    before its job published, would otherwise train on from its last epoch at the rerun.
    """
    done = work / "fit_done.json"
    resume = resume_path(work / "last.ckpt")
    ended = read_json_if_any(done) if resume else None
    if ended is not None:
        trainer.fit_loop.max_epochs = int(ended["epochs"])
    trainer.fit(module, datamodule=dm, ckpt_path=resume, weights_only=True)
    if ended is None:
        # The end as it is now: last.ckpt is from the last epoch's end, before on_train_end
        # (gradual pruning's final masks when +trainer.max_time cut its schedule short), which
        # a restored fit that has nothing left to train never calls.
        last = work / "last.ckpt"
        partial = last.with_name(last.name + ".tmp")
        trainer.save_checkpoint(partial)
        partial.replace(last)
        write_json(done, {"epochs": trainer.current_epoch})
