"""One Hydra job: baseline (cached), prune, fine-tune with masks held, test, save, log."""

from __future__ import annotations

import hashlib
import logging
import os
import shlex
import shutil
import stat
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import NoReturn

import lightning as L
import torch
from filelock import FileLock, Timeout
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from prunelab.build import build_datamodule, build_net, choice, data_spec
from prunelab.cache import (
    PUBLISH,
    BaselineCache,
    baseline_key,
    baseline_key_material,
)
from prunelab.control import dense_control
from prunelab.errors import (
    JOB_BEGUN,
    PrunelabError,
    busy,
    instantiation_message,
    note_sigterm,
    on_stop,
    say,
    sigterm_as_interrupt,
    stop_line,
    stop_said,
    stop_status,
    stopped,
)
from prunelab.evaluation import evaluate
from prunelab.fitting import (
    finetune_module,
    fit_resumable,
    make_trainer,
    resume_checkpoint,
    resume_path,
)
from prunelab.identity import (
    config_hash,
    job_config,
    previous_results,
    recipe_hash,
    record_command,
    set_aside,
)
from prunelab.io import load_torch, read_json, read_json_if_any, save_torch, write_json
from prunelab.lean import ModelCheckpoint
from prunelab.module import Classifier
from prunelab.pruning import (
    LotteryRewinding,
    MaskGuard,
    SaveWeightsAt,
    StructuredPruning,
    layer_sparsity,
    measure_sparsity,
)
from prunelab.runtime import cheap_cuda_check
from prunelab.seeding import EpochSeed
from prunelab.sweep_dir import claimed
from prunelab.tracking import Tracker
from prunelab.validate import check_before_training, check_config, check_sparsity

log = logging.getLogger("prunelab")
# The job's identity, kept in model.pt (and copied into eval.json by prunelab.evaluate).
META_KEYS = ("model", "data", "pruning", "sparsity", "seed", "baseline/key")


def quiet_libraries() -> None:
    """Keep the console to progress bars and our own lines (Lightning's tips, known noise)."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A profiler the user picked (trainer.profiler=simple) reports at INFO: keep that.
    logging.getLogger("lightning.pytorch.profilers").setLevel(logging.INFO)
    for pattern in (
        ".*isinstance\\(treespec, LeafSpec\\).*",
        ".*smaller than the logging interval.*",
        ".*does not have many workers.*",
        # A resumed stage checkpoints into the folder it resumes from: expected, not a clash.
        "Checkpoint directory .* exists and is not empty.*",
        # The baseline stopped before its first validation: its own line says so, not a hint to
        # log the metric (once validation has run, a missing one is an error, not this).
        ".*could not find the monitored key.*",
    ):
        warnings.filterwarnings("ignore", message=pattern)


def _net_state(checkpoint: dict) -> dict:
    """The net's weights from a Lightning checkpoint of a Classifier."""
    return {
        k.removeprefix("net."): v
        for k, v in checkpoint["state_dict"].items()
        if k.startswith("net.")
    }


def train_baseline(
    cfg: DictConfig, dm: L.LightningDataModule, spec: dict, loggers: list, work: Path
) -> tuple[dict, dict]:
    """Train the dense model with early stopping on validation accuracy; keep the best epoch."""
    # Training that has ended (early stop or max_epochs) is not resumed: Lightning does not
    # checkpoint the stop, so a job killed before publishing would train on from last.ckpt
    # and publish another baseline under the same key.
    done = work / "fit_done.json"
    if done.is_file() and (work / "best.ckpt").is_file():
        return _net_state(load_torch(work / "best.ckpt")), read_json(done)
    L.seed_everything(cfg.seed, workers=True)
    net = build_net(cfg.model, spec)
    module = Classifier(
        net,
        spec["num_classes"],
        instantiate(cfg.baseline.optimizer),
        cfg.baseline.scheduler,
        prefix="baseline_",
        channels_last=bool(cfg.baseline.channels_last),
    )
    best = ModelCheckpoint(
        dirpath=work,
        filename="best",
        monitor="baseline_val/acc",
        mode="max",
        save_last=True,
        enable_version_counter=False,
        # At epoch end, not validation end: a resume then repeats the uninterrupted run exactly.
        save_on_train_epoch_end=True,
    )
    # Not strict: a fit stopped inside its first epoch (max_steps, max_time) has no validation
    # accuracy to stop on; the check below says so, not Lightning's "metric not available".
    stop = EarlyStopping(
        monitor="baseline_val/acc", mode="max", patience=cfg.baseline.patience, strict=False
    )
    callbacks = [best, stop, EpochSeed(cfg.seed)]
    if cfg.baseline.get("rewind_epochs"):  # net states kept for lottery-ticket rewinding
        callbacks.append(SaveWeightsAt(list(cfg.baseline.rewind_epochs), work / PUBLISH / "rewind"))
    trainer = make_trainer(cfg, "baseline", cfg.baseline.max_epochs, callbacks, loggers, work)
    resume = work / "last.ckpt"
    start = time.perf_counter()
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(resume), weights_only=True)
    if best.best_model_score is None:  # stopped inside its first epoch: nothing validated
        raise PrunelabError(
            "the baseline stopped before its first validation (a trainer.max_time or "
            "max_steps that short?): no best epoch to keep"
        )
    meta = {
        "epochs": trainer.current_epoch,
        "best_val_acc": float(best.best_model_score),
        "train_seconds": time.perf_counter() - start,
    }
    write_json(done, meta)
    return _net_state(load_torch(best.best_model_path)), meta


def check_rewind_reached(cfg: DictConfig, method: object, meta: dict) -> None:
    """pruning=lottery rewinding to an epoch its baseline never finished: early stopping (or a
    trainer.max_time/max_steps) ended it first. Says when it stopped and what to change."""
    epoch = method.rewind_epoch if isinstance(method, LotteryRewinding) else 0
    stopped = int(meta["epochs"])
    if epoch <= stopped:
        return
    patience = cfg.baseline.patience
    why = f"early stopping: no better validation accuracy in baseline.patience={patience} epochs"
    limits = [k for k in ("max_time", "max_steps") if cfg.trainer.get(k) not in (None, -1)]
    if limits:
        why += " or " + " / ".join(f"trainer.{k}" for k in limits)
    listed = cfg.baseline.get("rewind_epochs") or []
    # Epoch 0 is there whether listed or not (the initialisation, rebuilt from the seed).
    reached = " or ".join(str(e) for e in sorted({0, *(e for e in listed if e <= stopped)}))
    raise PrunelabError(
        f"pruning.rewind_epoch={epoch} needs the baseline's weights after epoch {epoch}, but the "
        f"baseline stopped after epoch {stopped} of baseline.max_epochs={cfg.baseline.max_epochs} "
        f"({why}): rewind to an epoch it reached (pruning.rewind_epoch={reached}), or train "
        "the baseline longer with a larger baseline.patience (a new baseline)"
    )


def own_checkpoints(ckpt_dir: Path, key: str) -> None:
    """Keep fine-tuning resume checkpoints only if they were pruned from baseline `key`.

    The job's settings hash leaves out code and library versions, which the baseline key
    holds: after an upgrade a new baseline trains, and a resume would fine-tune weights
    pruned from the old one while results.json names the new.
    """
    mark = ckpt_dir / "baseline.json"
    ours = (read_json_if_any(mark) or {}).get("key") == key  # unreadable: no known baseline
    if ckpt_dir.is_dir() and not ours:
        log.info("fine-tune checkpoints in %s are of another baseline: starting over", ckpt_dir)
        shutil.rmtree(ckpt_dir)
    if not ours:
        write_json(mark, {"key": key})


def finetune(
    cfg: DictConfig,
    net: torch.nn.Module,
    dm: L.LightningDataModule,
    spec: dict,
    loggers: list,
    out: Path,
    rewind_dir: Path | None = None,
) -> tuple[dict | None, dict, dict]:
    """Prune (callback) and fine-tune with the masks held; returns (masks, timing, removed).

    `removed` is empty for mask-based methods; for structured pruning it holds the shares of
    the dense model that are gone (channels, weights, parameters, MACs).
    """
    L.seed_everything(cfg.seed + 1, workers=True)
    pruning = instantiate(cfg.pruning)
    if isinstance(pruning, LotteryRewinding) and rewind_dir is not None:
        pruning.rewind_dir = str(rewind_dir)  # the baseline's saved states (SaveWeightsAt)
    structured = isinstance(pruning, StructuredPruning)
    module = finetune_module(cfg, net, spec)
    ckpt_dir = out / "checkpoints"
    last = resume_checkpoint(ckpt_dir)
    # Structured pruning removes channels outright: there are no zeros for MaskGuard to hold.
    guard = [] if structured else [MaskGuard(pruning)]
    callbacks = [pruning, *guard, last, EpochSeed(cfg.seed + 1)]
    trainer = make_trainer(cfg, "fine-tune", cfg.finetune.max_epochs, callbacks, loggers, out)
    start = time.perf_counter()
    fit_resumable(trainer, module, dm, ckpt_dir)
    # Back to torch's default layout (channels-last training): saved and measured like a
    # freshly loaded model, and like the baseline it is compared with.
    net.to(memory_format=torch.contiguous_format)
    removed = dict(pruning.stats) if structured else {}
    return pruning.masks, {"time/finetune_s": time.perf_counter() - start}, removed


class _Waited(Exception):
    """Ctrl-C while waiting for another process's run of the job."""


def job_lock(out: Path) -> FileLock:
    """The lock of one job folder, held while a process runs that job.

    The same command started twice into one folder (a second terminal, a resume while the first
    still runs) ran a job twice at once: two W&B runs of one id, each process writing and deleting
    the other's checkpoints. It lives in a per-user folder of the system temp dir, named by the
    folder's real path (filelock leaves the file behind on Unix), so it excludes jobs of one
    machine only.
    """
    folder = Path(tempfile.gettempdir()) / f"prunelab-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    made = folder.lstat()  # a folder someone else made in a shared temp dir: not trusted
    if not stat.S_ISDIR(made.st_mode) or made.st_uid != os.getuid() or made.st_mode & 0o022:
        raise PrunelabError(
            f"{folder} (the job locks' folder) is not a folder of this user's that only it may "
            "write to: remove it, or set TMPDIR to a folder of your own"
        )
    name = hashlib.sha256(str(out.resolve()).encode()).hexdigest()[:16]
    return FileLock(str(folder / f"job-{name}.lock"))


def run(cfg: DictConfig) -> dict:
    """Run one job and return its results (also written to results.json, last and atomically);
    a job another process is running in the same folder is waited for (then skipped if done)."""
    out = Path(cfg.paths.output_dir)
    lock = job_lock(out)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        try:  # the line inside: a Ctrl-C right after it is still one while waiting
            log.info("%s: another process is running this job in this folder; waiting", out.name)
            with busy():  # a launcher's stop reaches it and waits for its line
                lock.acquire()
        except KeyboardInterrupt:  # the folder is the other process's: no FAILED mark in it
            raise _Waited from None
    try:
        # The folder is this process's now: at SIGTERM its mark goes in first thing.
        with on_stop(lambda: _mark_failed(out, stop_line(resume_hint())[0])):
            return _run(cfg, out)
    finally:
        lock.release()


def _mark_failed(out: Path, message: str) -> None:
    """The job folder's FAILED mark, holding the one-line error (none before the folder is)."""
    if out.is_dir():
        (out / "FAILED").write_text(message + "\n")


def _run(cfg: DictConfig, out: Path) -> dict:
    """`run`, its job's lock held."""
    # An earlier attempt's failure mark and traceback: this attempt writes its own if it fails.
    for mark in ("FAILED", "error.log"):
        (out / mark).unlink(missing_ok=True)
    check_config(cfg)
    sparsity = check_sparsity(cfg.sparsity)
    # The method checks its own settings when built: a bad one stops the job now, not after the
    # baseline's training (fine-tuning builds it again, fresh).
    method = instantiate(cfg.pruning)
    quiet_libraries()
    cheap_cuda_check()
    out.mkdir(parents=True, exist_ok=True)
    names = {"model": choice("model"), "data": choice("data"), "pruning": choice("pruning")}
    settings = job_config(cfg)
    done = previous_results(out, {**names, "sparsity": sparsity, "seed": int(cfg.seed)}, settings)
    if done is not None:
        log.info("%s: complete results.json found, skipping", out.name)
        return done
    for stale in out.glob(".*.tmp"):  # temp files of a run killed mid-write (never final names)
        stale.unlink()
    started = time.perf_counter()
    dm = build_datamodule(cfg)
    spec = data_spec(dm)
    check_before_training(cfg, spec)  # not after an hour of training: devices, target class
    check_net = getattr(method, "check_net", None)  # a custom callback may have none
    if check_net is not None and sparsity > 0:
        # A sparsity that would prune every weight, empty a layer, or (structured) a wrong
        # pruning.in_shape: known from the net's shapes alone, so refused before any training.
        check_net(build_net(cfg.model, spec), in_shape=spec["in_shape"])
    # Only now, past every check before training, and before the loggers open csv/ and wandb/:
    # a rerun refused above leaves an old run of other settings whole, still to be skipped.
    set_aside(out, settings)
    record_command(out)
    tracker = Tracker(cfg, names, out, config_hash(settings))
    try:
        cache = BaselineCache(cfg.paths.cache_dir)
        material = baseline_key_material(cfg)
        key = baseline_key(cfg, material)
        state, meta, trained = cache.get_or_train(
            key,
            material,
            lambda work: train_baseline(cfg, dm, spec, tracker.loggers, work),
        )
        log.info("baseline: %s (%s)", "trained" if trained else "reused", cache.entry(key))
        baseline = build_net(cfg.model, spec)
        baseline.load_state_dict(state)
        net = build_net(cfg.model, spec)
        net.load_state_dict(state)
        masks, timing, removed = None, {"time/finetune_s": 0.0}, {}
        if sparsity > 0:
            check_rewind_reached(cfg, method, meta)
            rewind_dir = cache.entry(key) / "rewind"
            own_checkpoints(out / "checkpoints", key)
            masks, timing, removed = finetune(cfg, net, dm, spec, tracker.loggers, out, rewind_dir)
        results = {
            **names,
            "sparsity": sparsity,
            "seed": int(cfg.seed),
            "config/hash": config_hash(settings),
            "config/recipe": recipe_hash(cfg),
            "prune/sparsity_target": sparsity,
            **measure_sparsity(net),
            **layer_sparsity(net, reference=baseline),
            # Structured: a shrunk net has no zeros; these are the shares of the dense model gone.
            **removed,
            "baseline/key": key,
            "baseline/trained": trained,
            "baseline/epochs": meta["epochs"],
            "baseline/best_val_acc": meta["best_val_acc"],
            **({"time/baseline_s": meta["train_seconds"]} if trained else {}),
            **dm.describe(),
            **timing,
        }
        save_torch(
            out / "model.pt",
            {
                "state_dict": net.state_dict(),
                "masks": masks,
                "model": OmegaConf.to_container(cfg.model, resolve=True),
                "data": spec,
                "meta": {k: results[k] for k in META_KEYS},
            },
        )
        control = None
        if cfg.finetune.get("dense_control", False):
            control, keys = dense_control(cfg, state, dm, spec, cache, key)
            results.update(keys)
        # After model.pt is safe: `python -m prunelab.evaluate` can redo a failed evaluation.
        eval_start = time.perf_counter()
        results.update(
            evaluate(
                net,
                baseline,
                dm,
                spec,
                cfg,
                cache=cache,
                key=key,
                sparse_path=out / "model.sparse",
                control=control,
                wandb_run=tracker.wandb.experiment if tracker.wandb is not None else None,
            )
        )
        results["time/eval_s"] = time.perf_counter() - eval_start
        results["time/total_s"] = time.perf_counter() - started
        tracker.summary(results)
        write_json(out / "results.json", results)
        # Resume points only: a rerun skips this finished job (3-9 MB each).
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
        log.info("%s: %s", out.name, result_line(results))
        tracker.finish(0)
        return results
    except BaseException:
        tracker.finish(1)
        raise


def result_line(results: dict) -> str:
    """The job's headline figures against its dense baseline, for the console and train.log."""

    def pct(key: str) -> str:
        value = results.get(key)
        return "n/a" if value is None else f"{100 * value:.1f} %"

    # PGD accuracy is measured on the attack subset, not the full test split: name the subset
    # and its clean accuracy, or an attacked figure above test/acc reads like a bug.
    pgd = f"PGD acc {pct('robust/pgd_acc')} (dense {pct('robust/pgd_acc_baseline')})"
    n_images = results.get("robust/n_images")
    if n_images is not None:
        pgd += f" on {n_images:,} attack-subset images (clean {pct('robust/clean_acc')} on them)"
    parts = [f"test/acc {pct('test/acc')} (dense {pct('test/acc_baseline')})", pgd]
    if results.get("size/reduction_pct") is not None:
        parts.append(f"file {results['size/reduction_pct']:.1f} % smaller")
    if results.get("latency/b1_speedup") is not None:
        parts.append(f"batch-1 speed-up {results['latency/b1_speedup']:.2f}x")
    return "; ".join(parts)


class _JobName(logging.Filter):
    """Under joblib the jobs' console lines interleave: each line names its job's folder."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self.job):  # the result line names it already
            record.msg, record.args = f"{self.job}: {message}", None
        return True


def resume_hint() -> str:
    """How to go on after Ctrl-C: the same command, into the same folder.

    A folder Hydra named by the time (the default `multirun_sweeps/<time>`, `outputs/<time>_...`)
    is not the one the same command gets again: the hint then names it, as the key to add; so
    too a sweep folder train.py claimed and passed to Hydra itself (prunelab.sweep_dir).
    """
    same = "run the same command again"
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        folder = hydra_cfg.sweep.dir if multirun else hydra_cfg.runtime.output_dir
        given = {o.split("=", 1)[0].lstrip("+~") for o in hydra_cfg.overrides.hydra}
        if key not in given or (multirun and claimed(folder)):
            same += f" with {key}={shlex.quote(str(folder))}"
    return f"{same} to resume where it stopped"


def main(cfg: DictConfig) -> dict | None:
    """Hydra task: run a job; turn errors into one line on stderr and a FAILED mark."""
    JOB_BEGUN.set()
    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    side_by_side = hydra_cfg is not None and "joblib" in str(hydra_cfg.launcher.get("_target_"))
    named = _JobName(Path(cfg.paths.output_dir).name) if side_by_side else None
    if named is not None:
        log.addFilter(named)
    try:
        return _main(cfg)
    finally:  # joblib runs the next job in the same worker
        if named is not None:
            log.removeFilter(named)


def _say_stopped(out: Path) -> NoReturn:
    """Ctrl-C or SIGTERM stopped the job: mark it, say so and how to go on, stop the sweep."""
    message, status = stop_line(resume_hint())
    _mark_failed(out, message)
    say(message, logging.ERROR)
    stop_said()
    raise SystemExit(status) from None


def _main(cfg: DictConfig) -> dict | None:
    multirun = HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN
    out = Path(cfg.paths.output_dir)
    try:
        with sigterm_as_interrupt():
            return run(cfg)
    except _Waited:
        what, status = stop_status()
        say(f"prunelab: {what} while another process ran this job; it goes on", logging.ERROR)
        stop_said()
        raise SystemExit(status) from None
    except PrunelabError as err:
        message = f"prunelab: error: {err}"
    except InstantiationException as err:
        message = f"prunelab: error: {instantiation_message(err)}"
    except (KeyboardInterrupt, SystemExit) as err:
        if isinstance(err, SIGTERMException):  # Lightning's stop at SIGTERM: no exit code
            note_sigterm()
        elif isinstance(err, SystemExit) and (err.code in (0, None) or not stopped()):
            raise  # a clean exit, or another's: submitit's requeue at its time limit (144)
        # Ctrl-C or SIGTERM (Lightning turns either into SystemExit(1) after its own
        # clean-up): say so, stop the whole sweep, and say how to go on.
        _say_stopped(out)
    except Exception as err:
        logged = out.is_dir()
        if logged:
            (out / "error.log").write_text(traceback.format_exc())
        if stopped():  # the stop, surfacing as another error: it stops the sweep all the same
            _say_stopped(out)
        message = f"prunelab: error: {type(err).__name__}: {err}"
        if logged:
            message += f" (traceback in {out / 'error.log'})"
    _mark_failed(out, message)
    say(message, logging.ERROR)  # train.log: every attempt's lines, its last one too
    if multirun:
        return None  # the sweep goes on; the multirun-end callback reports failures and exits 1
    raise SystemExit(1)
