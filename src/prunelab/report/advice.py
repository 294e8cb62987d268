"""Deployment recommendations: the best measured cell under each constraint profile."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prunelab.report.aggregate import Group, Row
from prunelab.report.tables import megabytes, ms, pct


@dataclass
class Profile:
    """A deployment target: limits on batch-1 latency and file size, and a tie-break."""

    name: str
    description: str = ""
    max_latency_ms: float | None = None
    min_latency_ms: float | None = None
    max_size_mb: float | None = None
    prefer: str = "accuracy"

    def limits(self) -> str:
        """The constraints in words."""
        parts = []
        if self.min_latency_ms is not None and self.max_latency_ms is not None:
            parts.append(f"batch-1 latency {self.min_latency_ms:g}–{self.max_latency_ms:g} ms")
        elif self.max_latency_ms is not None:
            parts.append(f"batch-1 latency < {self.max_latency_ms:g} ms")
        elif self.min_latency_ms is not None:
            parts.append(f"batch-1 latency ≥ {self.min_latency_ms:g} ms")
        if self.max_size_mb is not None:
            parts.append(f"file < {self.max_size_mb:g} MB")
        return ", ".join(parts) or "no limits"


def profiles_from(config: dict[str, Any]) -> list[Profile]:
    """Profiles from the report config's `profiles` mapping (checked: validate.check_profiles)."""
    out = []
    for name, spec in (config or {}).items():
        spec = dict(spec or {})
        prefer = str(spec.get("prefer", "accuracy"))
        out.append(
            Profile(
                name=str(name),
                description=str(spec.get("description", "")),
                max_latency_ms=_opt(spec.get("max_latency_ms")),
                min_latency_ms=_opt(spec.get("min_latency_ms")),
                max_size_mb=_opt(spec.get("max_size_mb")),
                prefer=prefer,
            )
        )
    return out


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass
class Candidate:
    """One row as a deployment option."""

    row: Row
    latency_ms: float | None
    size_mb: float | None
    with_pruning: bool = False  # name the pruning method (the sweep compared several)
    seed_note: str = ""  # e.g. "seeds 0, 1": tells apart dense rows over different seeds

    @property
    def name(self) -> str:
        """'**simplecnn** (sparsity 0.5)', '**simplecnn** (magnitude, sparsity 0.5)' or dense."""
        g = self.row.group
        if self.row.is_baseline:
            # The dense model is no method's own: every method of the model starts from it.
            return f"**{g.model}** (dense{', ' + self.seed_note if self.seed_note else ''})"
        kind = f"sparsity {self.row.sparsity:g}"
        return f"**{g.model}** ({g.pruning + ', ' if self.with_pruning else ''}{kind})"

    def numbers(self) -> str:
        """The measured numbers behind a choice."""
        acc = self.row.acc()
        text = f"test accuracy {pct(acc.mean)} ({pct(acc.lo)}–{pct(acc.hi)})" if acc else ""
        if self.latency_ms is not None:
            text += f", batch-1 latency {ms(self.latency_ms)}"
        if self.size_mb is not None:
            text += f", file {megabytes(self.size_mb * 1e6)}"
        return text

    def violations(self, p: Profile) -> list[tuple[str, float]]:
        """(what, how far off as a ratio ≥ 1) for each limit this candidate breaks."""
        out = []
        if p.max_latency_ms is not None and self.latency_ms > p.max_latency_ms:
            out.append(
                (
                    f"latency {ms(self.latency_ms)} > {p.max_latency_ms:g} ms",
                    self.latency_ms / p.max_latency_ms,
                )
            )
        if p.min_latency_ms is not None and self.latency_ms < p.min_latency_ms:
            out.append(
                (
                    f"latency {ms(self.latency_ms)} < {p.min_latency_ms:g} ms",
                    p.min_latency_ms / max(self.latency_ms, 1e-9),
                )
            )
        if p.max_size_mb is not None and self.size_mb > p.max_size_mb:
            out.append(
                (
                    f"file {megabytes(self.size_mb * 1e6)} > {p.max_size_mb:g} MB",
                    self.size_mb / p.max_size_mb,
                )
            )
        return out


def _needs_latency(p: Profile) -> bool:
    return p.max_latency_ms is not None or p.min_latency_ms is not None or p.prefer == "latency"


def _needs_size(p: Profile) -> bool:
    return p.max_size_mb is not None or p.prefer == "size"


def _dense_identity(row: Row) -> tuple[str, str, frozenset[tuple[int, str | None]]]:
    """(model, data, {(seed, baseline/key)}): equal for dense rows that hold the same models."""
    samples = frozenset(
        (int(s["seed"]), None if s.get("baseline/key") is None else str(s["baseline/key"]))
        for s in row.samples
    )
    return row.group.model, row.group.data, samples


def distinct_rows(rows: list[Row]) -> tuple[list[Row], int]:
    """`rows` with each dense baseline once, and how many dense duplicates were dropped.

    Every pruning method of a model gets its own dense row, but for a (model, data, seed) it is
    one trained network (one `baseline/key`): counted per method it would inflate the number of
    options and list one model several times. A dense row whose seeds are all in another's (a
    seed added to some methods only) is the same model measured on fewer seeds: the fuller
    row stands for it.
    """
    dense = [r for r in rows if r.is_baseline]
    ids = [_dense_identity(r) for r in dense]
    keep: set[int] = set()
    for i, (model, data, samples) in enumerate(ids):
        covered = any(
            (model, data) == (m, d) and (samples < other or samples == other and j < i)
            for j, (m, d, other) in enumerate(ids)
            if j != i
        )
        if not covered:
            keep.add(id(dense[i]))
    out = [r for r in rows if not r.is_baseline or id(r) in keep]
    return out, len(rows) - len(out)


def _seed_note(row: Row, rows: list[Row]) -> str:
    """'seeds 0, 1' when another kept dense row of the same model and data has other seeds."""
    twins = [r for r in rows if r is not row and r.is_baseline and r.group[:2] == row.group[:2]]
    if not twins:
        return ""
    seeds = sorted(set(row.seeds))
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(str(s) for s in seeds)}"


def recommend(p: Profile, rows: list[Row], tolerance: float = 0.1) -> str:
    """A markdown paragraph: the chosen cell and why, or that nothing fits and the closest.

    `tolerance`: relative latency or size gain needed to prefer a less accurate tied cell.
    """
    head = f"**{p.name}** ({p.limits()}{'; ' + p.description if p.description else ''}):"
    several = len({r.group.pruning for r in rows}) > 1
    noise = timing_noise(rows)  # before distinct_rows: every group's own dense job counts
    rows, merged = distinct_rows(rows)
    cands = []
    for row in rows:
        if row.acc() is None:
            continue
        size = row.size_bytes()
        mb = None if size is None else size / 1e6
        note = _seed_note(row, rows) if row.is_baseline else ""
        cands.append(Candidate(row, row.b1_ms(), mb, several, note))
    usable = [
        c
        for c in cands
        if not (_needs_latency(p) and c.latency_ms is None)
        and not (_needs_size(p) and c.size_mb is None)
    ]
    if not usable:
        needs = [
            k
            for k, need in (
                ("latency/b1_ms", _needs_latency(p)),
                ("size/sparse_disk_bytes or size/disk_bytes", _needs_size(p)),
            )
            if need
        ]
        return (
            f"{head} cannot be judged: no cell has {' and '.join(needs)} "
            "(the sweep ran without those measurements)."
        )
    fit = [c for c in usable if not c.violations(p)]
    if not fit:
        closest = min(usable, key=lambda c: (max(v for _, v in c.violations(p)), -c.row.acc().mean))
        misses = "; ".join(w for w, _ in closest.violations(p))
        return (
            f"{head} nothing measured fits. Closest: {closest.name} — {closest.numbers()}; "
            f"misses by: {misses}."
        )
    best = max(fit, key=lambda c: c.row.acc().mean)
    # The best is tied with itself, even where its interval is malformed (hand-edited results).
    tied = [best, *(c for c in fit if c is not best and _tied(c.row, best.row))]
    chosen = best
    if p.prefer != "accuracy":
        # Switch away from the most accurate only for a gain beyond measurement noise: for
        # latency also beyond what the dense model measured against itself in either's group.
        leader = min(tied, key=lambda c: (_metric(c, p.prefer), -c.row.acc().mean))
        margin = tolerance
        if p.prefer == "latency":
            margin = max(
                tolerance, noise.get(leader.row.group, 0.0), noise.get(best.row.group, 0.0)
            )
        if _metric(leader, p.prefer) * (1 + margin) < _metric(best, p.prefer):
            chosen = leader
    text = f"{head} {chosen.name} — {chosen.numbers()}."
    text += f" {len(fit)} of {len(usable)} measured cells fit"
    # Say why the count is below the table's rows: the methods' dense rows are one model.
    text += " (the dense baseline the methods share counted once)." if merged else "."
    if chosen is not best:
        gain = 100 * (1 - _metric(chosen, p.prefer) / _metric(best, p.prefer))
        what = "latency" if p.prefer == "latency" else "file size"
        text += (
            f" The most accurate that fits is {best.name} ({pct(best.row.acc().mean)}); "
            f"{chosen.name} is within its accuracy noise band with {gain:.0f} % lower {what}."
        )
    others = [c for c in tied if c is not chosen and c is not best]
    if others:
        names = ", ".join(c.name for c in others[:4]) + (" …" if len(others) > 4 else "")
        text += f" Also within accuracy noise of the best: {names}."
    return text


def timing_noise(rows: list[Row]) -> dict[Group, float]:
    """Per group, how far its dense job's speed-up against itself is off 1 (Row.self_speedup)."""
    out: dict[Group, float] = {}
    for row in rows:
        itself = row.self_speedup()
        if itself is not None:
            out[row.group] = max(out.get(row.group, 0.0), abs(itself - 1))
    return out


def _tied(a: Row, b: Row) -> bool:
    """No accuracy difference between two cells claimed.

    Cells pruned from one dense baseline, and that baseline, compare by their paired changes
    against it, as the findings judge each cell: a pruned cell and its dense model by whether
    the paired interval holds 0; two pruned cells by whether their paired intervals overlap
    (conservative: the interval of their difference is at most the two together). Cells of
    different baselines (another model, data or seeds) share no pairing: overlapping 95 %
    accuracy bands, which misses smaller differences.
    """
    for pruned, dense in ((a, b), (b, a)):
        if dense.is_baseline and not pruned.is_baseline and _own_dense(pruned, dense):
            differs = pruned.differs("test/acc", dense)
            if differs is not None:
                return not differs
    if not a.is_baseline and not b.is_baseline and _dense_identity(a) == _dense_identity(b):
        mine, theirs = a.change("test/acc"), b.change("test/acc")
        if mine is not None and theirs is not None:
            return mine.overlaps(theirs)
    return a.acc().overlaps(b.acc())


def _own_dense(pruned: Row, dense: Row) -> bool:
    """Whether `dense` holds the baseline every seed of `pruned` was pruned from."""
    model, data, held = _dense_identity(dense)
    _, _, mine = _dense_identity(pruned)
    return (model, data) == pruned.group[:2] and mine <= held


def _metric(c: Candidate, prefer: str) -> float:
    return c.latency_ms if prefer == "latency" else c.size_mb  # type: ignore[return-value]
