"""Which config a job's results belong to, so a rerun never keeps results of other settings.

A rerun into an old job folder (same `hydra.sweep.dir`) skips the job only if its results.json
came from the same settings; Hydra has already overwritten the folder's `.hydra/` record by then,
so the job keeps its own: `config.json` (the settings below) and `config/hash` in results.json.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from prunelab.cache import TRAINER_KEYS_IGNORED, data_files
from prunelab.errors import PrunelabError
from prunelab.fingerprint import content_hash
from prunelab.io import read_json, write_json

# Where files go, how runs are shown or logged, and the sweep report: none changes a number.
TOP_KEYS_IGNORED = {"paths", "hydra", "logger", "report", "progress_bar"}
DATA_KEYS_IGNORED = {"root", "download", "num_workers"}


def job_config(cfg: DictConfig) -> dict:
    """The resolved settings that determine a job's results."""
    out = {}
    for key in cfg:
        if key in TOP_KEYS_IGNORED:
            continue
        node = cfg[key]
        value = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        ignored = {"data": DATA_KEYS_IGNORED, "trainer": TRAINER_KEYS_IGNORED}.get(str(key), ())
        if isinstance(value, dict) and ignored:
            value = {k: v for k, v in value.items() if k not in ignored}
        if key == "data":
            value.update(data_files(cfg.data))
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


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts, as `key: old -> new`."""
    out = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, "<unset>"), new.get(key, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a} -> {b}")
    return out


def _read(path: Path) -> dict | None:
    try:
        return read_json(path) if path.is_file() else None
    except PrunelabError:
        return None


def previous_results(out: Path, identity: dict, settings: dict) -> dict | None:
    """results.json of a finished run of this job with these settings, else None.

    `identity`: the keys results.json must hold (model, data, pruning, sparsity, seed). Results,
    and a fine-tuning checkpoint, left by other settings are set aside (results and training log
    kept as `results.<hash>.json`, `csv.<hash>/`) so the job runs afresh; its settings go to
    `config.json`.
    """
    digest = config_hash(settings)
    found = _read(out / "results.json")
    if found is not None and all(found.get(k) == v for k, v in identity.items()):
        if found.get("config/hash") == digest and "time/total_s" in found:
            return found
    before = _read(out / "config.json")
    old_digest = config_hash(before) if before is not None else None
    left = [found is not None, *((out / d).exists() for d in ("checkpoints", "csv"))]
    if old_digest != digest and any(left):  # a run of other settings, finished or killed
        changes = changed_keys(before, settings) if before else ["settings not recorded"]
        more = f"; and {len(changes) - 4} more" if len(changes) > 4 else ""
        what = "; ".join(changes[:4]) + more
        tag = (found or {}).get("config/hash") or old_digest or "old"
        kept = ""
        if found is not None:
            (out / "results.json").replace(out / f"results.{tag}.json")
            kept = f", its results kept as results.{tag}.json"
        if (out / "csv").is_dir():  # the training log of those settings, beside their results
            shutil.rmtree(out / f"csv.{tag}", ignore_errors=True)
            (out / "csv").replace(out / f"csv.{tag}")
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # never resume other settings
        print(
            f"prunelab: warning: {out} was run with other settings ({what}){kept}; running again",
            file=sys.stderr,
            flush=True,
        )
    write_json(out / "config.json", settings)
    return None
