"""Interleaved A/B latency: every candidate is timed in each round, so load from other processes
falls on all of them alike; report medians (and p90) over rounds."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch


def interleaved_ms(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    number: int,
    warmup: int = 5,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Per-call milliseconds of each fn, `repeats` rounds of `number` calls, order rotating.

    `clock=time.thread_time` counts only this thread's CPU time: with torch at one thread
    (ops run in the calling thread) that ignores time lost to other processes on a busy machine.
    """
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for fn in fns.values():
                fn()
        for r in range(repeats):
            # Rotate who goes first: no candidate always runs right after the same neighbour.
            for name in names[r % len(names) :] + names[: r % len(names)]:
                fn = fns[name]
                start = clock()
                for _ in range(number):
                    fn()
                times[name].append((clock() - start) / number * 1e3)
    return times


def median(values: list[float]) -> float:
    """Median."""
    return statistics.median(values)


def p90(values: list[float]) -> float:
    """90th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def cpu_name() -> str:
    """The CPU model, for the record next to the timings."""
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
