"""Overrides checked against the shape of the shipped config: types, additions and removals.

Hydra composes plain YAML without types: `eval.fold_batchnorm=off` sets the string 'off' (true
to Python), `attack.fgsm_eps=0.1` a number where a list is read, `+finetune.max_epoch=3` a key
nothing reads. Each would run with a value the user did not mean.
"""

from __future__ import annotations

import difflib
from typing import Any

from prunelab.errors import PrunelabError
from prunelab.validate import WHOLE

ABSENT = object()
# Mappings whose entries are the user's to add (a deployment profile of their own).
OPEN = ("report.profiles",)
# Lists where null means something: every class folder, the dataset's own statistics, no
# rewinding states kept.
NULLABLE_LISTS = ("data.classes", "data.mean", "data.std", "baseline.rewind_epochs")


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


def check_added(key: str, default: Any) -> None:
    """`+key=...` may add an argument to a constructor's node or a user mapping, nothing else."""
    missing = first_missing(default, key)
    if missing is None or is_argument(default, key) or is_open(key):
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
    for override, each in zip(overrides, values, strict=True):
        key = override.key_or_group
        if key.startswith("hydra.") or "/" in key:
            continue
        found = lookup(default, key)
        if override.is_delete():
            check_removed(key, default)
        elif found is ABSENT:
            if override.is_add() or override.is_force_add():
                check_added(key, default)
        else:
            for value in each:
                check_type(key, value, found)
