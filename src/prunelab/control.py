"""The dense control: the baseline fine-tuned as the pruned models are, without pruning."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from prunelab.build import build_net
from prunelab.cache import BaselineCache, training_code
from prunelab.evaluation import resolve_device
from prunelab.evaluation.accuracy import predict
from prunelab.evaluation.fast import inference_copy
from prunelab.fingerprint import code_fingerprint, content_hash
from prunelab.fitting import finetune_module, fit_resumable, make_trainer, resume_checkpoint
from prunelab.seeding import EpochSeed

log = logging.getLogger("prunelab")


def train_control(
    cfg: DictConfig, state: dict, dm: L.LightningDataModule, spec: dict, work: Path
) -> dict:
    """The dense baseline fine-tuned exactly as the pruned models are, without pruning.

    Pruned models get `finetune.max_epochs` more epochs than the dense reference; the control's
    test outcomes, image by image ('0'/'1' per test image in `per_image`), tell what that
    training alone does, so a pruned model's change can be told from it. `work` keeps its
    resume checkpoint: a killed job's rerun goes on from the last finished epoch.
    """
    start = time.perf_counter()
    L.seed_everything(cfg.seed + 1, workers=True)
    net = build_net(cfg.model, spec)
    net.load_state_dict(state)
    module = finetune_module(cfg, net, spec)
    last = resume_checkpoint(work)
    callbacks = [last, EpochSeed(cfg.seed + 1)]
    trainer = make_trainer(cfg, "dense control", cfg.finetune.max_epochs, callbacks, False, work)
    fit_resumable(trainer, module, dm, work)
    net.to(memory_format=torch.contiguous_format)
    device = resolve_device(cfg.eval.get("device", "auto"))
    # Scored as evaluate() scores the model and its baseline: the same inference copy.
    work = inference_copy(net, device, bool(cfg.eval.fold_batchnorm), bool(cfg.eval.channels_last))
    preds, labels, _ = predict(work, dm.test_dataloader(), device)
    right = (preds == labels).tolist()
    return {
        "test/acc": sum(right) / max(len(right), 1),
        "per_image": "".join("1" if r else "0" for r in right),
        "seconds": time.perf_counter() - start,
    }


def control_tag(cfg: DictConfig, test_size: int) -> str:
    """Cache name of the dense control beside its baseline: a hash of what determines it."""
    recipe = OmegaConf.to_container(cfg.finetune, resolve=True)
    recipe.pop("dense_control", None)
    material = {
        "finetune": recipe,
        "eval": {k: bool(cfg.eval[k]) for k in ("fold_batchnorm", "channels_last")},
        "device": resolve_device(cfg.eval.get("device", "auto")).type,
        "test_size": int(test_size),
        "code": code_fingerprint(train_control, finetune_module, predict, inference_copy),
        "training": training_code(),
    }
    return f"control-{content_hash(material)}"


def dense_control(
    cfg: DictConfig,
    state: dict,
    dm: L.LightningDataModule,
    spec: dict,
    cache: BaselineCache,
    key: str,
) -> tuple[dict, dict]:
    """(the control's record, this job's `control/...` bookkeeping keys).

    Kept in the baseline's cache entry: trained once per baseline and fine-tuning recipe, by
    the first job that asks (under the entry's lock), and reused by every sparsity.
    """
    trained: list[bool] = []
    tag = control_tag(cfg, len(dm.test_set))
    # Beside the baseline's entry, not in the job's folder: whichever job trains the control
    # after an interruption resumes it.
    work = cache.work_dir(key, tag)

    def compute() -> dict:
        trained.append(True)
        work.mkdir(parents=True, exist_ok=True)
        return train_control(cfg, state, dm, spec, work)

    record = cache.cached_json(key, tag, compute)
    shutil.rmtree(work, ignore_errors=True)  # once the record is written nobody resumes it
    log.info(
        "dense control: %s (test/acc %.1f %% after the fine-tuning epochs, unpruned)",
        "trained" if trained else "reused",
        100 * record["test/acc"],
    )
    keys: dict = {"control/trained": bool(trained)}
    if trained:
        keys["time/control_s"] = record["seconds"]
    return record, keys
