"""`python -m prunelab.report SWEEP_DIR`: (re)write a sweep's report; exit 0 even if partial,
1 if no job has results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from prunelab.errors import PrunelabError, noting_interrupts, sigterm_as_interrupt, stop_line


def summary_lines(result) -> list[str]:
    """What the console shows after a report: where it is and which cells lack results."""
    lines = [
        f"report: wrote {result.report} ({result.jobs} job{'s' if result.jobs != 1 else ''} "
        "with results, "
        f"{len(result.figures)} figure{'s' if len(result.figures) != 1 else ''}, results.csv)"
    ]
    if result.failed:
        lines.append(
            "report: failed: " + "; ".join(f"{j.name} ({j.failed})" for j in result.failed)
        )
    if result.incomplete:
        lines.append("report: unfinished: " + ", ".join(j.name for j in result.incomplete))
    if result.missing:
        lines.append("report: missing cells: " + ", ".join(c.label for c in result.missing))
    if result.excluded:
        lines.append("report: excluded: " + "; ".join(f"{n} ({w})" for n, w in result.excluded))
    if result.wandb is not None and result.wandb.error:
        lines.append(f"report: W&B summary run failed: {result.wandb.error}")
    elif result.wandb is not None and result.wandb.run_dir and result.wandb.mode != "online":
        lines.append(f"report: W&B summary run (offline): wandb sync {result.wandb.run_dir}")
    return lines


class _Parser(argparse.ArgumentParser):
    """argparse with its error in one line, as train.py's and prunelab.evaluate's."""

    def error(self, message: str):
        hint = "usage: python -m prunelab.report SWEEP_DIR [--no-wandb] [--no-figures]"
        for key, flag in (("report.figures", "--no-figures"), ("report.wandb", "--no-wandb")):
            if key in message:  # the config key of train.py's report, as the README names it
                hint = f"here {key}=false is written {flag}"
        print(f"prunelab: error: {message} ({hint})", file=sys.stderr)
        raise SystemExit(2)


def _stop() -> int:
    """Ctrl-C or SIGTERM: one line on stderr; the shell's status for the signal."""
    line, status = stop_line("the report may be incomplete: run the same command again")
    print(line, file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, build the report, print where it is; 1 for a folder that is no sweep or
    whose jobs have no results (argparse exits with 2 for a malformed command line), as train.py
    and prunelab.evaluate."""
    parser = _Parser(
        prog="python -m prunelab.report",
        description="Write report.md, results.csv and figures into a sweep folder.",
    )
    parser.add_argument(
        "sweep_dir", help="a Hydra sweep folder (holds multirun.yaml and job folders)"
    )
    parser.add_argument("--no-wandb", action="store_true", help="skip the W&B summary run")
    parser.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    args = parser.parse_args(argv)
    with noting_interrupts() as interrupted, sigterm_as_interrupt():
        try:
            from prunelab.report import build

            result = build(
                args.sweep_dir,
                wandb=False if args.no_wandb else None,
                figures=False if args.no_figures else None,
            )
        except PrunelabError as err:
            print(f"prunelab: error: {err}", file=sys.stderr)
            return 1
        except Exception:
            if not interrupted.is_set():
                raise
            return _stop()  # it landed in an import: another error surfaced
        except KeyboardInterrupt:  # each file is written whole, but not all of them may be new
            return _stop()
    for line in summary_lines(result):
        print(line)
    if result.jobs == 0:  # a report of nothing: say so, as the end-of-sweep report does
        print(f"prunelab: error: no job in {args.sweep_dir} has results", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
