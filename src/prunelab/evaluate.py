"""Evaluate a saved job model on its own: `python -m prunelab.evaluate ckpt=PATH [options]`.

    python -m prunelab.evaluate ckpt=multirun_sweeps/<time>/<job>/model.pt   (or the job folder)
    python -m prunelab.evaluate ckpt=PATH baseline=PATH attack.n_images=200 out=PATH

The config is the job's own (the overrides in its `command.json`, else `.hydra/overrides.yaml`,
composed again; the default config with the checkpoint's dataset where there is none, or where
it is another run's) with the command line's overrides on top. The baseline comes from
`baseline=PATH` (a state_dict or a job's model.pt, which must be dense and of the checkpoint's
own baseline: its sparsity-0 job), else from the cache entry the job names; `baseline=none`
evaluates the model alone.
Prints a table and writes the evaluation's keys of docs/metrics.md (with the job's identity and
`prune/...` keys, not its training's `config/`, `baseline/` and `time/` keys) to `eval.json`
beside the checkpoint (`eval.<hash>.json` for a `model.<hash>.pt` set aside by a rerun,
`eval.<name>.json` for any other `<name>.pt`: `eval.model.best.json` for `model.best.pt`,
`eval.best.json` for `best.pt`; or `out=PATH`); the job's results.json is never touched.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prunelab.cli import check_argv, check_writable, merge_overrides
from prunelab.errors import (
    PrunelabError,
    UsageError,
    noting_interrupts,
    sigterm_as_interrupt,
    stop_line,
)
from prunelab.evalchecks import (
    changed_images_note,
    check_identity,
    check_same_data,
    group_options,
    ignored_by_options,
    record_of_another,
)
from prunelab.evalfiles import (
    check_out,
    check_own_eval,
    eval_name,
    load_baseline_state,
    load_job_model,
    run_file,
)
from prunelab.evaltable import format_table

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch import nn


OWN_KEYS = ("ckpt", "baseline", "out")
log = logging.getLogger("prunelab")


def parse_args(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Split `ckpt=`, `baseline=`, `out=` from the Hydra overrides."""
    own, overrides = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if sep and key in OWN_KEYS:
            if key in own:  # the last would win silently: train.py refuses this too
                raise UsageError(f"{key}= is given twice; give it once")
            if not value:
                raise UsageError(f"{key}= is empty; give a path (or leave {key}= out)")
            own[key] = value
        else:
            overrides.append(arg)
    if not own.get("ckpt"):
        usage = "usage: python -m prunelab.evaluate ckpt=PATH [baseline=PATH] ..."
        # `evaluate model.pt`, as most tools take a path: say how this one takes it.
        bare = next((a for a in overrides if "=" not in a and not a.startswith(("-", "~"))), None)
        if bare is not None:
            usage += f" (a path goes after ckpt=: ckpt={bare})"
        raise UsageError(usage)
    return own, overrides


def _yaml(path: Path) -> Any:
    """A YAML file of the job's record, or one line naming it where it cannot be read."""
    import yaml

    try:
        return yaml.safe_load(path.read_text()) or []
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PrunelabError(f"cannot read the job's record {path} ({first})") from None


def _read_command(path: Path) -> tuple[dict | None, str | None]:
    """(record, why it is unusable) of a command.json; (None, None) where there is none."""
    import json

    if not path.is_file():
        return None, None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:  # a half-written or hand-edited file
        return None, f"{path} cannot be read ({str(err).splitlines()[0]})"
    if not isinstance(record, dict) or not isinstance(record.get("overrides"), list):
        return None, f"{path} holds no list of overrides"
    return record, None


def job_record(ckpt: Path) -> tuple[tuple[list[str], str | None, str] | None, str | None]:
    """(overrides, working folder, file read) of the run that saved `ckpt`: its `command.json`
    (`command.<hash>.json` for a model set aside with its run), else the folder's `.hydra/`
    (jobs from before command.json, a model of one's own); None where there is neither. Beside
    it, why a command.json there was passed over (None: fine or absent)."""
    path = ckpt.with_name(run_file(ckpt.name, "command") or "command.json")
    found, cwd = None, None
    record, problem = _read_command(path)
    if record is not None:
        found, cwd, source = record["overrides"], record.get("cwd"), path.name
    hydra = ckpt.parent / ".hydra"
    if found is None:
        if not (hydra / "overrides.yaml").is_file():
            return None, problem
        found = _yaml(hydra / "overrides.yaml")
        if not isinstance(found, list):
            raise PrunelabError(f"{hydra / 'overrides.yaml'} is no list of overrides")
        source = ".hydra"
        if (hydra / "hydra.yaml").is_file():
            top = _yaml(hydra / "hydra.yaml")
            runtime = ((top.get("hydra") or {}) if isinstance(top, dict) else {}).get("runtime")
            cwd = runtime.get("cwd") if isinstance(runtime, dict) else None
    overrides = [str(o) for o in found if not str(o).lstrip("+~").startswith("hydra")]
    return (overrides, (str(cwd) if cwd else None), source), problem


def anchor_paths(cfg: DictConfig, job_cwd: str | None, cli_overrides: Sequence[str]) -> None:
    """Relative data, cache and data-root folders as the job meant them: under `job_cwd`.

    `paths.data_dir: data` means `data/` of wherever train.py was started, as does
    `data.root=images` of an image folder; evaluating the job from another folder would
    otherwise look for (and fail to find) the data there. A path given on this command line is
    taken as given, and one set through another (`root: ${paths.data_dir}`) follows it.
    """
    from omegaconf import OmegaConf

    if not job_cwd or Path(job_cwd).resolve() == Path.cwd().resolve():
        return
    given = {o.partition("=")[0].lstrip("+~") for o in cli_overrides}
    for name in ("paths.data_dir", "paths.cache_dir", "data.root"):
        group, key = name.split(".")
        node = cfg.get(group)
        if node is None or key not in node or name in given:
            continue
        if OmegaConf.is_interpolation(node, key) or Path(str(node[key])).is_absolute():
            continue
        there = Path(job_cwd) / str(node[key])
        if there.exists():
            node[key] = str(there)


def run_results(ckpt: Path) -> dict | None:
    """The results.json of the run that saved `ckpt` (results.<hash>.json for a set-aside
    model.<hash>.pt), or None: none recorded, half-written or foreign."""
    import json

    name = run_file(ckpt.name, "results")
    record = ckpt.with_name(name) if name else None
    try:
        found = json.loads(record.read_text()) if record and record.is_file() else None
    except (OSError, ValueError):  # a half-written or foreign file: no record
        return None
    return found if isinstance(found, dict) else None


def data_sizes(trained: dict | None, test_size: int) -> dict[str, int]:
    """data/train_size and data/val_size as the job trained (`trained`: the results of the run
    that saved the checkpoint; left out without them: this command's config may ask for
    others), and the test split evaluated."""
    keys = ("data/train_size", "data/val_size")
    sizes = {k: trained[k] for k in keys if isinstance(trained, dict) and k in trained}
    return {**sizes, "data/test_size": test_size}


def compose_config(overrides: list[str]) -> DictConfig:
    """The project's config composed with `overrides`, outside any Hydra run."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from prunelab.validate import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides)


def check_record(overrides: list[str], cli_overrides: list[str], where: Path) -> DictConfig | None:
    """The job's own overrides (read from `where`) composed with this config, or None where only
    the command line mends them: a record edited by hand or written by another prunelab
    version would otherwise fail in words that name neither the record nor the file."""
    try:
        return compose_config(overrides)
    except Exception as err:  # Hydra's and OmegaConf's errors: named below in one line
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        why = lines[0] if lines else type(err).__name__
    try:
        compose_config(merge_overrides(overrides, cli_overrides))
        return None
    except Exception:  # the command line does not mend it: the record is the cause
        pass
    raise PrunelabError(
        f"the job's record {where} does not compose with this config ({why.rstrip('.')}); "
        "edit that file or set the key on the command line"
    )


def prune_metrics(net: nn.Module, saved: dict, dense: nn.Module) -> dict[str, Any]:
    """The `prune/...` keys of a saved job model, with the meaning results.json gives them.

    A structurally pruned net is narrower than its config and has no zeros of its own: as in
    the job, its sparsities are the shares of the dense model's weights and parameters that
    are gone (prunelab.pruning.measure_removed), with the channel ratio and MACs removed.
    `dense` is a net of the architecture before any shrinking (its weights do not matter).
    """
    from prunelab.pruning import layer_sparsity, measure_removed, measure_sparsity

    # The job's target is its sparsity (for structured pruning, its channel ratio).
    zeros = {
        "prune/sparsity_target": float(saved["meta"]["sparsity"]),
        **measure_sparsity(net),
        **layer_sparsity(net, reference=dense),
    }
    if [p.shape for p in net.parameters()] == [p.shape for p in dense.parameters()]:
        return zeros
    # The job's keys in its order: zeros, then what shrinking removed (overriding them).
    return {
        **zeros,
        "prune/channel_ratio": float(saved["meta"]["sparsity"]),  # a structured job's sparsity
        **measure_removed(net, dense, saved["data"]["in_shape"]),
    }


def run(argv: Sequence[str]) -> dict[str, Any]:
    """Evaluate the checkpoint named in `argv`; print the table and write the JSON file."""
    own, cli_overrides = parse_args(argv)
    check_argv(cli_overrides, evaluate=True, base=None)  # values now, keys once the job is known
    ckpt = Path(own["ckpt"]).expanduser()  # `~` the shell left (quoted, or from a script)
    if ckpt.is_dir():  # a job folder: its model
        jobs = sorted(ckpt.glob("*/model.pt"))
        if not (ckpt / "model.pt").exists() and jobs:
            raise PrunelabError(
                f"{ckpt} is a sweep folder: name one of its {len(jobs)} jobs "
                f"(ckpt={jobs[0].parent})"
            )
        ckpt = ckpt / "model.pt"
    if ckpt.suffix == ".sparse":
        raise PrunelabError(
            f"{ckpt} is the size export (weights only); pass the job's model.pt, which holds "
            "the architecture and data it needs (load_sparse reads .sparse files in Python)"
        )
    out = Path(own["out"]).expanduser() if own.get("out") else ckpt.with_name(eval_name(ckpt.name))
    if not own.get("out"):
        check_own_eval(out, ckpt)
    if out.is_dir():
        raise PrunelabError(f"out={out} is a folder; name the file to write (out={out}/eval.json)")
    check_out(out)
    check_writable(str(out.parent))  # before minutes of attacks, not after
    saved = load_job_model(ckpt)

    from prunelab.build import build_datamodule, build_net, build_saved_net, data_spec
    from prunelab.evaluation import evaluate
    from prunelab.evaluation.core import attacked_models
    from prunelab.io import write_json
    from prunelab.pipeline import META_KEYS, quiet_libraries
    from prunelab.validate import CONF_DIR, check_before_training

    quiet_libraries()
    meta = saved["meta"]
    (record, problem), trained = job_record(ckpt), run_results(ckpt)
    job_cwd, notes, job_cfg = None, [], None
    if problem:
        notes.append(
            f"note: {problem}; "
            + ("using .hydra/ instead" if record is not None else "no other record to use")
        )
    other = record_of_another(record[0], trained, meta) if record is not None else None
    if record is None or other:  # a model.pt copied away from its job, or into another's
        known = (CONF_DIR / "data" / f"{meta.get('data')}.yaml").is_file()
        overrides = [f"data={meta['data']}"] if known else []  # at least the same dataset
        why = (
            f"the job record beside {ckpt} ({record[2]}) is another run's ({other})"
            if record is not None
            else f"no job record (command.json, .hydra/) beside {ckpt}"
        )
        notes.append(
            f"note: {why}; evaluating under the default config"
            + (f" with {overrides[0]}" if overrides else "")
            + " (pass the job's settings on the command line)"
        )
        record, trained = None, None
    else:
        overrides, job_cwd, source = record
        hydra = ckpt.parent / ".hydra" / "overrides.yaml"
        where = hydra if source == ".hydra" else ckpt.with_name(source)
        job_cfg = check_record(overrides, cli_overrides, where)
        if source == ".hydra" and run_file(ckpt.name, "config") not in ("config.json", None):
            old = ckpt.with_name(str(run_file(ckpt.name, "config")))
            notes.append(
                f"note: {ckpt.name} was set aside by a rerun with other settings; .hydra/ is "
                "that rerun's, so the attack, eval and data settings follow it"
                + (f" (the old run's are in {old.name})" if old.is_file() else "")
            )
    # The checkpoint's identity first (model=resnetsmall on a job with model.hidden=32 is
    # "model comes from the checkpoint", not a failure to compose its keys with another
    # model), then the keys against the job's own groups (data.image_size exists for its
    # data=imagefolder, not for the default dataset) and the composed config's values.
    check_identity(cli_overrides, meta)  # before any data is loaded (or downloaded)
    check_argv(cli_overrides, evaluate=True, base=overrides)
    for note in notes:
        print(note)
    cfg = compose_config(merge_overrides(overrides, cli_overrides))
    options = group_options(cli_overrides)
    # What the command line's groups replace of the job's settings (unknowable where the
    # job's settings alone do not compose: the command line mends them).
    if options and job_cfg is None and record is None:  # the default config's
        job_cfg = compose_config(overrides)
    note = ignored_by_options(job_cfg, cfg, options) if options and job_cfg is not None else None
    if note:
        print(note)
    anchor_paths(cfg, job_cwd, cli_overrides)
    state, cache, key = load_baseline_state(own.get("baseline"), saved, cfg, ckpt)  # before data
    dm = build_datamodule(cfg, "test")  # no warning about the sizes of splits it never reads
    spec = data_spec(dm)
    check_before_training(cfg, spec)  # devices, attack.targeted_class
    check_same_data(ckpt, saved["data"], spec, cfg.data.get("root"))
    config_name = run_file(ckpt.name, "config") if record is not None else None
    note = changed_images_note(ckpt.with_name(config_name) if config_name else None, cfg.data)
    if note:
        print(note)
    # A structurally pruned model is narrower than its config says: shape it to its weights.
    net = build_saved_net(saved["model"], saved["data"], saved["state_dict"])
    baseline = None
    if state is not None:
        baseline = build_net(saved["model"], saved["data"])
        try:
            baseline.load_state_dict(state)
        except RuntimeError as err:  # another model's, or a structurally shrunk one
            first = str(err).splitlines()[0].rstrip(":")
            raise PrunelabError(
                f"the baseline does not fit {ckpt}'s architecture ({first}); pass the dense "
                "model.pt of the same model and config, or baseline=none"
            ) from None

    # The unpruned architecture: the reference of the layer sparsities and, without a
    # baseline, of the size and FLOPs ratios (its file size and MACs follow from its shapes).
    dense = baseline if baseline is not None else build_net(saved["model"], saved["data"])
    start = time.perf_counter()
    timings: dict[str, float] = {}
    metrics = evaluate(
        net, baseline, dm, saved["data"], cfg, cache=cache, key=key, dense=dense, timings=timings
    )
    attacked = attacked_models(timings, baseline is not None)
    results = {
        **{k: meta.get(k) for k in META_KEYS},  # `pruning`: None in files before 24a0ddd
        "checkpoint": str(ckpt),
        **prune_metrics(net, saved, dense),
        **data_sizes(trained, len(dm.test_set)),
        **metrics,
        "time/eval_s": time.perf_counter() - start,
    }
    print(format_table(results))
    write_json(out, results)
    steps = int(timings.get("robust_steps", 0))
    print(
        f"\nwrote {out} ({len(results)} keys, evaluation {results['time/eval_s']:.1f} s, "
        f"{steps:,} attack steps: {attacked})"
    )
    return results


def _stop() -> int:
    """Ctrl-C or SIGTERM: one line on stderr; the shell's status for the signal."""
    line, status = stop_line("nothing written")
    print(line, file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: one clear line for a problem the user can fix, and status 2 for a
    malformed command line, 1 for anything else (as train.py)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") for a in args):
        print(__doc__.strip())
        return 0
    with noting_interrupts() as interrupted, sigterm_as_interrupt():
        try:
            run(args)
        except PrunelabError as err:
            print(f"prunelab: error: {err}", file=sys.stderr)
            return 2 if isinstance(err, UsageError) else 1
        except Exception:
            if not interrupted.is_set():
                raise
            return _stop()
        except KeyboardInterrupt:  # the results file is written last, in one rename
            return _stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
