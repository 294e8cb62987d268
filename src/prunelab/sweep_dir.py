"""A folder of its own for each sweep launched: two launches in one second shared one.

The default `hydra.sweep.dir` is named by the launch time to the second, so two sweeps started
together (a script that launches one per model, two terminals) wrote into one folder and each
report took the other's jobs as its own. A launch whose folder name is timed to the second
therefore claims the folder before Hydra starts (an exclusive `mkdir`), or the first free
`<name>_2`, `<name>_3`, ..., and passes it to Hydra as `hydra.sweep.dir`. A folder given by
hand, or named by a coarser time (`${now:%Y-%m-%d}`, deliberately shared), is left alone.

The claimed folder is also put in the environment (CLAIMED), which the jobs inherit under every
launcher: their resume hint then names it, as the user's command line does not.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prunelab.errors import PrunelabError
from prunelab.flags import flags_of

# ${now:...} with seconds or finer: %S, %f, %s (epoch), %T (H:M:S), %X and %c (locale time).
_PER_SECOND = re.compile(r"\$\{now:[^}]*%[SfsTXc]")
_PLAIN = re.compile(r"[\w./-]+")  # written unquoted in an override
_KEY = "hydra.sweep.dir"
CLAIMED = "PRUNELAB_CLAIMED_SWEEP_DIR"


def _multirun(args: Sequence[str], cfg: Any) -> bool:
    return "multirun" in flags_of(args) or str(cfg.hydra.mode) == "MULTIRUN"


def quoted(path: str) -> str:
    """`path` as an override value Hydra reads back unchanged."""
    if _PLAIN.fullmatch(path):
        return path
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"


def claim(path: Path) -> Path:
    """Create `path`, or the first of `path_2`, `path_3`, ... that no one has created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = path if n == 1 else path.with_name(f"{path.name}_{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise PrunelabError(f"cannot find a free sweep folder beside {path} (999 are taken)")


def own_sweep_dir(args: Sequence[str], cfg: Any) -> list[str]:
    """`args` with `hydra.sweep.dir` set to a folder claimed for this launch (see module doc),
    or unchanged (not a sweep, or a folder not named by the launch second)."""
    from omegaconf import OmegaConf

    if not _multirun(args, cfg):
        return list(args)
    raw = OmegaConf.to_container(cfg.hydra.sweep, resolve=False).get("dir")  # type: ignore[union-attr]
    if not isinstance(raw, str) or not _PER_SECOND.search(raw):
        return list(args)
    try:
        folder = claim(Path(os.path.expanduser(str(cfg.hydra.sweep.dir))))
    except OSError as err:  # check_writable passed, so rare (a full disk)
        raise PrunelabError(f"cannot create the sweep folder: {err}") from None
    os.environ[CLAIMED] = str(folder)
    kept = [a for a in args if a.lstrip("+").split("=", 1)[0] != _KEY]
    return [*kept, f"{_KEY}={quoted(str(folder))}"]


def claimed(folder: object) -> bool:
    """Whether this launch's command line got `folder` from own_sweep_dir, not from the user."""
    return os.environ.get(CLAIMED) == str(folder)


def holds_jobs(folder: Path) -> bool:
    """Whether a sweep folder holds any job's folder (Hydra writes `multirun.yaml` first)."""
    try:
        return any(p.is_dir() and not p.name.startswith(".") for p in folder.iterdir())
    except OSError:  # not made yet
        return False


def release_claimed() -> None:
    """Remove this launch's claimed folder if no job has started in it (the launch failed or
    was stopped first): an empty `<time>` folder only misleads the next look at the sweeps."""
    folder = os.environ.get(CLAIMED)
    if folder and not holds_jobs(Path(folder)) and not (Path(folder) / ".submitit").exists():
        shutil.rmtree(folder, ignore_errors=True)
