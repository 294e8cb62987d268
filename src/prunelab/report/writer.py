"""Writing one sweep folder's report: report.md, results.csv, figures and a W&B summary run."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from prunelab.cli import check_writable
from prunelab.errors import PrunelabError
from prunelab.report.advice import profiles_from
from prunelab.report.aggregate import Group, build_rows
from prunelab.report.collect import Cell, Job, SweepData, collect
from prunelab.report.document import attack_text, render
from prunelab.report.figures import draw_all, remove_figures
from prunelab.report.files import write_text
from prunelab.report.tables import write_csv
from prunelab.report.wandb_summary import WandbOutcome, log_summary, wandb_target
from prunelab.validate import CONF_DIR, check_config

log = logging.getLogger("prunelab")
DEFAULTS = CONF_DIR / "report" / "default.yaml"


@dataclass
class ReportResult:
    """What build() wrote and what it found missing."""

    sweep_dir: Path
    report: Path
    csv: Path
    figures: list[Path]
    omitted_figures: list[str]
    jobs: int
    failed: list[Job] = field(default_factory=list)
    incomplete: list[Job] = field(default_factory=list)
    missing: list[Cell] = field(default_factory=list)
    excluded: list[tuple[str, str]] = field(default_factory=list)
    wandb: WandbOutcome | None = None

    @property
    def problems(self) -> list[str]:
        """One short name per expected cell without results (details are in report.md)."""
        return problems(self.failed, self.incomplete, self.missing)


def problems(failed: list[Job], incomplete: list[Job], missing: list[Cell]) -> list[str]:
    """'name (failed)', 'name (unfinished)', 'name (missing)' for each cell without results."""
    return (
        [f"{j.name} (failed)" for j in failed]
        + [f"{j.name} (unfinished)" for j in incomplete]
        + [f"{c.label} (missing)" for c in missing]
    )


def settings(cfg: DictConfig | None) -> DictConfig:
    """The report settings: conf/report/default.yaml overlaid with cfg.report when present."""
    base = OmegaConf.load(DEFAULTS)
    own = OmegaConf.select(cfg, "report", default=None) if cfg is not None else None
    return OmegaConf.merge(base, own) if own is not None else base


def build(
    sweep_dir: str | Path,
    cfg: DictConfig | None = None,
    *,
    wandb: bool | None = None,
    figures: bool | None = None,
) -> ReportResult:
    """Write report.md, results.csv and figures into `sweep_dir` (and a W&B summary run).

    `cfg` is the sweep's composed config (the Hydra callback passes it); when None it is read
    from `<sweep_dir>/multirun.yaml`. `wandb` and `figures` override `report.wandb` and
    `report.figures`.
    """
    sweep = Path(sweep_dir).expanduser()
    data: SweepData = collect(sweep)
    if data.expected is None and all(j.cell is None for j in data.jobs):
        # Nothing here is a prunelab job: write nothing over the folder's own files.
        grid = ", nor does its multirun.yaml" if data.multirun is not None else ""
        raise PrunelabError(
            f"{sweep} holds no prunelab sweep: no job folder names its model, data, pruning, "
            f"sparsity and seed{grid}; nothing written"
        )
    check_writable(str(sweep))  # a read-only folder: one line now, not a traceback at write
    if cfg is None:
        cfg = data.multirun
    conf = settings(cfg)
    raw = OmegaConf.to_container(conf, resolve=True)
    check_config(OmegaConf.create({"report": raw}))  # dpi, tolerance and the profiles
    profiles = profiles_from(raw["profiles"])
    order = [Group(c.model, c.data, c.pruning) for c in data.expected or []]
    rows = build_rows(data.ok, order)
    csv_path = sweep / "results.csv"
    write_csv(csv_path, data.jobs)
    drawn, omitted = [], []
    if conf.figures if figures is None else figures:
        drawn, omitted = draw_all(rows, sweep, int(conf.dpi))
    else:
        remove_figures(sweep)  # an earlier report's figures would outlive one saying it has none
    outcome = None
    if conf.wandb if wandb is None else wandb:
        target = wandb_target(cfg)
        if target is None:
            outcome = WandbOutcome(skipped="the jobs had no W&B logger (`logger.wandb`)")
        elif not data.ok:
            outcome = WandbOutcome(skipped="no job has results")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    outcome = log_summary(data, rows, drawn, target)
            except Exception as err:  # the report must not depend on W&B working
                outcome = WandbOutcome(
                    mode=str(target["mode"]), error=f"{type(err).__name__}: {err}"
                )
            if outcome.error:
                log.warning("W&B summary run failed: %s", outcome.error)
    report = sweep / "report.md"
    tolerance = float(conf.speedup_tolerance)
    text = render(data, rows, profiles, drawn, omitted, outcome, tolerance, attack_text(cfg))
    write_text(report, text)
    return ReportResult(
        sweep_dir=sweep,
        report=report,
        csv=csv_path,
        figures=drawn,
        omitted_figures=omitted,
        jobs=len(data.ok),
        failed=data.failed,
        incomplete=data.incomplete,
        missing=data.missing,
        excluded=data.excluded,
        wandb=outcome,
    )


__all__ = ["ReportResult", "build", "problems", "settings"]
