"""What a command line's sweep may hold: the values each override stands for, a key given twice,
a cell run twice, a sweep without -m, a key that cannot vary within one sweep folder."""

from __future__ import annotations

import math
from collections.abc import Sequence

from prunelab.errors import PrunelabError
from prunelab.validate import CELL_KEYS, CONF_DIR, WHOLE, options

GROUPS = ("model", "data", "pruning", "attack", "trainer", "logger", "experiment", "hydra/launcher")


def sweep_values(override) -> list:
    """Every value an override stands for (one, or each element of a sweep).

    `glob(...)` picks among a group's options in conf/ (as Hydra's sweeper does when it runs);
    `interval(...)` is a continuous range for an optimizing sweeper, which cannot be listed.
    """
    from hydra.core.override_parser.types import Glob

    if not override.is_sweep_override():
        return [override.value()]
    key, value = override.key_or_group, override.value()
    if override.is_interval_sweep():
        raise PrunelabError(f"{override.input_line} is a continuous range that a sweep cannot "
                            f"list; give {_listed(key, value.start, value.end)}")  # fmt: skip
    if isinstance(value, Glob):
        if not (CONF_DIR / key).is_dir():
            raise PrunelabError(
                f"{override.input_line}: glob(...) picks options of a config group "
                f"({', '.join(g for g in GROUPS if (CONF_DIR / g).is_dir())}); "
                f"{key} is not one: list its values ({key}=a,b)"
            )
        known = options(key)
        found = value.filter(known)
        if not found:
            raise PrunelabError(
                f"{override.input_line} matches none of the {key} options: {', '.join(known)}"
            )
        return found
    try:
        values = list(override.sweep_iterator())
    except ValueError as err:  # range(0,1,0)
        raise PrunelabError(f"{override.input_line}: {err}") from None
    if not values:  # range(3,3): Hydra would launch nothing, or fail on the first value
        raise PrunelabError(f"{override.input_line} holds no values: give at least one")
    return values


def first_value(override) -> str:
    """The first value of a sweep override, as it would be written on the command line."""
    from hydra.core.override_parser.types import Glob

    if isinstance(override.value(), Glob):
        return str(sweep_values(override)[0])
    return next(iter(override.sweep_string_iterator()))


def _listed(key: str, start: float, end: float) -> str:
    """How to write, as a list a sweep can enumerate, what interval(start, end) meant."""
    if (CONF_DIR / key).is_dir():  # model=interval(...): the options, not numbers
        return f"the options to sweep ({key}={','.join(options(key)[:2])})"
    if key in WHOLE:  # seed: whole numbers
        lo, hi = math.ceil(start), math.floor(end)
        return f"values ({key}={lo},{lo + 1}) or range({lo},{max(hi, lo + 1)})"
    step = (end - start) / 4
    return (
        f"values ({key}={start + step:g},{start + 2 * step:g}) or range({start:g},{end:g},{step:g})"
    )


def check_repeated(overrides: list, evaluate: bool = False) -> None:
    """A key given twice (`seed=0 seed=1`): Hydra keeps the last silently; a sweep was meant?"""
    seen: dict[str, str] = {}
    for override in overrides:
        key = override.key_or_group
        if key in seen and not override.is_delete():
            sweep = "" if evaluate or key not in CELL_KEYS else f", several as {key}=a,b with -m"
            raise PrunelabError(
                f"{key} is given twice ({seen[key]}, {override.input_line}): give it once{sweep}"
            )
        seen[key] = override.input_line


def _cell_value(key: str, value: object) -> object:
    """What a cell key's value means: sparsity and seed as numbers (0 and 0.0 are one cell)."""
    if key == "sparsity":
        return float(value)  # type: ignore[arg-type]  # check_sparsity passed it
    if key == "seed":
        return int(value)  # type: ignore[call-overload]  # check_whole passed it
    return str(value)


def check_distinct(overrides: list) -> None:
    """A cell key's sweep values must differ: Hydra runs a repeated one again (`seed=0,0`),
    into the same job folder (a race under joblib) or, spelt apart (`sparsity=0,0.0`), into a
    second folder of the same cell."""
    for override in overrides:
        key = override.key_or_group
        if key not in CELL_KEYS or not override.is_sweep_override() or override.is_delete():
            continue
        seen: dict[object, object] = {}
        for value in sweep_values(override):
            cell = _cell_value(key, value)
            if cell not in seen:
                seen[cell] = value
                continue
            first = seen[cell]
            spelt = f" (as {first} and {value})" if str(first) != str(value) else ""
            where = " in two folders" if spelt else " into one folder"
            raise PrunelabError(
                f"{override.input_line} gives {key} {first} twice{spelt}: two jobs would run "
                f"one cell{where}; give each value once"
            )


def is_multirun(args: Sequence[str], overrides: list) -> bool:
    """Whether the command line asks for a sweep (-m, or hydra.mode=MULTIRUN)."""
    return any(a in ("-m", "--multirun") for a in args) or any(
        o.key_or_group == "hydra.mode" and str(o.value()) == "MULTIRUN" for o in overrides
    )


def check_multirun(args: Sequence[str], overrides: list, evaluate: bool = False) -> None:
    """A sweep (`key=a,b`) needs -m; Hydra alone says so in six lines and exits 1."""
    if evaluate:  # -m does not exist there (arrange refuses it)
        for override in overrides:
            if override.is_sweep_override():
                raise PrunelabError(
                    f"prunelab.evaluate runs one setting: give {override.key_or_group} one "
                    f"value ({override.input_line} sweeps over several)"
                )
        return
    if is_multirun(args, overrides):
        return
    for override in overrides:
        if not override.is_sweep_override():
            continue
        if override.is_interval_sweep():
            sweep_values(override)  # says how to list the range instead
        key = override.key_or_group
        if key in CELL_KEYS:
            raise PrunelabError(
                f"{override.input_line} sweeps over several values: add -m (python train.py -m ...)"
            )
        raise PrunelabError(
            f"{override.input_line} gives several values: a list is written {key}=[a,b]; "
            f"a sweep varies {', '.join(CELL_KEYS)} only, so run one per value of {key}"
        )


def check_swept(override) -> None:
    """Only the cell keys may take several values in one sweep.

    Jobs differing in any other key would share one folder and one row of the report: the later
    would set the earlier's results aside (or overwrite them under a parallel launcher).
    """
    key = override.key_or_group
    if key in CELL_KEYS or not override.is_sweep_override():
        return
    if len({str(v) for v in sweep_values(override)}) > 1:
        raise PrunelabError(
            f"cannot sweep {key} in one sweep: its jobs are told apart by "
            f"{', '.join(CELL_KEYS)} only; run one sweep per value of {key}, "
            "each with its own hydra.sweep.dir=..."
        )


def check_subdir(overrides: list) -> None:
    """A hydra.sweep.subdir of one's own must tell apart every cell key the sweep varies.

    With `hydra.sweep.subdir=same` every job wrote into one folder: each set the one before
    aside as a run with other settings, and the report called all but the last missing.
    """
    given = next((o for o in overrides if o.key_or_group == "hydra.sweep.subdir"), None)
    if given is None or given.is_sweep_override() or given.is_delete():
        return
    text = str(given.value())
    plain = text.replace("${hydra:", "${hydra.")  # the resolver form names the same nodes
    if any(f"hydra.job.{k}" in plain for k in ("num", "id")):
        return
    excluded = next(
        (o.value() for o in overrides
         if o.key_or_group == "hydra.job.config.override_dirname.exclude_keys"),
        [],
    )  # fmt: skip
    for override in overrides:
        key = override.key_or_group
        if key not in CELL_KEYS or len({str(v) for v in sweep_values(override)}) < 2:
            continue
        if "hydra.job.override_dirname" in plain and key not in (excluded or []):
            continue  # override_dirname spells every override not excluded
        names = (f"${{{key}}}", f"${{hydra.runtime.choices.{key}}}")
        if not any(name in plain for name in names):
            raise PrunelabError(
                f"hydra.sweep.subdir={text} gives jobs of different {key} one folder: include "
                f"{names[1] if key in GROUPS else names[0]} (or ${{hydra.job.num}}) in it"
            )


def listed_ranges(args: Sequence[str]) -> list[str]:
    """`args` with each float `key=range(a,b,step)` written as the list it means.

    Hydra adds the step up in floats: its values carry rounding errors (range(0.1,0.4,0.1)
    gives 0.30000000000000004, which would name a job's folder and fill its results.json) and
    its end slips in (0.4). Listed here by Python's range rule (end left out), each value
    rounded to 10 decimals: `sparsity=0.1,0.2,0.3`.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import RangeSweep
    from hydra.errors import HydraException

    parser, out = OverridesParser.create(), []
    for arg in args:
        try:
            override = parser.parse_override(arg) if "=" in arg and arg[:1] != "-" else None
        except HydraException:
            override = None  # check_overrides says what is wrong with it
        value = override.value() if override is not None else None
        ends = (value.start, value.stop, value.step) if isinstance(value, RangeSweep) else ()
        if not any(isinstance(v, float) for v in ends) or not value.step:
            out.append(arg)
            continue
        count = max(0, math.ceil((value.stop - value.start) / value.step - 1e-9))
        values = ",".join(repr(round(value.start + i * value.step, 10)) for i in range(count))
        listed = f"shuffle({values})" if value.shuffle else values
        out.append(f"{arg.split('=', 1)[0]}={listed}" if count else arg)
    return out
