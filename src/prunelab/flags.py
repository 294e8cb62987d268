"""Hydra's own command-line flags (-m, --cfg, -cn, ...): arranged before the overrides, and
checked so that a mistake Hydra would answer with a traceback or a usage page is one line."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunelab.errors import PrunelabError
from prunelab.suggest import suggest
from prunelab.validate import CONF_DIR


@functools.cache
def _actions() -> dict[str, Any]:
    """Hydra's argparse actions by option string (-m, --multirun, --cfg, ...)."""
    from hydra._internal.utils import get_args_parser

    return {flag: action for action in get_args_parser()._actions for flag in action.option_strings}


def flags_of(args: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """Hydra's flags among arranged `args`: dest -> (the flag as written, its value or None)."""
    actions = _actions()
    found: dict[str, tuple[str, str | None]] = {}
    for i, token in enumerate(args):
        name, sep, value = token.partition("=")
        if not token.startswith("-") or name not in actions or actions[name].dest in found:
            continue
        action = actions[name]
        if not sep and action.nargs is None and i + 1 < len(args):
            value = args[i + 1]  # --cfg job, -cn NAME (arrange keeps them together)
        found[action.dest] = (name, value if sep or action.nargs is None else None)
    return found


def check_paths(flags: dict[str, tuple[str, str | None]]) -> None:
    """The folders and files Hydra's -cp, -cd, -cn and --experimental-rerun name must exist."""
    folders: dict[str, Path | None] = {"config_path": CONF_DIR}  # where -cn looks (and -cd)
    for dest in ("config_path", "config_dir"):
        if dest not in flags or flags[dest][1] is None:
            continue
        flag, value = flags[dest]
        if value.startswith("pkg://"):  # type: ignore[union-attr]
            folders[dest] = None  # a package's configs: Hydra looks
            continue
        # -cp is relative to train.py's folder (Hydra's config_path), -cd to the working one.
        folder = CONF_DIR.parent / value if dest == "config_path" else Path(value)  # type: ignore[arg-type]
        if not folder.is_dir():
            raise PrunelabError(f"{flag} {value}: no such folder ({folder.resolve()})")
        folders[dest] = folder
    if "config_name" in flags and flags["config_name"][1] is not None:
        flag, name = flags["config_name"]
        stem = name.removesuffix(".yaml")  # type: ignore[union-attr]
        places = [f for f in folders.values() if f is not None]
        found = any((folder / f"{stem}.yaml").is_file() for folder in places)
        if not found and None not in folders.values():
            there = sorted(p.stem for folder in places for p in folder.glob("*.yaml"))
            raise PrunelabError(
                f"{flag} {name}: no config {stem}.yaml in {', '.join(map(str, places))}"
                + (f"; configs there: {', '.join(there)}" if there else "")
            )
    if "experimental_rerun" in flags and flags["experimental_rerun"][1] is not None:
        flag, file = flags["experimental_rerun"]
        if not Path(file).is_file():  # type: ignore[arg-type]
            raise PrunelabError(f"{flag} {file}: no such file (a job's .hydra/config.pickle)")


def check_completion(overrides: list) -> None:
    """--shell-completion takes one of install=SHELL, uninstall=SHELL, query=SHELL."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.completion_plugin import CompletionPlugin

    shells = sorted(p.provides() for p in Plugins.instance().discover(CompletionPlugin))
    words = {o.key_or_group: o.value() for o in overrides}
    given = [w for w in ("install", "uninstall", "query") if w in words]
    if len(given) != 1:
        raise PrunelabError(
            "--shell-completion needs one of install=SHELL, uninstall=SHELL or query=SHELL "
            f"(SHELL: {', '.join(shells)}), e.g. python train.py -sc install=bash"
        )
    if str(words[given[0]]) not in shells:
        raise PrunelabError(
            f"no tab completion for '{words[given[0]]}'; shells: {', '.join(shells)}"
        )


def hydra_flags() -> dict[str, object]:
    """Hydra's command-line flags (-m, --cfg, -cn, ...) and how many values each takes."""
    return {flag: a.choices if a.nargs == "?" else a.nargs for flag, a in _actions().items()}


def arrange(args: Sequence[str], evaluate: bool = False) -> list[str]:
    """Hydra's flags (with their values) first, then the overrides, each kept in its order.

    Hydra's argument parser takes flags only before the overrides (`experiment=smoke -m
    sparsity=0.2,0.5` stops with an eight-line usage message); a token that is neither a flag
    nor an override (`sparsity=0.2, 0.5` splits in two) is one line here. `evaluate`: the
    command line of prunelab.evaluate, which takes no Hydra flag.
    """
    takes = hydra_flags()
    actions = _actions()
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
            raise PrunelabError(unknown_option(token, rest, evaluate))
        if evaluate:
            raise PrunelabError(
                f"prunelab.evaluate takes no {name} (nor Hydra's other flags): it evaluates one "
                "checkpoint with one setting, given as key=value"
            )
        wanted = takes[name]
        if (
            wanted is None
            and "=" not in token
            and (not rest or "=" in rest[0] or rest[0][:1] == "-")
        ):
            raise PrunelabError(f"option '{name}' needs a value ({name} VALUE)")
        optional = isinstance(wanted, (list, tuple))  # --info [which]
        value = token.split("=", 1)[1] if "=" in token else None
        if value is None and rest and (wanted is None or optional and _is_word(rest[0])):
            value = rest[0]  # --cfg job; --info plugins (a word, not an override)
        choices = actions[name].choices
        if choices and value is not None and value not in choices:
            raise PrunelabError(
                f"{name} takes {', '.join(choices[:-1])} or {choices[-1]}, got '{value}'"
            )
        if "=" not in token and rest and (wanted is None or optional and rest[0] in wanted):
            flags += [token, rest.pop(0)]  # --cfg job, -cn NAME, --info plugins
        elif optional and "=" not in token:
            last.append(token)  # before an override it would take the override as its value
        else:
            flags.append(token)
    return flags + overrides + last


def _is_word(token: str) -> bool:
    """True for a token that is neither a flag nor an override (`plugins` of --info plugins)."""
    return "=" not in token and token[:1] not in ("-", "~")


def unknown_option(token: str, rest: Sequence[str], evaluate: bool = False) -> str:
    """The line for `--key VALUE` (argparse style) where Hydra takes `key=VALUE`: the config key
    it most likely means (`--n_images 5`: attack.n_images=5)."""
    name = token.split("=", 1)[0]
    if "=" in token:
        value = token.split("=", 1)[1]
    else:
        value = rest[0] if rest and "=" not in rest[0] else "..."
    bare = name.lstrip("-").replace("-", "_")
    keys = suggest(bare, []) if bare else []
    if keys is None:  # a key of the config as it stands
        keys = [bare]
    example = f" ({' or '.join(f'{k}={value}' for k in keys)})" if keys else ""
    hydra = "" if evaluate else "; Hydra's options: python train.py --hydra-help"
    return f"unknown option '{name}': set config values as key=value{example}{hydra}"


def only_hydra(args: Sequence[str]) -> list[str]:
    """`args` without the overrides of our config (--hydra-help composes Hydra's alone)."""
    return [
        a
        for a in args
        if not ("=" in a and not a.startswith("-") or a.startswith("~"))
        or a.lstrip("+~").startswith("hydra")
    ]


def print_command(args: Sequence[str]) -> str | None:
    """The flag in `args` that makes Hydra print (help, config, info) instead of running jobs,
    as written; None when jobs run."""
    flags = flags_of(args)
    found = [flags[d][0] for d in ("help", "hydra_help", "version", "cfg", "info") if d in flags]
    return found[0] if found else None
