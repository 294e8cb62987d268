"""One W&B run per sweep, in the sweep's group: the grid as a table and line plots."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prunelab.report.aggregate import Group, Row, shown_figures
from prunelab.report.collect import SweepData
from prunelab.report.plotkit import group_label
from prunelab.report.tables import column_order, pgd_eps

CELL_COLUMNS = ("model", "data", "pruning", "sparsity", "seeds")


@dataclass
class WandbOutcome:
    """What happened to the summary run (for report.md and the console)."""

    mode: str | None = None
    group: str | None = None
    run_dir: Path | None = None
    url: str | None = None
    skipped: str | None = None  # why no run was made
    error: str | None = None  # why the run failed (the report is written regardless)


def wandb_target(cfg: DictConfig | None) -> dict[str, Any] | None:
    """project/entity/mode/group of the jobs' W&B logger (cfg.logger.wandb), or None if none."""
    if cfg is None or OmegaConf.select(cfg, "logger.wandb", default=None) is None:
        return None
    out: dict[str, Any] = {}
    for key, default in (
        ("project", "prunelab"),
        ("entity", None),
        ("mode", "offline"),
        ("group", None),  # None: the sweep folder's name, as tracking.sweep_group() gives jobs
    ):
        try:
            value = OmegaConf.select(cfg, f"logger.wandb.{key}", default=default)
        except Exception:  # an interpolation that needs a Hydra runtime we do not have
            value = default
        out[key] = value if value is not None else default
    return out


def summary_run_id(project: str, group: str) -> str:
    """The summary run's W&B id: fixed by project and group, so a regenerated report updates
    the sweep's one summary run (on `wandb sync` or online) instead of adding another."""
    digest = hashlib.sha1(f"{project}/{group}".encode()).hexdigest()[:20]
    return f"report-{digest}"


def _usable_mode(requested: str) -> str:
    """The jobs' rule: online falls back to offline when it cannot work (no key, no network)."""
    from prunelab.tracking import resolve_mode

    return resolve_mode(requested)


def grid_table(rows: dict[Group, list[Row]]) -> tuple[list[str], list[list[Any]]]:
    """(columns, data) of the summary run's grid: one line per cell, as report.md shows it."""
    columns: list[str] = list(CELL_COLUMNS)
    data = []
    for rs in rows.values():
        for r in rs:
            figures = shown_figures(r)  # the report's own pooling: band, aligned latency
            if len(columns) == len(CELL_COLUMNS):
                columns += list(figures)
            cell = [r.group.model, r.group.data, r.group.pruning, r.sparsity, len(r.samples)]
            data.append(cell + list(figures.values()))
    return columns, data


def _line_series(rows: dict[Group, list[Row]], key: str, title: str) -> Any:
    import wandb

    groups = list(rows)
    keep = [(g, [r for r in rs if r.has(key)]) for g, rs in rows.items()]
    keep = [(g, rs) for g, rs in keep if rs]
    if not keep:
        return None
    return wandb.plot.line_series(
        xs=[[r.sparsity for r in rs] for _, rs in keep],
        ys=[[100 * r.mean(key) for r in rs] for _, rs in keep],
        keys=[group_label(g, groups) for g, _ in keep],
        title=title,
        xname="sparsity",
    )


def log_summary(
    data: SweepData,
    rows: dict[Group, list[Row]],
    figures: list[Path],
    target: dict[str, Any],
) -> WandbOutcome:
    """Log the sweep's results to the sweep's summary run, in its group; always finish it."""
    import wandb

    outcome = WandbOutcome(mode=_usable_mode(str(target["mode"])))
    outcome.group = str(target.get("group") or data.name)
    if outcome.mode == "disabled":
        outcome.skipped = "W&B mode is 'disabled'"
        return outcome
    jobs = sorted(data.ok, key=lambda j: j.name)
    columns = ["job", *column_order(k for j in jobs for k in j.results)]  # type: ignore[union-attr]
    run = wandb.init(
        project=target["project"],
        entity=target["entity"],
        mode=outcome.mode,
        group=outcome.group,
        job_type="report",
        name=f"report-{data.name}",
        id=summary_run_id(str(target["project"]), outcome.group),
        resume="allow",
        dir=str(data.sweep_dir),
        config={
            "sweep_dir": str(data.sweep_dir),
            "jobs": len(jobs),
            "failed": [j.name for j in data.failed],
            "missing": [c.label for c in data.missing],
        },
        reinit="create_new",
        settings=wandb.Settings(console="off", x_disable_stats=True, silent=True),
    )
    exit_code = 1
    try:
        outcome.run_dir = Path(run.settings.sync_dir) if run.settings.sync_dir else None
        outcome.url = run.url if outcome.mode == "online" else None
        results = wandb.Table(
            columns=columns,
            data=[[{"job": j.name, **j.results}.get(c) for c in columns] for j in jobs],
            allow_mixed_types=True,
        )
        grid_columns, grid_data = grid_table(rows)
        grid = wandb.Table(columns=grid_columns, data=grid_data, allow_mixed_types=True)
        logs: dict[str, Any] = {"report/results": results, "report/grid": grid}
        eps = pgd_eps(r for rs in rows.values() for r in rs)
        for key, name, title in (
            ("test/acc", "accuracy_vs_sparsity", "Test accuracy (%) vs sparsity"),
            ("robust/pgd_acc", "pgd_acc_vs_sparsity", f"PGD ε={eps} accuracy (%) vs sparsity"),
        ):
            plot = _line_series(rows, key, title)
            if plot is not None:
                logs[f"report/{name}"] = plot
        for path in figures:
            logs[f"report/figure/{path.stem}"] = wandb.Image(str(path), caption=path.stem)
        run.log(logs)
        run.summary.update(
            {
                "report/jobs": len(jobs),
                "report/failed": len(data.failed),
                "report/missing": len(data.missing),
            }
        )
        exit_code = 0
    except Exception as err:
        outcome.error = f"{type(err).__name__}: {err}"
    finally:
        run.finish(exit_code=exit_code)
    return outcome
