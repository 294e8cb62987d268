"""Checks on where a job runs: devices, accelerator, precision, the launcher's job count.

Names alone before any job starts (a cluster launcher starts jobs on other machines): `here`
False; whether this machine has the device once the job runs (validate.check_before_training).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prunelab.errors import PrunelabError

if TYPE_CHECKING:  # omegaconf loads lazily: the command-line checks run before it
    from omegaconf import DictConfig

ONE_DEVICE = (1, "1")


def check_devices(key: str, value: object) -> None:
    """One device and one node per job: the job is not written for multi-process strategies.

    Under DDP every rank would run the whole job (cache lock, evaluation, results.json and a W&B
    run each); a net this small gains nothing from it. Jobs run in parallel instead.
    """
    single = value in ONE_DEVICE or isinstance(value, (list, tuple)) and len(value) == 1
    if not single or isinstance(value, bool):
        raise PrunelabError(
            f"{key} must be 1, got {value!r}: a prunelab job runs on one device; to use several "
            "GPUs, run jobs side by side (hydra/launcher=joblib, or submitit_slurm with one GPU "
            "per job)"
        )


def check_device(key: str, name: object, here: bool = True) -> None:
    """`name` is auto, or a torch device (that this machine has, where `here`: cuda without a
    GPU is refused)."""
    import torch

    if name in (None, "auto"):
        return
    try:
        device = torch.device(str(name))
    except (RuntimeError, ValueError):
        raise PrunelabError(f"{key} must be auto, cpu, cuda or cuda:N, got {name!r}") from None
    if device.type == "cpu" or not here:
        return
    backend = getattr(torch, device.type, None)  # torch.cuda, torch.mps, torch.xpu, ...
    available = getattr(backend, "is_available", lambda: False)()
    count = getattr(backend, "device_count", lambda: 1)() if available else 0
    if not available:
        raise PrunelabError(f"{key}={name} but this machine has no {device.type} device; use auto")
    if device.index is not None and device.index >= count:
        raise PrunelabError(
            f"{key}={name} but this machine has {count} {device.type} device(s) "
            f"({device.type}:0..{device.type}:{count - 1})"
        )


def check_launcher(cfg: DictConfig) -> None:
    """The launcher's job count (`hydra/launcher=joblib`): joblib refuses 0 only once the sweep
    folder exists, in a traceback."""
    from omegaconf import OmegaConf

    n_jobs = OmegaConf.select(cfg, "hydra.launcher.n_jobs", default=None)
    if n_jobs is not None and (not isinstance(n_jobs, int) or n_jobs == 0):
        raise PrunelabError(
            f"hydra.launcher.n_jobs must be a whole number other than 0 (the jobs run side by "
            f"side; -1: one per core), got {n_jobs!r}"
        )


def check_accelerator(value: object, here: bool = True) -> None:
    """`trainer.accelerator`: one Lightning knows, and (where `here`) a GPU only where this
    machine has one."""
    import torch
    from lightning.pytorch.accelerators import AcceleratorRegistry

    if not isinstance(value, str):
        return  # an Accelerator built from config: Lightning checks it
    known = sorted({"auto", "gpu", *AcceleratorRegistry.available_accelerators()})
    if value not in known:
        raise PrunelabError(f"trainer.accelerator must be one of {', '.join(known)}, got {value!r}")
    available = {"gpu": torch.cuda.is_available, "cuda": torch.cuda.is_available,
                 "mps": torch.backends.mps.is_available}  # fmt: skip
    if here and value in available and not available[value]():
        raise PrunelabError(
            f"trainer.accelerator={value} but this machine has no {value} device; use auto"
        )


def check_precision(value: object, accelerator: object, here: bool = True) -> None:
    """`trainer.precision`: a value Lightning takes, and (where `here`) no fp16 autocast on a
    CPU, which Lightning turns into bf16 with a warning while config.json still says 16."""
    import typing

    import torch

    try:
        from lightning.fabric.connector import _PRECISION_INPUT
    except ImportError:  # a Lightning that moved it: it checks the value itself
        return
    # Lightning lists 64, 32 and 16 both as ints and as strings: each name once.
    known = list(
        dict.fromkeys(
            str(v) for part in typing.get_args(_PRECISION_INPUT) for v in typing.get_args(part)
        )
    )
    if str(value) not in known:
        raise PrunelabError(f"trainer.precision must be one of {', '.join(known)}, got {value!r}")
    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    if here and str(value) in ("16", "16-mixed") and not gpu:
        raise PrunelabError(
            f"trainer.precision={value} (fp16 mixed precision) needs a GPU; on this CPU use "
            "bf16-mixed or 32-true"
        )
