"""Overrides checked against the shape of the shipped config: types, additions and removals.

Hydra composes plain YAML without types: `eval.fold_batchnorm=off` sets the string 'off' (true
to Python), `attack.fgsm_eps=0.1` a number where a list is read, `+finetune.max_epoch=3` a key
nothing reads, `+model.hiden=64` an argument SimpleCNN does not take (the job failed minutes
later), `+trainer.max_epochs=3` a key the pipeline sets itself. Each would run with a value the
user did not mean.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

from prunelab.errors import PrunelabError
from prunelab.validate import WHOLE

ABSENT = object()
# Mappings whose entries are the user's to add (a deployment profile of their own).
OPEN = ("report.profiles",)
# Lists where null means something: every class folder, the dataset's own statistics, no
# rewinding states kept.
NULLABLE_LISTS = ("data.classes", "data.mean", "data.std", "baseline.rewind_epochs")
# Keys the pipeline sets itself, overriding the config's value without a word (prunelab.pipeline
# _trainer and finetune, build.build_net, tracking.Tracker): who sets them, what to use instead.
_NET = "the pipeline passes every net its data's in_shape, num_classes, mean and std (data=...)"
_RUN_ID = (
    "the pipeline derives each job's W&B run id from its folder and settings, so a rerun of "
    "the job continues its own run (logger.wandb.name names it)"
)
SET_BY_PIPELINE = {
    "trainer.max_epochs": "the pipeline sets it for each training stage: set "
    "baseline.max_epochs or finetune.max_epochs instead",
    "trainer.callbacks": "the pipeline sets each training stage's callbacks (checkpoints, "
    "early stopping, pruning); progress_bar.* configures the progress bar",
    "trainer.logger": "the pipeline passes the loggers of the logger group: choose logger=csv "
    "or logger=default, or set logger.wandb.* or logger.csv.*",
    "trainer.default_root_dir": "the pipeline sets it to each job's folder: set hydra.run.dir "
    "or hydra.sweep.dir instead",
    "logger.wandb.id": _RUN_ID,
    "logger.wandb.version": _RUN_ID,  # WandbLogger's other name for the run id
    "logger.wandb.resume": "the pipeline sets resume=allow with a run id derived from each "
    "job's folder and settings, so a rerun of the job continues its own run",
    "pruning.rewind_dir": "the pipeline sets it to the baseline cache's rewind folder (the "
    "states baseline.rewind_epochs lists): set paths.cache_dir to move the cache",
    "model.in_shape": _NET,
    "model.num_classes": _NET,
    "model.mean": _NET,
    "model.std": _NET,
}
# Keys of one method that copy a top-level key ("${seed}"): (key, the method's target) -> (that
# key, why, what to set instead; {value} is the override's).
LOTTERY = "prunelab.pruning.LotteryRewinding"
FOLLOWS = {
    ("pruning.seed", LOTTERY): (
        "seed",
        "rewinding to epoch 0 rebuilds the baseline's initialisation from it (where "
        "baseline.rewind_epochs keeps no epoch 0), and another value's is not the baseline's",
        "seed={value}",
    ),
    # Keys below pruning.model are unknown keys to the checks, which name model.<key>.
    ("pruning.model", LOTTERY): (
        "model",
        "pruning=lottery rebuilds the baseline's initialisation from it",
        "model=... or model.<key>=...",
    ),
}
# Nodes the launch checks build (validate.check_config, check_pruning): a wrong argument is
# named by their own constructor there.
BUILT = ("pruning", "baseline.optimizer", "finetune.optimizer")
# Hydra's keys beside a `_target_`, read by instantiate itself.
HYDRA_KEYS = ("_args_", "_recursive_", "_convert_", "_partial_")
# Classes whose **kwargs go to a function rather than to their base class's constructor.
KWARGS_TO = {"lightning.pytorch.loggers.wandb.WandbLogger": "wandb.init"}


def _walk(tree: Any, key: str) -> tuple[int | None, Any]:
    """How far dotted `key` reaches into `tree`: the index of its first missing part (None when
    all are there) and the node reached."""
    node = tree
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            return i, node
        node = node[part]
    return None, node


def lookup(tree: Any, key: str) -> Any:
    """The value at dotted `key` in a plain container, or ABSENT."""
    missing, node = _walk(tree, key)
    return node if missing is None else ABSENT


def first_missing(tree: Any, key: str) -> tuple[int, dict] | None:
    """Where dotted `key` leaves `tree`: the index of its first missing part and the mapping
    that lacks it ({} below a plain value); None when `key` is there."""
    missing, node = _walk(tree, key)
    if missing is None:
        return None
    return missing, node if isinstance(node, dict) else {}


def is_argument(tree: Any, key: str) -> bool:
    """True when `key` is an argument of a node built by instantiate (a `_target_` beside it)."""
    parent, _, name = key.rpartition(".")
    node = lookup(tree, parent) if parent else tree
    return isinstance(node, dict) and "_target_" in node and name != "_target_"


def is_open(key: str) -> bool:
    """True when `key` lies inside a mapping whose entries the user may add or remove."""
    return any(key.startswith(f"{prefix}.") for prefix in OPEN)


def check_type(key: str, value: Any, default: Any) -> None:
    """`value` must be of the kind the shipped config's `default` is: bool, number or list."""
    if isinstance(default, str) and default.strip() == "${sparsity}":
        raise PrunelabError(
            f"{key} follows sparsity: set sparsity={value} instead (job folders, results.json "
            "and the report name the sparsity)"
        )
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PrunelabError(f"{key} must be true or false, got {value!r}")
    elif isinstance(default, (int, float)):
        nullable = WHOLE.get(key, (0, False))[1]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number or (value is None and nullable)):
            rule = "a number or null" if nullable else "a number"
            raise PrunelabError(f"{key} must be {rule}, got {value!r}")
    elif isinstance(default, list) and not isinstance(value, list):
        if value is None and key in NULLABLE_LISTS:
            return
        rule = "a list or null" if key in NULLABLE_LISTS else "a list"
        raise PrunelabError(f"{key} must be {rule} ({key}=[a,b,...]), got {value!r}")


def _keywords(call: Any) -> tuple[list[str], bool] | None:
    """The arguments `call` takes by name, and whether it takes any name (**kwargs); None
    when its signature cannot be read."""
    try:
        params = list(inspect.signature(call).parameters.values())
    except (TypeError, ValueError):
        return None
    named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in params if p.kind in named], any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in params
    )


def takes(target: str) -> tuple[list[str], bool] | None:
    """The arguments `target` (a class or function, imported) takes by name, and whether it
    may take others too: a **kwargs followed up the class's bases to where it ends, open
    where it ends in one that cannot be followed. None when `target` cannot be read
    (check_targets names a target that cannot be imported)."""
    from hydra.utils import get_object

    try:
        found = get_object(target)
    except Exception:  # noqa: BLE001 - any import failure: check_targets says so
        return None
    if not isinstance(found, type):
        return _keywords(found)
    names: list[str] = []
    inits = [c for c in found.__mro__ if "__init__" in vars(c)]
    for i, cls in enumerate(inits):
        if cls is object:  # a **kwargs passed on to nothing readable (or no __init__ at all)
            return names, i > 0
        own = _keywords(cls.__init__)
        if own is None:
            return names, True
        names += [n for n in own[0][1:] if n not in names]  # [0]: self
        if not own[1]:
            return names, False
        forwarded = KWARGS_TO.get(f"{cls.__module__}.{cls.__qualname__}")
        if forwarded is not None:
            further = takes(forwarded)
            if further is None:
                return names, True
            return names + [n for n in further[0] if n not in names], further[1]
    return names, True


def check_argument(key: str, target: Any) -> None:
    """`+key=...` under a node built by instantiate: its `target` must take that argument."""
    parent, _, name = key.rpartition(".")
    if name in HYDRA_KEYS or parent in BUILT or not isinstance(target, str) or "${" in target:
        return
    found = takes(target)
    if found is None or name in found[0] or found[1]:
        return
    close = difflib.get_close_matches(name, found[0], n=1)
    near = f"{parent}.{close[0]}" if close else ""
    hint = f"; did you mean '{near}'?" if close else ""
    if near in SET_BY_PIPELINE:  # +trainer.max_epoch: say where epochs are set instead
        hint = f"; nor can '{near}' be set: {SET_BY_PIPELINE[near]}"
    raise PrunelabError(f"unknown config key '{key}' ({target} takes no argument '{name}'{hint})")


def check_added(key: str, default: Any, target: Any = None) -> None:
    """`+key=...` may add an argument its constructor takes to a constructor's node, or an
    entry to a user mapping, nothing else. `target`: the node's `_target_` where the command
    line sets it (else the one in `default`)."""
    missing = first_missing(default, key)
    if missing is None or is_open(key):
        return
    if is_argument(default, key):
        parent = key.rpartition(".")[0]
        node = lookup(default, parent) if parent else default
        check_argument(key, node["_target_"] if target is None else target)
        return
    depth, level = missing
    parts = key.split(".")
    close = difflib.get_close_matches(parts[depth], [str(k) for k in level], n=1)
    hint = f"; did you mean '{'.'.join([*parts[:depth], close[0]])}'?" if close else ""
    raise PrunelabError(
        f"unknown config key '{'.'.join(parts[: depth + 1])}' (nothing reads it{hint})"
    )


def check_removed(key: str, tree: Any) -> None:
    """`~key` may drop a constructor's argument (its default applies) or a user mapping's entry."""
    if key == "experiment" or is_argument(tree, key) or is_open(key):
        return
    raise PrunelabError(f"cannot remove '{key}': prunelab reads it (set a value instead)")


def check_shape(overrides: list, values: list[list], default: Any) -> None:
    """Check each override against `default`, the shipped config with the user's group choices
    (a plain container): value types, `+key` additions, `~key` removals.

    `values[i]`: the values override i stands for (each of a sweep).
    """
    given = {
        o.key_or_group: each
        for o, each in zip(overrides, values, strict=True)
        if o.key_or_group.endswith("._target_") and not o.is_delete()
    }
    for override, each in zip(overrides, values, strict=True):
        key = override.key_or_group
        if key.startswith("hydra.") or "/" in key:
            continue
        found = lookup(default, key)
        if override.is_delete():
            check_removed(key, default)
            continue
        if key in SET_BY_PIPELINE:
            raise PrunelabError(f"cannot set {key}: {SET_BY_PIPELINE[key]}")
        if found is ABSENT:
            if override.is_add() or override.is_force_add():
                # A target the command line sets (model._target_=...): each value's arguments.
                for target in given.get(f"{key.rpartition('.')[0]}._target_", [None]):
                    check_added(key, default, target)
        else:
            target = lookup(default, f"{key.rpartition('.')[0]}._target_")
            source, why, instead = FOLLOWS.get((key, target), (None, None, None))
            if source is not None and found == f"${{{source}}}":
                raise PrunelabError(
                    f"{key} follows {source}: {why}; set {instead.format(value=each[0])} instead "
                    "(a baseline of its own)"
                )
            for value in each:
                check_type(key, value, found)
