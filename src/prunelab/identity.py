"""Which config a job's results belong to, so a rerun never keeps results of other settings.

A rerun into an old job folder (same `hydra.sweep.dir`) skips the job only if its results.json
came from the same settings; Hydra has already overwritten the folder's `.hydra/` record by then,
so the job keeps its own: `config.json` (the settings below) and `config/hash` in results.json.
A job of other settings first sets every file of the old run aside under that run's hash.

The files set aside under one hash are always one run's, so its logs and command never pair with
another run's results and model: a run set aside replaces the files an earlier run of the same
settings left there, except that a run stopped before its results.json (killed, or failed) never
replaces a complete run's. Its files are deleted instead: the complete run of those very settings
is the record worth keeping, and the stopped one is what its own rerun would redo. A set-aside
first writes what it will do to `.aside.json`, so one cut short (a kill between its renames) is
finished as begun by the next attempt, never mistaken for a stopped run. A rerun of settings set
aside trains again rather than taking that run back.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from prunelab.cache import data_files, trainer_settings
from prunelab.errors import warn
from prunelab.fingerprint import content_hash
from prunelab.io import read_json_if_any, write_json

# Where files go, how runs are shown or logged, and the sweep report: none changes a number.
TOP_KEYS_IGNORED = {"paths", "hydra", "logger", "report", "progress_bar"}
DATA_KEYS_IGNORED = {"root", "download", "num_workers"}
# What a run leaves in its job folder besides config.json: prunelab.pipeline's results, model,
# size export and command, prunelab.evaluate's eval.json, the CSV and W&B logs. A rerun with
# other settings keeps them under the old settings' hash, so none is taken for the new run's.
# (error.log and FAILED belong to the latest attempt: every attempt clears them first.)
RUN_FILES = (
    "results.json",
    "eval.json",
    "model.pt",
    "model.sparse",
    "command.json",
    "csv",
    "wandb",
)


def job_config(cfg: DictConfig) -> dict:
    """The resolved settings that determine a job's results."""
    out = {}
    for key in cfg:
        if key in TOP_KEYS_IGNORED:
            continue
        node = cfg[key]
        value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        if key == "data" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in DATA_KEYS_IGNORED}
            value.update(data_files(cfg.data))
        elif key == "trainer" and isinstance(value, dict):
            value = trainer_settings(value)
        out[str(key)] = value
    return out


def config_hash(settings: dict) -> str:
    """A short content hash of `job_config`'s output."""
    return content_hash(settings)


def recipe_hash(cfg: DictConfig) -> str:
    """The hash of the settings shared by every cell of one sweep: the config at sparsity 0, seed 0.

    Values interpolated from `sparsity` or `seed` (pruning.amount, shuffle seeds) follow them, so
    the jobs of one launch share it and a job run with other settings stands out in the report.
    """
    same = cfg.copy()
    with open_dict(same):
        same.sparsity, same.seed = 0.0, 0
    return content_hash(job_config(same))


def differing_keys(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) wherever two nested dicts differ ("<unset>": absent)."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += differing_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out


def changed_keys(old: dict, new: dict) -> list[str]:
    """Dotted keys whose values differ between two nested dicts, as `key: old -> new`."""
    return [f"{key}: {a} -> {b}" for key, a, b in differing_keys(old, new)]


def previous_results(out: Path, identity: dict, settings: dict) -> dict | None:
    """results.json of a finished run of this job with these settings, else None (reads only).

    `identity`: the keys results.json must hold (model, data, pruning, sparsity, seed).
    """
    found = read_json_if_any(out / "results.json")
    if found is None or any(found.get(k) != v for k, v in identity.items()):
        return None
    if found.get("config/hash") == config_hash(settings) and "time/total_s" in found:
        return found
    return None


def aside_name(name: str, tag: str) -> str:
    """A set-aside file's name: `results.json` -> `results.<tag>.json`, `csv` -> `csv.<tag>`."""
    stem, dot, ext = name.partition(".")
    return f"{stem}.{tag}{dot}{ext}"


# The tags set_aside gives: a config hash (fingerprint.content_hash), or "old" for a run that
# recorded none. A user's own model.best.pt is no set-aside file.
ASIDE_TAG = re.compile(r"[0-9a-f]{12}|old")


def aside_tag(name: str) -> str | None:
    """The tag of a file set_aside renamed (`model.<tag>.pt` -> tag), else None."""
    parts = name.split(".")
    return parts[1] if len(parts) == 3 and ASIDE_TAG.fullmatch(parts[1]) else None


# What a set-aside under way will do (its tag; delete or move), written before its first
# rename or deletion and removed before the new config.json is written.
NOTE = ".aside.json"


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _move(src: Path, dst: Path) -> None:
    # An earlier run of those settings, superseded (a stopped run never supersedes a complete
    # one: _plan deletes its files instead).
    if dst.is_dir():
        shutil.rmtree(dst)
    src.replace(dst)


def _plan(out: Path, left: list[str], tag: str) -> dict:
    """What set_aside does with the old run's files `left` (config.json among them) under `tag`."""
    if not (out / "results.json").exists() and (out / aside_name("results.json", tag)).is_file():
        # Stopped before its results: set aside, its logs and command would overwrite those of
        # the complete run of its settings beside that run's results and model.
        return {"tag": tag, "drop": True, "stale": []}
    # An earlier run's files of this tag that none of this run's replaces (say its eval.json):
    # deleted, so the tag holds this run's files only. Listed now, as a kill part-way would
    # leave this run's own set-aside files beside them, alike in name. (config.<tag>.json
    # holds the very settings this run had.)
    stale = [
        aside_name(n, tag)
        for n in RUN_FILES
        if n not in left and (out / aside_name(n, tag)).exists()
    ]
    return {"tag": tag, "drop": False, "stale": stale}


def _pending(out: Path) -> dict | None:
    """The plan of a set-aside cut short, to finish as begun; None if there is none."""
    note = read_json_if_any(out / NOTE)
    if note is None or not ASIDE_TAG.fullmatch(str(note.get("tag"))):
        return None
    return note


def _carry_out(out: Path, plan: dict, left: list[str]) -> str:
    """Delete or set aside the old run's files `left` as `plan` says; say what, for a warning."""
    tag = plan["tag"]
    for name in RUN_FILES:  # not any name a note may hold: only set-aside files of its tag
        if aside_name(name, tag) in plan.get("stale", []):
            _remove(out / aside_name(name, tag))
    slash = {name: "/" if (out / name).is_dir() else "" for name in left}
    for name in left:
        if plan.get("drop"):
            _remove(out / name)
        else:
            _move(out / name, out / aside_name(name, tag))
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # never resume other settings
    if plan.get("drop"):
        files = ", ".join(name + slash[name] for name in left) or "checkpoints"
        return (
            f"; it stopped before its results.json and a complete run of those settings is kept"
            f" (results.{tag}.json and the rest), so its {files} were deleted, not set over those"
        )
    if not left:
        return ""
    first = f"{left[0]}{slash[left[0]]} kept as {aside_name(left[0], tag)}{slash[left[0]]}"
    more = ", ".join(name + slash[name] for name in left[1:])
    return f", its {first}" + (f" ({more} likewise)" if more else "")


def set_aside(out: Path, settings: dict) -> None:
    """Keep what a run of other settings left in `out` under its hash, then record `settings`.

    Called once the job's checks before training passed: a rerun they refuse leaves the old
    run's folder whole (and still skipped by its own command). The old run's `config.json` and
    RUN_FILES get `aside_name`s (or, stopped before results where a complete run of its
    settings is set aside, are deleted), its resume checkpoints are dropped, and `config.json`
    is written last, so the folder never pairs one config with another's files.
    """
    digest = config_hash(settings)
    before = read_json_if_any(out / "config.json")
    old_digest = config_hash(before) if before is not None else None
    left = [name for name in RUN_FILES if (out / name).exists()]
    left += ["config.json"] if before is not None else []
    plan = _pending(out)
    if plan is not None:
        what = f"its set-aside as {plan['tag']} was cut short: finished now"
    elif old_digest != digest and (set(left) - {"config.json"} or (out / "checkpoints").exists()):
        changes = changed_keys(before, settings) if before else ["settings not recorded"]
        more = f"; and {len(changes) - 4} more" if len(changes) > 4 else ""
        what = "; ".join(changes[:4]) + more
        recorded = read_json_if_any(out / "results.json") or {}
        tag = recorded.get("config/hash") or old_digest or "old"
        plan = _plan(out, left, tag)
        write_json(out / NOTE, plan)
    if plan is not None:
        done = _carry_out(out, plan, left)
        warn(f"{out} was run with other settings ({what}){done}; running again")
    (out / NOTE).unlink(missing_ok=True)  # before config.json: a note never meets a new config
    write_json(out / "config.json", settings)


def record_command(out: Path) -> None:
    """Write `command.json`: the overrides and working folder of the run now owning `out`.

    Hydra rewrites `.hydra/` at every attempt, a refused one too; this record is the run's
    own, set aside with its other files, so `prunelab.evaluate` reads the settings its model
    was trained under and a user sees the command that re-creates its results.
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hydra = HydraConfig.get()
    overrides = [str(o) for o in hydra.overrides.task]
    write_json(out / "command.json", {"overrides": overrides, "cwd": str(hydra.runtime.cwd)})
