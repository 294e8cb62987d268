"""Construct the parts of a job from its config."""

from __future__ import annotations

from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

from prunelab.data.base import ImageDataModule


def choice(group: str, default: str = "custom") -> str:
    """The option chosen for a config group in this Hydra job (e.g. model -> 'simplecnn')."""
    if HydraConfig.initialized():
        value = HydraConfig.get().runtime.choices.get(group)
        if value is not None:
            return str(value)
    return default


def build_datamodule(cfg: DictConfig, stage: str | None = None) -> ImageDataModule:
    """Instantiate, prepare and set up the configured DataModule (for `stage`: "test" when
    only the test split is used)."""
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup(stage)
    return dm


def data_spec(dm: ImageDataModule) -> dict[str, Any]:
    """What a net needs to know about its data (also stored with every saved model)."""
    return {
        "in_shape": list(dm.in_shape),
        "num_classes": int(dm.num_classes),
        "mean": list(dm.mean),
        "std": list(dm.std),
        "class_names": list(dm.class_names),
    }


def build_net(model_cfg: DictConfig | dict, spec: dict[str, Any]) -> nn.Module:
    """Instantiate an architecture for data described by `spec` (see data_spec)."""
    return instantiate(
        model_cfg,
        in_shape=tuple(spec["in_shape"]),
        num_classes=spec["num_classes"],
        mean=tuple(spec["mean"]),
        std=tuple(spec["std"]),
        _convert_="all",
    )


def build_saved_net(
    model_cfg: DictConfig | dict, spec: dict[str, Any], state_dict: dict
) -> nn.Module:
    """build_net resized to the layer shapes of `state_dict` (structured pruning), then loaded."""
    # Imported here: prunelab.pruning imports this module (rewind.py); avoid the cycle.
    from prunelab.pruning.shapes import conform

    net = conform(build_net(model_cfg, spec), state_dict)
    net.load_state_dict(state_dict)
    return net
