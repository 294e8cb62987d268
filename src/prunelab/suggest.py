"""What a misspelt or misplaced config key most likely means, from the config it composes to."""

from __future__ import annotations

import difflib
from typing import Any

from hydra.errors import HydraException

from prunelab.shape import first_missing, lookup
from prunelab.validate import CONF_DIR


def compose_config(overrides: list[str]) -> Any:
    """The job config (hydra node included) that `overrides` give, composed from conf/."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=overrides, return_hydra_config=True)
    finally:
        GlobalHydra.instance().clear()


def _tree(overrides: list[str]) -> dict:
    """The config `overrides` compose, as a plain container ({} when it does not compose)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(compose_config(overrides), resolve=False)  # type: ignore[return-value]
    except (OmegaConfBaseException, HydraException):
        return {}


def suggest(key: str, overrides: list[str], tree: dict | None = None) -> list[str] | None:
    """The keys a misspelt `key` most likely means in the config `overrides` compose (or
    `tree`): [] for no close match, None when `key` exists after all."""
    node = _tree(overrides) if tree is None else tree
    missing = first_missing(node, key)
    if missing is None:
        return None
    i, level = missing
    parts = key.split(".")
    close = difflib.get_close_matches(parts[i], [str(k) for k in level], n=1)
    if close:
        fixed = ".".join([*parts[:i], close[0], *parts[i + 1 :]])
        # Only a key that is there (trainr.max_epochs: trainer has no max_epochs either).
        further = suggest(fixed, overrides, node)
        return [fixed] if further is None else further
    # A level left out (finetune.lr for finetune.optimizer.lr): the keys below it.
    rest = tuple(parts[i:])
    deeper = [p for p in _paths(level) if len(p) > len(rest) and p[-len(rest) :] == rest]
    return [".".join([*parts[:i], *p]) for p in deeper[:3]]


def _either(keys: list[str]) -> str:
    return " or ".join(f"'{k}'" for k in keys)


def why_unknown(key: str, line: str, overrides: list[str]) -> str | None:
    """Why the override `line` of `key` finds no key in the config `overrides` compose (None
    when the key is there): a close spelling, the same name elsewhere (trainer.max_epochs:
    baseline.max_epochs, finetune.max_epochs), or how to add it."""
    tree = _tree(overrides)
    keys = suggest(key, overrides, tree)
    if keys is None:
        return None
    group = key.split(".")[0]
    chosen = _choice(tree, group)
    elsewhere = other_options(key, overrides, tree)
    exact = [o for o, found in elsewhere.items() if found is None]
    if exact:
        which = " or ".join(f"{group}={o}" for o in exact)
        return f"{key} belongs to {which}; the chosen {group}={chosen} has no such key"
    if keys:
        return f"check its spelling; did you mean {_either(keys)}?"
    close = [(o, found[0]) for o, found in elsewhere.items() if found]
    if close:
        option, fixed = close[0]
        return f"check its spelling; did you mean '{fixed}' (a key of {group}={option})?"
    parent, _, name = key.rpartition(".")
    ours = {k: v for k, v in tree.items() if k != "hydra" or key.startswith("hydra.")}
    paths = _paths(ours, depth=5)
    same = [".".join(p) for p in paths if p[-1] == name]
    if not same:  # max_epoch: a near spelling of a name set elsewhere
        near = difflib.get_close_matches(name, {p[-1] for p in paths}, n=1, cutoff=0.85)
        same = [".".join(p) for p in paths if near and p[-1] == near[0]]
    if parent and same:
        return f"{parent} has no {name}; did you mean {_either(same[:3])}?"
    node = lookup(tree, parent) if parent else None
    target = node.get("_target_") if isinstance(node, dict) else None
    if target:  # an argument the constructor may take (SGD's momentum, not Adam's)
        return (
            f"the config has no such key: check its spelling, or add it with +{line} "
            f"if {target} takes it"
        )
    return "the config has no such key: check its spelling"


def other_options(key: str, overrides: list[str], tree: dict) -> dict[str, list[str] | None]:
    """`suggest` for `key` under each other option of its config group: None where that option
    has `key` (pruning.every: gradual), else its close spellings there."""
    from prunelab.validate import options

    group = key.split(".")[0]
    chosen = _choice(tree, group)
    if "." not in key or chosen is None:
        return {}
    # The group's choice and its other keys go: those keys may not exist in another option.
    rest = [o for o in overrides if _group_of(o) != group]
    found = {}
    for option in options(group):
        if option == chosen:
            continue
        try:
            keys = suggest(key, [*rest, f"{group}={option}"])
        except Exception:  # an option that does not compose (a broken file): not a hint
            continue
        if keys is None or keys:  # one with nothing near `key` is no hint either
            found[option] = keys
    return found


def _choice(tree: dict, group: str) -> str | None:
    """The option of `group` chosen in a composed config tree (hydra.runtime.choices)."""
    return tree.get("hydra", {}).get("runtime", {}).get("choices", {}).get(group)


def _group_of(override: str) -> str:
    """The config group an override line sets or sets a key of (+pruning@x=a, model.blocks=3)."""
    return override.lstrip("+~").split("=")[0].split("@")[0].split(".")[0]


def _paths(node: dict, depth: int = 3) -> list[tuple[str, ...]]:
    """The key paths of a config tree, down to `depth` levels (top levels first)."""
    found = [(str(k),) for k in node]
    for k, v in node.items():
        if isinstance(v, dict) and depth > 1:
            found += [(str(k), *p) for p in _paths(v, depth - 1)]
    return found
