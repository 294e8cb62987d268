"""Read one sweep folder: its jobs' results.json and FAILED marks, and the grid it was asked for."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from prunelab.errors import PrunelabError
from prunelab.io import read_json_if_any
from prunelab.report.recipes import set_aside_other_recipes
from prunelab.report.sweep_record import RECORD, job_sweep_id, read_record
from prunelab.validate import CELL_KEYS, options

# The job folder name written by conf/hydra/default.yaml (hydra.sweep.subdir); a last resort only.
SUBDIR = re.compile(
    r"^(?P<model>[^-]+)-(?P<data>[^-]+)-(?P<pruning>[^-]+)-s(?P<sparsity>[0-9.eE+-]+)-seed(?P<seed>-?\d+)$"
)


def norm_sparsity(value: Any) -> float:
    """Sparsities compare as floats rounded to 6 places (0, 0.0 and '0.0' are one cell)."""
    return round(float(value), 6)


class Cell(NamedTuple):
    """One point of the sweep grid."""

    model: str
    data: str
    pruning: str
    sparsity: float
    seed: int

    @property
    def label(self) -> str:
        """The job folder name of this cell, e.g. `simplecnn-fashion_mnist-magnitude-s0.5-seed0`."""
        return f"{self.model}-{self.data}-{self.pruning}-s{self.sparsity:g}-seed{self.seed}"


def make_cell(values: dict[str, Any]) -> Cell:
    """A Cell from a mapping holding the five cell keys."""
    return Cell(
        str(values["model"]),
        str(values["data"]),
        str(values["pruning"]),
        norm_sparsity(values["sparsity"]),
        int(values["seed"]),
    )


@dataclass
class Job:
    """One job folder of the sweep."""

    name: str
    path: Path
    cell: Cell | None
    results: dict | None = None
    failed: str | None = None  # the FAILED file's line
    settings: dict | None = None  # its config.json: the resolved settings the job ran with

    @property
    def status(self) -> str:
        """'ok' (results.json), 'failed' (FAILED mark) or 'incomplete' (neither)."""
        if self.results is not None:
            return "ok"
        return "failed" if self.failed is not None else "incomplete"


@dataclass
class SweepData:
    """Everything the report reads from one sweep folder."""

    sweep_dir: Path
    multirun: DictConfig | None
    jobs: list[Job]
    expected: list[Cell] | None  # None: the grid could not be read from multirun.yaml
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (folder, why)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> list[Job]:
        """Jobs with a results.json."""
        return [j for j in self.jobs if j.status == "ok"]

    @property
    def failed(self) -> list[Job]:
        """Jobs that wrote a FAILED mark instead of results."""
        return [j for j in self.jobs if j.status == "failed"]

    @property
    def incomplete(self) -> list[Job]:
        """Job folders with neither results.json nor FAILED (still running, or killed)."""
        return [j for j in self.jobs if j.status == "incomplete"]

    @property
    def missing(self) -> list[Cell]:
        """Expected cells without any job folder in this sweep."""
        if self.expected is None:
            return []
        present = {j.cell for j in self.jobs}
        return [c for c in self.expected if c not in present]

    @property
    def outside(self) -> list[Job]:
        """Jobs of this folder outside the expected grid: earlier runs into the same folder.

        multirun.yaml holds the latest launch's grid only; a launch into an existing sweep folder
        (a seed added) keeps the earlier jobs, which Hydra recorded as writing to this folder.
        """
        if self.expected is None:
            return []
        grid = set(self.expected)
        return [j for j in self.jobs if j.cell not in grid]

    @property
    def name(self) -> str:
        """The sweep folder's name (also the W&B group of its jobs)."""
        return self.sweep_dir.name


def _load_yaml(path: Path) -> DictConfig | None:
    if not path.is_file():
        return None
    try:
        cfg = OmegaConf.load(path)
    except Exception as err:  # a truncated or hand-edited file: report it, do not crash
        # YAML's message spans lines (and names the file again): keep its first, and the place.
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        first = str(getattr(err, "problem", None) or err).splitlines()[0]
        raise PrunelabError(f"{path} is not valid YAML ({first}{where})") from err
    return cfg if isinstance(cfg, DictConfig) else None


def _literal(cfg: DictConfig | None, key: str) -> Any:
    """The raw value at a dotted key (interpolations stay text: they may need Hydra's runtime)."""
    if cfg is None:
        return None
    node: Any = OmegaConf.to_container(cfg, resolve=False)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _job_cell(job: Path, results: dict | None) -> Cell | None:
    """The cell of a job: from results.json, else the job's saved Hydra config, else its name."""
    if results is not None and all(k in results for k in CELL_KEYS):
        try:
            return make_cell(results)
        except (TypeError, ValueError):
            pass
    hydra_cfg = _load_yaml(job / ".hydra" / "hydra.yaml")
    task_cfg = _load_yaml(job / ".hydra" / "config.yaml")
    choices = _literal(hydra_cfg, "hydra.runtime.choices") or {}
    values = {
        "model": choices.get("model"),
        "data": choices.get("data"),
        "pruning": choices.get("pruning"),
        "sparsity": _literal(task_cfg, "sparsity"),
        "seed": _literal(task_cfg, "seed"),
    }
    if any(v is None for v in values.values()):
        match = SUBDIR.match(job.name)
        if match is None:
            return None
        values = {k: values[k] if values[k] is not None else match[k] for k in CELL_KEYS}
    try:
        return make_cell(values)
    except (TypeError, ValueError):
        return None


def _recorded_dir(job: Path) -> Path | None:
    """Where Hydra said this job wrote (hydra.runtime.output_dir in .hydra/hydra.yaml)."""
    out = _literal(_load_yaml(job / ".hydra" / "hydra.yaml"), "hydra.runtime.output_dir")
    if not isinstance(out, str) or not out or "${" in out:
        return None
    return Path(os.path.normpath(out))


def _sweep_home(multirun: DictConfig | None, recorded: list[Path], here: Path) -> Path | None:
    """The folder this sweep was launched into, as its own records name it.

    A sweep copied or moved elsewhere keeps its records: compare job folders with the sweep's
    recorded folder, not with where the files lie now.
    """
    literal = _literal(multirun, "hydra.sweep.dir")
    if isinstance(literal, str) and literal and "${" not in literal:
        path = Path(literal)
        if not path.is_absolute():
            cwd = _literal(multirun, "hydra.runtime.cwd")
            path = Path(cwd) / path if isinstance(cwd, str) else here.parent / path
        return Path(os.path.normpath(path))
    parents = [p.parent for p in recorded]
    if not parents:
        return None
    for parent in parents:
        if parent.exists() and parent.resolve() == here.resolve():
            return parent
    return Counter(parents).most_common(1)[0][0]


def _not_own(
    folder: Path, where: Path | None, homes: set[Path], sweep_id: str | None
) -> str | None:
    """Why a job folder is not this sweep's own; None if it is (or nothing can tell).

    Its own: Hydra wrote it under one of the paths this folder was launched as, under its own
    name, and (where both carry one) with this folder's sweep id. A job folder copied in from
    another sweep fails the path or, where that sweep once had this folder's path, the id.
    """
    if not homes:
        return None
    if where is None:
        return "no .hydra/hydra.yaml: cannot tell which sweep it belongs to"
    if where.parent not in homes or where.name != folder.name:
        return f"written by another sweep (as {where})"
    job_id = job_sweep_id(folder)
    if sweep_id is not None and job_id is not None and job_id != sweep_id:
        return f"written by another sweep (as {where}, sweep id {job_id}, this folder's {sweep_id})"
    return None


def _grid_values(override: Any) -> list[Any] | None:
    """The values one override of multirun.yaml's task list stands for; None where unknown."""
    from hydra.core.override_parser.types import Glob

    value = override.value()
    if isinstance(value, Glob):  # pruning=glob(*): the group's options, as Hydra's sweeper saw
        found = value.filter(options(override.key_or_group))
        return found or None
    if override.is_sweep_override():
        try:
            return list(override.sweep_iterator())
        except Exception:  # interval() and friends have no list of values: grid unknown
            return None
    return [value]


def expected_cells(multirun: DictConfig | None) -> list[Cell] | None:
    """The grid a sweep was asked for: the defaults crossed with the swept cell keys."""
    if multirun is None:
        return None
    task = _literal(multirun, "hydra.overrides.task")
    if not isinstance(task, list):
        return None
    params = _literal(multirun, "hydra.sweeper.params") or {}
    args = [f"{k}={v}" for k, v in dict(params).items()] + [str(a) for a in task]
    choices = _literal(multirun, "hydra.runtime.choices") or {}
    grid: dict[str, list[Any]] = {
        "model": [choices.get("model")],
        "data": [choices.get("data")],
        "pruning": [choices.get("pruning")],
        "sparsity": [_literal(multirun, "sparsity")],
        "seed": [_literal(multirun, "seed")],
    }
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        overrides = OverridesParser.create().parse_overrides(args)
    except Exception:
        return None
    for override in overrides:
        key = override.key_or_group
        if key in grid and not override.is_delete():
            values = _grid_values(override)
            if values is None:
                return None
            grid[key] = values
    if any(v is None or isinstance(v, str) and "${" in v for vs in grid.values() for v in vs):
        return None
    cells: list[Cell] = []
    try:
        for values in itertools.product(*(grid[k] for k in CELL_KEYS)):
            cell = make_cell(dict(zip(CELL_KEYS, values, strict=True)))
            if cell not in cells:
                cells.append(cell)
    except (TypeError, ValueError):
        return None
    return cells


def _read_results(path: Path) -> tuple[dict | None, str | None]:
    """(results, problem) for one results.json."""
    # Read here, not by io.read_json: each problem becomes a line of the report's list.
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{path.name}: {err}"
    if not isinstance(results, dict):
        return None, f"{path} does not hold a JSON object"
    lacking = [k for k in CELL_KEYS if results.get(k) is None]
    if lacking:
        return None, f"{path.name} lacks {', '.join(lacking)}"
    acc = results.get("test/acc")
    if isinstance(acc, bool) or not isinstance(acc, int | float) or not math.isfinite(acc):
        return None, f"{path.name} has no numeric test/acc"
    try:
        make_cell(results)
    except (TypeError, ValueError) as err:
        return None, f"{path.name}: bad cell keys ({err})"
    return results, None


def _other_settings(results: dict | None, settings: dict | None) -> str | None:
    """Why a results.json is not of the settings its folder's config.json records, or None.

    A job writes both, of one run (config/hash is the hash of config.json's settings); a
    results.json copied in from another sweep or run keeps its own hash and would be tabulated
    under this folder's settings.
    """
    if results is None or not isinstance(settings, dict):
        return None
    recorded = results.get("config/hash")
    if not isinstance(recorded, str):  # results from before config/hash: nothing to compare
        return None
    from prunelab.identity import config_hash

    own = config_hash(settings)
    if recorded == own:
        return None
    return (
        f"results.json is of other settings (config/hash {recorded}) than the job's "
        f"config.json ({own}): another run's results, copied in?"
    )


def collect(sweep_dir: str | Path) -> SweepData:
    """Read every job folder directly under `sweep_dir` that belongs to this sweep."""
    here = Path(sweep_dir)
    if not here.is_dir():
        what = "is not a directory" if here.exists() else "does not exist"
        raise PrunelabError(f"{here} {what} (expected a sweep folder)")
    multirun = _load_yaml(here / "multirun.yaml")
    folders = sorted(
        p
        for p in here.iterdir()
        if p.is_dir()
        and any((p / f).exists() for f in ("results.json", "FAILED", ".hydra/hydra.yaml"))
    )
    if multirun is None and not any((p / "results.json").is_file() for p in folders):
        job = (
            " (it is a job's folder: report the folder above it)"
            if (here / "results.json").is_file() or (here / "model.pt").is_file()
            else ""
        )
        raise PrunelabError(
            f"{here} is not a sweep folder: no multirun.yaml and no */results.json{job}"
        )
    recorded = {p: _recorded_dir(p) for p in folders}
    # Every path this folder was launched as (sweep_record.py): a folder moved or copied and
    # launched into again keeps the jobs its earlier launches wrote under its old path. Only
    # without that record is the home guessed from where most jobs say they ran.
    record = read_record(here)
    guesses = [r for r in recorded.values() if r is not None] if record is None else []
    home = _sweep_home(multirun, guesses, here)
    homes = set(record.dirs) if record is not None else set()
    if home is not None:
        homes.add(home)
    data = SweepData(here, multirun, [], expected_cells(multirun))
    if multirun is None:
        data.notes.append("no multirun.yaml: the expected grid is what is present")
    if record is None and (here / RECORD).is_file():
        data.notes.append(
            f"{RECORD} cannot be read: which jobs are this sweep's is judged from multirun.yaml "
            "and the jobs' Hydra records alone (a moved folder's earlier jobs may be excluded)"
        )
    if not homes and folders:
        data.notes.append("no Hydra records of where the jobs ran: sweep membership not checked")
    for folder in folders:
        why = _not_own(folder, recorded[folder], homes, record.id if record else None)
        if why is not None:
            data.excluded.append((folder.name, why))
            continue
        results, problem = None, None
        if (folder / "results.json").is_file():
            results, problem = _read_results(folder / "results.json")
        failed = None
        if (folder / "FAILED").is_file():
            lines = (folder / "FAILED").read_text(errors="replace").strip().splitlines()
            failed = lines[0] if lines else "FAILED (no message)"
        elif problem is not None:
            failed = f"unreadable results.json: {problem}"
        if results is not None and failed is not None:
            # Every attempt clears FAILED first, so a mark newer than results.json is the latest
            # attempt's (a rerun with other settings refused before it set the old run aside):
            # those results are another run's. An older mark (an old version's skip) is not.
            if (folder / "FAILED").stat().st_mtime >= (folder / "results.json").stat().st_mtime:
                results = None
                failed = f"{failed} (its results.json is an earlier run's)"
            else:
                failed = None
        settings = read_json_if_any(folder / "config.json")  # the settings it recorded
        if settings is None and results is not None and (folder / "config.json").is_file():
            data.notes.append(
                f"`{folder.name}/config.json` cannot be read: its results are tabulated without "
                "the check that they are of the job's own settings"
            )
        other = _other_settings(results, settings) if failed is None else None
        if other is not None:
            results, failed = None, other
        cell = _job_cell(folder, results)
        data.jobs.append(Job(folder.name, folder, cell, results, failed, settings))
    unchecked = [j.name for j in data.jobs if j.results and not _stamped(j.results)]
    if unchecked:
        named = ", ".join(f"`{n}`" for n in unchecked[:3])
        more = f" and {len(unchecked) - 3} more" if len(unchecked) > 3 else ""
        data.notes.append(
            f"{named}{more}: results.json without config/hash or config/recipe (an older "
            "prunelab's, or written by hand): tabulated without the checks that they are of "
            "their folder's settings and of one recipe with the other jobs"
        )
    set_aside_other_recipes(data)
    return data


def _stamped(results: dict) -> bool:
    """Whether a results.json carries the hashes the report checks settings by."""
    return all(isinstance(results.get(k), str) for k in ("config/hash", "config/recipe"))
