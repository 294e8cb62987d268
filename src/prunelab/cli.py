"""Command-line checks that run before Hydra and torch load: one clear line per mistake."""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.errors import HydraException

from prunelab.errors import PrunelabError, stop_line, stop_status
from prunelab.flags import arrange, check_completion, check_paths, flags_of, only_hydra
from prunelab.machine_checks import check_launcher
from prunelab.presence import data_problem
from prunelab.shape import check_shape
from prunelab.suggest import compose_config, why_unknown
from prunelab.sweep_checks import (
    GROUPS,
    check_distinct,
    check_multirun,
    check_repeated,
    check_subdir,
    check_swept,
    first_value,
    is_multirun,
    listed_ranges,
    sweep_values,
)
from prunelab.sweep_dir import CLAIMED, claimed, holds_jobs, own_sweep_dir, quoted
from prunelab.targets import check_targets
from prunelab.validate import (
    CONF_DIR,
    check_config,
    check_option,
    check_pruning,
    check_value,
    options,
)

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


def check_overrides(args: Sequence[str], evaluate: bool = False, base: Sequence[str] = ()) -> Any:
    """Raise PrunelabError for a bad value, an unknown config option or key in `args`; return
    the first job's composed config (None where the keys were not checked).

    `evaluate`: the command line of prunelab.evaluate (one checkpoint, one setting).
    `base`: overrides `args` go on top of (an evaluated job's own, its data=... among them),
    so a key is checked against the groups that job chose, not the defaults; None while
    those are unknown: the values alone are checked, not the keys.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    candidates = [a for a in args if not a.startswith("-") and ("=" in a or a.startswith("~"))]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException as err:
        cause = err.message.splitlines()[0].split(": ")[0]
        if not str(err.override).isascii():  # Hydra's grammar takes only ASCII unquoted
            key, _, value = str(err.override).partition("=")
            if value.startswith("[") and value.endswith("]"):
                value = "[" + ",".join(f'"{v.strip()}"' for v in value[1:-1].split(",")) + "]"
            else:
                value = f'"{value}"'
            raise PrunelabError(
                f"cannot read the override '{err.override}' ({cause}): Hydra reads letters "
                f"beyond ASCII only in quotes: '{key}={value}'"
            ) from None
        raise PrunelabError(
            f"cannot read the override '{err.override}' ({cause}): write key=value, several "
            "values as key=a,b (no spaces), a list as key=[a,b]; quote values with spaces"
        ) from None
    keyless = next((o for o in overrides if not o.key_or_group), None)
    if keyless is not None:
        raise PrunelabError(f"'{keyless.input_line}' names no key: write key=value")
    flags = check_flags(args, overrides)
    if "shell_completion" in flags:  # install=bash: Hydra's words, not config keys
        check_completion(overrides)
        return None
    check_multirun(args, overrides, evaluate)
    check_repeated(overrides, evaluate)
    written = dict(WRITTEN)
    for override in overrides:
        key = override.key_or_group
        if override.is_delete():
            continue
        if key in written and not override.is_sweep_override():
            value = override.value()
            # Interpolated values (${now:...}) resolve later; check their fixed prefix.
            written[key] = str(value).split("${")[0] or "."
        if key in GROUPS:
            for value in sweep_values(override):
                if value is None:
                    known = ", ".join(options(key)) if (CONF_DIR / key).is_dir() else "..."
                    none = " (or leave it out for none)" if key == "experiment" else ""
                    raise PrunelabError(f"{key}=null: choose one of: {known}{none}")
                if (CONF_DIR / key).is_dir():
                    check_option(key, str(value))
        else:  # a bad sparsity, seed, size, ... in any value of a sweep
            for value in sweep_values(override):
                check_value(key, value)
    check_distinct(overrides)
    for path in written.values():
        check_writable(path)
    check_subdir(overrides)
    if base is None:
        return None
    # A sweep's datasets are looked for now, not as each job starts (after the earlier jobs'
    # training); a single job looks for its own before training anyway. Not for a launcher
    # that runs the jobs on other machines (a cluster's nodes may mount the data elsewhere).
    launchers = {str(o.value()) for o in overrides if o.key_or_group == "hydra/launcher"}
    here = launchers <= LOCAL_LAUNCHERS
    sweep = not evaluate and here and is_multirun(args, overrides) and not set(flags) & PRINT_ONLY
    cfg = check_composes(overrides, base, evaluate, data=sweep)
    for override in overrides:  # after composing: a misspelt key is named as such first
        check_swept(override)
    return cfg


def merge_overrides(first: list[str], then: list[str]) -> list[str]:
    """`first` then `then`, an override in `then` replacing one of `first` for the same key."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    later = {o.key_or_group for o in parser.parse_overrides(list(then))}
    parsed = parser.parse_overrides(list(first))
    kept = [a for a, o in zip(first, parsed, strict=True) if o.key_or_group not in later]
    return kept + list(then)


def check_composes(
    overrides: list, base: Sequence[str] = (), evaluate: bool = False, data: bool = False
) -> Any:
    """The config must compose (catches unknown keys such as `pruning.rewnd_epoch=1`) on top
    of `base` (see check_overrides), for every option a sweep picks in a config group;
    `data`: and each such job's dataset must be on disk (prunelab.presence). Returns the
    first job's config."""
    # One representative job: the first value of every sweep (each value was checked above).
    first = []
    for override in overrides:
        text = override.input_line
        if override.is_sweep_override():
            text = f"{override.get_key_element()}={first_value(override)}"
        first.append(text)
    cfg = _check_job(overrides, first, base, evaluate, data)
    # Each further option of a swept group, the rest as above: a key of one method only
    # (`-m pruning=gradual,lottery pruning.every=10`) stops lottery's jobs, which Hydra
    # composes only once the sweep runs, and then in a multi-line error. Each sparsity too: the
    # method's own checks depend on it (pruning.initial_amount=0.3 with sparsity=0.5,0.2).
    for i, override in enumerate(overrides):
        key = override.key_or_group
        if override.is_sweep_override() and (_is_group(key) or key == "sparsity"):
            for value in sweep_values(override)[1:]:
                job = [*first[:i], f"{override.get_key_element()}={value}", *first[i + 1 :]]
                _check_job(overrides, job, base, evaluate, data)
    return cfg


def _check_job(
    overrides: list, first: list[str], base: Sequence[str], evaluate: bool, data: bool = False
) -> Any:
    """check_composes for one job: `first`, one text per override, each with one value;
    returns its config."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    merged = merge_overrides(list(base), first)
    kept = merged[: len(merged) - len(first)]  # the base's overrides the command line keeps
    parsed = OverridesParser.create().parse_overrides(kept)
    kept_groups = [b for b, o in zip(kept, parsed, strict=True) if _is_group(o.key_or_group)]
    try:
        cfg = compose_config(kept + first)
    except (OmegaConfBaseException, HydraException, ValueError, TypeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        missing = re.match(r"In '[^']+': Could not find '(.+)/([^/']+)'", lines[0] if lines else "")
        if missing:  # a typo in a group of Hydra's own (hydra/launcher=joblb)
            group, value = missing.groups()
            known = [line for line in lines[2:] if "=" not in line and ":" not in line]
            raise PrunelabError(
                f"unknown {group} '{value}'; choose one of: {', '.join(known)}"
            ) from None
        twice = re.match(
            r"(?:Multiple values for (\S+)\.|(\S+) appears more than once in the final defaults)",
            lines[0] if lines else "",
        )
        added = twice and next(
            (o for o in overrides if o.is_add() and o.key_or_group == (twice[1] or twice[2])), None
        )
        if added:  # Hydra's hint ('override experiment: smoke') is defaults-list syntax
            group, value = added.key_or_group, added.input_line.split("=", 1)[1]
            raise PrunelabError(
                f"{added.input_line}: {group} is a group of the config's defaults already; "
                f"choose it with {group}={value} (no +)"
            ) from None
        match = re.match(r"Could not override '([^']+)'", lines[0] if lines else "")
        if match:
            key = match.group(1)
            # The same config without that override: the keys a correct spelling can take.
            rest = kept + [
                t for o, t in zip(overrides, first, strict=True) if o.key_or_group != key
            ]
            line = next((o.input_line for o in overrides if o.key_or_group == key), None)
            # None: Hydra named a key no override spells so (pruning@x: a package, not a key).
            why = None if line is None else why_unknown(key, line, rest)
            if why is not None:
                raise PrunelabError(f"unknown config key '{key}' ({why})") from None
        detail = "; ".join(lines[:2]) if lines else type(err).__name__
        cause = str(err.__cause__ or "").strip().splitlines()
        if len(lines) == 1 and cause:  # 'Error merging override k=v' alone did not say why
            detail += f": {cause[0]}"
        raise PrunelabError(f"bad override: {detail}") from None
    groups = kept_groups + [
        t for o, t in zip(overrides, first, strict=True) if _is_group(o.key_or_group)
    ]
    default = OmegaConf.to_container(compose_config(groups), resolve=False)
    check_shape(overrides, [sweep_values(o) for o in overrides], default)
    # Targets first: they are read from sources, while check_config builds the optimizer (torch).
    check_targets(cfg)
    # Values set in conf/ or an experiment file, not only on the command line.
    check_config(cfg, training=not evaluate)
    if not evaluate:
        check_launcher(cfg)
    # The method's own checks (pruning.* cannot be swept: check_swept). Sparsity and seed feed
    # it too; each of their sweep values was checked above.
    check_pruning(cfg)
    problem = data_problem(cfg.data) if data else None
    if problem:
        raise PrunelabError(problem)
    return cfg


def _is_group(key: str) -> bool:
    """True for a config group choice (model=..., hydra/launcher=...), not a value."""
    return key in GROUPS or "/" in key or (CONF_DIR / key).is_dir()


# Launchers that run a sweep's jobs on this machine.
LOCAL_LAUNCHERS = {"basic", "joblib", "submitit_local"}
# Flags under which Hydra prints and runs no job (argparse dests).
PRINT_ONLY = {"cfg", "info", "help", "hydra_help", "shell_completion"}
# Hydra's commands (argparse dests): one at a time. --help and --hydra-help come before them.
COMMANDS = {
    "multirun": "runs a sweep",
    "run": "runs one job",
    "cfg": "prints one job's config",
    "info": "prints Hydra's information on one job",
    "shell_completion": "sets up tab completion",
}


def check_flags(args: Sequence[str], overrides: list) -> dict[str, tuple[str, str | None]]:
    """Hydra's flags must go together, and name folders and files that exist; Hydra says
    otherwise in a traceback. Returns the flags (see _flags)."""
    flags = flags_of(args)
    helps = "help" in flags or "hydra_help" in flags  # Hydra shows the help, ignoring the rest
    given = [d for d in COMMANDS if d in flags]
    sweeps = [o.key_or_group for o in overrides if o.is_sweep_override()]
    if len(given) > 1 and not helps:
        if "multirun" in given and "run" not in given:
            other = next(d for d in given if d != "multirun")
            fix = f" and give {', '.join(sweeps)} one value" if sweeps else ""
            raise PrunelabError(
                f"{flags[other][0]} {COMMANDS[other]} and cannot be combined with "
                f"{flags['multirun'][0]}; drop {flags['multirun'][0]}{fix}"
            )
        raise PrunelabError(
            f"{flags[given[0]][0]} and {flags[given[1]][0]} cannot be combined: give one of them"
        )
    if "resolve" in flags and not ("cfg" in flags or "help" in flags):
        raise PrunelabError(
            f"{flags['resolve'][0]} goes with --cfg or --help (python train.py --cfg job --resolve)"
        )
    shown = next((d for d in ("help", "cfg", "info") if d in flags), None)
    if shown and sweeps:  # they compose one job's config (--hydra-help alone drops ours)
        what = "shows the config of one job" if shown == "help" else COMMANDS[shown]
        sweep = next(o for o in overrides if o.is_sweep_override())
        raise PrunelabError(
            f"{flags[shown][0]} {what}: give {sweep.key_or_group} one value "
            f"({sweep.key_or_group}={first_value(sweep)})"
        )
    check_paths(flags)
    return flags


def check_argv(
    args: Sequence[str],
    evaluate: bool = False,
    base: Sequence[str] | None = (),
    launch: bool = False,
) -> list[str]:
    """`args` arranged for Hydra (see arrange) and checked (check_overrides, on top of `base`);
    on a mistake one line on stderr and exit status 2. `evaluate`: prunelab.evaluate's.
    `launch`: a sweep about to run is given a folder of its own (see own_sweep_dir)."""
    if launch:  # a claim inherited from a launching process (train.py run by a job) is not ours
        os.environ.pop(CLAIMED, None)
    try:
        arranged = listed_ranges(arrange(args, evaluate))
        cfg = check_overrides(arranged, evaluate, base)
        flags = flags_of(arranged)
        if launch and cfg is not None and not set(flags) & PRINT_ONLY:
            arranged = own_sweep_dir(arranged, cfg)
    except PrunelabError as err:
        print(f"prunelab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if "hydra_help" in flags and "help" not in flags:
        # Hydra's help composes Hydra's config alone: `experiment=smoke` would stop it.
        arranged = only_hydra(arranged)
    return arranged


def interrupted_launch(args: Sequence[str], jobs_said: bool, job_begun: bool) -> str | None:
    """The line for Ctrl-C or SIGTERM in a launching process outside a job: None where its jobs
    have said it on this terminal (`jobs_said`: joblib's; submitit's print into
    `<sweep>/.submitit/<job id>/`); where no job has started, that none had. `job_begun`: a
    job has run in this process (a single run's then had ended)."""
    submitit = any(a.startswith("hydra/launcher=submitit") for a in args)
    if jobs_said and not submitit:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    what = stop_status()[0]
    settings = [a for a in args if not a.startswith("-") and "=" in a]  # check_argv's: parse
    overrides = OverridesParser.create().parse_overrides(settings)
    if not is_multirun(args, overrides):
        when = "after the job ended" if job_begun else "before the job started"
        return f"prunelab: {what} {when}"
    # The folder as Hydra reads it (unquoted); one named as it launched (a user's
    # ${now:%Y-%m-%d}, left to Hydra) is not known here.
    given = next((str(o.value()) for o in overrides if o.key_or_group == "hydra.sweep.dir"), None)
    folder = os.environ.get(CLAIMED) or given
    if folder and "${" not in folder and not holds_jobs(Path(os.path.expanduser(folder))):
        return f"prunelab: {what} before any job started"
    again = "run the same command again"
    if given is None or claimed(given):  # named by the launch time (see own_sweep_dir)
        where = quoted(given) if given else "<the sweep output dir above>"
        again += f" with hydra.sweep.dir={where}"
    logs = f" (jobs' logs: {given or '<sweep>'}/.submitit/)" if submitit else ""
    return stop_line(f"{again} to resume where it stopped{logs}")[0]
