"""Experiment tracking: a W&B run (offline unless WANDB_MODE says otherwise) and a CSV log."""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import netrc
import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import convert_inf
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, OmegaConf

from prunelab.errors import PrunelabError, say, warn

log = logging.getLogger("prunelab")


def stage_of(row: dict) -> str:
    """Which training stage logged a row: the baseline's metrics carry the `baseline_` prefix."""
    names = [k for k, v in row.items() if k not in ("epoch", "step") and v not in ("", None)]
    return "baseline" if any(k.startswith("baseline_") for k in names) else "fine-tune"


def _cut_torn_row(path: Path) -> None:
    """Drop a last row that a kill cut short (no line end), so the next row does not join it."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as file:
            file.truncate(data.rfind(b"\n") + 1)


class _AppendingWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to an existing metrics.csv instead of deleting it.

    A stage that starts again in a rerun (from its last checkpoint, or afresh when a kill came
    before its first) first drops the rows its killed attempt logged for the epochs it is about
    to run again, so no epoch of the log appears twice.
    """

    def __init__(self, log_dir: str) -> None:
        self._started: set[str] = set()
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        # Lightning deletes metrics.csv here: a resumed job would lose its earlier epochs' log.
        self._temporary().unlink(missing_ok=True)  # a killed rewrite's half-written copy
        if self._fs.isfile(self.metrics_file_path):
            _cut_torn_row(Path(self.metrics_file_path))
            self.metrics_keys = sorted(self._header())

    def log_metrics(self, metrics_dict: dict, step: int | None = None) -> None:
        """Record metrics; the first record of a stage clears what it will log again."""
        stage = stage_of(metrics_dict)
        if stage not in self._started:
            self._started.add(stage)
            if metrics_dict.get("epoch") is not None:
                self._drop_from(stage, float(metrics_dict["epoch"]))
        super().log_metrics(metrics_dict, step)

    def _drop_from(self, stage: str, epoch: float) -> None:
        """Remove the rows of `stage` at `epoch` or later (written to a temporary file first)."""
        if not Path(self.metrics_file_path).is_file():
            return
        header, rows = self._read()
        kept = [r for r in rows if stage_of(r) != stage or float(r.get("epoch") or -1) < epoch]
        if len(kept) < len(rows):
            self._replace(header, kept)

    def save(self) -> None:
        """Append the recorded rows, first rewriting the header if it lacks one of their keys.

        Lightning's own save rewrites the header only for keys it has not seen before, and it
        notes them before it rewrites: a Ctrl-C in between, then the save at teardown, appended
        rows longer than the header (new keys first appear right after an epoch's checkpoint).
        Here the header on disk is what is compared, and the rows go out in one write.
        """
        if not self.metrics:
            return
        self._record_new_keys()
        path = Path(self.metrics_file_path)
        exists = path.is_file()
        if exists and set(self._header()) != set(self.metrics_keys):
            # Lightning truncated metrics.csv and wrote it again: a kill in between lost every
            # row logged so far; the temporary file leaves the old or the new.
            self._replace(self.metrics_keys, self._read()[1])
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        if not exists:
            writer.writeheader()
        writer.writerows(self.metrics)
        with path.open("a", newline="") as file:
            file.write(buffer.getvalue())
        self.metrics = []

    def _header(self) -> list[str]:
        """metrics.csv's header."""
        with open(self.metrics_file_path, newline="") as file:
            return next(csv.reader(file), [])

    def _read(self) -> tuple[list[str], list[dict]]:
        """metrics.csv's header and rows (without the surplus fields of a row longer than the
        header, which an earlier version's interrupted save could leave)."""
        with open(self.metrics_file_path, newline="") as file:
            reader = csv.DictReader(file)
            rows = [{k: v for k, v in row.items() if k is not None} for row in reader]
            return list(reader.fieldnames or []), rows

    def _replace(self, header: list[str], rows: list[dict]) -> None:
        """Write metrics.csv anew through a temporary file, so a kill leaves the old or the new."""
        temporary = self._temporary()
        with temporary.open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=header)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(temporary, self.metrics_file_path)

    def _temporary(self) -> Path:
        path = Path(self.metrics_file_path)
        return path.with_name(f".{path.name}.tmp")


class CSVLog(CSVLogger):
    """Lightning's CSVLogger whose metrics.csv survives a resume (new rows are appended)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        """The writer, created on first use."""
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _AppendingWriter(log_dir=self.log_dir)
        return self._experiment


class WandbRunLogger(WandbLogger):
    """Lightning's WandbLogger without its `anonymous=None` init argument.

    wandb >= 0.19 warns about that (removed) setting on every run, even when silenced.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)


def sweep_group() -> str | None:
    """The W&B group of this job: the sweep folder's name in a multirun, else None."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir).name
    return None


def run_id(out: Path, settings_hash: str) -> str:
    """A W&B run id fixed by the job folder and its settings, so a resumed job continues its
    own run while a rerun with other settings (its old files set aside) starts a new one."""
    return hashlib.sha1(f"{out.resolve()}:{settings_hash}".encode()).hexdigest()[:16]


# wandb's modes that talk to its server ('run' is online's old name, 'shared' online with
# several writers to one run); 'dryrun' is offline's old name.
ONLINE_MODES = ("online", "run", "shared")


def online_problem(timeout: float = 3.0) -> str | None:
    """Why W&B online mode cannot work here (no API key, server unreachable), or None."""
    url = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai"))
    host, port = url.hostname or "api.wandb.ai", url.port or (443 if url.scheme != "http" else 80)
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        try:
            path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
            has_key = Path(path).is_file() and netrc.netrc(path).authenticators(host) is not None
        except (netrc.NetrcParseError, OSError):
            has_key = False
    if not has_key:
        return "no W&B API key (run `wandb login` or set WANDB_API_KEY)"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError:
        return f"{host}:{port} unreachable"
    return None


def resolve_mode(requested: str) -> str:
    """The W&B mode to use: online falls back to offline, with one warning, if it cannot work."""
    if requested not in ONLINE_MODES:
        return requested
    problem = online_problem()
    if problem is None:
        return requested
    warn(
        f"W&B {requested} mode unavailable ({problem}); logging offline "
        "instead, upload later with `wandb sync <job dir>/wandb/offline-run-*`"
    )
    return "offline"


def started(logger_cfg: DictConfig, kwargs: dict, waits: int = 2) -> WandbLogger:
    """The W&B logger with its run started, under the job's fixed run id if it is free.

    A job killed with SIGKILL leaves its run open in a W&B service it shared with a parent
    process (wandb hands its service to child processes through WANDB_SERVICE), and the rerun
    that resumes the job asks for the same id: W&B refuses with "run ID ... is in use" for as
    long as that service lives. Wait briefly, then log this attempt as a new run and say so,
    rather than fail a job that has nothing wrong with it.
    """
    for attempt in range(waits + 1):
        logger = instantiate(logger_cfg, **kwargs)
        try:
            logger.experiment  # noqa: B018 (wandb.init runs on first access)
            return logger
        except Exception as err:
            if "is in use" not in str(err):
                raise
        if attempt < waits:
            time.sleep(1.0)
    fresh = f"{kwargs['id']}-{os.getpid()}"
    warn(
        f"W&B run {kwargs['id']} is still held by an earlier, killed attempt "
        f"of this job; this attempt logs as run {fresh}"
    )
    logger = instantiate(logger_cfg, **{**kwargs, "id": fresh})
    logger.experiment  # noqa: B018
    return logger


class Tracker:
    """Owns the job's Lightning loggers and finishes the W&B run exactly once."""

    def __init__(self, cfg: DictConfig, names: dict, out: Path, settings_hash: str) -> None:
        self.loggers = []
        self.wandb: WandbLogger | None = None
        for name, logger_cfg in (cfg.logger or {}).items():
            if logger_cfg is None:  # switched off, e.g. logger=csv sets wandb: null
                continue
            kwargs = {}
            if name == "wandb":
                kwargs = {
                    "group": logger_cfg.get("group") or sweep_group(),
                    "mode": resolve_mode(str(logger_cfg.get("mode", "offline"))),
                    "id": run_id(out, settings_hash),
                    "resume": "allow",
                }
                quiet = {"WANDB_SILENT", "WANDB_QUIET"} & set(os.environ)
                own = logger_cfg.get("settings")
                if own is not None:  # wandb.init reads a dict or Settings, not a DictConfig
                    kwargs["settings"] = OmegaConf.to_container(own, resolve=True)
                elif not quiet:
                    import wandb

                    # wandb prints ~25 lines per run (history, summary, sync hints) around the
                    # job's own output and its one-line errors; finish() logs where the run is.
                    kwargs["settings"] = wandb.Settings(silent=True)
            logger = started(logger_cfg, kwargs) if name == "wandb" else instantiate(logger_cfg)
            if isinstance(logger, WandbLogger):
                self.wandb = logger
                config = OmegaConf.to_container(cfg, resolve=True)
                logger.experiment.config.update(
                    {**names, "sparsity": cfg.sparsity, "seed": cfg.seed, "config": config},
                    allow_val_change=True,
                )
            self.loggers.append(logger)
        self._finished = False

    def summary(self, results: dict) -> None:
        """Put every result into the W&B run summary."""
        if self.wandb is not None:
            self.wandb.experiment.summary.update(results)

    def finish(self, exit_code: int) -> None:
        """End the W&B run (marked failed when exit_code != 0) and flush the CSV log."""
        if self._finished:
            return
        self._finished = True
        for logger in self.loggers:
            if not isinstance(logger, WandbLogger):
                logger.finalize("success" if exit_code == 0 else "failed")
        if self.wandb is not None:
            run = self.wandb.experiment
            where = run.settings.sync_dir if run.settings.mode != "online" else None
            run.finish(exit_code=exit_code)
            if where:
                log.info("W&B run (%s): wandb sync %s", run.settings.mode, where)


class StageProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar labelled with the training stage: "baseline 3/12", not "Epoch 2".

    A job that trains its baseline shows two bars in a row; both said "Epoch 0" at their start.
    The label is set before the bar's reset draws it, so no "Epoch N" line is ever drawn.
    The logger's version (`v_num`, four characters of the W&B run id) is left off.
    Where stderr is no terminal (a log file, a cluster job's output), redrawn bars would fill
    it with carriage returns: `lines` (default: then) prints one line per epoch instead,
    "baseline 3/12: train/loss=0.41, ...", into train.log too.
    """

    stage = "epoch"  # set per trainer by prunelab.pipeline

    def __init__(
        self,
        refresh_rate: int = 1,
        process_position: int = 0,
        leave: bool = False,
        lines: bool | None = None,
    ) -> None:
        super().__init__(refresh_rate, process_position, leave)
        if lines not in (None, True, False):
            raise PrunelabError(f"progress_bar.lines must be true, false or null, got {lines!r}")
        self.lines = (not sys.stderr.isatty()) if lines is None else lines
        if self.lines:
            self.disable()  # Lightning's bars stay silent; the epoch lines below speak
        self._unsaid: tuple[int, int] | None = None  # (epoch, of) whose line is still due

    def on_train_epoch_start(self, trainer: L.Trainer, *_: object) -> None:
        """Start the epoch's bar under the stage's label (or say the last epoch's line)."""
        if self.lines:
            self._say_epoch(trainer)
            self._unsaid = (trainer.current_epoch + 1, trainer.max_epochs)
            return
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        bar = self.train_progress_bar
        bar.set_description_str(
            f"{self.stage} {trainer.current_epoch + 1}/{trainer.max_epochs}", refresh=False
        )
        bar.reset(total=convert_inf(self.total_train_batches))
        bar.initial = 0

    def on_train_end(self, trainer: L.Trainer, *args: object) -> None:
        """Close the bar (or say the last epoch's line)."""
        self._say_epoch(trainer)
        super().on_train_end(trainer, *args)

    def _say_epoch(self, trainer: L.Trainer) -> None:
        # An epoch's line waits for the next epoch's start or the stage's end: only then has
        # the module logged its epoch figures (train/acc), after the callbacks' epoch end.
        if not self.lines or self._unsaid is None:
            return
        epoch, of = self._unsaid
        self._unsaid = None
        figures = self.get_metrics(trainer, trainer.lightning_module)
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
        )
        line = f"{self.stage} {epoch}/{of}" + (f": {shown}" if shown else "")
        say(line, logging.INFO)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict:
        """The bar's figures without `v_num`: a W&B run id's tail means nothing there."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
