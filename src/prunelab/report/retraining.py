"""Each group's training after pruning, in words, from the settings its own jobs recorded.

The latest multirun.yaml is no guide: it holds one launch's settings, while a sweep folder can
hold groups of several launches, and `pruning=lottery` sets its own learning rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from prunelab.report.aggregate import Group, group_of
from prunelab.report.collect import Job, norm_sparsity

UNRECORDED = "not recorded (no config.json)"


@dataclass(frozen=True)
class Retraining:
    """A group's training after pruning in words, and whether it started from rewound weights."""

    text: str | None = None  # "`finetune.max_epochs` = 1 epoch at lr 0.0001"; None: unknown
    rewound: bool = False  # lottery tickets: retrained from early weights, not the dense model's


def job_retraining(settings: dict) -> tuple[str, bool] | None:
    """(the job's training after pruning in words, rewound?) from its config.json's settings."""
    finetune = settings.get("finetune")
    if not isinstance(finetune, dict) or finetune.get("max_epochs") is None:
        return None
    epochs = finetune["max_epochs"]
    optimizer = finetune.get("optimizer")
    lr = optimizer.get("lr") if isinstance(optimizer, dict) else None
    text = f"`finetune.max_epochs` = {epochs} epoch{'s' if epochs != 1 else ''}"
    if isinstance(lr, int | float) and not isinstance(lr, bool):
        text += f" at lr {lr:g}"
    pruning = settings.get("pruning")
    rewind = pruning.get("rewind_epoch") if isinstance(pruning, dict) else None
    if rewind is None:
        return text, False
    start = "initialisation" if rewind == 0 else f"baseline epoch {rewind}"
    return f"{text}, from the weights at {start}", True


def retraining_of(group: Group, jobs: list[Job]) -> Retraining:
    """How one group's pruned jobs were trained after pruning; their disagreement, if any."""
    found = [job_retraining(j.settings) if j.settings is not None else None for j in jobs]
    counts = Counter(f[0] if f is not None else UNRECORDED for f in found)
    known = [f for f in found if f is not None]
    # Without records only the method's name can tell that its models were rewound.
    rewound = all(r for _, r in known) if known else group.pruning == "lottery"
    if not known:
        return Retraining(None, rewound)
    if len(counts) == 1:
        return Retraining(known[0][0], rewound)
    differ = "; ".join(
        f"{text} ({n} job{'s' if n != 1 else ''})" for text, n in counts.most_common()
    )
    return Retraining(f"its jobs differ: {differ}", rewound)


def group_retraining(jobs: list[Job]) -> dict[Group, Retraining]:
    """Retraining per group, from the config.json of each group's pruned jobs with results."""
    pruned: dict[Group, list[Job]] = {}
    for job in jobs:
        if job.results is not None and norm_sparsity(job.results["sparsity"]) > 0:
            pruned.setdefault(group_of(job.results), []).append(job)
    return {group: retraining_of(group, js) for group, js in pruned.items()}
