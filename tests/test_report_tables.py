"""The report's tables and deployment advice (made-up sweeps: layout and rules only)."""

from __future__ import annotations

import pytest
from fake_sweeps import (
    fake_result,
    job_of,
    make_sweep,
)

from prunelab.report import build
from prunelab.report.advice import Profile, recommend
from prunelab.report.aggregate import Group, Row, build_rows
from prunelab.report.collect import collect
from prunelab.report.figures import pareto_front
from prunelab.report.findings import (
    size_finding,
)
from prunelab.report.tables import headline_table, sig3, signed


def test_advice_keeps_one_dense_row_per_model_and_seeds():
    """A seed run for one method only: its dense row (seeds 0, 1) stands for the other
    method's (seed 0); dense rows over disjoint seeds both stay, told apart by their seeds."""
    from prunelab.report.advice import distinct_rows

    def rows_of(pairs: list[tuple[str, int]]) -> list[Row]:
        samples = [{**fake_result("simplecnn", 0.5, seed), "pruning": m} for m, seed in pairs]
        return [r for rs in build_rows([job_of(r) for r in samples]).values() for r in rs]

    rows = rows_of([("magnitude", 0), ("magnitude", 1), ("random", 0)])
    kept, merged = distinct_rows(rows)
    assert merged == 1 and [r.group.pruning for r in kept if r.is_baseline] == ["magnitude"]
    text = recommend(Profile("server"), rows)
    assert "3 of 3 measured cells fit (the dense baseline the methods share counted once)" in text
    rows = rows_of([("magnitude", 0), ("random", 1)])
    kept, merged = distinct_rows(rows)
    assert merged == 0 and len(kept) == 4
    text = recommend(Profile("server"), rows)
    assert "**simplecnn** (dense, seed 0)" in text and "**simplecnn** (dense, seed 1)" in text


def test_recommendation_names_the_closest_when_nothing_fits():
    g = Group("m", "d", "p")
    row = Row(
        g,
        0.5,
        [{"seed": 0, "test/acc": 0.9, "latency/b1_ms": 2.0, "size/disk_bytes": 3e6}],
        "job",
    )
    text = recommend(Profile("mobile", max_latency_ms=1.0, max_size_mb=0.5), [row])
    assert "nothing measured fits" in text and "latency 2.00 ms > 1 ms" in text
    assert "file 3.00 MB > 0.5 MB" in text
    assert (sig3(2.0), sig3(2.1), sig3(0.3664), sig3(123.4)) == ("2.00", "2.10", "0.366", "123")


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.80), (2.0, 0.90), (1.5, 0.70), (3.0, 0.90), (0.5, 0.60)]
    assert pareto_front(points) == [4, 0, 1]


def test_advice_judges_a_pruned_cell_against_its_own_baseline_as_the_findings_do():
    """87.5 % dense and 86.8 % pruned: Wilson bands overlap, but the paired interval of the
    change (-1.2 to -0.2 points) excludes 0, so the faster cell is no tie for the dense one."""
    dense = fake_result("resnetsmall", 0.0, acc=0.875)
    pruned = fake_result("resnetsmall", 0.5, acc=0.868)
    pruned.update({"test/acc_delta_pts": -0.7, "test/acc_delta_ci_low": -1.2})
    pruned.update({"test/acc_delta_ci_high": -0.2, "latency/b1_speedup": 2.1})
    for r in (dense, pruned):
        r["test/acc_ci_low"], r["test/acc_ci_high"] = r["test/acc"] - 0.0065, r["test/acc"] + 0.0065

    def advice(profile: Profile) -> str:
        rows = [r for rs in build_rows([job_of(dense), job_of(pruned)]).values() for r in rs]
        assert rows[1].acc().overlaps(rows[0].acc())
        return recommend(profile, rows)

    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")
    assert "**resnetsmall** (dense) —" in advice(edge)
    assert "within its accuracy noise band" not in advice(edge)
    assert "Also within accuracy noise" not in advice(Profile("server"))
    pruned["test/acc_delta_ci_high"] = 0.1  # the paired interval takes in 0: a tie again
    assert "**resnetsmall** (sparsity 0.5) is within its accuracy noise band" in advice(edge)


def test_advice_judges_two_cells_of_one_dense_model_by_their_paired_changes():
    """Two pruned cells of one dense model, 0.8 points apart (bands overlap), whose paired
    changes (+0.1 to +0.7 and -0.9 to -0.1 points) do not: the faster, less accurate one is no
    tie for the best; with overlapping changes it is. Another model's cell compares by bands."""
    dense = fake_result("simplecnn", 0.0, acc=0.877)
    best = fake_result("simplecnn", 0.2, acc=0.881)
    fast = fake_result("simplecnn", 0.5, acc=0.873)
    best.update({"test/acc_delta_pts": 0.4, "test/acc_delta_ci_low": 0.1})
    best["test/acc_delta_ci_high"] = 0.7
    fast.update({"test/acc_delta_pts": -0.4, "test/acc_delta_ci_low": -0.9})
    fast.update({"test/acc_delta_ci_high": -0.1, "latency/b1_speedup": 2.0})
    other = fake_result("resnetsmall", 0.0, acc=0.876)
    other["latency/b1_ms"] = 50.0  # fits no latency profile below, compared on accuracy alone
    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")

    def advice(profile: Profile) -> str:
        jobs = [job_of(r) for r in (dense, best, fast, other)]
        rows = [r for rs in build_rows(jobs).values() for r in rs]
        assert rows[1].acc().overlaps(rows[2].acc())  # the unpaired bands would call it a tie
        return recommend(profile, rows)

    assert "**simplecnn** (sparsity 0.2) —" in advice(edge)
    assert "within its accuracy noise band" not in advice(edge)
    server = advice(Profile("server"))
    assert "Also within accuracy noise of the best: **resnetsmall** (dense)." in server, server
    fast["test/acc_delta_ci_high"] = 0.2  # the changes overlap: the faster cell is a tie again
    assert "**simplecnn** (sparsity 0.5) is within its accuracy noise band" in advice(edge)


def test_advice_prefers_no_lower_latency_within_the_dense_self_timing_noise(tmp_path):
    """A pruned cell 1.15× faster and tied in accuracy: chosen for its lower latency while the
    dense job timed itself at 1.0×, not when it timed itself at 1.20× (the noise is 20 %)."""
    dense = fake_result("simplecnn", 0.0, acc=0.89)
    pruned = fake_result("simplecnn", 0.5, acc=0.89)  # paired change 0 ± 0.5 points: tied
    pruned["latency/b1_speedup"] = 1.15
    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")

    def advice() -> str:
        rows = [r for rs in build_rows([job_of(dense), job_of(pruned)]).values() for r in rs]
        return recommend(edge, rows)

    assert "**simplecnn** (sparsity 0.5) is within its accuracy noise band with 13 % lower" in (
        advice()
    )
    dense["latency/b1_speedup"] = 1.2
    text = advice()
    assert "lower latency" not in text and "**simplecnn** (dense) —" in text
    sweep = make_sweep(tmp_path, [dense, pruned], ["sparsity=0,0.5"])
    report = build(sweep, wandb=False, figures=False).report.read_text()
    assert (
        "**Latency in this sweep is noisy** (the dense model timed against itself is off 1× by "
        "up to 20 %): the latency-based choices below are provisional." in report
    )


def test_advice_survives_a_hand_edited_interval_that_excludes_its_own_accuracy():
    """The most accurate cell is tied with itself whatever its interval says."""
    dense = fake_result("simplecnn", 0.0, acc=0.89)
    dense["test/acc_ci_high"] = 0.0
    rows = [r for rs in build_rows([job_of(dense)]).values() for r in rs]
    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")
    assert "**simplecnn** (dense) —" in recommend(edge, rows)


def test_methods_sweep_gets_one_side_by_side_table(tmp_path):
    results = []
    for method, acc in (("magnitude", 0.88), ("random", 0.60)):
        for sparsity in (0.5, 0.8):
            results.append({**fake_result("simplecnn", sparsity, acc=acc), "pruning": method})
    task = ["pruning=magnitude,random", "sparsity=0.5,0.8"]
    report = build(make_sweep(tmp_path, results, task), figures=False, wandb=False)
    text = report.report.read_text()
    section = text.split("## Methods side by side", 1)[1].split("## Results", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| 0.")]
    assert [r.split(" | ")[:2] for r in rows] == [
        ["| 0.5", "magnitude"],
        ["| 0.5", "random"],
        ["| 0.8", "magnitude"],
        ["| 0.8", "random"],
    ]
    assert "-29.0 pts" in rows[1]  # 60 % against the shared 89 % baseline, beyond noise


def test_single_method_sweep_has_no_methods_section(tmp_path):
    results = [fake_result("simplecnn", s) for s in (0.5, 0.8)]
    report = build(make_sweep(tmp_path, results, ["sparsity=0.5,0.8"]), figures=False, wandb=False)
    assert "## Methods side by side" not in report.report.read_text()


def test_dense_row_shows_its_measured_compression_only_reduction(tmp_path):
    """The dense model's own export is ~8 % smaller than its file: the dense row says so,
    measured; results without that key keep the old '0 % (reference)'."""
    results = [fake_result("simplecnn", s) for s in (0.5, 0.8)]
    for r in results:
        r["size/sparse_disk_bytes_baseline"] = 920_000
        r["size/reduction_pct_baseline"] = 8.0
    rows = build_rows([job_of(r) for r in results])[
        Group("simplecnn", "fashion_mnist", "magnitude")
    ]
    assert rows[0].source == "baseline keys" and rows[0].mean("size/reduction_pct") == 8.0
    table = headline_table(rows)[0]
    assert "| 8.0 % (compression alone) |" in table and "0 % (reference)" not in table
    assert "already 8.0 % smaller than its file" in size_finding(rows)
    old = [fake_result("simplecnn", s) for s in (0.5, 0.8)]
    rows = build_rows([job_of(r) for r in old])[Group("simplecnn", "fashion_mnist", "magnitude")]
    assert rows[0].mean("size/reduction_pct") is None  # not measured: never made up
    assert "| 0 % (reference) |" in headline_table(rows)[0]


def test_pgd_labels_follow_the_recorded_eps(tmp_path):
    """attack.pgd.eps=0.05: every label says 0.05; results without the key read as 0.03."""
    from prunelab.report.figures import change_panels
    from prunelab.report.tables import pgd_eps

    results = []
    for method in ("magnitude", "random"):
        for s in (0.5, 0.8):
            r = {**fake_result("simplecnn", s), "pruning": method}
            r.update({"robust/pgd_eps": 0.05, "robust/pgd_steps": 7})
            results.append(r)
    sweep = make_sweep(tmp_path, results, ["pruning=magnitude,random", "sparsity=0.5,0.8"])
    report = build(sweep, figures=False, wandb=False).report.read_text()
    assert "ε = 0.03" not in report and "ε=0.03" not in report
    assert "Robustness Impact (PGD ε=0.05)" in report and "| PGD ε=0.05 |" in report
    assert "the study's PGD, ε = 0.05, 7 steps" in report
    rows = build_rows(collect(sweep).ok)
    assert "ε = 0.05" in change_panels(rows)[1][1] and pgd_eps(rows[next(iter(rows))]) == "0.05"
    legacy = build_rows([job_of(fake_result("simplecnn", 0.5))])
    assert "ε = 0.03" in change_panels(legacy)[1][1]


def test_dense_row_rebuilt_from_structured_jobs_has_the_dense_counts():
    """A structured job's own counts are the shrunk net's; the dense row takes the dense ones
    from the *_baseline keys, and leaves out what no such key gives."""
    r = {**fake_result("simplecnn", 0.5), "pruning": "structured", "size/params": 60_000}
    r.update({"prune/total_params": 60_000, "prune/prunable_params": 59_000})
    group = Group("simplecnn", "fashion_mnist", "structured")
    dense = build_rows([job_of(r)])[group][0]
    assert not dense.has("size/params") and not dense.has("prune/prunable_params")
    dense = build_rows([job_of({**r, "size/params_baseline": 240_000})])[group][0]
    assert dense.mean("size/params") == dense.mean("prune/total_params") == 240_000
    assert not dense.has("prune/prunable_params")  # the job's net is not the dense shape
    same = {**r, "pruning": "magnitude", "size/params": 240_000, "size/params_baseline": 240_000}
    dense = build_rows([job_of(same)])[Group("simplecnn", "fashion_mnist", "magnitude")][0]
    assert dense.mean("prune/prunable_params") == 59_000  # masks keep the dense shapes


def test_wandb_grid_shows_what_the_report_shows():
    """Two seeds: the band is mean ± std (not the mean of per-seed Wilson bounds), and the
    latency is the aligned one (not the raw per-job milliseconds)."""
    from prunelab.report.wandb_summary import grid_table

    results = [fake_result("simplecnn", 0.5, seed, acc) for seed, acc in ((0, 0.80), (1, 0.90))]
    # Seed 1 ran on a busier machine and its pruned model was 1.5x faster than its dense one.
    results[1].update({"latency/b1_ms": 0.6, "latency/b1_ms_baseline": 0.9})
    results[1]["latency/b1_speedup"] = 1.5
    rows = build_rows([job_of(r) for r in results])
    columns, data = grid_table(rows)
    pruned = dict(zip(columns, data[1], strict=True))
    row = rows[Group("simplecnn", "fashion_mnist", "magnitude")][1]
    band = row.acc()
    assert (pruned["test/acc_band_low"], pruned["test/acc_band_high"]) == (band.lo, band.hi)
    assert pruned["test/acc_band_low"] < 0.80 - 0.006  # wider than the per-seed Wilson means
    assert pruned["latency/b1_ms_aligned"] == pytest.approx(row.b1_ms())
    assert pruned["latency/b1_ms_aligned"] != pytest.approx(row.mean("latency/b1_ms"))


def test_signed_drops_the_sign_of_a_value_that_rounds_to_zero():
    """A table cell reads '0.0 pts' for -0.01 points, and keeps every real sign."""
    assert signed(-0.01, " pts") == "0.0 pts" and signed(0.04) == "0.0"
    assert signed(-0.05, " pts") == "-0.1 pts" and signed(0.3) == "+0.3"
    assert signed(-0.004, digits=2) == "0.00" and signed(-0.006, digits=2) == "-0.01"
    assert signed(None) == "—"
