"""Which jobs of a sweep folder share one recipe (the settings but sparsity and seed)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prunelab.identity import differing_keys

if TYPE_CHECKING:
    from prunelab.report.collect import Job, SweepData


def set_aside_other_recipes(data: SweepData) -> None:
    """Keep, per model, data and method, only the jobs run with the latest job's settings
    (a dense job: the settings it depends on; see _dense_alike).

    A launch into an old sweep folder with other settings (finetune.max_epochs=2, say) reruns
    only the cells it names; the cells it does not name keep results of the old settings, which
    must not share a table, a dense row or a finding with the new ones.
    """
    latest: dict[tuple, tuple[bool, float, str, Job]] = {}
    for job in data.ok:
        recipe = job.results.get("config/recipe") if job.results else None
        if job.cell is None or not isinstance(recipe, str):
            continue  # written before config/recipe existed: nothing to compare
        group = job.cell[:3]
        # A pruned job depends on every setting, a dense one not on the fine-tuning's: the
        # latest pruned job sets the recipe, the latest dense one only where none is pruned.
        rank = (job.cell.sparsity > 0, (job.path / "results.json").stat().st_mtime)
        if group not in latest or rank > latest[group][:2]:
            latest[group] = (*rank, recipe, job)
    kept = []
    for job in data.jobs:
        recipe = job.results.get("config/recipe") if job.results else None
        group = job.cell[:3] if job.cell is not None else None
        if group in latest and isinstance(recipe, str) and recipe != latest[group][2]:
            newer = latest[group][3]
            if _dense_alike(job, newer):
                kept.append(job)
                continue
            data.excluded.append(
                (
                    job.name,
                    "run with other settings than the latest job of its method, "
                    f"`{newer.name}` ({recipe_changes(job, newer)})",
                )
            )
        else:
            kept.append(job)
    data.jobs = kept


def _changes(old: Job, new: Job) -> list[tuple[str, Any, Any]] | None:
    """The settings two jobs' config.json disagree on that matter to `old`: less those that
    only follow the jobs' own sparsity or seed (`sparsity`, `pruning.amount: ${sparsity}`) and,
    for a dense `old`, those it never uses (_unused); None without both files."""
    if old.settings is None or new.settings is None or old.cell is None or new.cell is None:
        return None
    unused = _unused(old, new)
    return [
        (key, a, b)
        for key, a, b in differing_keys(old.settings, new.settings)
        if not _follows(a, b, old.cell.sparsity, new.cell.sparsity)
        and not _follows(a, b, old.cell.seed, new.cell.seed)
        and not (unused and key.startswith(unused))
    ]


def _unused(job: Job, newer: Job) -> tuple[str, ...]:
    """Key prefixes a dense `job` (sparsity 0) never reads: it prunes and fine-tunes nothing,
    so pruning.* and finetune.*, but for the dense control (`finetune.dense_control`), which
    fine-tunes it with finetune.*."""
    if job.cell is None or job.cell.sparsity != 0:
        return ()
    settings = (job.settings or {}, newer.settings or {})
    control = any((s.get("finetune") or {}).get("dense_control") for s in settings)
    return ("pruning.",) if control else ("pruning.", "finetune.")


def _dense_alike(job: Job, newer: Job) -> bool:
    """Whether dense `job` gives what it would under `newer`'s settings (see _unused)."""
    return bool(_unused(job, newer)) and _changes(job, newer) == []


def _follows(a: Any, b: Any, old: float, new: float) -> bool:
    """Whether a setting changed from `old` to `new` exactly as a cell key did."""
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b))
    return numbers and old != new and (a, b) == (old, new)


def recipe_changes(old: Job, new: Job, shown: int = 4) -> str:
    """The settings two jobs' config.json disagree on, as the rerun warning names them.

    `key: old -> new` for the first `shown`; values that only follow the jobs' own sparsity or
    seed (`sparsity`, `pruning.amount: ${sparsity}`) are no part of the recipe and left out.
    """
    found = _changes(old, new)
    if found is None:
        return "config/recipe differs; no config.json to compare"
    changes = [f"{key}: {a} -> {b}" for key, a, b in found]
    if not changes:
        return "config/recipe differs"
    more = f"; and {len(changes) - shown} more" if len(changes) > shown else ""
    return "; ".join(changes[:shown]) + more
