"""Command-line checks that run before Hydra and torch load: one clear line per mistake."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from prunelab.errors import PrunelabError
from prunelab.validate import CONF_DIR, check_option, check_sparsity

GROUPS = ("model", "data", "pruning", "attack", "trainer", "logger", "experiment", "hydra/launcher")


def _values(override) -> list:
    """Every value an override stands for (one, or each element of a sweep)."""
    if override.is_sweep_override():
        return list(override.sweep_iterator())
    return [override.value()]


def check_overrides(args: Sequence[str]) -> None:
    """Raise PrunelabError for a bad sparsity or an unknown config option in `args`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    candidates = [a for a in args if "=" in a and not a.startswith("-")]
    try:
        overrides = OverridesParser.create().parse_overrides(candidates)
    except OverrideParseException as err:
        raise PrunelabError(str(err).splitlines()[0]) from None
    for override in overrides:
        key = override.key_or_group
        if override.is_delete():
            continue
        if key == "sparsity":
            for value in _values(override):
                check_sparsity(value)
        elif key in GROUPS and (CONF_DIR / key).is_dir():
            for value in _values(override):
                if value is not None:
                    check_option(key, str(value))


def check_argv(args: Sequence[str]) -> None:
    """check_overrides, exiting with status 2 and one line on stderr on failure."""
    try:
        check_overrides(args)
    except PrunelabError as err:
        print(f"prunelab: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
