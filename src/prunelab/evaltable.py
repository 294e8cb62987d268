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


def _change(key: str, results: dict[str, Any]) -> str:
    pts, rel = results.get(f"{key}_delta_pts"), results.get(f"{key}_delta_rel")
    value, base = results.get(key), results.get(f"{key}_baseline")
    if key == "test/acc" and base:
        pts, rel = 100 * (value - base), 100 * (value - base) / base
    if pts is not None:
        return f"{pts:+.2f} pts" + (f" ({rel:+.1f} %)" if rel is not None else "")
    if key.startswith("latency/") and key.endswith("_ms"):
        speedup = results.get(key.replace("_ms", "_speedup").replace("_p90_speedup", "_speedup"))
        if speedup is not None and "p90" not in key:
            return f"speed-up x{speedup:.2f}"
    if key == "size/sparse_disk_bytes" and base:  # against the baseline's own export
        return f"{100 * (value / base - 1):+.1f} %"
    # The ratios to the dense file and MACs name that reference: without a baseline, evaluate
    # measures them against the unpruned architecture.
    dense = "dense baseline" if "size/disk_bytes_baseline" in results else "dense architecture"
    if key == "size/reduction_pct":
        return f"vs {dense} file" + ("" if dense == "dense baseline" else " (no baseline)")
    if key == "flops/nonzero_macs" and results.get("flops/theoretical_speedup"):
        speedup = results["flops/theoretical_speedup"]
        return f"theoretical speed-up x{speedup:.2f} vs {dense}"
    return ""


def format_table(results: dict[str, Any]) -> str:
    """A readable table: metric, model, baseline, change (points and relative %)."""
    derived = ("_baseline", "_delta_pts", "_delta_rel", "_speedup", "_ci_low", "_ci_high")
    skip = {"size/disk_bytes_baseline", "flops/theoretical_speedup"}
    rows = [("metric", "model", "baseline", "change")]
    for key, value in results.items():
        if "/" not in key or key.endswith(derived) or key in skip or key.startswith("time/"):
            continue
        shown = _fmt(key, value)
        if key == "test/acc" and "test/acc_ci_low" in results:
            shown += f" [{results['test/acc_ci_low']:.4f}, {results['test/acc_ci_high']:.4f}]"
        base = results.get(f"{key}_baseline")
        if key == "size/disk_bytes":
            base = results.get("size/disk_bytes_baseline")
        base_shown = _fmt(key, base) if f"{key}_baseline" in results or base is not None else ""
        if key == "test/acc" and "test/acc_baseline_ci_low" in results:
            lo, hi = results["test/acc_baseline_ci_low"], results["test/acc_baseline_ci_high"]
            base_shown += f" [{lo:.4f}, {hi:.4f}]"
        rows.append((key, shown, base_shown, _change(key, results)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
