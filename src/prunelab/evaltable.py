"""The table prunelab.evaluate prints: metric, model, baseline and change, one row per key."""

from __future__ import annotations

from typing import Any


def _fmt(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool) or isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if key.startswith(("test/acc", "robust/")) and abs(value) <= 1:
        return f"{value:.4f}"
    if key.endswith("_ms"):
        return f"{value:.3f} ms"
    if key.endswith("_pct"):
        return f"{value:.1f} %"
    return f"{value:.4g}"


def signed_text(value: float, digits: int) -> str:
    """-1.234 -> '-1.23' at 2 digits; a value that rounds to zero reads '0.00', not '-0.00'."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text  # the digits shown carry no direction


def _change(key: str, results: dict[str, Any]) -> str:
    pts, rel = results.get(f"{key}_delta_pts"), results.get(f"{key}_delta_rel")
    value, base = results.get(key), results.get(f"{key}_baseline")
    if key == "test/acc" and base:
        pts, rel = 100 * (value - base), 100 * (value - base) / base
    if pts is not None:
        relative = f" ({signed_text(rel, 1)} %)" if rel is not None else ""
        text = f"{signed_text(pts, 2)} pts{relative}"
        return text + _noise(key, results)
    if key.startswith("latency/") and key.endswith("_ms"):
        speedup = results.get(key.replace("_ms", "_speedup").replace("_p90_speedup", "_speedup"))
        if speedup is not None and "p90" not in key:
            return f"speed-up x{speedup:.2f}"
    if key == "size/sparse_disk_bytes" and base:  # against the baseline's own export
        return f"{signed_text(100 * (value / base - 1), 1)} %"
    # The ratios to the dense file and MACs name that reference: without a baseline, evaluate
    # measures them against the unpruned architecture.
    dense = "dense baseline" if "size/disk_bytes_baseline" in results else "dense architecture"
    if key == "size/reduction_pct":
        return f"vs {dense} file" + ("" if dense == "dense baseline" else " (no baseline)")
    if key == "flops/nonzero_macs" and results.get("flops/theoretical_speedup"):
        speedup = results["flops/theoretical_speedup"]
        return f"theoretical speed-up x{speedup:.2f} vs {dense}"
    return ""


def _noise(key: str, results: dict[str, Any]) -> str:
    """' [low, high]' of a change's paired 95 % interval, then ' ~' where it contains 0."""
    low, high = results.get(f"{key}_delta_ci_low"), results.get(f"{key}_delta_ci_high")
    if low is None or high is None:
        return ""
    # Two decimals, as the change: '-0.0' would hide an interval that ends at -0.04.
    return f" [{signed_text(low, 2)}, {signed_text(high, 2)}]" + (" ~" if low <= 0 <= high else "")


def _wilson(results: dict[str, Any], key: str) -> str:
    low, high = results.get(f"{key}_ci_low"), results.get(f"{key}_ci_high")
    return "" if low is None or high is None else f"{low:.4f}-{high:.4f}"


def format_table(results: dict[str, Any]) -> str:
    """A readable table: metric, model, baseline, change (points, relative %, paired interval)."""
    derived = ("_baseline", "_delta_pts", "_delta_rel", "_speedup", "_ci_low", "_ci_high")
    skip = {"size/disk_bytes_baseline", "flops/theoretical_speedup"}
    rows = [("metric", "model", "baseline", "change")]
    for key, value in results.items():
        if "/" not in key or key.endswith(derived) or key in skip or key.startswith("time/"):
            continue
        base = results.get(f"{key}_baseline")
        if key == "size/disk_bytes":
            base = results.get("size/disk_bytes_baseline")
        base_shown = _fmt(key, base) if f"{key}_baseline" in results or base is not None else ""
        rows.append((key, _fmt(key, value), base_shown, _change(key, results)))
        # The Wilson intervals on a row of their own: beside the values they would widen the
        # model and baseline columns enough to push the change past 100 columns.
        if key == "test/acc" and "test/acc_ci_low" in results:
            wilson = (
                "  95 % Wilson interval",
                _wilson(results, key),
                _wilson(results, f"{key}_baseline"),
            )
            rows.append((*wilson, ""))
    if not any(r[2] or r[3] for r in rows[1:]):  # baseline=none: no column to fill
        rows = [r[:2] for r in rows]
    last = len(rows[0]) - 1
    # A column is as wide as its cells that have another cell after them: a long last cell
    # (latency/device on a GPU, a row without baseline) runs on instead of widening them all.
    widths = [max(len(r[i]) for r in rows if i == last or any(r[i + 1 :])) for i in range(last + 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(f"{key}_delta_ci_low" in results for key, *_ in rows[1:]):
        lines.append(
            "change [low, high]: paired 95 % interval in points; ~ = within noise (it holds 0)"
        )
    return "\n".join(lines)
