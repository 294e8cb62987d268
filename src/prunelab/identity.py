"""Which config a job's results belong to, so a rerun never keeps results of other settings.

A rerun into an old job folder (same `hydra.sweep.dir`) skips the job only if its results.json
came from the same settings; Hydra has already overwritten the folder's `.hydra/` record by then,
so the job keeps its own: `config.json` (the settings below) and `config/hash` in results.json.
A job of other settings first sets every file of the old run aside under that run's hash.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from prunelab.cache import data_files, trainer_settings
from prunelab.errors import PrunelabError, warn
from prunelab.fingerprint import content_hash
from prunelab.io import read_json, write_json

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


def _read(path: Path) -> dict | None:
    try:
        return read_json(path) if path.is_file() else None
    except PrunelabError:
        return None


def previous_results(out: Path, identity: dict, settings: dict) -> dict | None:
    """results.json of a finished run of this job with these settings, else None (reads only).

    `identity`: the keys results.json must hold (model, data, pruning, sparsity, seed).
    """
    found = _read(out / "results.json")
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


def _move(src: Path, dst: Path) -> None:
    if dst.is_dir():  # left by an earlier run of those same settings: superseded
        shutil.rmtree(dst)
    src.replace(dst)


def set_aside(out: Path, settings: dict) -> None:
    """Keep what a run of other settings left in `out` under its hash, then record `settings`.

    Called once the job's checks before training passed: a rerun they refuse leaves the old
    run's folder whole (and still skipped by its own command). The old run's `config.json` and
    RUN_FILES get `aside_name`s, its resume checkpoints are dropped, and `config.json` is
    written last, so the folder never pairs one config with another's files.
    """
    digest = config_hash(settings)
    before = _read(out / "config.json")
    old_digest = config_hash(before) if before is not None else None
    left = [name for name in RUN_FILES if (out / name).exists()]
    if old_digest != digest and (left or (out / "checkpoints").exists()):
        changes = changed_keys(before, settings) if before else ["settings not recorded"]
        more = f"; and {len(changes) - 4} more" if len(changes) > 4 else ""
        what = "; ".join(changes[:4]) + more
        tag = (_read(out / "results.json") or {}).get("config/hash") or old_digest or "old"
        moved = []
        for name in (*left, *(["config.json"] if before is not None else [])):
            slash = "/" if (out / name).is_dir() else ""
            _move(out / name, out / aside_name(name, tag))
            moved.append((name + slash, aside_name(name, tag) + slash))
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # never resume other settings
        kept = f", its {moved[0][0]} kept as {moved[0][1]}" if moved else ""
        if len(moved) > 1:
            kept += f" ({', '.join(name for name, _ in moved[1:])} likewise)"
        warn(f"{out} was run with other settings ({what}){kept}; running again")
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
