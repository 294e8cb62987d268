"""prunelab.evaluate's refusals of command-line overrides that would relabel the checkpoint or
that it would ignore (the net's, its training's and the report's keys), each one line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from prunelab.errors import UsageError

if TYPE_CHECKING:
    from omegaconf import DictConfig


def check_identity(cli_overrides: Sequence[str], meta: dict) -> None:
    """The model, data, pruning method, sparsity and seed are the checkpoint's: an override of
    one (`model=resnetsmall`, `sparsity=0.9`) would evaluate the same weights under another
    name, or load another dataset. Keys under the groups (data.root, data.test_size) are free,
    except the net's (model.*: the checkpoint holds its own), its training recipe's and the
    report's (IGNORED_GROUPS), which would change nothing here: refused, not silently ignored.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    ignored = []
    for override in OverridesParser.create().parse_overrides(list(cli_overrides)):
        key = override.key_or_group
        if override.package is None and key.split(".")[0] in IGNORED_GROUPS and "." in key:
            ignored.append(key)
    changed = changed_cells(cli_overrides, meta)
    if changed:
        # A file from before the pruning method was recorded holds None for it: unknown.
        held = ", ".join(f"{k}={'?' if meta.get(k) is None else meta[k]}" for k in changed)
        verb, it = ("comes", "it") if len(changed) == 1 else ("come", "them")
        raise UsageError(
            f"{', '.join(changed)} {verb} from the checkpoint ({held}); prunelab.evaluate does "
            f"not change {it}"
        )
    if ignored:
        raise UsageError(ignored_message(ignored))


def changed_cells(overrides: Sequence[str], meta: dict) -> list[str]:
    """The cell keys (model, data, pruning, sparsity, seed) that `overrides` set otherwise than
    the checkpoint's `meta` holds them (or delete)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from prunelab.validate import CELL_KEYS

    changed = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key not in CELL_KEYS or override.package is not None:
            continue
        value = None if override.is_delete() else override.value()
        own = meta.get(key)
        same = str(value) == str(own) if key in ("model", "data", "pruning") else value == own
        if override.is_delete() or not same:
            changed.append(key)
    return changed


def record_of_another(overrides: Sequence[str], recorded: dict | None, meta: dict) -> str | None:
    """Why the job record found beside a checkpoint is another run's, or None.

    A model.pt of one job copied into another job's folder (as other.pt) would otherwise be
    evaluated under that job's command and given that job's data sizes. `recorded` is the
    record's results file (its cell keys); without one, the record's own cell overrides.
    """
    from prunelab.validate import CELL_KEYS

    if isinstance(recorded, dict) and all(k in recorded for k in CELL_KEYS):
        changed = [k for k in CELL_KEYS if not _same(k, recorded[k], meta.get(k))]
        theirs = {k: recorded[k] for k in changed}
    else:
        try:
            changed = changed_cells(overrides, meta)
        except Exception:  # a record hand-edited beyond parsing: compose_config names it
            return None
        theirs = {o.partition("=")[0]: o.partition("=")[2] for o in overrides}
    if not changed:
        return None
    return ", ".join(f"{k}={theirs.get(k)} against the checkpoint's {meta.get(k)}" for k in changed)


def _same(key: str, theirs: object, mine: object) -> bool:
    if key == "sparsity":
        try:
            return round(float(theirs), 6) == round(float(mine), 6)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return str(theirs) == str(mine)


# Groups whose keys shape the net or its training, fixed once a checkpoint exists, and the
# report's, read by prunelab.report only. (trainer.* stays free: evaluate checks
# trainer.accelerator, which a job trained on a GPU may need reset.)
IGNORED_GROUPS = ("model", "pruning", "baseline", "finetune", "report")


def ignored_message(keys: Sequence[str]) -> str:
    """One line refusing `keys` of IGNORED_GROUPS given on the command line."""
    why = []
    if any(k.split(".")[0] != "report" for k in keys):
        why.append("the checkpoint holds its net and was trained already")
    if any(k.split(".")[0] == "report" for k in keys):
        why.append("report.* is prunelab.report's")
    return (
        f"{', '.join(keys)}: {'; '.join(why)}; "
        f"prunelab.evaluate would ignore {'it' if len(keys) == 1 else 'them'} "
        "(the evaluation's own keys are data.*, attack.*, eval.* and paths.*)"
    )


def ignored_by_options(job_cfg: DictConfig, cfg: DictConfig, options: Sequence[str]) -> str | None:
    """A note naming the keys of IGNORED_GROUPS that group options of the command line
    (`experiment=smoke`, see group_options) change against the job's own config, or None.

    Not refused as a typed `finetune.max_epochs=3` is: an experiment is picked for its data.*,
    attack.* and eval.* settings (a quick look with experiment=smoke), which do apply; the
    user only learns that the rest of it does not. `job_cfg` is the job's config, `cfg` the
    same with the command line on top.
    """
    from omegaconf import OmegaConf

    from prunelab.identity import differing_keys

    mine, then = ({g: OmegaConf.to_container(c.get(g, {})) for g in IGNORED_GROUPS}
                  for c in (job_cfg, cfg))  # fmt: skip
    changed = [key for key, _, _ in differing_keys(mine, then)]
    if not changed:
        return None
    shown = ", ".join(changed[:4]) + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")
    return (
        f"note: {' '.join(options)} also sets {shown}, which prunelab.evaluate ignores (the "
        "checkpoint was trained already); its data.*, attack.* and eval.* settings apply"
    )


def group_options(cli_overrides: Sequence[str]) -> list[str]:
    """The overrides that pick a config option (`experiment=paper`, `~experiment`), not one
    key: they may change any group's keys. The checkpoint's own (model=, seed=) are left out:
    check_identity has made sure they change nothing."""
    from prunelab.validate import CELL_KEYS

    keys = [o.partition("=")[0].lstrip("+~") for o in cli_overrides]
    return [
        o for o, k in zip(cli_overrides, keys, strict=True) if "." not in k and k not in CELL_KEYS
    ]


def check_same_data(ckpt: object, trained: dict, configured: dict, root: object) -> None:
    """The configured data must be what the checkpoint learnt: the same image shape, and the
    same classes in the same label order (a folder whose class names sort otherwise scores the
    predictions against other labels: chance accuracy, with no error)."""
    from prunelab.errors import PrunelabError

    def described(spec: dict) -> str:
        names = spec.get("class_names")
        shown = f"{names}" if names and len(names) <= 12 else f"{spec['num_classes']} classes"
        return f"{list(spec['in_shape'])} images of {shown}"

    same_shape = list(trained["in_shape"]) == list(configured["in_shape"])
    same_count = int(trained["num_classes"]) == int(configured["num_classes"])
    names = trained.get("class_names")
    same_names = not names or list(names) == list(configured.get("class_names") or [])
    if same_shape and same_count and same_names:
        return
    raise PrunelabError(
        f"{ckpt} was trained on {described(trained)}; the configured data (data.root={root}) "
        f"give {described(configured)}: evaluate it on the data it learnt (data.root, "
        "data.classes, data.image_size), or its predictions are scored against other labels"
    )


def changed_images_note(config_file: Path | None, data: DictConfig) -> str | None:
    """A note when an image folder of one's own no longer holds the files the job ran on
    (its config.json keeps their fingerprint): the figures are then of the folder as it is."""
    from prunelab.cache import data_files
    from prunelab.io import read_json_if_any

    ran = read_json_if_any(config_file) if config_file is not None else None
    then = ((ran or {}).get("data") or {}).get("files") if isinstance(ran, dict) else None
    if not isinstance(then, str):
        return None
    now = data_files(data).get("files")
    if now is None or now == then:
        return None
    return (
        f"note: the images under data.root={data.get('root')} are not those the job ran on "
        f"(files {now}, the job's {then}: added, removed, renamed or resized since); the "
        "figures below are for the folder as it is now"
    )
