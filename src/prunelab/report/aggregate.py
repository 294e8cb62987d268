"""Jobs to table rows: one per (model, data, pruning, sparsity), seeds pooled, noise attached."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import NamedTuple

from prunelab.report.collect import Job, norm_sparsity
from prunelab.stats import t975, wilson


class Group(NamedTuple):
    """The rows that share one dense baseline recipe: a model on a data set, one pruning method."""

    model: str
    data: str
    pruning: str


@dataclass(frozen=True)
class Interval:
    """A point estimate with its noise band (95 % Wilson for one seed; mean ± std for several)."""

    mean: float
    lo: float
    hi: float
    std: float | None = None
    n_seeds: int = 1

    def overlaps(self, other: Interval) -> bool:
        """True when the two bands share any value: no difference is claimed."""
        return self.lo <= other.hi and other.lo <= self.hi

    def contains(self, value: float) -> bool:
        """True when `value` lies inside this band."""
        return self.lo <= value <= self.hi


def number(value: object) -> float | None:
    """A finite float, or None for anything else (bools, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass
class Row:
    """One (group, sparsity): a flat metrics dict per seed."""

    group: Group
    sparsity: float
    samples: list[dict]
    source: str  # "job", "baseline keys" (from pruned jobs' *_baseline keys) or "mixed"
    latency_ref_ms: float | None = None  # the dense batch-1 median over its key (align_latency)

    @property
    def is_baseline(self) -> bool:
        """The dense model (sparsity 0)."""
        return self.sparsity == 0

    @property
    def seeds(self) -> list[int]:
        """The seeds pooled in this row."""
        return [int(s["seed"]) for s in self.samples]

    def values(self, key: str) -> list[float]:
        """The numeric values of `key` over seeds (missing ones left out)."""
        return [v for v in (number(s.get(key)) for s in self.samples) if v is not None]

    def has(self, key: str) -> bool:
        """Whether any seed measured `key`."""
        return bool(self.values(key))

    def mean(self, key: str) -> float | None:
        """Mean over seeds, or None when never measured."""
        values = self.values(key)
        return statistics.fmean(values) if values else None

    def std(self, key: str) -> float | None:
        """Sample standard deviation over seeds (None below two seeds)."""
        values = self.values(key)
        return statistics.stdev(values) if len(values) >= 2 else None

    def first(self, key: str) -> object:
        """The first seed's raw value (for labels such as latency/device)."""
        for sample in self.samples:
            if sample.get(key) is not None:
                return sample[key]
        return None

    def interval(
        self, key: str, n_key: str, lo_key: str | None = None, hi_key: str | None = None
    ) -> Interval | None:
        """Noise band of an accuracy-like fraction measured on `n_key` images.

        One seed: the stored 95 % Wilson interval (or one computed from n). Several seeds:
        mean ± std across seeds, never narrower than the test-set Wilson interval of the mean,
        since seeds cannot remove the noise of a finite test set.
        """
        values = self.values(key)
        if not values:
            return None
        mean = statistics.fmean(values)
        n = self.mean(n_key)
        if len(values) == 1:
            lo = self.mean(lo_key) if lo_key else None
            hi = self.mean(hi_key) if hi_key else None
            if lo is None or hi is None:
                if n is None:
                    return Interval(mean, mean, mean)
                lo, hi = wilson(mean, int(n))
            return Interval(mean, lo, hi)
        std = statistics.stdev(values)
        lo, hi = mean - std, mean + std
        if n is not None:
            w_lo, w_hi = wilson(mean, int(n))
            lo, hi = min(lo, w_lo), max(hi, w_hi)
        # A fraction: the band says nothing beyond 0 and 1.
        return Interval(mean, max(lo, 0.0), min(hi, 1.0), std, len(values))

    def acc(self) -> Interval | None:
        """Test accuracy with its noise band."""
        return self.interval("test/acc", "data/test_size", "test/acc_ci_low", "test/acc_ci_high")

    def robust(self, key: str) -> Interval | None:
        """A robust accuracy (on the robust/n_images subset) with its noise band."""
        return self.interval(key, "robust/n_images")

    def change(self, key: str) -> Interval | None:
        """Change of `key` against each seed's own dense baseline, in points, with its 95 % band.

        Accuracies scored image by image on the same images carry a 95 % paired interval
        (`_delta_ci_low/high`). One seed: that interval. Several seeds: the mean change ± the
        root sum of squares of the seeds' half-width (Student t over the per-seed changes) and
        the images' (the mean paired half-width, kept whole: every seed is scored on the same
        images, so averaging seeds does not shrink it). None without paired intervals.
        """
        rows = [
            [
                number(s.get(f"{key}{suffix}"))
                for suffix in ("_delta_pts", "_delta_ci_low", "_delta_ci_high")
            ]
            for s in self.samples
        ]
        rows = [r for r in rows if None not in r]
        if not rows or len(rows) != len(self.values(f"{key}_delta_pts")):
            return None
        pts = [r[0] for r in rows]
        mean = statistics.fmean(pts)
        if len(rows) == 1:
            return Interval(mean, rows[0][1], rows[0][2])
        k, std = len(rows), statistics.stdev(pts)
        seeds = t975(k - 1) * std / math.sqrt(k)
        images = statistics.fmean((hi - lo) / 2 for _, lo, hi in rows)
        spread = math.hypot(seeds, images)
        # Two seeds give t = 12.7: the band can pass ±100 points, which no change can reach.
        return Interval(mean, max(mean - spread, -100.0), min(mean + spread, 100.0), std, k)

    def differs(self, key: str, base: Row) -> bool | None:
        """Whether `key` differs from the dense `base` row beyond noise (None: not measured).

        The paired interval of the change must exclude 0; results without one fall back to
        the unpaired rule (the two bands must not overlap), which misses smaller changes.
        """
        change = self.change(key)
        if change is not None:
            return not change.contains(0.0)
        if key == "test/acc":
            mine, ref = self.acc(), base.acc()
        else:
            mine, ref = self.robust(key), base.robust(key)
        if mine is None or ref is None:
            return None
        return not mine.overlaps(ref)

    def speed_verdict(self, tolerance: float, batch: str = "b1") -> str | None:
        """'faster', 'slower' or 'same' at batch 1 (`batch="bN"`: batch N) against the job's
        own dense baseline.

        A speed-up counts only beyond `tolerance` and when the timing distributions barely
        overlap (one side's p90 below the other's median); None when latency was not measured.
        """
        speedup = self.mean(f"latency/{batch}_speedup")
        if speedup is None:
            return None
        if abs(speedup - 1) <= tolerance:
            return "same"
        med, p90 = self.mean(f"latency/{batch}_ms"), self.mean(f"latency/{batch}_p90_ms")
        b_med = self.mean(f"latency/{batch}_ms_baseline")
        b_p90 = self.mean(f"latency/{batch}_p90_ms_baseline")
        if None in (med, p90, b_med, b_p90):
            return "faster" if speedup > 1 else "slower"
        if speedup > 1 and p90 < b_med:  # type: ignore[operator]
            return "faster"
        if speedup < 1 and b_p90 < med:  # type: ignore[operator]
            return "slower"
        return "same"

    def self_speedup(self, batch: str = "b1") -> float | None:
        """A dense row's batch-1 (`batch="bN"`: batch-N) speed-up of the dense model against
        itself furthest from 1.

        The sweep's dense job times the dense model against itself, interleaved as every job
        times its pruned model: any distance from 1 is timing noise, measured. (A dense row
        rebuilt from `_baseline` keys holds 1.0: no such measurement.) None for pruned rows.
        """
        values = self.values(f"latency/{batch}_speedup") if self.is_baseline else []
        return max(values, key=lambda s: abs(s - 1)) if values else None

    def latency_spread(self, batch: str = "b1") -> float | None:
        """The largest p90 / median of batch-1 (`batch="bN"`: batch-N) latency in this row
        (pruned or its baseline)."""
        ratios = []
        for med, p90 in (
            (f"latency/{batch}_ms", f"latency/{batch}_p90_ms"),
            (f"latency/{batch}_ms_baseline", f"latency/{batch}_p90_ms_baseline"),
        ):
            m, p = self.mean(med), self.mean(p90)
            if m and p:
                ratios.append(p / m)
        return max(ratios) if ratios else None

    def b1_ms(self) -> float | None:
        """Batch-1 latency for comparing cells: aligned (see align_latency), else as measured."""
        return self._aligned("latency/b1_ms")

    def b1_p90_ms(self) -> float | None:
        """The p90 twin of b1_ms."""
        return self._aligned("latency/b1_p90_ms")

    def _aligned(self, key: str) -> float | None:
        """Mean over seeds of a batch-1 time `key`, each seed's rescaled by its aligned median."""
        values = []
        for s in self.samples:
            ms, value = number(s.get("latency/b1_ms")), number(s.get(key))
            speedup = 1.0 if self.is_baseline else number(s.get("latency/b1_speedup"))
            if self.latency_ref_ms is not None and ms and value is not None and speedup:
                target = self.latency_ref_ms / speedup
                values.append(value * target / ms)
        return statistics.fmean(values) if values else self.mean(key)

    def size_bytes(self) -> float | None:
        """Smallest file that holds this model: the sparse export, or the dense file."""
        options = [v for v in (self.mean("size/sparse_disk_bytes"), self.mean("size/disk_bytes"))]
        options = [v for v in options if v is not None]
        return min(options) if options else None


def shown_figures(row: Row) -> dict[str, float | None]:
    """A row's headline figures as report.md shows them (W&B summary grid; docs/metrics.md).

    Pooled over seeds by the report's own rules: test accuracy with its noise band (the
    Wilson interval for one seed, mean ± std never narrower than it for several) and the
    aligned batch-1 latency, not the per-seed means of results.json's keys.
    """
    acc, pgd = row.acc(), row.robust("robust/pgd_acc")
    return {
        "test/acc": None if acc is None else acc.mean,
        "test/acc_band_low": None if acc is None else acc.lo,
        "test/acc_band_high": None if acc is None else acc.hi,
        "robust/pgd_acc": None if pgd is None else pgd.mean,
        "latency/b1_ms_aligned": row.b1_ms(),
        "latency/b1_speedup": row.mean("latency/b1_speedup"),
        "flops/theoretical_speedup": row.mean("flops/theoretical_speedup"),
        "size/sparse_disk_bytes": row.mean("size/sparse_disk_bytes"),
        "size/reduction_pct": row.mean("size/reduction_pct"),
    }


def dense_latency_by_key(jobs: list[dict]) -> dict[str, float]:
    """Median batch-1 time of each dense baseline over every job of the sweep that timed it."""
    times: dict[str, list[float]] = defaultdict(list)
    for r in jobs:
        dense = norm_sparsity(r["sparsity"]) == 0
        ms = number(r.get("latency/b1_ms" if dense else "latency/b1_ms_baseline"))
        if ms is not None and r.get("baseline/key") is not None:
            times[str(r["baseline/key"])].append(ms)
    return {key: statistics.median(ms) for key, ms in times.items()}


def align_latency(group_rows: list[Row], by_key: dict[str, float]) -> None:
    """Give every row its dense baseline's median batch-1 latency as the reference of b1_ms.

    Every job times its model and its baseline interleaved, so the speed-up is drift-free, but
    absolute milliseconds of different jobs differ with the machine's load at the time (±35 %
    between jobs on a shared CPU). Comparing cells by their raw milliseconds would pass that
    drift off as an effect of pruning; the aligned figure (dense median ÷ the cell's in-job
    speed-up) compares them through the speed-up. The median is taken over every job of the
    sweep that timed the same baseline (`baseline/key`), so methods sharing one dense model
    share its reference too.
    """
    if not group_rows or not group_rows[0].is_baseline:
        return
    dense = group_rows[0]
    refs = [by_key.get(str(s.get("baseline/key"))) for s in dense.samples]
    known = [r for r in refs if r is not None]
    ref = statistics.fmean(known) if known else dense.mean("latency/b1_ms")
    for row in group_rows:
        row.latency_ref_ms = ref


LAYER_PREFIX = "prune/layer/"  # prune/layer/<layer>: one share per Conv2d/Linear layer


def layer_names(rs: list[Row]) -> list[str]:
    """The layers of `rs`'s `prune/layer/<layer>` keys, in the net's order (results.json's)."""
    names: dict[str, None] = {}
    for row in rs:
        for sample in row.samples:
            names.update(
                (k.removeprefix(LAYER_PREFIX), None) for k in sample if k.startswith(LAYER_PREFIX)
            )
    return list(names)


def first_value(rows: dict[Group, list[Row]], key: str) -> object:
    """The first non-empty raw value of `key` over every row (labels: device, threads)."""
    return next((r.first(key) for rs in rows.values() for r in rs if r.first(key)), None)


def group_of(results: dict) -> Group:
    """The Group of one job's results."""
    return Group(str(results["model"]), str(results["data"]), str(results["pruning"]))


# Keys whose *_baseline twin does not follow the `X_baseline` pattern.
RENAMED_BASELINE_KEYS = {
    "test/acc_baseline_ci_low": "test/acc_ci_low",
    "test/acc_baseline_ci_high": "test/acc_ci_high",
}
SHARED_KEYS = (
    "model",
    "data",
    "pruning",
    "seed",
    "baseline/key",
    "baseline/epochs",
    "baseline/best_val_acc",
    "data/train_size",
    "data/val_size",
    "data/test_size",
    "robust/n_images",
    "robust/cascade",
    "robust/pgd_eps",
    "robust/pgd_alpha",
    "robust/pgd_steps",
    "latency/threads",
    "latency/device",
    "latency/fold_batchnorm",
)


def baseline_sample(jobs: list[dict]) -> dict:
    """The dense baseline's metrics, rebuilt from the *_baseline keys of pruned jobs sharing it.

    Accuracy and robustness are measured on the same images and attack seed in every job, so
    any job's copy will do; latency is re-measured in each job, so take the median over jobs.
    Sizes and counts are the dense model's own (`size/params_baseline`, its sparse export's
    `size/reduction_pct_baseline`, ...); a count the jobs do not carry for it is left out,
    never copied from a pruned net (structured pruning shrinks it).
    """
    first = jobs[0]
    sample: dict = {k: first[k] for k in SHARED_KEYS if k in first}
    sample["sparsity"] = 0.0
    for key in first:
        if key.startswith("control/"):  # the dense control, carried by each job of its baseline
            sample[key] = first[key]
        elif key in RENAMED_BASELINE_KEYS:
            sample[RENAMED_BASELINE_KEYS[key]] = first[key]
        elif key.endswith("_baseline"):
            base = key.removesuffix("_baseline")
            if key.startswith("latency/"):
                values = [v for v in (number(j.get(key)) for j in jobs) if v is not None]
                sample[base] = statistics.median(values) if values else None
            else:
                sample[base] = first[key]
    params = number(sample.get("size/params"))
    if params is not None:
        # Both count every parameter of the net: the dense total is the dense size/params.
        sample.setdefault("prune/total_params", int(params))
        if number(first.get("size/params")) == params and "prune/prunable_params" in first:
            # The job's net has every dense parameter (mask-based pruning keeps the shapes),
            # so its count of prunable weights is the dense model's.
            sample.setdefault("prune/prunable_params", first["prune/prunable_params"])
    if "test/acc" in sample:
        sample["test/acc_retention"] = 1.0
    if any(k.startswith("latency/b1") for k in sample):
        sample["latency/b1_speedup"] = 1.0
    if any(k.startswith("latency/bN") for k in sample):
        sample["latency/bN_speedup"] = 1.0
    if "flops/dense_macs" in sample:
        sample["flops/nonzero_macs"] = sample["flops/dense_macs"]
        sample["flops/theoretical_speedup"] = 1.0
    return sample


def build_rows(jobs: list[Job], order: list[Group] | None = None) -> dict[Group, list[Row]]:
    """Rows per group, sorted by sparsity; the dense row comes from a sparsity-0 job if any.

    Groups follow `order` (the sweep's command line) where given, else alphabetical order.
    """
    by_group: dict[Group, list[dict]] = defaultdict(list)
    for job in jobs:
        if job.results is not None:
            by_group[group_of(job.results)].append(job.results)
    dense_ms = dense_latency_by_key([r for rs in by_group.values() for r in rs])
    rows: dict[Group, list[Row]] = {}
    rank = {g: i for i, g in enumerate(dict.fromkeys(order or []))}
    for group in sorted(by_group, key=lambda g: (rank.get(g, len(rank)), g)):
        results = sorted(by_group[group], key=lambda r: (norm_sparsity(r["sparsity"]), r["seed"]))
        by_sparsity: dict[float, list[dict]] = defaultdict(list)
        for r in results:
            by_sparsity[norm_sparsity(r["sparsity"])].append(r)
        dense = {int(r["seed"]): r for r in by_sparsity.pop(0.0, [])}
        shared: dict[tuple[int, str], list[dict]] = defaultdict(list)
        for r in results:
            if norm_sparsity(r["sparsity"]) > 0 and "test/acc_baseline" in r:
                if int(r["seed"]) not in dense:
                    shared[(int(r["seed"]), str(r.get("baseline/key")))].append(r)
        samples = list(dense.values()) + [baseline_sample(js) for js in shared.values()]
        samples.sort(key=lambda s: int(s["seed"]))
        group_rows = []
        if samples:
            source = "job" if not shared else "baseline keys" if not dense else "mixed"
            group_rows.append(Row(group, 0.0, samples, source))
        for sparsity in sorted(by_sparsity):
            group_rows.append(Row(group, sparsity, by_sparsity[sparsity], "job"))
        align_latency(group_rows, dense_ms)
        rows[group] = group_rows
    return rows


def difference(row: Row, key: str, mine: float, dense: float) -> float:
    """The change of `key` against dense, as a fraction: the paired per-seed mean if known.

    "Beyond noise" is judged on the paired changes, each against the seed's own baseline;
    when dense and pruned rows pool other seeds, the pooled means' difference can have the
    other sign, so the stated change (and its direction) follows the paired one.
    """
    band = row.change(key)
    return band.mean / 100 if band is not None else mine - dense
