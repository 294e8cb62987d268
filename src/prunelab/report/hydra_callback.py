"""Hydra callback: note which jobs are the sweep's as it runs; write the sweep report when a
multirun ends; exit 1 if any job failed."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from prunelab.errors import PrunelabError, warn


class ReportCallback(Callback):
    """At multirun end: build the report (unless report.enabled is false), then judge the sweep.

    Hydra turns exceptions raised in callbacks into warnings, so failures leave through
    SystemExit, which it lets pass.
    """

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the sweep folder's id and this launch's path (sweep_record.py says why)."""
        from prunelab.report.sweep_record import note_launch

        try:
            note_launch(str(config.hydra.sweep.dir), OmegaConf.select(config, "hydra.runtime.cwd"))
        except OSError as err:  # the jobs still run; the report then checks paths only
            warn(f"sweep record not written: {err}")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Stamp a sweep's job with the sweep folder's id, beside Hydra's record of the job."""
        mode = OmegaConf.select(config, "hydra.mode")
        if getattr(mode, "name", mode) != "MULTIRUN":
            return
        from prunelab.report.sweep_record import stamp_job

        try:
            stamp_job(
                str(config.hydra.runtime.output_dir),
                str(config.hydra.sweep.dir),
                OmegaConf.select(config, "hydra.runtime.cwd"),
            )
        except OSError as err:
            warn(f"job not stamped with its sweep: {err}")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write report.md, results.csv, figures and the W&B run; exit 1 on failed jobs."""
        from prunelab.report import build, problems, settings
        from prunelab.report.__main__ import summary_lines
        from prunelab.report.collect import collect

        sweep = Path(str(config.hydra.sweep.dir))
        if not sweep.is_dir():
            return  # no job ran (e.g. an empty sweep)
        literal = sweep / ".submitit" / "%j"  # submitit makes its folder pattern's parent as is
        if literal.is_dir() and not any(literal.iterdir()):
            literal.rmdir()
        try:
            if not settings(config).enabled:
                data = collect(sweep)
                self._judge(problems(data.failed, data.incomplete, data.missing), None)
                return
            result = build(sweep, config)
        except PrunelabError as err:
            print(f"prunelab: error: report: {err}", file=sys.stderr)
            raise SystemExit(1) from None
        except Exception as err:  # a bug, not bad input: its traceback goes to a file
            log = sweep / "report-error.log"
            log.write_text(traceback.format_exc())
            print(
                f"prunelab: error: report failed: {type(err).__name__}: {err} (traceback in {log})",
                file=sys.stderr,
            )
            raise SystemExit(1) from None
        for line in summary_lines(result):
            if line.startswith("report: W&B summary run failed"):
                print(line, file=sys.stderr)
            elif line.startswith(("report: wrote", "report: W&B")):
                print(line)
        self._judge(result.problems, result.report)

    @staticmethod
    def _judge(lacking: list[str], report: Path | None) -> None:
        """One line naming the cells without results, then exit 1; nothing if all are there."""
        if lacking:
            where = f"; details in {report}" if report else ""
            print(
                f"prunelab: error: {len(lacking)} job(s) of the sweep have no results: "
                f"{', '.join(lacking)}{where}",
                file=sys.stderr,
            )
            raise SystemExit(1)
