"""Checks on user input that run before any data is loaded or any training starts."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prunelab.errors import PrunelabError, instantiation_message
from prunelab.machine_checks import (
    check_accelerator,
    check_device,
    check_devices,
    check_precision,
)

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
        # 50 meant 50 %? The fraction is what the study and every key use.
        hint = (
            f" (a fraction: {number / 100:g} for {number:g} %)"
            if number.is_integer() and 1 < number <= 100
            else ""
        )
        raise PrunelabError(f"sparsity must be in [0, 1){hint}, got {value!r}")
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
    "data.shuffle_seed": (0, False),  # ${seed} by default: the training order
    "data.image_size": (1, False),  # the models name their own, larger limits (SimpleCNN's pools)
    "baseline.max_epochs": (1, False),
    "baseline.patience": (1, False),
    "finetune.max_epochs": (1, False),
    "attack.n_images": (1, True),
    "attack.seed": (0, False),
    "attack.batch_size": (1, False),
    "attack.pgd.steps": (1, False),
    "attack.curve.steps": (1, False),
    "attack.targeted_class": (0, True),
    "pruning.rewind_epoch": (0, False),
    "eval.latency.batch": (1, False),
    "eval.latency.warmup": (0, False),
    "eval.latency.repeats_b1": (1, False),
    "eval.latency.repeats_bN": (1, False),
    "eval.latency.threads": (1, True),
    "report.dpi": (1, False),
    "progress_bar.refresh_rate": (0, False),  # 0: no bar (Lightning's rule)
}
NONNEGATIVE = ("baseline.optimizer.lr", "finetune.optimizer.lr", "report.speedup_tolerance",
               "baseline.optimizer.weight_decay", "finetune.optimizer.weight_decay")  # fmt: skip
# Attack step sizes: a zero step leaves PGD at its random start, a silently wrong curve.
POSITIVE = ("attack.pgd.alpha", "attack.curve.alpha_factor")
SCHEDULERS = ("cosine", None)  # prunelab.module.Classifier's learning-rate schedules
# Deployment profiles (report.profiles.<name>): the report's advice reads these fields only.
PREFER = ("accuracy", "latency", "size")
PROFILE_LIMITS = ("max_latency_ms", "min_latency_ms", "max_size_mb")
# L-inf radii on images in [0, 1]: a radius above 1 (255/255) lets the attack set any image.
EPS_HIGH = {"attack.pgd.eps": 1, "attack.fgsm_eps": 1, "attack.curve.eps_255": 255}
# What wandb 0.31's Settings.mode accepts; anything else is a multi-line pydantic error later.
WANDB_MODES = ("online", "offline", "disabled", "shared", "dryrun", "run")
# The profiler names Lightning's Trainer(profiler=...) takes as a string.
PROFILERS = ("simple", "advanced", "pytorch", "xla")
SEED_LIMIT = 2**32  # numpy's and Lightning's seeds are 32-bit


def is_number(value: object) -> bool:
    """True for an int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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


def check_number(
    key: str, value: object, high: float | None = None, positive: bool = False
) -> None:
    """`value` must be a finite number >= 0 (> 0 if `positive`; <= `high` where given)."""
    ok = is_number(value)
    if not ok or not math.isfinite(value) or value < 0 or (positive and value == 0):  # type: ignore[arg-type]
        ok = False
    elif high is not None and value > high:  # type: ignore[operator]
        ok = False
    if not ok:
        rule = ("> 0" if positive else ">= 0") if high is None else f"in [0, {high}]"
        raise PrunelabError(f"{key} must be a number {rule}, got {value!r}")


def check_profiles(key: str, profiles: object) -> None:
    """Deployment profiles: a mapping of name -> {description, prefer, limits (numbers >= 0)}."""
    if profiles is None:
        return
    if not isinstance(profiles, dict):
        raise PrunelabError(f"{key} must be a mapping of profile names to limits, got {profiles!r}")
    fields = ("description", "prefer", *PROFILE_LIMITS)
    for name, spec in profiles.items():
        where = f"{key}.{name}"
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise PrunelabError(f"{where} must be a mapping (prefer, limits), got {spec!r}")
        for field, value in spec.items():
            if field not in fields:
                close = difflib.get_close_matches(str(field), fields, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; known: {', '.join(fields)}"
                raise PrunelabError(f"unknown profile setting '{where}.{field}'{hint}")
            if field in PROFILE_LIMITS and value is not None:
                check_number(f"{where}.{field}", value)
        low, high = spec.get("min_latency_ms"), spec.get("max_latency_ms")
        if low is not None and high is not None and low > high:
            raise PrunelabError(
                f"{where}.min_latency_ms ({low}) is above {where}.max_latency_ms ({high}): "
                "no latency fits"
            )
        if spec.get("prefer", "accuracy") not in PREFER:
            raise PrunelabError(
                f"{where}.prefer must be one of {', '.join(PREFER)}, got {spec['prefer']!r}"
            )


def check_classes(key: str, value: object) -> None:
    """Class folder names: null (every folder found) or at least 2 distinct names."""
    if value is None:
        return
    # A ListConfig when Hydra instantiates the data module: any sequence but a string.
    names = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if names is None or not all(isinstance(n, str) and n for n in names):
        if names and any(isinstance(n, int | float) and not isinstance(n, bool) for n in names):
            # Hydra reads [1,2] as numbers (and 01 as 1): folder names must be quoted.
            quoted = ",".join(f'"{n}"' for n in names)
            raise PrunelabError(
                f"{key} names folders by number, got {value!r}; quote them: '{key}=[{quoted}]'"
            )
        raise PrunelabError(f"{key} must be a list of class folder names or null, got {value!r}")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PrunelabError(f"{key} names {', '.join(map(repr, twice))} more than once")
    if len(names) < 2:
        raise PrunelabError(
            f"{key} must name at least 2 class folders (null = every folder found), got {names}"
        )


def check_channel_stats(key: str, value: object, channels: int, positive: bool) -> None:
    """Per-channel statistics: null (the dataset's default) or one number per channel."""
    if value is None:
        return
    seq = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    ok = seq is not None and len(seq) == channels
    ok = ok and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in seq  # type: ignore[union-attr]
    )
    if ok and positive:
        ok = all(v > 0 for v in seq)  # type: ignore[union-attr]
    if not ok:
        what = "positive numbers" if positive else "numbers"
        raise PrunelabError(
            f"{key} must be null or {channels} {what} (one per channel), got {value!r}"
        )


def check_wandb_mode(key: str, value: object) -> None:
    """A W&B mode wandb itself accepts."""
    if value not in WANDB_MODES:
        raise PrunelabError(f"{key} must be one of {', '.join(WANDB_MODES)}, got {value!r}")


def check_value(key: str, value: object) -> None:
    """Check one config value if `key` is a checked knob (sparsity included)."""
    if key == "sparsity":
        check_sparsity(value)
    elif key in WHOLE:
        check_whole(key, value, *WHOLE[key])
    elif key in NONNEGATIVE or key in POSITIVE:
        check_number(key, value, positive=key in POSITIVE)
    elif key in ("baseline.scheduler", "finetune.scheduler") and value not in SCHEDULERS:
        raise PrunelabError(f"{key} must be cosine or null (no schedule), got {value!r}")
    elif key == "report.profiles":
        check_profiles(key, value)
    elif key in ("trainer.devices", "trainer.num_nodes"):
        check_devices(key, value)
    elif key in EPS_HIGH:
        radii = value if isinstance(value, (list, tuple)) else [value]
        for eps in radii:
            check_number(key, eps, EPS_HIGH[key])
        # Each radius names its results keys (robust/fgsm_acc@0.03): one given twice would be
        # attacked twice for one key.
        names = [f"{float(eps):g}" for eps in radii]
        twice = sorted({n for n in names if names.count(n) > 1}, key=names.index)
        if twice:
            raise PrunelabError(f"{key} lists {', '.join(twice)} more than once; give each once")
    elif key == "data.classes":
        check_classes(key, value)
    elif key in ("data.mean", "data.std"):  # the image-folder modules, RGB
        check_channel_stats(key, value, 3, positive=key == "data.std")
    elif key == "logger.wandb.mode":
        check_wandb_mode(key, value)
    elif key == "trainer.deterministic" and not (value in (True, False) or value == "warn"):
        # Lightning takes any other string as true: `off` would switch determinism on.
        raise PrunelabError(f"{key} must be true, false or warn, got {value!r}")
    elif key == "trainer.profiler" and isinstance(value, str) and value not in PROFILERS:
        raise PrunelabError(f"{key} must be one of {', '.join(PROFILERS)}, got {value!r}")
    elif key == "trainer.gradient_clip_val" and value is not None:
        check_number(key, value)
    elif key == "progress_bar.lines" and value not in (None, True, False):
        raise PrunelabError(f"{key} must be true, false or null, got {value!r}")
    elif key == "baseline.rewind_epochs":
        listed = isinstance(value, (list, tuple)) and all(is_whole(v, 0) for v in value)
        if value is not None and not listed:
            raise PrunelabError(
                f"{key} must be null or a list of whole numbers >= 0 (epochs), got {value!r}"
            )


def present(cfg: DictConfig, keys: Sequence[str]) -> Iterator[tuple[str, object]]:
    """(key, plain value) for each of `keys` the config has (a custom module may lack some)."""
    from omegaconf import OmegaConf

    for key in keys:
        value = OmegaConf.select(cfg, key, default=KeyError)
        if value is KeyError:
            continue
        if OmegaConf.is_config(value):
            value = OmegaConf.to_container(value, resolve=True)
        yield key, value


def check_config(cfg: DictConfig, training: bool = True) -> None:
    """Raise PrunelabError for the first bad value of a composed job config (not `training`:
    an evaluation, which shows no training progress bar, so a finished job's bar settings,
    which earlier versions let through, do not stop it)."""
    from omegaconf import OmegaConf

    keys = ["sparsity", *WHOLE, *NONNEGATIVE, *POSITIVE, *EPS_HIGH, "trainer.devices",
            "trainer.num_nodes", "data.classes", "data.mean", "data.std", "baseline.scheduler",
            "finetune.scheduler", "report.profiles", "progress_bar.lines",
            "baseline.rewind_epochs", "trainer.deterministic", "trainer.profiler",
            "trainer.gradient_clip_val"]  # fmt: skip
    if not training:
        keys = [k for k in keys if not k.startswith("progress_bar.")]
    for key, value in present(cfg, keys):
        check_value(key, value)
    # null switches W&B off (logger=csv); the mode may come from $WANDB_MODE.
    mode = OmegaConf.select(cfg, "logger.wandb.mode", default=None)
    if mode is not None:
        raw = OmegaConf.to_container(cfg.logger.wandb, resolve=False).get("mode")
        key = "logger.wandb.mode" + (" (from $WANDB_MODE)" if "WANDB_MODE" in str(raw) else "")
        check_wandb_mode(key, mode)
    check_model(cfg)
    check_rewind(cfg)
    if training:
        check_validates(cfg)
    # Device names only: whether the device exists is the job's machine's to say (a cluster
    # launcher starts jobs elsewhere), checked by check_before_training.
    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    check_accelerator(accelerator, here=False)
    check_precision(
        OmegaConf.select(cfg, "trainer.precision", default="32-true"), accelerator, here=False
    )
    check_device("eval.device", OmegaConf.select(cfg, "eval.device", default=None), here=False)
    for stage in ("baseline", "finetune"):
        check_optimizer(f"{stage}.optimizer", OmegaConf.select(cfg, f"{stage}.optimizer"))


def check_validates(cfg: DictConfig) -> None:
    """The baseline stops early on validation accuracy and keeps its best validated epoch: a
    trainer that never validates it trained every epoch and then had no epoch to keep."""
    from omegaconf import OmegaConf

    limit = OmegaConf.select(cfg, "trainer.limit_val_batches", default=None)
    if is_number(limit) and limit == 0:
        raise PrunelabError(
            f"trainer.limit_val_batches={limit} turns validation off, and the baseline needs it "
            "(early stopping, its best epoch): leave it out, or set a share in (0, 1] or a "
            "batch count >= 1"
        )
    every = OmegaConf.select(cfg, "trainer.check_val_every_n_epoch", default=None)
    epochs = OmegaConf.select(cfg, "baseline.max_epochs", default=None)
    if is_whole(every, 1) and is_whole(epochs, 1) and every > epochs:
        raise PrunelabError(
            f"trainer.check_val_every_n_epoch={every} validates the baseline after none of its "
            f"baseline.max_epochs={epochs} epochs, and it needs validation (early stopping, "
            f"its best epoch): set it to at most {epochs}"
        )


def check_pruning(cfg: DictConfig) -> None:
    """Build the pruning method as the job will: its own checks (pruning.every=0,
    pruning.end=1.5) then fail before any job starts."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    node = OmegaConf.select(cfg, "pruning", default=None)
    if not OmegaConf.is_dict(node) or "_target_" not in node:
        return
    try:
        method = instantiate(node)
    except InstantiationException as err:
        raise PrunelabError(instantiation_message(err)) from None
    check_shapes(cfg, method)


def check_shapes(cfg: DictConfig, method: object) -> None:
    """A sparsity that would prune every weight, or empty a layer (layer-wise, structured), or
    a wrong structured pruning.in_shape: the job refuses it once started, and a sweep's other
    jobs would run. Known from the net's shapes alone: the net is built on the meta device (no
    weights drawn), its data's shape read from the data module's settings (no images load)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    sparsity = OmegaConf.select(cfg, "sparsity", default=None)
    check_net = getattr(method, "check_net", None)  # a custom callback may have none
    if check_net is None or not sparsity:
        return
    from prunelab.build import build_net, data_spec

    try:
        spec = data_spec(instantiate(cfg.data))
        with torch.device("meta"):
            net = build_net(cfg.model, spec)
    except Exception:  # a data folder or a net of one's own this machine cannot read: the job's
        return
    if isinstance(net, torch.nn.Module):  # a model._target_ of one's own may build anything
        check_net(net, in_shape=spec["in_shape"])


def check_model(cfg: DictConfig) -> None:
    """The shipped nets' settings, before the data loads (the nets check them again when built,
    7 s later); a model of one's own (`model._target_`) keeps its own rules."""
    from omegaconf import OmegaConf

    if not str(OmegaConf.select(cfg, "model._target_", default="")).startswith("prunelab.models"):
        return
    from prunelab.models.layers import check_sizes

    keys = ("model.hidden", "model.blocks", "model.stem_stride", "model.dropout", "model.widths")
    for key, value in present(cfg, keys):
        if key == "model.dropout":
            check_number(key, value, 1)  # a probability
        elif key == "model.widths":
            check_sizes(value if isinstance(value, list) else [value])
        else:
            check_whole(key, value, 1, nullable=False)


def check_rewind(cfg: DictConfig) -> None:
    """pruning=lottery with rewind_epoch k >= 1 needs the baseline to keep its state at epoch k.

    Epoch 0 (the initialisation) is rebuilt from the seed; later states exist only where
    baseline.rewind_epochs lists them, which would otherwise fail after the baseline trained.
    """
    from omegaconf import OmegaConf

    epoch = OmegaConf.select(cfg, "pruning.rewind_epoch", default=None)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        return
    kept = OmegaConf.select(cfg, "baseline.rewind_epochs", default=None)
    kept = OmegaConf.to_container(kept) if OmegaConf.is_config(kept) else kept
    if not isinstance(kept, (list, tuple)) or epoch not in kept:
        raise PrunelabError(
            f"pruning.rewind_epoch={epoch} needs baseline.rewind_epochs to include {epoch} "
            f"(it is {kept if kept is not None else 'null'})"
        )
    epochs = OmegaConf.select(cfg, "baseline.max_epochs", default=None)
    if isinstance(epochs, int) and epoch > epochs:
        raise PrunelabError(
            f"pruning.rewind_epoch={epoch} needs baseline.max_epochs >= {epoch} (it is {epochs})"
        )


def check_before_training(cfg: DictConfig, spec: dict) -> None:
    """Checks that need the data's spec (see build.data_spec) or the job's own machine; run
    before any training."""
    from omegaconf import OmegaConf

    accelerator = OmegaConf.select(cfg, "trainer.accelerator", default="auto")
    check_accelerator(accelerator)
    check_precision(OmegaConf.select(cfg, "trainer.precision", default="32-true"), accelerator)
    check_device("eval.device", OmegaConf.select(cfg, "eval.device", default=None))
    target = OmegaConf.select(cfg, "attack.targeted_class", default=None)
    classes = int(spec["num_classes"])
    if target is not None and not 0 <= target < classes:
        raise PrunelabError(
            f"attack.targeted_class must be in 0..{classes - 1} (the data has {classes} "
            f"classes), got {target}"
        )


def check_optimizer(key: str, node: object) -> None:
    """Build the optimizer on one dummy parameter: an argument it does not take (momentum for
    Adam) or a value it refuses fails now, not after the baseline's training."""
    if node is None:
        return
    import torch
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        make = instantiate(node)
    except InstantiationException:
        return  # a target that does not import: check_targets names it
    try:
        make([torch.nn.Parameter(torch.zeros(1))])
    except Exception as err:  # whatever stops it here would stop the job after training
        what = getattr(node, "_target_", "?")
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise PrunelabError(f"{key} ({what}): {type(err).__name__}: {first}") from None
