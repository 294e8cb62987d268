"""Experiment tracking: a W&B run (offline unless WANDB_MODE says otherwise) and a CSV log."""

from __future__ import annotations

from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf


def sweep_group() -> str | None:
    """The W&B group of this job: the sweep folder's name in a multirun, else None."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


class Tracker:
    """Owns the job's Lightning loggers and finishes the W&B run exactly once."""

    def __init__(self, cfg: DictConfig, names: dict, out: Path) -> None:
        self.loggers = []
        self.wandb: WandbLogger | None = None
        for name, logger_cfg in (cfg.logger or {}).items():
            kwargs = {}
            if name == "wandb":
                kwargs["group"] = logger_cfg.get("group") or sweep_group()
            logger = instantiate(logger_cfg, **kwargs)
            if isinstance(logger, WandbLogger):
                self.wandb = logger
                config = OmegaConf.to_container(cfg, resolve=True)
                logger.experiment.config.update(
                    {**names, "sparsity": cfg.sparsity, "seed": cfg.seed, "config": config},
                    allow_val_change=True,
                )
            self.loggers.append(logger)
        self._finished = False

    def summary(self, results: dict) -> None:
        """Put every result into the W&B run summary."""
        if self.wandb is not None:
            self.wandb.experiment.summary.update(results)

    def finish(self, exit_code: int) -> None:
        """End the W&B run (marked failed when exit_code != 0) and flush the CSV log."""
        if self._finished:
            return
        self._finished = True
        for logger in self.loggers:
            if not isinstance(logger, WandbLogger):
                logger.finalize("success" if exit_code == 0 else "failed")
        if self.wandb is not None:
            self.wandb.experiment.finish(exit_code=exit_code)
