"""The files an evaluation reads and writes: the job's model, its dense baseline, and the
eval file's name, checked so that it overwrites nothing of the job's own record."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from prunelab.errors import PrunelabError, UsageError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from prunelab.cache import BaselineCache


def load_job_model(path: Path) -> dict:
    """A job's model.pt, checked for the fields the evaluation needs."""
    from prunelab.io import load_torch

    if not path.is_file():
        failed = path.with_name("FAILED")  # a job that stopped before saving its model
        why = failed.read_text(errors="replace").strip().splitlines() if failed.is_file() else []
        said = f" (the job failed: {why[0].removeprefix('prunelab: ')})" if why else ""
        raise PrunelabError(f"no checkpoint at {path}{said}")
    saved = load_torch(path)
    fields = ("state_dict", "model", "data", "meta")
    missing = [k for k in fields if k not in saved] if isinstance(saved, dict) else list(fields)
    if missing:
        raise PrunelabError(f"{path} is not a prunelab job model (missing: {', '.join(missing)})")
    return saved


def load_baseline_state(
    arg: str | None, saved: dict, cfg: DictConfig, ckpt: Path | None = None
) -> tuple[dict | None, BaselineCache | None, str | None]:
    """(state_dict or None, cache or None, cache key or None) of the model's dense baseline
    (`ckpt`: the checkpoint, whose sweep may hold the dense job to name when the cache lacks
    it)."""
    from prunelab.cache import BaselineCache
    from prunelab.io import load_torch

    if arg is not None and arg.lower() == "none":
        return None, None, None
    if arg:
        path = Path(arg).expanduser()
        if path.is_dir():  # a job folder (the sparsity-0 job's is the dense model): its model
            path = path / "model.pt"
        if not path.is_file():
            raise PrunelabError(f"no baseline at {path}")
        entry = path.parent.parent
        if path.parent.name == "rewind" and (entry / "meta.json").is_file():
            # A cache entry's rewind point (epoch0.pt: the untrained net) loads like the
            # entry's model.pt; changes against it would be against an untrained model.
            raise PrunelabError(
                f"the baseline {path} is a rewind point of the dense training (its weights "
                f"part-way or before it), not the trained dense model; pass {entry / 'model.pt'}"
            )
        state = load_torch(path)
        if isinstance(state, dict) and isinstance(state.get("meta"), dict):  # a job's model.pt
            check_baseline_meta(path, state["meta"], saved["meta"])
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise PrunelabError(
                f"the baseline {path} holds a {type(state).__name__}, not a model's weights; "
                "pass the dense model.pt of the same model and config, or baseline=none"
            )
        return state, None, None
    key = saved["meta"].get("baseline/key")
    cache = BaselineCache(cfg.paths.cache_dir)
    path = cache.entry(str(key)) / "model.pt"
    if key is None or not path.is_file():
        dense = dense_job_beside(ckpt, key) if ckpt is not None and key else None
        hint = f"baseline={dense}, its sweep's dense job" if dense else "baseline=PATH"
        print(f"note: no baseline at {path}; evaluating the model alone (pass {hint})")
        return None, None, None
    return load_torch(path), cache, str(key)


def dense_job_beside(ckpt: Path, key: str) -> Path | None:
    """A sparsity-0 job of the same baseline in the checkpoint's sweep folder, if any."""
    from prunelab.io import read_json_if_any

    for results in sorted(ckpt.parent.parent.glob("*/results.json")):
        found = read_json_if_any(results) or {}
        if found.get("sparsity") in (0, 0.0) and found.get("baseline/key") == key:
            if (results.parent / "model.pt").is_file():
                return results.parent
    return None


def check_baseline_meta(path: Path, theirs: dict, mine: dict) -> None:
    """A job's model.pt given as baseline must be dense and of the checkpoint's own baseline
    (its baseline/key) where both are known: the pruned job itself, or the dense model of
    another seed or recipe, would fit the architecture and give changes against the wrong net.
    """
    hint = "pass the sparsity-0 job of the same seed and config, or baseline=none"
    if theirs.get("sparsity") not in (None, 0):
        raise PrunelabError(
            f"the baseline {path} is not dense (its sparsity is {theirs['sparsity']}); {hint}"
        )
    key, own = theirs.get("baseline/key"), mine.get("baseline/key")
    if key is not None and own is not None and key != own:
        raise PrunelabError(
            f"the baseline {path} is the dense model of {key}, not of the checkpoint's "
            f"baseline {own}; {hint}"
        )


def eval_name(ckpt_name: str) -> str:
    """The evaluation file of a checkpoint, one per checkpoint name in a folder: eval.json for
    model.pt, eval.<tag>.json for a model.<tag>.pt that a rerun of other settings set aside
    with eval.json (prunelab.identity.set_aside), and eval.<name>.json for any other name, its
    `.pt` dropped (best.pt -> eval.best.json, one's own model.best.pt -> eval.model.best.json),
    so no other model's figures land in the job's eval.json, nor two models' in one file."""
    from prunelab.identity import ASIDE_TAG, aside_tag

    if ckpt_name == "model.pt":
        return "eval.json"
    tag = aside_tag(ckpt_name) if ckpt_name.endswith(".pt") else None
    if tag:
        return f"eval.{tag}.json"
    stem = ckpt_name.removesuffix(".pt")
    # old.pt would take model.old.pt's eval.old.json: such a name keeps its .pt.
    return f"eval.{ckpt_name if ASIDE_TAG.fullmatch(stem) else stem}.json"


def run_file(ckpt_name: str, stem: str) -> str | None:
    """`<stem>.json` of the run that saved `ckpt_name`: `<stem>.<hash>.json` for a
    model.<hash>.pt set aside with the rest of its run (prunelab.identity.set_aside); None
    for a model.<other>.pt of one's own, which no run recorded; `<stem>.json` for any other
    name (a job's model.pt renamed in its folder)."""
    from prunelab.identity import aside_name, aside_tag

    if ckpt_name == "model.pt" or not ckpt_name.startswith("model."):
        return f"{stem}.json"
    tag = aside_tag(ckpt_name)
    return aside_name(f"{stem}.json", tag) if tag else None


# A job's own record, which an evaluation must never overwrite (out=... names it by mistake).
JOB_FILES = re.compile(r"(results|config|command)(\.[0-9a-f]+)?\.json")


def check_out(out: Path) -> None:
    """Refuse an `out=` that is not a .json file (a checkpoint, a job's model.pt), or that
    would overwrite a job's results.json, config.json or command.json."""
    if out.suffix != ".json":
        raise UsageError(f"out={out} is not a .json file; name the JSON file to write")
    if JOB_FILES.fullmatch(out.name):
        raise UsageError(
            f"out={out} would overwrite a job's own {out.name}; name another file "
            f"(out={out.with_name('eval.json')})"
        )


def check_own_eval(out: Path, ckpt: Path) -> None:
    """The default eval file must not hold another checkpoint's figures: eval_name drops `.pt`,
    so `best` and `best.pt` (or `old` and a set-aside model.old.pt) share one name."""
    from prunelab.identity import aside_tag
    from prunelab.io import read_json_if_any

    # None yet, or unreadable: written over as before.
    other = (read_json_if_any(out) or {}).get("checkpoint")

    name = Path(other).name if isinstance(other, str) else ckpt.name
    # A rerun of other settings renamed model.pt and its eval.json together (set_aside).
    if name != ckpt.name and not (name == "model.pt" and aside_tag(ckpt.name)):
        own = f"eval.{ckpt.name}.json"
        own = own if own != out.name else f"eval.{ckpt.name}.own.json"  # a bare name: `best`
        raise UsageError(
            f"{out} holds the evaluation of {name}, whose file name gives the same eval file "
            f"as {ckpt.name}'s; name this one's: out={out.with_name(own)}"
        )
