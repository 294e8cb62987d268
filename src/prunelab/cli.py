"""Command-line checks that run before Hydra and torch load: one clear line per mistake."""

from __future__ import annotations

import difflib
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import HydraException

from prunelab.errors import PrunelabError
from prunelab.shape import check_shape, first_missing
from prunelab.targets import check_targets
from prunelab.validate import (
    CELL_KEYS,
    CONF_DIR,
    check_config,
    check_option,
    check_value,
    options,
)

GROUPS = ("model", "data", "pruning", "attack", "trainer", "logger", "experiment", "hydra/launcher")


def _values(override) -> list:
    """Every value an override stands for (one, or each element of a sweep)."""
    if override.is_sweep_override():
        return list(override.sweep_iterator())
    return [override.value()]


# Folders a job writes to, with the defaults of conf/ (relative to the working directory).
WRITTEN = {"hydra.run.dir": "outputs", "hydra.sweep.dir": "multirun_sweeps",
           "paths.cache_dir": "outputs/cache"}  # fmt: skip


def check_writable(path: str) -> None:
    """`path` must be a folder we can create or write to."""
    target = Path(path).expanduser()
    probe = target
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise PrunelabError(f"cannot write to {target}: {probe} is a file, not a folder")
    try:  # os.access says yes to root even on read-only or virtual file systems: try it
        os.rmdir(tempfile.mkdtemp(dir=probe, prefix=".prunelab-probe-"))
    except OSError:
        raise PrunelabError(f"cannot write to {target}: {probe} is not writable") from None


def check_overrides(args: Sequence[str]) -> None:
    """Raise PrunelabError for a bad value, an unknown config option or key in `args`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException as err:
        cause = err.message.splitlines()[0].split(": ")[0]
        raise PrunelabError(
            f"cannot read the override '{err.override}' ({cause}): write key=value, several "
            "values as key=a,b (no spaces), a list as key=[a,b]; quote values with spaces"
        ) from None
    check_multirun(args, overrides)
    written = dict(WRITTEN)
    for override in overrides:
        key = override.key_or_group
        if override.is_delete():
            continue
        if key in written and not override.is_sweep_override():
            value = override.value()
            # Interpolated values (${now:...}) resolve later; check their fixed prefix.
            written[key] = str(value).split("${")[0] or "."
        check_swept(override)
        if key in GROUPS:
            for value in _values(override):
                if value is None:
                    known = ", ".join(options(key)) if (CONF_DIR / key).is_dir() else "..."
                    none = " (or leave it out for none)" if key == "experiment" else ""
                    raise PrunelabError(f"{key}=null: choose one of: {known}{none}")
                if (CONF_DIR / key).is_dir():
                    check_option(key, str(value))
        else:  # a bad sparsity, seed, size, ... in any value of a sweep
            for value in _values(override):
                check_value(key, value)
    for path in written.values():
        check_writable(path)
    check_composes(overrides)


def check_multirun(args: Sequence[str], overrides: list) -> None:
    """A sweep (`key=a,b`) needs -m; Hydra alone says so in six lines and exits 1."""
    multirun = any(a in ("-m", "--multirun") for a in args) or any(
        o.key_or_group == "hydra.mode" and str(o.value()) == "MULTIRUN" for o in overrides
    )
    if multirun:
        return
    for override in overrides:
        if override.is_sweep_override():
            raise PrunelabError(
                f"{override.input_line} sweeps over several values: add -m "
                "(python train.py -m ...), or write a list as key=[a,b]"
            )


def check_swept(override) -> None:
    """Only the cell keys may take several values in one sweep.

    Jobs differing in any other key would share one folder and one row of the report: the later
    would set the earlier's results aside (or overwrite them under a parallel launcher).
    """
    key = override.key_or_group
    if key in CELL_KEYS or not override.is_sweep_override():
        return
    if len({str(v) for v in _values(override)}) > 1:
        raise PrunelabError(
            f"cannot sweep {key} in one sweep: its jobs are told apart by "
            f"{', '.join(CELL_KEYS)} only; run one sweep per value of {key}, "
            "each with its own hydra.sweep.dir=..."
        )


def check_composes(overrides: list) -> None:
    """The config must compose (catches unknown keys such as `pruning.rewnd_epoch=1`)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    # One representative job: the first value of every sweep (each value was checked above).
    first = []
    for override in overrides:
        text = override.input_line
        if override.is_sweep_override():
            value = next(iter(override.sweep_string_iterator()))
            text = f"{override.get_key_element()}={value}"
        first.append(text)
    try:
        cfg = compose_config(first)
    except (OmegaConfBaseException, HydraException) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        missing = re.match(r"In '[^']+': Could not find '(.+)/([^/']+)'", lines[0] if lines else "")
        if missing:  # a typo in a group of Hydra's own (hydra/launcher=joblb)
            group, value = missing.groups()
            known = [line for line in lines[2:] if "=" not in line and ":" not in line]
            raise PrunelabError(
                f"unknown {group} '{value}'; choose one of: {', '.join(known)}"
            ) from None
        match = re.match(r"Could not override '([^']+)'", lines[0] if lines else "")
        if match:
            key = match.group(1)
            # The same config without that override: the keys a correct spelling can take.
            rest = [t for o, t in zip(overrides, first, strict=True) if o.key_or_group != key]
            hint = did_you_mean(key, rest)
            if hint is not None:
                raise PrunelabError(
                    f"unknown config key '{key}' (check its spelling{hint})"
                ) from None
        detail = "; ".join(lines[:2]) if lines else type(err).__name__
        raise PrunelabError(f"bad override: {detail}") from None
    groups = [t for o, t in zip(overrides, first, strict=True) if _is_group(o.key_or_group)]
    default = OmegaConf.to_container(compose_config(groups), resolve=False)
    check_shape(overrides, [_values(o) for o in overrides], default)
    check_config(cfg)  # values set in conf/ or an experiment file, not only on the command line
    check_targets(cfg)


def _is_group(key: str) -> bool:
    """True for a config group choice (model=..., hydra/launcher=...), not a value."""
    return key in GROUPS or "/" in key or (CONF_DIR / key).is_dir()


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


def did_you_mean(key: str, overrides: list[str]) -> str | None:
    """'; did you mean ...?' for a key missing from the config `overrides` compose, '' for no
    close match, None when `key` exists after all (the override failed for another reason)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        node: Any = OmegaConf.to_container(compose_config(overrides), resolve=False)
    except (OmegaConfBaseException, HydraException):
        return ""
    missing = first_missing(node, key)
    if missing is None:
        return None
    i, level = missing
    parts = key.split(".")
    close = difflib.get_close_matches(parts[i], [str(k) for k in level], n=1)
    if close:
        return f"; did you mean '{'.'.join([*parts[:i], close[0], *parts[i + 1 :]])}'?"
    # A level left out (finetune.lr for finetune.optimizer.lr): the keys below it.
    rest = tuple(parts[i:])
    deeper = [p for p in _paths(level) if len(p) > len(rest) and p[-len(rest) :] == rest]
    names = [f"'{'.'.join([*parts[:i], *p])}'" for p in deeper[:3]]
    return f"; did you mean {' or '.join(names)}?" if names else ""


def _paths(node: dict, depth: int = 3) -> list[tuple[str, ...]]:
    """The key paths of a config tree, down to `depth` levels (top levels first)."""
    found = [(str(k),) for k in node]
    for k, v in node.items():
        if isinstance(v, dict) and depth > 1:
            found += [(str(k), *p) for p in _paths(v, depth - 1)]
    return found


def hydra_flags() -> dict[str, object]:
    """Hydra's command-line flags (-m, --cfg, -cn, ...) and how many values each takes."""
    from hydra._internal.utils import get_args_parser

    return {
        flag: action.choices if action.nargs == "?" else action.nargs
        for action in get_args_parser()._actions
        for flag in action.option_strings
    }


def arrange(args: Sequence[str]) -> list[str]:
    """Hydra's flags (with their values) first, then the overrides, each kept in its order.

    Hydra's argument parser takes flags only before the overrides (`experiment=smoke -m
    sparsity=0.2,0.5` stops with an eight-line usage message); a token that is neither a flag
    nor an override (`sparsity=0.2, 0.5` splits in two) is one line here.
    """
    takes = hydra_flags()
    flags, overrides, last = [], [], []
    rest = list(args)
    while rest:
        token = rest.pop(0)
        if "=" in token and not token.startswith("-") or token.startswith("~"):
            overrides.append(token)
            continue
        name = token.split("=", 1)[0]
        if not token.startswith("-"):
            raise PrunelabError(
                f"'{token}' is not an override: write key=value, several values of one key as "
                "key=a,b (no spaces)"
            )
        if name not in takes:
            value = f"={rest[0]}" if rest and "=" not in rest[0] else "=..."
            raise PrunelabError(
                f"unknown option '{name}': set config values as key=value "
                f"({name.lstrip('-')}{value}); Hydra's options: python train.py --hydra-help"
            )
        wanted = takes[name]
        if (
            wanted is None
            and "=" not in token
            and (not rest or "=" in rest[0] or rest[0][:1] == "-")
        ):
            raise PrunelabError(f"option '{name}' needs a value ({name} VALUE)")
        optional = isinstance(wanted, (list, tuple))  # --info [which]
        if "=" not in token and rest and (wanted is None or optional and rest[0] in wanted):
            flags += [token, rest.pop(0)]  # --cfg job, -cn NAME, --info plugins
        elif optional and "=" not in token:
            last.append(token)  # before an override it would take the override as its value
        else:
            flags.append(token)
    return flags + overrides + last


def check_argv(args: Sequence[str]) -> list[str]:
    """`args` arranged for Hydra (see arrange) and checked (check_overrides); on a mistake one
    line on stderr and exit status 2."""
    try:
        arranged = arrange(args)
        check_overrides(arranged)
    except PrunelabError as err:
        print(f"prunelab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    return arranged
