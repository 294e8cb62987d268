"""Markdown tables of a sweep and its results.csv (one row per job, stable column order)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from pathlib import Path

from prunelab.evaltable import signed_text
from prunelab.report.aggregate import Interval, Row, difference, number
from prunelab.report.collect import Job
from prunelab.report.files import write_text

IDENTITY = (
    "model",
    "data",
    "pruning",
    "sparsity",
    "seed",
    "baseline/key",
    "baseline/trained",
    "baseline/epochs",
    "baseline/best_val_acc",
    "data/train_size",
    "data/val_size",
    "data/test_size",
)
GROUP_ORDER = ("test", "prune", "robust", "latency", "size", "flops", "time")
HEADLINE_ATTACK = "robust/pgd_acc"
# The study's PGD eps of results written before they recorded it (robust/pgd_eps).
LEGACY_PGD_EPS = 0.03


# ---- formatting ---------------------------------------------------------------------------
def pct(fraction: float | None, digits: int = 1) -> str:
    """0.8523 -> '85.2 %'."""
    return "—" if fraction is None else f"{100 * fraction:.{digits}f} %"


def signed(value: float | None, unit: str = "", digits: int = 1) -> str:
    """-1.23 -> '-1.2 pts' (signed; a value that rounds to zero reads '0.0', not '-0.0')."""
    return "—" if value is None else signed_text(value, digits) + unit


def times(value: float | None) -> str:
    """1.234 -> '1.23×'."""
    return "—" if value is None else f"{value:.2f}×"


def sig3(value: float) -> str:
    """Three significant digits, trailing zeros kept: 2.00 beside 2.01 in one column, not 2."""
    text = f"{value:#.3g}"
    return text[:-1] if text.endswith(".") else text  # '#' leaves 123. for 123


def megabytes(n_bytes: float | None) -> str:
    """File sizes in MB (10^6 bytes), three significant digits."""
    if n_bytes is None:
        return "—"
    return f"{sig3(n_bytes / 1e6)} MB"


def ms(value: float | None) -> str:
    """Milliseconds, three significant digits."""
    return "—" if value is None else f"{sig3(value)} ms"


def sparsity_label(row: Row) -> str:
    """'0 (dense)' or '0.5'."""
    return "0 (dense)" if row.is_baseline else f"{row.sparsity:g}"


def interval_text(iv: Interval | None) -> str:
    """'85.2 % (82.0–88.0)' for one seed; '85.2 ± 0.4 % (3 seeds; band …)' for several."""
    if iv is None:
        return "—"
    if iv.n_seeds > 1 and iv.std is not None:
        return (
            f"{100 * iv.mean:.1f} ± {100 * iv.std:.1f} % ({iv.n_seeds} seeds; "
            f"band {100 * iv.lo:.1f}–{100 * iv.hi:.1f})"
        )
    if iv.lo == iv.hi:
        return pct(iv.mean)
    return f"{100 * iv.mean:.1f} % ({100 * iv.lo:.1f}–{100 * iv.hi:.1f})"


def delta_text(row: Row, base: Row | None) -> str:
    """Accuracy change in points against the dense row, flagged when it lies within noise."""
    iv, ref = row.acc(), base.acc() if base is not None else None
    if iv is None or ref is None:
        return "—"
    text = signed(100 * difference(row, "test/acc", iv.mean, ref.mean), " pts")
    return f"{text} (within noise)" if not row.differs("test/acc", base) else text


def impact_text(row: Row, base: Row | None) -> str:
    """The study's robustness impact: Δ PGD accuracy in points and relative %, noise flagged."""
    pts = row.mean(f"{HEADLINE_ATTACK}_delta_pts")
    if pts is None:
        return "—"
    text = f"{signed(pts, ' pts')} ({signed(row.mean(f'{HEADLINE_ATTACK}_delta_rel'), ' %')})"
    quiet = base is not None and row.differs(HEADLINE_ATTACK, base) is False
    return f"{text} (within noise)" if quiet else text


def markdown_table(header: list[str], rows: Iterable[list[str]]) -> str:
    """A GitHub-flavoured markdown table (pipes in cells escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def _drop_empty(header: list[str], body: list[list[str]], keep: int = 1) -> tuple:
    """Leave out columns with no data in any row; return (header, body, omitted names)."""
    cols = [i for i in range(len(header)) if i < keep or any(r[i] not in ("—", "") for r in body)]
    omitted = [header[i] for i in range(len(header)) if i not in cols]
    return [header[i] for i in cols], [[r[i] for i in cols] for r in body], omitted


def pgd_eps(rows: Iterable[Row]) -> str:
    """The study's PGD eps these rows were attacked at: '0.03', or '0.03/0.05' if they differ."""
    found: set[float] = set()
    for row in rows:
        for sample in row.samples:
            eps = number(sample.get("robust/pgd_eps"))
            found.add(LEGACY_PGD_EPS if eps is None else eps)
    return "/".join(f"{e:g}" for e in sorted(found)) if found else f"{LEGACY_PGD_EPS:g}"


def pgd_setting(rows: Iterable[Row]) -> str:
    """'ε = 0.03, 40 steps': the study's PGD in words (steps only where results record them)."""
    rows = list(rows)
    steps = sorted({int(s) for row in rows for s in row.values("robust/pgd_steps")})
    text = f"ε = {pgd_eps(rows)}"
    return text + (f", {'/'.join(map(str, steps))} steps" if steps else "")


def dense_size_text(row: Row) -> str:
    """The dense row's size reduction: its export's own, i.e. what compression alone gives."""
    reduction = row.mean("size/reduction_pct")
    if reduction is not None:
        return f"{reduction:.1f} % (compression alone)"
    # Rebuilt from results written before size/reduction_pct_baseline: not measured.
    return "—" if not row.has("size/disk_bytes") else "0 % (reference)"


# ---- the study's table --------------------------------------------------------------------
def speed_text(row: Row, tolerance: float, batch: str = "b1") -> str:
    """'1.02×', flagged '(within noise)' when it is off 1× but not beyond the timing noise
    (`batch`: "b1" or "bN", the batch size timed)."""
    speedup = row.mean(f"latency/{batch}_speedup")
    if speedup is None:
        return "—"
    noisy = abs(speedup - 1) > tolerance and row.speed_verdict(tolerance, batch) == "same"
    return f"{times(speedup)} (within noise)" if noisy else times(speedup)


def headline_table(rows: list[Row], tolerance: float = 0.1) -> tuple[str, list[str]]:
    """Sparsity | Test Accuracy | Size Reduction | Speed Improvement | Robustness Impact."""
    header = ["Sparsity", "Test Accuracy", "Size Reduction", "Speed Improvement"]
    header.append("Robustness Impact")
    body = []
    for row in rows:
        reduction = row.mean("size/reduction_pct")
        if row.is_baseline:
            robust = row.mean(HEADLINE_ATTACK)
            impact = "—" if robust is None else f"reference (PGD acc {pct(robust)})"
            size = dense_size_text(row)
            speed = "—" if not row.has("latency/b1_speedup") else "1.00× (reference)"
        else:
            impact = impact_text(row, rows[0] if rows[0].is_baseline else None)
            size = "—" if reduction is None else f"{reduction:.1f} %"
            speed = speed_text(row, tolerance)
        body.append([sparsity_label(row), interval_text(row.acc()), size, speed, impact])
    header, body, omitted = _drop_empty(header, body, keep=2)
    return markdown_table(header, body), omitted


def _speed_cells(row: Row, tolerance: float) -> list[str]:
    """Batch-1 and batch-N speed-up; the dense job's are the dense model timed against itself
    (a measure of the timing noise, not a speed-up), and say so. A dense row rebuilt from the
    pruned jobs' `_baseline` keys timed nothing against itself: 'reference'."""
    if not row.is_baseline:
        return [speed_text(row, tolerance), speed_text(row, tolerance, "bN")]
    if row.source != "job":
        return ["reference" if row.has(f"latency/{b}_speedup") else "—" for b in ("b1", "bN")]
    b1, bn = times(row.mean("latency/b1_speedup")), times(row.mean("latency/bN_speedup"))
    return [f"{x} (vs itself)" if x != "—" else x for x in (b1, bn)]


def detail_table(rows: list[Row], tolerance: float = 0.1) -> tuple[str, list[str]]:
    """Accuracy with interval, zeros, on-disk sizes, latency, measured and theoretical speed-up."""
    base = rows[0] if rows and rows[0].is_baseline else None
    header = [
        "Sparsity",
        "Zeros (prunable / all params)",
        "Test acc (95 % interval)",
        "Δ acc vs dense",
        "Dense file",
        "Sparse file",
        "Size reduction",
        "Batch-1 latency (aligned median / p90)",
        "Batch-1 speed-up (measured)",
        "Batch-N speed-up (measured)",
        "Theoretical speed-up (MACs)",
    ]
    body = []
    for row in rows:
        measured, overall = row.mean("prune/sparsity_measured"), row.mean("prune/sparsity_overall")
        zeros = "—" if measured is None else f"{pct(measured)} / {pct(overall)}"
        b1, p90 = row.b1_ms(), row.b1_p90_ms()
        latency = "—" if b1 is None else f"{sig3(b1)} / {ms(p90)}" if p90 else ms(b1)
        reduction = row.mean("size/reduction_pct")
        size = "—" if reduction is None else f"{reduction:.1f} %"
        body.append(
            [
                sparsity_label(row),
                zeros,
                interval_text(row.acc()),
                "reference" if row.is_baseline else delta_text(row, base),
                megabytes(row.mean("size/disk_bytes")),
                megabytes(row.mean("size/sparse_disk_bytes")),
                dense_size_text(row) if row.is_baseline else size,
                latency,
                *_speed_cells(row, tolerance),
                times(row.mean("flops/theoretical_speedup")),
            ]
        )
    header, body, omitted = _drop_empty(header, body, keep=3)
    return markdown_table(header, body), omitted


def _eps(key: str) -> float:
    match = re.search(r"@(?:eps)?([0-9.]+)$", key)
    return float(match.group(1)) if match else 0.0


def robust_keys(rows: list[Row]) -> list[tuple[str, str]]:
    """(key, column title) of every robust accuracy measured in these rows, in a fixed order."""
    present = {k for row in rows for s in row.samples for k in s if k.startswith("robust/")}
    fgsm = sorted((k for k in present if re.fullmatch(r"robust/fgsm_acc@[0-9.]+", k)), key=_eps)
    curve = sorted(
        (k for k in present if re.fullmatch(r"robust/curve_acc@eps[0-9.]+", k)), key=_eps
    )
    keys = [("robust/clean_acc", "Clean (subset)")] if "robust/clean_acc" in present else []
    keys += [(k, f"FGSM ε={_eps(k):g}") for k in fgsm]
    if "robust/pgd_acc" in present:
        keys.append(("robust/pgd_acc", f"PGD ε={pgd_eps(rows)}"))
    keys += [(k, f"PGD ε={_eps(k):g}/255") for k in curve]
    return keys


def robust_tables(rows: list[Row]) -> list[str]:
    """Robust accuracy per attack and eps: the study's attacks, then the PGD eps curve."""
    keys = robust_keys(rows)
    curve = [k for k in keys if k[0].startswith("robust/curve_acc@")]
    attacks = [k for k in keys if k not in curve]
    return [t for t in (_robust_table(rows, attacks), _robust_table(rows, curve)) if t]


def _robust_table(rows: list[Row], keys: list[tuple[str, str]]) -> str | None:
    """One table of robust accuracies, with the change vs dense in points."""
    if not keys:
        return None
    base = rows[0] if rows and rows[0].is_baseline else None
    body = []
    for row in rows:
        cells = [sparsity_label(row)]
        for key, _ in keys:
            iv = row.robust(key)
            if iv is None:
                cells.append("—")
            elif base is None or row.is_baseline or base.robust(key) is None:
                cells.append(pct(iv.mean))
            else:
                ref = base.robust(key)
                flag = "" if row.differs(key, base) else "~"
                delta = 100 * difference(row, key, iv.mean, ref.mean)
                cells.append(f"{pct(iv.mean)} ({signed(delta)}{flag})")
        body.append(cells)
    return markdown_table(["Sparsity", *(title for _, title in keys)], body)


# ---- results.csv --------------------------------------------------------------------------
def _natural(key: str) -> list:
    return [
        float(p) if re.fullmatch(r"\d+(?:\.\d+)?", p) else p
        for p in re.split(r"(\d+(?:\.\d+)?)", key)
    ]


def column_order(keys: Iterable[str]) -> list[str]:
    """Identity keys first (contract order), then metric groups, each in natural order."""
    keys = set(keys)
    head = [k for k in IDENTITY if k in keys]
    rest = keys - set(head)

    def rank(key: str) -> tuple:
        prefix = key.split("/", 1)[0] if "/" in key else ""
        group = GROUP_ORDER.index(prefix) if prefix in GROUP_ORDER else len(GROUP_ORDER)
        return (group, prefix, [(isinstance(p, float), p) for p in _natural(key)])

    return head + sorted(rest, key=rank)


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # shortest exact round-trip
    return str(value)


def write_csv(path: Path, jobs: list[Job]) -> list[str]:
    """results.csv: one row per job with results, column `job` = its folder; returns columns."""
    ok = [j for j in jobs if j.results is not None]
    columns = ["job", *column_order(k for j in ok for k in j.results)]  # type: ignore[union-attr]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for job in sorted(ok, key=lambda j: j.name):
        values = {"job": job.name, **job.results}  # type: ignore[dict-item]
        writer.writerow([_csv_value(values.get(c)) for c in columns])
    write_text(path, buffer.getvalue())
    return columns


# ---- methods side by side ----------------------------------------------------------------
def methods_table(rows: dict, tolerance: float = 0.1) -> list[tuple[str, str]]:
    """(title, table) per model and data with several pruning methods: one row per cell.

    Every method's cells share a dense baseline, so each row is compared with the same
    reference: accuracy change, PGD robustness impact, measured vs theoretical speed-up, size.
    """
    by_model: dict[tuple[str, str], list] = {}
    for group, rs in rows.items():
        by_model.setdefault((group.model, group.data), []).append((group.pruning, rs))
    out = []
    for (model, data), methods in by_model.items():
        if len(methods) < 2:
            continue
        eps = pgd_eps(row for _, rs in methods for row in rs)
        header = [
            "Sparsity",
            "Method",
            "Test acc (95 % interval)",
            "Δ acc vs dense",
            f"Robustness Impact (PGD ε={eps})",
            "Batch-1 speed-up (measured)",
            "Theoretical speed-up (MACs)",
            "Size reduction",
        ]
        cells = []
        for method, rs in methods:
            base = rs[0] if rs and rs[0].is_baseline else None
            for row in rs:
                if row.is_baseline:
                    continue
                reduction = row.mean("size/reduction_pct")
                cells.append(
                    (
                        row.sparsity,
                        [
                            f"{row.sparsity:g}",
                            method,
                            interval_text(row.acc()),
                            delta_text(row, base),
                            impact_text(row, base),
                            speed_text(row, tolerance),
                            times(row.mean("flops/theoretical_speedup")),
                            "—" if reduction is None else f"{reduction:.1f} %",
                        ],
                    )
                )
        cells.sort(key=lambda c: c[0])  # stable: methods keep their order within a sparsity
        out.append((f"{model} on {data}", markdown_table(header, [c[1] for c in cells])))
    return out
