"""Checks on user input that run before any data is loaded or any training starts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from prunelab.errors import PrunelabError

if TYPE_CHECKING:  # omegaconf loads lazily: the command-line checks run before it
    from omegaconf import DictConfig

# What tells the jobs of one sweep apart: their folder names (conf/hydra/default.yaml) and the
# report's grid are built from these keys only.
CELL_KEYS = ("model", "data", "pruning", "sparsity", "seed")

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def check_sparsity(value: object) -> float:
    """A sparsity must be a number in [0, 1)."""
    if isinstance(value, bool):
        raise PrunelabError(f"sparsity must be a number in [0, 1), got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise PrunelabError(f"sparsity must be a number in [0, 1), got {value!r}") from None
    if not math.isfinite(number) or not 0.0 <= number < 1.0:
        raise PrunelabError(f"sparsity must be in [0, 1), got {value!r}")
    return number


def options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The config options available in a group (`conf/<group>/*.yaml`)."""
    return sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))


def check_option(group: str, value: str, conf_dir: Path = CONF_DIR) -> str:
    """An option of a config group must exist; the error lists the choices."""
    known = options(group, conf_dir)
    if known and value not in known:
        raise PrunelabError(f"unknown {group} '{value}'; choose one of: {', '.join(known)}")
    return value


# Numeric knobs a typo can turn into a silent wrong run (data.train_size=-5 slices off the last
# 5 images; seed=abc fails deep inside). Each is checked before any data loads.
WHOLE = {  # key: smallest allowed value; None after it = null is allowed too
    "seed": (0, False),
    "data.batch_size": (1, False),
    "data.eval_batch_size": (1, False),
    "data.num_workers": (0, False),
    "data.train_size": (1, True),
    "data.val_size": (1, True),
    "data.test_size": (1, True),
    "data.split_seed": (0, False),
    "baseline.max_epochs": (1, False),
    "baseline.patience": (1, False),
    "finetune.max_epochs": (1, False),
    "attack.n_images": (1, True),
    "attack.seed": (0, False),
    "attack.batch_size": (1, False),
    "attack.pgd.steps": (1, False),
    "attack.curve.steps": (1, False),
    "attack.targeted_class": (0, True),
    "eval.latency.batch": (1, False),
    "eval.latency.warmup": (0, False),
    "eval.latency.repeats_b1": (1, False),
    "eval.latency.repeats_bN": (1, False),
    "eval.latency.threads": (1, True),
}
NONNEGATIVE = ("baseline.optimizer.lr", "finetune.optimizer.lr", "attack.pgd.eps",
               "attack.pgd.alpha", "baseline.optimizer.weight_decay",
               "finetune.optimizer.weight_decay")  # fmt: skip
EPS_LISTS = ("attack.fgsm_eps", "attack.curve.eps_255")  # lists of eps values, each >= 0
SEED_LIMIT = 2**32  # numpy's and Lightning's seeds are 32-bit


def is_whole(value: object, low: int) -> bool:
    """True for an int (not a bool) of at least `low`."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_whole(key: str, value: object, low: int, nullable: bool) -> None:
    """`value` must be a whole number >= low (or None where `nullable`)."""
    if value is None and nullable:
        return
    ok = is_whole(value, low)
    # The run seed must leave room for the fine-tune's seed + 1.
    high = SEED_LIMIT - 1 if key == "seed" else SEED_LIMIT if key.endswith("seed") else None
    if ok and high is not None:
        ok = value < high  # type: ignore[operator]
    if not ok:
        rule = f"a whole number >= {low}" + (f" and < {high}" if high else "")
        rule += " or null" if nullable else ""
        raise PrunelabError(f"{key} must be {rule}, got {value!r}")


def check_number(key: str, value: object) -> None:
    """`value` must be a finite number >= 0."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:  # type: ignore[arg-type]
        raise PrunelabError(f"{key} must be a number >= 0, got {value!r}")


def check_value(key: str, value: object) -> None:
    """Check one config value if `key` is a checked knob (sparsity included)."""
    if key == "sparsity":
        check_sparsity(value)
    elif key in WHOLE:
        check_whole(key, value, *WHOLE[key])
    elif key in NONNEGATIVE:
        check_number(key, value)
    elif key in ("trainer.devices", "trainer.num_nodes"):
        check_devices(key, value)
    elif key in EPS_LISTS:
        for eps in value if isinstance(value, (list, tuple)) else [value]:
            check_number(key, eps)


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


def check_config(cfg: DictConfig) -> None:
    """Raise PrunelabError for the first bad value of a composed job config."""
    from omegaconf import OmegaConf

    keys = ["sparsity", *WHOLE, *NONNEGATIVE, *EPS_LISTS, "trainer.devices", "trainer.num_nodes"]
    for key in keys:
        value = OmegaConf.select(cfg, key, default=KeyError)
        if value is KeyError:  # a key this config does not have (e.g. a custom data module)
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        check_value(key, value)
