"""The benchmarks suite (issue 7): what the pipeline costs against plain PyTorch and other tools.

Every figure is a ratio against a baseline measured alongside it in the same process, rounds
interleaved and medians taken, so load from other processes falls on both sides alike. Writes
benchmarks/RESULTS.md (never edit it by hand). The full run takes about 10-11 minutes on a quiet
2-core machine (about 6 of them in eval_cost.py's two full evaluations); --quick is a smoke run
of the same code paths in well under a minute.

    .venv/bin/python benchmarks/run.py            # or: make bench
    .venv/bin/python benchmarks/run.py --quick --out /tmp/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from common import MODELS, ROOT, Section, default_device, machine, progress, table

PLANS = {
    "full": {
        "throughput": {
            "simplecnn": {"steps": 100, "rounds": 16, "bare_rounds": 6},
            "resnetsmall": {"steps": 20, "rounds": 8, "bare_rounds": 3},
        },
        "mask": {
            "simplecnn": {"warm": 3, "steps": 20, "rounds": 8, "direct": 150},
            "resnetsmall": {"warm": 2, "steps": 6, "rounds": 6, "direct": 30},
        },
        "loading": {
            "simplecnn": {"steps": 50, "rounds": 8},
            "resnetsmall": {"steps": 12, "rounds": 4},
        },
        "latency": {"batch": 32, "warmup": 5, "repeats_b1": 100, "repeats_bn": 20},
        "probe": {"steps": 100, "rounds": 5},
    },
    "quick": {
        "throughput": {
            "simplecnn": {"steps": 4, "rounds": 2, "bare_rounds": 2},
            "resnetsmall": {"steps": 2, "rounds": 2, "bare_rounds": 2},
        },
        "mask": {
            "simplecnn": {"warm": 1, "steps": 2, "rounds": 2, "direct": 4},
            "resnetsmall": {"warm": 1, "steps": 1, "rounds": 2, "direct": 2},
        },
        "loading": {
            "simplecnn": {"steps": 3, "rounds": 2},
            "resnetsmall": {"steps": 2, "rounds": 2},
        },
        "latency": {"batch": 8, "warmup": 1, "repeats_b1": 4, "repeats_bn": 2},
        "probe": {"steps": 10, "rounds": 2},
    },
}
TITLES = {
    1: "1. Training throughput",
    2: "2. Cost of holding the masks",
    3: "3. Data loading",
    4: "4. Latency and size",
    5: "5. Evaluation cost",
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny repeat counts")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    p.add_argument("--json", type=Path, help="also write every number here")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (recorded)")
    p.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        help=f"default: {' '.join(MODELS)}; --quick: simplecnn",
    )
    p.add_argument("--amount", type=float, default=0.5, help="sparsity for section 2")
    p.add_argument("--wandb", action="store_true", help="section 1: add the offline W&B logger")
    p.add_argument(
        "--eval-epochs", type=int, default=2, help="section 5: fine-tuning epochs eval_cost times"
    )
    p.add_argument(
        "--sections", type=int, nargs="+", default=[1, 2, 3, 4, 5], help="for development"
    )
    return p.parse_args(argv)


def eval_cost_section(quick: bool, threads: int, epochs: int) -> Section:
    """5. Evaluation cost against fine-tuning cost, from benchmarks/eval_cost.py's measure()."""
    section = Section("5. Evaluation cost against fine-tuning cost")
    import eval_cost

    kwargs = {"quick": quick, "threads": threads} | ({} if quick else {"epochs": epochs})
    call = f"eval_cost.measure({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    progress(f"eval cost: {call}")
    result = eval_cost.measure(**kwargs)
    rows = [[f"`{k}`", f"{v:.4g}" if isinstance(v, float) else v] for k, v in result.items()]
    section.lines += [
        f"From `benchmarks/eval_cost.py` (its docstring says how it measures), called as "
        f"`{call}`"
        + (
            ": **smoke size, the ratio means nothing**."
            if quick
            else f": fine-tuning epochs timed ({result['finetune_epochs_timed']} the "
            "evaluation), their mean scaled to the job's count, to keep the suite near 10 "
            "minutes (`--eval-epochs 10` times all of them before it). Its baseline "
            "comes from `outputs/cache` (trained there first if missing: minutes more)."
        ),
        "",
        *table(["key", "value"], rows),
    ]
    section.numbers = result
    for k, v in result.items():
        if "ratio" in k and isinstance(v, int | float):
            # eval_cost.py's own target (issue 3): evaluation at most half of fine-tuning.
            target = "≤ 0.5 (issue 3)" if k == "ratio" else "-"
            word = "reported"
            if quick:
                word = "n/a (smoke size)"
            elif k == "ratio":
                word = "**met**" if v <= 0.5 else "**missed**"
                word += _eval_spread(result, section)
            section.summary.append([f"5. eval_cost `{k}`", target, f"{v:.3f}", word])
    return section


def _eval_spread(result: dict, section: Section) -> str:
    """Flag a verdict that the run's own two fine-tuning timings put on both sides of 0.5."""
    times = [result.get(f"finetune_s_{when}") for when in ("before", "after")]
    if not all(isinstance(t, int | float) and t > 0 for t in times):
        return ""
    low, high = sorted(result["eval_s"] / t for t in times)
    section.lines += [
        "",
        f"The fine-tuning epochs timed before and after the evaluation give ratios {low:.3f} "
        f"and {high:.3f}: the spread of one run, one timing of each side.",
    ]
    return " (within noise: the two fine-tuning timings straddle 0.5)" if low <= 0.5 <= high else ""


def failed(title: str, err: BaseException) -> Section:
    """A section whose measurement raised: say so in the file instead of losing the others."""
    progress(f"FAILED: {title}: {type(err).__name__}: {err}")
    section = Section(title)
    section.lines += [
        f"**FAILED**: `{type(err).__name__}: {err}`",
        "",
        "```",
        traceback.format_exc().strip(),
        "```",
    ]
    section.summary.append([title, "-", "FAILED", "**failed**"])
    return section


def header(
    info: dict, args: argparse.Namespace, seconds: float, sections: list[Section], missing: list
) -> str:
    """The top of RESULTS.md: what ran where, and every target with its verdict."""
    info = {
        **info,
        "load average at end (1/5/15 min)": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    info["wall time"] = f"{seconds:.0f} s ({'quick smoke run' if args.quick else 'full run'})"
    if missing:
        info["status"] = f"**partial**: not run (yet): {', '.join(missing)}"
    summary = [row for s in sections for row in s.summary]
    return "\n".join(
        [
            "# Benchmarks (issue 7)",
            "",
            "Generated by `benchmarks/run.py`: do not edit by hand; rerun it (`make bench`). "
            "Every figure is a ratio against a baseline measured alongside it in the same "
            "process (rounds interleaved, order rotating, medians with interquartile range "
            "over paired rounds), so machine load largely cancels; absolute times are context "
            "only.",
            "",
            *table(["", ""], [[k, v] for k, v in info.items()]),
            "",
            "## Targets and verdicts",
            "",
            *table(["target", "wanted", "measured: median (IQR, rounds)", "verdict"], summary),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Run the selected sections and write RESULTS.md (and --json)."""
    args = parse(argv)
    # The smoke run covers every code path with the fastest model; ResNet runs the same code.
    args.models = args.models or (["simplecnn"] if args.quick else list(MODELS))
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    # The job's Trainer sets deterministic="warn" process-wide; set it up front so every
    # measurement, Lightning or raw, runs under the same kernel choice.
    torch.use_deterministic_algorithms(True, warn_only=True)
    from prunelab.pipeline import quiet_libraries
    from prunelab.runtime import cheap_cuda_check

    quiet_libraries()
    cheap_cuda_check()  # as every job does: both sides of each ratio train the same way
    device = default_device()
    info = machine(device)
    plan = PLANS["quick" if args.quick else "full"]
    pick = lambda part: {m: p for m, p in plan[part].items() if m in args.models}  # noqa: E731
    progress(
        f"benchmarks: {'quick' if args.quick else 'full'} run, {args.threads} threads, {device}"
    )
    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="prunelab-bench-") as tmp:
        root = Path(tmp)
        steps = {
            1: (TITLES[1], lambda: _throughput(pick("throughput"), root, device, args)),
            2: (TITLES[2], lambda: _mask(pick("mask"), args.amount, root, device)),
            3: (TITLES[3], lambda: _loading(pick("loading"), device)),
            4: (TITLES[4], lambda: _latency(args.models, plan["latency"], args, device)),
            5: (TITLES[5], lambda: eval_cost_section(args.quick, args.threads, args.eval_epochs)),
        }
        chosen = sorted(set(args.sections))
        for i, number in enumerate(chosen):
            title, fn = steps[number]
            try:
                sections.append(fn())
            except Exception as err:  # one broken section must not cost the others' numbers
                sections.append(failed(title, err))
            if torch.get_num_threads() != args.threads:  # a library changed it: note and reset
                progress(f"warning: threads changed to {torch.get_num_threads()}; reset")
                torch.set_num_threads(args.threads)
            # Written after every section: an interrupted run still leaves its numbers.
            rest = [TITLES[n] for n in (*chosen[i + 1 :], *(n for n in TITLES if n not in chosen))]
            write(args, info, time.perf_counter() - started, sections, rest)
    progress(f"wrote {args.out}")
    for row in (row for s in sections for row in s.summary):
        print(" | ".join(str(c) for c in row))


def write(args, info: dict, seconds: float, sections: list[Section], missing: list[str]) -> None:
    """RESULTS.md (and --json), atomically: the sections so far, the others marked not run."""
    text = header(info, args, seconds, sections, missing)
    text += "\n" + "\n".join(s.markdown() for s in sections)
    for title in missing:
        text += f"\n## {title}\n\n**NOT RUN** in this run (still to come, or left out).\n"
    _atomic(args.out, text)
    if args.json:
        numbers = {s.title: s.numbers for s in sections}
        _atomic(
            args.json, json.dumps({"machine": info, "sections": numbers}, indent=1, default=str)
        )


def _atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def _throughput(plan: dict, root: Path, device, args) -> Section:
    import throughput

    probe = PLANS["quick" if args.quick else "full"]["probe"]
    return throughput.run(plan, probe, root, device, wandb=args.wandb)


def _mask(plan: dict, amount: float, root: Path, device) -> Section:
    import mask_cost

    return mask_cost.run(plan, amount, root, device)


def _loading(plan: dict, device) -> Section:
    import loading

    return loading.run(plan, device)


def _latency(models: list[str], latency: dict, args, device) -> Section:
    import size_latency

    return size_latency.run(models, {**latency, "threads": args.threads}, device)


if __name__ == "__main__":
    sys.exit(main())
