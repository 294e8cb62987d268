"""Report logic on small made-up sweeps (layout and rules only; these numbers are not results)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prunelab.report import build
from prunelab.report.__main__ import main as report_main
from prunelab.report.advice import Profile, recommend
from prunelab.report.aggregate import Group, Row, build_rows
from prunelab.report.collect import Job, collect, expected_cells, make_cell
from prunelab.report.figures import pareto_front
from prunelab.report.findings import (
    accuracy_finding,
    robustness_finding,
    seeds_note,
    size_finding,
    speed_finding,
    vs_control_finding,
)
from prunelab.report.retraining import Retraining
from prunelab.report.sweep_record import (
    JOB_RECORD,
    job_sweep_id,
    note_launch,
    read_record,
    stamp_job,
)
from prunelab.report.tables import detail_table, headline_table, robust_tables
from prunelab.stats import wilson

MODELS = {"simplecnn": (0.43, 1_000_000), "resnetsmall": (2.6, 2_800_000)}


def fake_result(model: str, sparsity: float, seed: int = 0, acc: float = 0.88) -> dict:
    """One job's results.json with every key group of docs/metrics.md."""
    ms, disk = MODELS[model]
    base = 0.89
    r = {
        "model": model,
        "data": "fashion_mnist",
        "pruning": "magnitude",
        "sparsity": sparsity,
        "seed": seed,
        "test/acc": acc,
        "test/acc_ci_low": acc - 0.006,
        "test/acc_ci_high": acc + 0.006,
        "test/acc_baseline": base,
        "test/acc_baseline_ci_low": base - 0.006,
        "test/acc_baseline_ci_high": base + 0.006,
        "data/test_size": 10000,
        "prune/sparsity_measured": sparsity,
        "baseline/key": f"{model}-seed{seed}",
        "robust/n_images": 500,
        "robust/pgd_acc": 0.1,
        "robust/pgd_acc_baseline": 0.12,
        "robust/pgd_acc_delta_pts": -2.0,
        "robust/pgd_acc_delta_rel": -16.7,
        "robust/pgd_acc_delta_ci_low": -3.5,
        "robust/pgd_acc_delta_ci_high": -0.5,
        "test/acc_delta_pts": 100 * (acc - base),
        "test/acc_delta_ci_low": 100 * (acc - base) - 0.5,
        "test/acc_delta_ci_high": 100 * (acc - base) + 0.5,
        "latency/b1_ms": ms,
        "latency/b1_ms_baseline": ms,
        "latency/b1_speedup": 1.0,
        "latency/device": "cpu",
        "size/disk_bytes": disk,
        "size/sparse_disk_bytes": int(disk * (1.1 - sparsity)),
        "size/disk_bytes_baseline": disk,
        "size/reduction_pct": 100 * (sparsity - 0.1),
        "flops/theoretical_speedup": 1 / (1 - sparsity),
        # Global ranking: the large middle layer gives up more than `sparsity`, the ends less.
        "prune/layer/features.1": sparsity / 2,
        "prune/layer/head.1": min(1.0, 1.1 * sparsity),
        "prune/layer/head.4": sparsity / 2,
    }
    for k in (0, 1, 2, 4, 8, 16):
        r[f"robust/curve_acc@eps{k}"] = acc / (1 + k)
        r[f"robust/curve_acc@eps{k}_baseline"] = base / (1 + k)
    return r


def make_sweep(root: Path, results: list[dict], task: list[str]) -> Path:
    """A sweep folder as Hydra lays it out: multirun.yaml, job folders with .hydra/hydra.yaml."""
    sweep = root / "sweep"
    sweep.mkdir()
    multirun = {
        "hydra": {
            "sweep": {"dir": str(sweep)},
            "overrides": {"task": task},
            "runtime": {
                "cwd": str(root),
                "choices": {"model": "simplecnn", "data": "fashion_mnist", "pruning": "magnitude"},
            },
        },
        "sparsity": 0.5,
        "seed": 0,
        "logger": {"csv": {}},
    }
    OmegaConf.save(OmegaConf.create(multirun), sweep / "multirun.yaml")
    for r in results:
        job = sweep / make_cell(r).label
        (job / ".hydra").mkdir(parents=True)
        hydra = {"hydra": {"runtime": {"output_dir": str(job)}}}
        OmegaConf.save(OmegaConf.create(hydra), job / ".hydra" / "hydra.yaml")
        (job / "results.json").write_text(json.dumps(r))
    return sweep


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0.0, 50)[0] == 0.0


def test_wilson_interval_always_contains_its_proportion():
    """At 0 % or 100 % rounding once put a bound past p (a 0 % robust accuracy on 1,000
    images gave a negative error bar and killed the default sweep's report)."""
    for n in (1, 7, 50, 800, 1000, 10_000):
        for k in range(n + 1) if n <= 1000 else (0, 1, n - 1, n):
            lo, hi = wilson(k / n, n)
            assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_expected_cells_expand_sweeps_and_ranges():
    cfg = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": ["model=simplecnn,resnetsmall", "seed=range(2)"]},
                "sweeper": {"params": {"sparsity": "0,0.5"}},
                "runtime": {"choices": {"model": "x", "data": "d", "pruning": "p"}},
            },
            "sparsity": 0.9,
            "seed": 7,
        }
    )
    cells = expected_cells(cfg)
    assert len(cells) == 8
    assert {(c.model, c.sparsity, c.seed) for c in cells} >= {("resnetsmall", 0.0, 1)}
    assert expected_cells(None) is None


def test_expected_cells_expand_a_glob_over_a_groups_options():
    """pruning=glob(...) once left the grid unknown, so missing cells of such a sweep went
    unnamed and the report blamed an unreadable multirun.yaml."""
    cfg = OmegaConf.create(
        {
            "hydra": {
                "overrides": {"task": ["pruning=glob(*,exclude=[lottery,structured])"]},
                "runtime": {"choices": {"model": "m", "data": "d", "pruning": "magnitude"}},
            },
            "sparsity": 0.5,
            "seed": 0,
        }
    )
    methods = [c.pruning for c in expected_cells(cfg)]
    assert methods == ["gradual", "layerwise", "magnitude", "random"]


def test_a_failure_newer_than_the_results_counts_as_failed(tmp_path):
    """A rerun with other settings refused before it set the old run aside (data missing)
    leaves the old results.json beside its FAILED mark: the old numbers once passed for the
    new settings' ('All 2 expected cells have results', exit 0)."""
    import os

    results = [fake_result("simplecnn", s) for s in (0.2, 0.5)]
    sweep = make_sweep(tmp_path, results, ["model=simplecnn", "sparsity=0.2,0.5"])
    older, newer = sorted(sweep.glob("*/results.json"))
    for job, offset in ((older.parent, -60), (newer.parent, 60)):
        mark = job / "FAILED"
        mark.write_text("prunelab: error: Fashion-MNIST not found under /x\n")
        when = (job / "results.json").stat().st_mtime + offset
        os.utime(mark, (when, when))
    data = collect(sweep)
    assert [j.name for j in data.ok] == [older.parent.name]  # an old version's skip left it
    (failed,) = data.failed
    assert failed.name == newer.parent.name
    assert failed.failed.endswith("(its results.json is an earlier run's)")


def test_a_folder_without_any_prunelab_job_is_refused_and_left_as_it_was(tmp_path, capsys):
    foreign = tmp_path / "foreign"
    (foreign / "job1").mkdir(parents=True)
    (foreign / "job1" / "results.json").write_text('{"acc": 0.9}')
    (foreign / "multirun.yaml").write_text("hydra:\n  run:\n    dir: x\ntask: [a=1]\n")
    (foreign / "report.md").write_text("my notes\n")
    before = sorted(p.name for p in foreign.rglob("*"))
    assert report_main([str(foreign), "--no-wandb"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"prunelab: error: {foreign} holds no prunelab sweep: no job folder names its model, "
        "data, pruning, sparsity and seed, nor does its multirun.yaml; nothing written"
    )
    assert sorted(p.name for p in foreign.rglob("*")) == before
    assert (foreign / "report.md").read_text() == "my notes\n"


def test_full_sweep_renders_every_section_and_seven_figures(tmp_path):
    results = [
        fake_result(m, s, acc=0.89 - 0.05 * (s > 0.6)) for m in MODELS for s in (0.2, 0.5, 0.8)
    ]
    sweep = make_sweep(tmp_path, results, ["model=simplecnn,resnetsmall", "sparsity=0.2,0.5,0.8"])
    result = build(sweep)
    assert len(result.figures) == 7 and not result.omitted_figures
    report = (sweep / "report.md").read_text()
    for heading in ("## Key findings", "## Deployment recommendations", "### simplecnn"):
        assert heading in report
    assert report.index("### simplecnn") < report.index("### resnetsmall")  # sweep order
    assert "Models: simplecnn, resnetsmall · data" in report  # the header, in the same order
    assert (
        "| Sparsity | Test Accuracy | Size Reduction | Speed Improvement | Robustness Impact |"
        in report
    )
    assert "-2.0 pts (-16.7 %)" in report
    assert "Unstructured zeros do not speed up dense kernels" in report
    assert "tight memory): **simplecnn** (sparsity 0.8) — test accuracy 84.0 %" in report
    assert (
        "Per layer at sparsity 0.8: from 40 % of `features.1`'s weights to 88 % of `head.1`'s"
        in report
    )
    assert "no W&B logger" in report  # logger=csv: no summary run, and it says so


def test_findings_name_a_layer_pruned_entirely_and_an_even_spread(tmp_path):
    results = [fake_result("simplecnn", s) for s in (0.5, 0.95)]
    layerwise = [{**fake_result("resnetsmall", 0.5), "pruning": "layerwise"}]
    for r in layerwise:
        r.update({k: 0.5 for k in r if k.startswith("prune/layer/")})
    sweep = make_sweep(tmp_path, results + layerwise, ["model=simplecnn", "sparsity=0.5,0.95"])
    report = (build(sweep, wandb=False, figures=False).report).read_text()
    assert (
        "Pruned entirely in at least one seed: `head.1` (sparsity 0.95); only a residual path "
        "carries a signal past such a layer." in report
    )
    assert "Per layer at sparsity 0.5: every layer loses 50 %." in report


def test_layer_findings_name_channel_ratios_and_skip_missing_shares(tmp_path):
    structured = [{**fake_result("simplecnn", 0.5), "pruning": "structured"}]
    unmeasured = [fake_result("resnetsmall", 0.5)]
    for r in unmeasured:
        r.update({k: float("nan") for k in r if k.startswith("prune/layer/")})
    sweep = make_sweep(tmp_path, structured + unmeasured, ["model=simplecnn,resnetsmall"])
    report = build(sweep, wandb=False, figures=False).report.read_text()
    assert "Per layer at channel ratio 0.5: from 25 % of `features.1`'s weights" in report
    assert report.count("Per layer at") == 1


def test_zero_and_full_accuracies_draw_and_a_broken_figure_costs_only_itself(tmp_path, monkeypatch):
    """0 % robust accuracy at the largest eps on 1,000 images (the default sweep's case)."""
    from prunelab.report import figures

    results = [fake_result("resnetsmall", s) for s in (0.2, 0.5)]
    for r in results:
        r.update({"robust/n_images": 1000, "robust/curve_acc@eps0": 1.0})
        r.update({"robust/curve_acc@eps16": 0.0, "robust/curve_acc@eps16_baseline": 0.0})
    sweep = make_sweep(tmp_path, results, ["model=resnetsmall", "sparsity=0.2,0.5"])
    assert len(build(sweep, wandb=False).figures) == 7

    def broken(*_args) -> bool:
        raise ValueError("bad bars")

    drawer = dict(figures.FIGURES)
    drawer["robust_vs_eps.png"] = (broken, "robust/curve_acc@epsK keys")
    monkeypatch.setattr(figures, "FIGURES", drawer)
    result = build(sweep, wandb=False)
    assert len(result.figures) == 6 and not (sweep / "robust_vs_eps.png").exists()
    assert "robust_vs_eps.png: drawing failed (ValueError: bad bars)" in result.omitted_figures
    assert "drawing failed (ValueError: bad bars)" in (sweep / "report.md").read_text()


def test_sweep_without_evaluation_keys_omits_and_says_so(tmp_path):
    keep = ("model", "data", "pruning", "sparsity", "seed", "test/acc", "test/acc_baseline")
    results = [{k: fake_result("simplecnn", s)[k] for k in keep} for s in (0.2, 0.5)]
    sweep = make_sweep(tmp_path, results, ["sparsity=0.2,0.5"])
    result = build(sweep, wandb=False)
    assert [p.name for p in result.figures] == ["accuracy_vs_sparsity.png"]
    report = (sweep / "report.md").read_text()
    assert "Columns without data left out: Size Reduction, Speed Improvement" in report
    assert "cannot be judged" in report and "robust_vs_eps.png: no" in report


def _rows(accs: dict[float, float], n: int = 500) -> list[Row]:
    g = Group("m", "d", "p")
    return [
        Row(g, s, [{"seed": 0, "test/acc": a, "data/test_size": n}], "job") for s, a in accs.items()
    ]


def test_accuracy_finding_claims_nothing_within_noise():
    text = accuracy_finding(_rows({0.0: 0.80, 0.5: 0.79, 0.9: 0.60}))
    assert "within noise of dense at sparsity 0.5;" in text
    assert "beyond noise at sparsity 0.9" in text and "0.5 (" not in text
    assert "No accuracy difference is measurable" in accuracy_finding(_rows({0.0: 0.8, 0.5: 0.79}))


def _pgd_rows(changes: list[tuple[float, float, float]] | None) -> list[Row]:
    """Dense 48.6 % PGD accuracy on 1,000 images; the pruned cell 4.9 points lower per seed."""
    g = Group("m", "d", "p")
    dense = {"seed": 0, "robust/pgd_acc": 0.486, "robust/n_images": 1000, "test/acc": 0.88}
    pruned = []
    for seed, (pts, lo, hi) in enumerate(changes or [(-4.9, None, None)]):
        sample = {**dense, "seed": seed, "robust/pgd_acc": 0.486 + pts / 100}
        sample["robust/pgd_acc_delta_pts"] = pts
        sample["robust/pgd_acc_delta_rel"] = pts / 0.486
        if lo is not None:
            sample["robust/pgd_acc_delta_ci_low"], sample["robust/pgd_acc_delta_ci_high"] = lo, hi
        pruned.append(sample)
    return [Row(g, 0.0, [dense], "job"), Row(g, 0.5, pruned, "job")]


def test_a_paired_change_is_claimed_where_two_separate_intervals_overlap():
    unpaired = _pgd_rows(None)
    assert unpaired[1].robust("robust/pgd_acc").overlaps(unpaired[0].robust("robust/pgd_acc"))
    assert "a change of -4.9 pts lies within noise" in robustness_finding(unpaired)
    assert "(within noise)" in headline_table(unpaired)[0]
    paired = _pgd_rows([(-4.9, -6.9, -2.9)])
    text = robustness_finding(paired)
    assert "0.5 (-4.9 pts; 95 % interval -6.9 to -2.9) differs from dense beyond noise" in text
    assert "(within noise)" not in headline_table(paired)[0]
    assert "(-4.9)" in robust_tables(paired)[0] and "(-4.9~)" in robust_tables(unpaired)[0]
    # A paired interval that straddles 0 claims nothing.
    assert "lies within noise" in robustness_finding(_pgd_rows([(-0.5, -2.4, 1.4)]))
    two = _pgd_rows(None)
    two.append(Row(two[1].group, 0.8, two[1].samples, "job"))
    assert "changes of -4.9 pts to -4.9 pts all lie within noise" in robustness_finding(two)


def test_several_seeds_judge_the_mean_change_by_its_spread_and_the_image_noise():
    agree = _pgd_rows([(-4.9, -6.9, -2.9), (-5.7, -7.7, -3.7), (-4.6, -6.6, -2.6)])
    band = agree[1].change("robust/pgd_acc")
    assert band.mean == pytest.approx(-5.0667, abs=1e-4) and band.n_seeds == 3
    # Seeds: t(2) 4.303 x std 0.569 / sqrt(3) = 1.412; images: half-width 2.0; combined 2.448.
    assert band.hi - band.mean == pytest.approx(2.448, abs=1e-3)
    assert agree[1].differs("robust/pgd_acc", agree[0])
    # Every seed's own interval excludes 0, but three seeds this far apart do not pin the mean.
    spread = _pgd_rows([(-1.8, -2.9, -0.7), (-3.6, -5.4, -1.7), (-1.4, -2.6, -0.1)])
    assert spread[1].differs("robust/pgd_acc", spread[0]) is False
    disagree = _pgd_rows([(-4.0, -5.0, -3.0), (4.0, 3.0, 5.0), (0.0, -1.0, 1.0)])
    assert disagree[1].differs("robust/pgd_acc", disagree[0]) is False


def test_bands_stop_where_the_quantity_does():
    """Two seeds far apart once gave 'band over seeds and images -177.5 to +120.5' points."""
    wild = _pgd_rows([(-40.0, -45.0, -35.0), (10.0, 5.0, 15.0)])
    band = wild[1].change("robust/pgd_acc")
    assert (band.lo, band.hi) == (-100.0, 100.0) and band.mean == pytest.approx(-15.0)
    samples = [{"seed": i, "test/acc": a, "data/test_size": 10} for i, a in enumerate((0.5, 1.0))]
    iv = Row(Group("m", "d", "p"), 0.5, samples, "job").acc()
    assert iv.hi == 1.0 and iv.lo == pytest.approx(0.75 - iv.std)


def test_several_seeds_pool_to_mean_and_std_never_narrower_than_the_test_set():
    g = Group("m", "d", "p")
    jobs = [
        Job(f"j{seed}", Path("."), None, fake_result("simplecnn", 0.5, seed, acc))
        for seed, acc in ((0, 0.80), (1, 0.90))
    ]
    (dense, pruned) = build_rows(jobs)[Group("simplecnn", "fashion_mnist", "magnitude")]
    iv = pruned.acc()
    assert iv.n_seeds == 2 and iv.mean == pytest.approx(0.85)
    assert iv.lo == pytest.approx(0.85 - iv.std) and dense.source == "baseline keys"
    one = Row(g, 0.5, [{"seed": 0, "test/acc": 0.85, "data/test_size": 100}] * 2, "job").acc()
    assert (one.lo, one.hi) == pytest.approx(wilson(0.85, 100))  # std 0 does not shrink it


def test_speed_finding_flags_zeros_that_buy_no_time():
    g = Group("m", "d", "p")
    rows = [
        Row(g, s, [{"seed": 0, "latency/b1_speedup": 1.02, "flops/theoretical_speedup": t}], "job")
        for s, t in ((0.5, 2.0), (0.9, 10.0))
    ]
    text = speed_finding(rows, 0.1)
    assert "do not speed up dense kernels" in text
    # Equal when rounded: one figure, not "ranges 1.02× to 1.02×".
    assert "speed-up 1.02× at every sparsity;" in text and "ranges" not in text
    rows[1].samples[0]["latency/b1_speedup"] = 3.0
    text = speed_finding(rows, 0.1)
    assert "speed-up ranges 1.02× (sparsity 0.5) to 3.00× (sparsity 0.9)" in text
    # No p90s in these rows: the tolerance alone decides, and the wording says just that.
    assert "faster than dense at 0.9 (3.00×; outside the ±10 % tolerance)" in text
    assert "beyond noise" not in text  # a timing is no paired interval: no "noise" claim
    # One pruned cell: its figure, not a range from it to itself.
    one = speed_finding(rows[:1], 0.1)
    assert "speed-up 1.02× (sparsity 0.5); the MAC count promises 2.00× (sparsity 0.5)" in one


def test_speed_within_timing_noise_is_not_claimed():
    g = Group("m", "d", "p")
    timing = {"latency/b1_ms": 1.0, "latency/b1_p90_ms": 9.0, "latency/b1_ms_baseline": 2.5}
    sample = {"seed": 0, "latency/b1_speedup": 2.5, "latency/b1_p90_ms_baseline": 3.0, **timing}
    row = Row(g, 0.5, [sample], "job")
    assert row.speed_verdict(0.1) == "same"  # p90 9 ms overlaps the dense median 2.5 ms
    text = speed_finding([row], 0.1)
    # 2.50× is printed just before: "no speed-up" names it, as outside the tolerance only.
    assert (
        "no speed-up or slow-down is claimed: 2.50× at 0.5 lies outside the ±10 % tolerance "
        "but within the timing spread" in text
    )
    assert "timings are noisy" in text and "beyond noise" not in text
    assert "do not speed up dense kernels" not in text  # noise cannot support that claim


def test_latency_drift_between_jobs_is_not_passed_off_as_a_speed_up(tmp_path):
    """Two jobs timed at different machine loads: raw ms differ by 35 %, in-job speed-up 1."""
    results = [fake_result("simplecnn", s) for s in (0.5, 0.8)]
    for r, (ms, p90) in zip(results, ((0.65, 0.70), (0.42, 0.46)), strict=True):
        r.update({"latency/b1_ms": ms, "latency/b1_ms_baseline": ms, "latency/b1_p90_ms": p90})
    sweep = make_sweep(tmp_path, results, ["sparsity=0.5,0.8"])
    rows = build_rows(collect(sweep).ok)[Group("simplecnn", "fashion_mnist", "magnitude")]
    dense = rows[0].b1_ms()
    assert dense == pytest.approx((0.65 + 0.42) / 2)  # median over the jobs' baselines
    assert [r.b1_ms() for r in rows] == pytest.approx([dense] * 3)
    assert rows[2].b1_p90_ms() == pytest.approx(dense * 0.46 / 0.42)
    assert rows[2].mean("latency/b1_ms") == 0.42  # the raw figure is kept
    text = recommend(Profile("edge", max_latency_ms=5.0, prefer="latency"), rows)
    assert "lower latency" not in text
    build(sweep, wandb=False)  # results.csv keeps what the jobs wrote, nothing derived
    assert "latency/b1_ms_aligned" not in (sweep / "results.csv").read_text()


def test_methods_sharing_a_baseline_share_its_dense_latency(tmp_path):
    """Two methods' jobs ran at different machine loads but time the same dense net: both
    dense rows get one reference (the median over all four jobs), not one each."""
    results = []
    for method, ms in (("magnitude", 0.40), ("gradual", 0.60)):
        for sparsity in (0.5, 0.8):
            r = {**fake_result("simplecnn", sparsity), "pruning": method}
            r.update({"latency/b1_ms": ms, "latency/b1_ms_baseline": ms})
            results.append(r)
    sweep = make_sweep(tmp_path, results, ["pruning=magnitude,gradual", "sparsity=0.5,0.8"])
    rows = build_rows(collect(sweep).ok)
    dense = {g.pruning: rs[0].b1_ms() for g, rs in rows.items()}
    assert dense == {"magnitude": pytest.approx(0.5), "gradual": pytest.approx(0.5)}
    assert all(r.b1_ms() == pytest.approx(0.5) for rs in rows.values() for r in rs)  # speed-up 1


def test_advice_keeps_one_dense_row_per_model_and_seeds():
    """A seed run for one method only: its dense row (seeds 0, 1) stands for the other
    method's (seed 0); dense rows over disjoint seeds both stay, told apart by their seeds."""
    from prunelab.report.advice import distinct_rows

    def rows_of(pairs: list[tuple[str, int]]) -> list[Row]:
        samples = [{**fake_result("simplecnn", 0.5, seed), "pruning": m} for m, seed in pairs]
        return [r for rs in build_rows([_job(r) for r in samples]).values() for r in rs]

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


def _job(results: dict) -> Job:
    return Job(make_cell(results).label, Path("."), make_cell(results), results)


def test_recommendation_names_the_closest_when_nothing_fits():
    g = Group("m", "d", "p")
    row = Row(
        g,
        0.5,
        [{"seed": 0, "test/acc": 0.9, "latency/b1_ms": 2.0, "size/disk_bytes": 3e6}],
        "job",
    )
    text = recommend(Profile("mobile", max_latency_ms=1.0, max_size_mb=0.5), [row])
    assert "nothing measured fits" in text and "latency 2 ms > 1 ms" in text
    assert "file 3 MB > 0.5 MB" in text


def test_pareto_front_keeps_only_undominated_points():
    points = [(1.0, 0.80), (2.0, 0.90), (1.5, 0.70), (3.0, 0.90), (0.5, 0.60)]
    assert pareto_front(points) == [4, 0, 1]


def test_collect_rejects_a_folder_that_is_no_sweep(tmp_path):
    from prunelab.errors import PrunelabError

    with pytest.raises(PrunelabError, match="not a sweep folder"):
        collect(tmp_path)


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


def test_sparsity_axis_says_what_the_fraction_is_of():
    """A structured sweep's `sparsity` is a channel ratio: its figures must not say 'weights'."""
    from prunelab.report.figures import (
        CHANNEL_AXIS,
        MIXED_AXIS,
        SPARSITY_AXIS,
        sparsity_axis,
    )

    def rows(*methods):
        return {Group("simplecnn", "fashion_mnist", m): [] for m in methods}

    assert sparsity_axis(rows("magnitude", "random")) == SPARSITY_AXIS
    assert sparsity_axis(rows("structured")) == CHANNEL_AXIS
    assert sparsity_axis(rows("magnitude", "structured")) == MIXED_AXIS


def test_dense_row_shows_its_measured_compression_only_reduction(tmp_path):
    """The dense model's own export is ~8 % smaller than its file: the dense row says so,
    measured; results without that key keep the old '0 % (reference)'."""
    results = [fake_result("simplecnn", s) for s in (0.5, 0.8)]
    for r in results:
        r["size/sparse_disk_bytes_baseline"] = 920_000
        r["size/reduction_pct_baseline"] = 8.0
    rows = build_rows([_job(r) for r in results])[Group("simplecnn", "fashion_mnist", "magnitude")]
    assert rows[0].source == "baseline keys" and rows[0].mean("size/reduction_pct") == 8.0
    table = headline_table(rows)[0]
    assert "| 8.0 % (compression alone) |" in table and "0 % (reference)" not in table
    assert "already 8.0 % smaller than its file" in size_finding(rows)
    old = [fake_result("simplecnn", s) for s in (0.5, 0.8)]
    rows = build_rows([_job(r) for r in old])[Group("simplecnn", "fashion_mnist", "magnitude")]
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
    legacy = build_rows([_job(fake_result("simplecnn", 0.5))])
    assert "ε = 0.03" in change_panels(legacy)[1][1]


def test_direction_of_a_change_follows_the_paired_change():
    """Dense seed 0 at 80 %; the pruned cell's seed 1 scores 78 % but +1.5 points over its
    own baseline (76.5 %): pooled means say below, the paired change says above."""
    g = Group("m", "d", "p")
    dense = Row(g, 0.0, [{"seed": 0, "test/acc": 0.80, "data/test_size": 10000}], "job")
    sample = {"seed": 1, "test/acc": 0.78, "data/test_size": 10000, "test/acc_delta_pts": 1.5}
    sample.update({"test/acc_delta_ci_low": 0.5, "test/acc_delta_ci_high": 2.5})
    text = accuracy_finding([dense, Row(g, 0.5, [sample], "job")])
    assert "Above the dense model beyond noise at sparsity 0.5 (+1.5 pts" in text
    assert "Below" not in text
    # The tables state the same change (pooled means would say -2.0 points).
    assert "| +1.5 pts |" in detail_table([dense, Row(g, 0.5, [sample], "job")])[0]
    pgd = {"robust/pgd_acc": 0.40, "robust/n_images": 1000, "robust/pgd_acc_delta_pts": 3.0}
    pgd.update({"robust/pgd_acc_delta_ci_low": 1.0, "robust/pgd_acc_delta_ci_high": 5.0})
    dense.samples[0].update({"robust/pgd_acc": 0.45, "robust/n_images": 1000})
    table = robust_tables([dense, Row(g, 0.5, [{**sample, **pgd}], "job")])[0]
    assert "40.0 % (+3.0)" in table


def test_cells_beyond_noise_are_not_also_called_inside_the_dense_band():
    rows = _rows({0.0: 0.800, 0.5: 0.803, 0.8: 0.801}, n=10000)
    rows[1].samples[0].update({"test/acc_delta_pts": 0.3, "test/acc_delta_ci_low": 0.1})
    rows[1].samples[0]["test/acc_delta_ci_high"] = 0.5
    text = accuracy_finding(rows)
    assert "point estimates inside the dense band at sparsity 0.8." in text
    assert "Above the dense model beyond noise at sparsity 0.5" in text


def test_no_measurable_difference_names_the_seeds_when_there_are_several():
    g = Group("m", "d", "p")
    rows = [
        Row(g, s, [{"seed": k, "test/acc": 0.8, "data/test_size": 500} for k in (0, 1)], "job")
        for s in (0.0, 0.5)
    ]
    assert "measurable at any sparsity with 2 seeds." in accuracy_finding(rows)
    assert "at this test-set size." in accuracy_finding(_rows({0.0: 0.8, 0.5: 0.79}))


def test_a_structured_net_that_buys_no_time_is_not_blamed_on_unstructured_zeros():
    g = Group("m", "d", "structured")
    sample = {"seed": 0, "latency/b1_speedup": 1.02, "flops/theoretical_speedup": 4.0}
    sample.update({"size/params": 2e5, "size/params_baseline": 7e5})
    text = speed_finding([Row(g, 0.5, [sample], "job")], 0.1)
    assert "Unstructured zeros" not in text
    assert "fewer multiply-adds did not turn into batch-1 time here" in text


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
        rows = [r for rs in build_rows([_job(dense), _job(pruned)]).values() for r in rs]
        assert rows[1].acc().overlaps(rows[0].acc())
        return recommend(profile, rows)

    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")
    assert "**resnetsmall** (dense) —" in advice(edge)
    assert "within its accuracy noise band" not in advice(edge)
    assert "Also within accuracy noise" not in advice(Profile("server"))
    pruned["test/acc_delta_ci_high"] = 0.1  # the paired interval takes in 0: a tie again
    assert "**resnetsmall** (sparsity 0.5) is within its accuracy noise band" in advice(edge)


def test_a_stated_accuracy_change_carries_the_finetuning_caveat():
    changed = accuracy_finding(_rows({0.0: 0.80, 0.9: 0.60}), Retraining("1 epoch at lr 0.0001"))
    assert "Caveat: the pruned models had the fine-tuning epochs (1 epoch at lr 0.0001)" in changed
    assert changed.count("Caveat") == 1
    assert "Caveat" not in accuracy_finding(_rows({0.0: 0.80, 0.5: 0.79}))  # nothing stated


def test_dense_row_rebuilt_from_structured_jobs_has_the_dense_counts():
    """A structured job's own counts are the shrunk net's; the dense row takes the dense ones
    from the *_baseline keys, and leaves out what no such key gives."""
    r = {**fake_result("simplecnn", 0.5), "pruning": "structured", "size/params": 60_000}
    r.update({"prune/total_params": 60_000, "prune/prunable_params": 59_000})
    group = Group("simplecnn", "fashion_mnist", "structured")
    dense = build_rows([_job(r)])[group][0]
    assert not dense.has("size/params") and not dense.has("prune/prunable_params")
    dense = build_rows([_job({**r, "size/params_baseline": 240_000})])[group][0]
    assert dense.mean("size/params") == dense.mean("prune/total_params") == 240_000
    assert not dense.has("prune/prunable_params")  # the job's net is not the dense shape
    same = {**r, "pruning": "magnitude", "size/params": 240_000, "size/params_baseline": 240_000}
    dense = build_rows([_job(same)])[Group("simplecnn", "fashion_mnist", "magnitude")][0]
    assert dense.mean("prune/prunable_params") == 59_000  # masks keep the dense shapes


def test_wandb_grid_shows_what_the_report_shows():
    """Two seeds: the band is mean ± std (not the mean of per-seed Wilson bounds), and the
    latency is the aligned one (not the raw per-job milliseconds)."""
    from prunelab.report.wandb_summary import grid_table

    results = [fake_result("simplecnn", 0.5, seed, acc) for seed, acc in ((0, 0.80), (1, 0.90))]
    # Seed 1 ran on a busier machine and its pruned model was 1.5x faster than its dense one.
    results[1].update({"latency/b1_ms": 0.6, "latency/b1_ms_baseline": 0.9})
    results[1]["latency/b1_speedup"] = 1.5
    rows = build_rows([_job(r) for r in results])
    columns, data = grid_table(rows)
    pruned = dict(zip(columns, data[1], strict=True))
    row = rows[Group("simplecnn", "fashion_mnist", "magnitude")][1]
    band = row.acc()
    assert (pruned["test/acc_band_low"], pruned["test/acc_band_high"]) == (band.lo, band.hi)
    assert pruned["test/acc_band_low"] < 0.80 - 0.006  # wider than the per-seed Wilson means
    assert pruned["latency/b1_ms_aligned"] == pytest.approx(row.b1_ms())
    assert pruned["latency/b1_ms_aligned"] != pytest.approx(row.mean("latency/b1_ms"))


def test_a_small_change_beyond_noise_is_shown_with_the_decimals_that_say_so():
    """-0.16 (-0.28 to -0.04) must not read '-0.2 pts; 95 % interval -0.3 to -0.0'."""
    g = Group("m", "d", "p")

    def row(sparsity: float, pts: float, lo: float, hi: float) -> Row:
        sample = {"seed": 0, "test/acc": 0.87, "vs_control/test_acc_delta_pts": pts}
        sample["vs_control/test_acc_delta_ci_low"] = lo
        sample["vs_control/test_acc_delta_ci_high"] = hi
        return Row(g, sparsity, [sample], "job")

    text = vs_control_finding([row(0.2, -0.16, -0.28, -0.04), row(0.8, -2.3, -3.1, -1.5)])
    assert "0.2 (-0.16 pts; 95 % interval -0.28 to -0.04)" in text
    assert "0.8 (-2.3 pts; 95 % interval -3.1 to -1.5)" in text
    assert text.endswith("beyond noise at sparsity 0.2, 0.8.")
    text = vs_control_finding([row(0.5, 0.06, -0.02, 0.14), row(0.8, -0.03, -0.21, 0.15)])
    assert "0.5 (+0.06 pts; 95 % interval -0.02 to +0.14)" in text
    assert "0.8 (-0.03 pts; 95 % interval -0.21 to +0.15)" in text
    assert text.endswith("no change beyond noise at any sparsity.")


def test_the_change_figure_draws_the_dense_control_where_the_jobs_have_one(tmp_path):
    """A dashed level at the control's change (with its band) in the accuracy panel."""
    from prunelab.report.figures import _control_line, change_vs_sparsity
    from prunelab.report.plotkit import new_figure

    g = Group("m", "d", "p")
    dense = {"seed": 0, "test/acc": 0.87, "data/test_size": 10000}
    control = {
        "control/test_acc_delta_pts": 0.36,
        "control/test_acc_delta_ci_low": 0.06,
        "control/test_acc_delta_ci_high": 0.66,
    }
    pruned = {**dense, "test/acc": 0.8742, "sparsity": 0.5, "test/acc_delta_pts": 0.42}
    pruned["test/acc_delta_ci_low"], pruned["test/acc_delta_ci_high"] = 0.12, 0.72
    fig, (ax,) = new_figure()
    assert _control_line(ax, Row(g, 0.0, [dense], "job"), "m", 0) == 0
    assert _control_line(ax, Row(g, 0.0, [{**dense, **control}], "job"), "m", 0) == 1
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "m: dense control"]
    assert list(line.get_ydata()) == [0.36, 0.36] and line.get_linestyle() == "--"
    rows = {g: [Row(g, 0.0, [{**dense, **control}], "job"), Row(g, 0.5, [pruned], "job")]}
    assert change_vs_sparsity(rows, tmp_path / "change.png", 80)
    assert (tmp_path / "change.png").stat().st_size > 0


def test_a_job_stamped_by_another_sweep_at_a_path_this_folder_once_had_is_excluded(tmp_path):
    """Paths alone cannot tell a moved folder's own jobs from those of a new sweep launched
    later at the folder's old path: the sweep id the jobs carry does."""
    results = [fake_result("simplecnn", s) for s in (0.2, 0.5, 0.8)]
    sweep = make_sweep(tmp_path, results, ["sparsity=0.2,0.5,0.8"])
    record = note_launch(str(sweep))  # as the callback at the launch's start
    assert read_record(sweep) == record and record.dirs == (sweep,)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    for job in jobs[:2]:
        stamp_job(str(job), str(sweep))  # as each job starts
        assert job_sweep_id(job) == record.id
    # jobs[2] carries no id (written before records): its path decides. Now the folder moves and
    # a job of another sweep that later ran at the old path is copied in.
    moved = tmp_path / "moved"
    sweep.rename(moved)
    note_launch(str(moved))
    assert read_record(moved).dirs == (sweep, moved) and read_record(moved).id == record.id
    (moved / jobs[1].name / JOB_RECORD).write_text("id: 0123456789abcdef\n")
    data = collect(moved)
    assert [name for name, _ in data.excluded] == [jobs[1].name]
    assert "sweep id 0123456789abcdef" in data.excluded[0][1]
    assert sorted(j.name for j in data.ok) == [jobs[0].name, jobs[2].name]


def test_the_first_launch_with_records_keeps_the_jobs_of_earlier_launches(tmp_path):
    """A folder launched into before sweep records existed: its multirun.yaml, not yet
    overwritten when a launch starts, names the path its jobs ran under."""
    results = [fake_result("simplecnn", s) for s in (0.2, 0.5)]
    sweep = make_sweep(tmp_path, results, ["sparsity=0.2,0.5"])
    moved = tmp_path / "moved"
    sweep.rename(moved)
    assert note_launch(str(moved)).dirs == (sweep, moved)
    multirun = OmegaConf.load(moved / "multirun.yaml")
    multirun.hydra.sweep.dir = str(moved)  # what Hydra then writes for the new launch
    OmegaConf.save(multirun, moved / "multirun.yaml")
    data = collect(moved)
    assert not data.excluded and len(data.ok) == 2


def _settings(sparsity: float, epochs: int = 1, lr: float = 1e-4, rewind: int | None = None):
    """A job's config.json, reduced to the keys the report reads (and one that follows sparsity)."""
    pruning: dict = {"amount": sparsity}
    if rewind is not None:
        pruning["rewind_epoch"] = rewind
    finetune = {"max_epochs": epochs, "optimizer": {"lr": lr, "weight_decay": 1e-4}}
    return {"sparsity": sparsity, "seed": 0, "pruning": pruning, "finetune": finetune}


def _write_settings(sweep: Path, result: dict, settings: dict) -> None:
    (sweep / make_cell(result).label / "config.json").write_text(json.dumps(settings))


def _findings(report: str, label: str) -> str:
    """The key findings of one group (its bold label up to the next blank-line paragraph)."""
    return report.split(f"**{label}**\n\n", 1)[1].split("\n\n", 1)[0]


def test_each_groups_caveat_describes_its_own_jobs_training(tmp_path):
    """The caveat once came from the latest multirun.yaml: a later launch with
    finetune.max_epochs=2 relabelled the earlier groups, and lottery tickets (retrained from
    rewound weights at lr 1e-3) read as 'fine-tuning epochs at lr 0.0001 on top of' dense."""
    magnitude = [fake_result("simplecnn", s, acc=0.85) for s in (0.5, 0.8)]
    lottery = [{**fake_result("simplecnn", s, acc=0.85), "pruning": "lottery"} for s in (0.5, 0.8)]
    mixed = [{**fake_result("simplecnn", s, acc=0.85), "pruning": "random"} for s in (0.5, 0.8)]
    task = ["pruning=magnitude,lottery,random", "sparsity=0.5,0.8"]
    sweep = make_sweep(tmp_path, magnitude + lottery + mixed, task)
    multirun = OmegaConf.load(sweep / "multirun.yaml")
    multirun.finetune = _settings(0.5, epochs=2)["finetune"]  # the latest launch's
    OmegaConf.save(multirun, sweep / "multirun.yaml")
    for r in magnitude:
        _write_settings(sweep, r, _settings(r["sparsity"]))
    for r in lottery:
        _write_settings(sweep, r, _settings(r["sparsity"], lr=1e-3, rewind=0))
    for r, epochs in zip(mixed, (1, 2), strict=True):
        _write_settings(sweep, r, _settings(r["sparsity"], epochs=epochs))
    report = build(sweep, wandb=False, figures=False).report.read_text()
    own = _findings(report, "simplecnn · magnitude")
    assert (
        "Caveat: the pruned models had the fine-tuning epochs (`finetune.max_epochs` = 1 epoch "
        "at lr 0.0001) on top of the dense baseline's training" in own
    )
    rewound = _findings(report, "simplecnn · lottery")
    assert "on top of the dense baseline's training, which" not in rewound
    assert (
        "Caveat: these lottery-ticket models were not fine-tuned on top of the dense baseline's "
        "training: their surviving weights were rewound and retrained with the masks "
        "(`finetune.max_epochs` = 1 epoch at lr 0.001, from the weights at initialisation)"
        in rewound
    )
    differ = _findings(report, "simplecnn · random")
    assert (
        "fine-tuning epochs (its jobs differ: `finetune.max_epochs` = 1 epoch at lr 0.0001 "
        "(1 job); `finetune.max_epochs` = 2 epochs at lr 0.0001 (1 job))" in differ
    )
    # Jobs without config.json: the caveat names the keys, not some launch's values.
    for r in magnitude:
        (sweep / make_cell(r).label / "config.json").unlink()
    report = build(sweep, wandb=False, figures=False).report.read_text()
    assert "epochs (`finetune.max_epochs`, at `finetune`'s lr) on top" in report


def test_the_attack_settings_name_only_the_attacks_that_ran(tmp_path):
    """attack.fgsm_eps=[] and attack.curve.eps_255=[] once read 'FGSM at ε = ;' and the
    robust tables' caption promised FGSM and a curve the jobs never ran."""
    from prunelab.report.document import attack_text

    attack = OmegaConf.load(Path(__file__).parents[1] / "conf" / "attack" / "default.yaml")
    ran = OmegaConf.create({"attack": attack})
    attack.fgsm_eps, attack.curve.eps_255 = [], []
    text = attack_text(OmegaConf.create({"attack": attack}))
    assert "FGSM" not in text and "curve" not in text and text.startswith("PGD 40 steps")
    text = attack_text(ran)  # the defaults: both ran
    assert "ε curve: PGD 10 steps at ε = K/255 for K = 0, 1, 2, 4, 8, 16" in text
    assert "FGSM at ε = 0.01, 0.03, 0.05, 0.1" in text
    results = [fake_result("simplecnn", s) for s in (0.5, 0.8)]  # PGD and the curve, no FGSM
    sweep = make_sweep(tmp_path, results, ["sparsity=0.5,0.8"])
    report = build(sweep, wandb=False, figures=False).report.read_text()
    assert "test images (PGD at the study's ε, then the PGD ε curve); in brackets" in report
    for r in results:
        for key in [k for k in r if k.startswith("robust/curve_")]:
            del r[key]
        (sweep / make_cell(r).label / "results.json").write_text(json.dumps(r))
    multirun = OmegaConf.load(sweep / "multirun.yaml")
    multirun.attack = attack
    OmegaConf.save(multirun, sweep / "multirun.yaml")
    report = build(sweep, wandb=False, figures=False).report.read_text()
    assert "test images (PGD at the study's ε); in brackets" in report
    assert "Attacks as configured for this sweep: PGD 40 steps" in report
    assert "FGSM at ε = ;" not in report and "ε curve" not in report


def _timed(sparsity: float, speedup: float, seed: int = 0) -> dict:
    """Timings whose p90s do not overlap: only the tolerance and the dense self-timing judge."""
    base = 1.0
    return {
        "seed": seed,
        "latency/b1_speedup": speedup,
        "latency/b1_ms": base / speedup,
        "latency/b1_p90_ms": 1.01 * base / speedup,
        "latency/b1_ms_baseline": base,
        "latency/b1_p90_ms_baseline": 1.01 * base,
        "latency/device": "cpu",
        "latency/threads": 1,
    }


def test_speed_is_worded_as_measured_and_not_claimed_where_dense_times_itself_off():
    """The dense job times the dense model against itself as the pruned jobs time theirs:
    1.20× there is timing noise, so a pruned cell's 1.50× is no finding in that group."""
    g = Group("m", "d", "p")
    rows = [Row(g, 0.0, [_timed(0.0, 1.05)], "job"), Row(g, 0.5, [_timed(0.5, 1.5)], "job")]
    text = speed_finding(rows, 0.1)
    assert text.startswith("Speed on cpu, 1 thread: measured")
    assert (
        "faster than dense at 0.5 (1.50×; outside the ±10 % tolerance and the timing spread)"
        in text
    )
    assert "beyond noise" not in text
    rows[0].samples.append(_timed(0.0, 1.2, seed=1))  # a second dense job, further off
    text = speed_finding(rows, 0.1)
    assert "faster than dense" not in text
    assert "no speed-up or slow-down is claimed" in text and "measured 1.20×" in text
    assert "Re-measure on an idle machine" in text
    rows[1].samples[0]["latency/threads"] = 2
    assert speed_finding(rows[1:], 0.1).startswith("Speed on cpu, 2 threads: measured")


def test_no_speed_claim_for_a_cell_whose_timings_a_busy_machine_spread():
    """1.17× at 20 % unstructured sparsity with the baseline's p90 86× its median (another
    process held the core): no claim, and the noise is said once, not twice."""
    g = Group("m", "d", "p")
    busy = _timed(0.2, 1.17)
    busy["latency/b1_p90_ms_baseline"] = 86.0
    rows = [Row(g, 0.0, [_timed(0.0, 1.0)], "job"), Row(g, 0.2, [busy], "job")]
    text = speed_finding(rows, 0.1)
    assert "faster than dense" not in text
    assert "These timings are noisy (p90 up to 86.0× the median; was the machine busy?)" in text
    rows[0].samples[0]["latency/b1_speedup"] = 1.2  # the dense job off too: one noise sentence
    text = speed_finding(rows, 0.1)
    assert text.count("noisy") == 1
    assert "Their p90 reaches 86.0× the median (was the machine busy?): re-measure" in text


def test_advice_prefers_no_lower_latency_within_the_dense_self_timing_noise(tmp_path):
    """A pruned cell 1.15× faster and tied in accuracy: chosen for its lower latency while the
    dense job timed itself at 1.0×, not when it timed itself at 1.20× (the noise is 20 %)."""
    dense = fake_result("simplecnn", 0.0, acc=0.89)
    pruned = fake_result("simplecnn", 0.5, acc=0.89)  # paired change 0 ± 0.5 points: tied
    pruned["latency/b1_speedup"] = 1.15
    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")

    def advice() -> str:
        rows = [r for rs in build_rows([_job(dense), _job(pruned)]).values() for r in rs]
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


def test_rows_of_other_seeds_than_the_dense_row_are_said_to_be_paired_by_seed():
    """Dense over seeds 0-2 beside a pruned cell of seed 0 (the others failed or excluded):
    the rows' means differ by more than the stated (paired) change; the findings say why."""
    jobs = [_job(fake_result("simplecnn", 0.0, seed=s)) for s in (0, 1, 2)]
    (rows,) = build_rows([*jobs, _job(fake_result("simplecnn", 0.5, seed=0))]).values()
    assert seeds_note(rows) == (
        "**Seeds differ between rows** (dense: seeds 0, 1, 2; sparsity 0.5: seed 0): each "
        "change is against the dense model of the same seeds, so it is not the difference "
        "of the rows' means."
    )
    more = [_job(fake_result("simplecnn", 0.5, seed=s)) for s in (1, 2)]
    (rows,) = build_rows([*jobs, _job(fake_result("simplecnn", 0.5)), *more]).values()
    assert seeds_note(rows) is None


def test_pareto_draws_the_dense_network_the_methods_share_once(tmp_path, monkeypatch):
    """Every method's group has a dense row of the same network: one point and one label,
    not one per method printed over each other ("densdense")."""
    from prunelab.report import figures_cost

    results = []
    for method in ("magnitude", "random", "gradual"):
        r = fake_result("simplecnn", 0.5)
        r["pruning"] = method
        results.append(r)
    rows = build_rows([_job(r) for r in results])
    labels = []
    real = figures_cost._label_clusters

    def spy(pts, cells):
        found = real(pts, cells)
        labels.extend(", ".join(names) for _, names in found)
        return found

    monkeypatch.setattr(figures_cost, "_label_clusters", spy)
    assert figures_cost.pareto(rows, tmp_path / "p.png", 50)
    assert labels.count("dense") == 1 and "dense, dense" not in " ".join(labels)


def test_robust_curve_panels_wrap_at_three_a_row(tmp_path):
    """Six methods' panels in one row were a sixth of the page each: three a row, two rows."""
    from PIL import Image

    from prunelab.report.figures import robust_vs_eps

    results = []
    for method in ("magnitude", "random", "gradual", "layerwise", "lottery", "structured"):
        r = fake_result("simplecnn", 0.5)
        r["pruning"] = method
        results.append(r)
    assert robust_vs_eps(build_rows([_job(r) for r in results]), tmp_path / "r.png", 40)
    width, height = Image.open(tmp_path / "r.png").size
    assert 1.5 < width / height < 2.5, (width, height)  # 3 x 5.2 in wide, 2 x 4.4 in tall


def test_advice_survives_a_hand_edited_interval_that_excludes_its_own_accuracy():
    """The most accurate cell is tied with itself whatever its interval says."""
    dense = fake_result("simplecnn", 0.0, acc=0.89)
    dense["test/acc_ci_high"] = 0.0
    rows = [r for rs in build_rows([_job(dense)]).values() for r in rs]
    edge = Profile("edge", max_latency_ms=5.0, prefer="latency")
    assert "**simplecnn** (dense) —" in recommend(edge, rows)


def test_a_job_of_other_settings_is_excluded_naming_the_settings_that_differ(tmp_path):
    """'config/recipe differs; its config.json lists them' sent users comparing files; the
    excluded job's line names the keys, as the rerun warning does, but not the cell's own."""
    import os

    old, new = fake_result("simplecnn", 0.2), fake_result("simplecnn", 0.5)
    old["config/recipe"], new["config/recipe"] = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    sweep = make_sweep(tmp_path, [old, new], ["sparsity=0.2,0.5"])
    _write_settings(sweep, old, _settings(0.2, epochs=1))
    _write_settings(sweep, new, _settings(0.5, epochs=2))
    when = (sweep / make_cell(new).label / "results.json").stat().st_mtime - 60
    os.utime(sweep / make_cell(old).label / "results.json", (when, when))
    data = collect(sweep)
    assert data.excluded == [
        (
            make_cell(old).label,
            "run with other settings than the latest job of its method, "
            f"`{make_cell(new).label}` (finetune.max_epochs: 1 -> 2)",
        )
    ]
    many = _settings(0.2, epochs=1)
    many.update({"a": 1, "b": 2, "c": 3, "d": 4})
    _write_settings(sweep, old, many)
    (_, why) = collect(sweep).excluded[0]
    assert why.endswith(
        "(a: 1 -> <unset>; b: 2 -> <unset>; c: 3 -> <unset>; d: 4 -> <unset>; and 1 more)"
    )
    (sweep / make_cell(old).label / "config.json").unlink()
    (_, why) = collect(sweep).excluded[0]
    assert why.endswith("(config/recipe differs; no config.json to compare)")
    report = build(sweep, wandb=False, figures=False).report.read_text()
    assert f"EXCLUDED `{make_cell(old).label}`: run with other settings" in report


def test_a_dense_job_is_kept_when_only_settings_it_never_uses_changed(tmp_path):
    """A dense job prunes and fine-tunes nothing: a rerun of the pruned cells with another
    fine-tuning recipe leaves it in the table, unless it also fine-tuned (the dense control)
    or a setting it does use changed; and a newer dense job does not set pruned ones aside."""
    import os

    dense, pruned = fake_result("simplecnn", 0.0), fake_result("simplecnn", 0.5)
    dense["config/recipe"], pruned["config/recipe"] = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    sweep = make_sweep(tmp_path, [dense, pruned], ["sparsity=0,0.5"])

    def excluded(old: dict, new: dict, dense_first: bool = True) -> list[str]:
        _write_settings(sweep, dense, old)
        _write_settings(sweep, pruned, new)
        first, then = (dense, pruned) if dense_first else (pruned, dense)
        when = (sweep / make_cell(then).label / "results.json").stat().st_mtime - 60
        os.utime(sweep / make_cell(first).label / "results.json", (when, when))
        return [name for name, _ in collect(sweep).excluded]

    assert excluded(_settings(0.0, epochs=1), _settings(0.5, epochs=2)) == []
    assert excluded(_settings(0.0, lr=1e-3), _settings(0.5, lr=1e-4), dense_first=False) == []
    with_control = _settings(0.5, epochs=2)
    with_control["finetune"]["dense_control"] = True
    assert excluded(_settings(0.0, epochs=1), with_control) == [make_cell(dense).label]
    attacked = _settings(0.5, epochs=2)
    attacked["attack"] = {"n_images": 32}
    assert excluded(_settings(0.0, epochs=1), attacked) == [make_cell(dense).label]
    # The dense job newer and of another attack: the pruned job sets the recipe still.
    assert excluded(attacked, _settings(0.5), dense_first=False) == [make_cell(dense).label]


def test_a_lottery_groups_change_against_the_control_is_not_called_pruning_alone():
    g = Group("m", "d", "lottery")
    sample = {"seed": 0, "vs_control/test_acc_delta_pts": -0.4}
    sample.update(
        {"vs_control/test_acc_delta_ci_low": -0.9, "vs_control/test_acc_delta_ci_high": 0.1}
    )
    rows = [Row(g, 0.5, [sample], "job")]
    assert vs_control_finding(rows).startswith("Pruning's own effect")
    text = vs_control_finding(rows, rewound=True)
    assert text.startswith("Pruning and rewinding together") and "no change beyond noise" in text


def test_a_two_model_methods_sweep_draws_each_series_apart_and_fits_its_latency_legend(tmp_path):
    """2 models x 6 methods: the 7th series had the 1st's colour and marker, and the speed-up
    panel's 36 legend entries collapsed both latency panels to nothing (a matplotlib warning)."""
    import warnings

    from prunelab.report.plotkit import series_style

    assert len({tuple(series_style(i).items()) for i in range(36)}) == 36
    methods = ("magnitude", "gradual", "random", "layerwise", "lottery", "structured")
    results = [
        {**fake_result(m, s), "pruning": p, "latency/bN_speedup": 1.0}
        for m in MODELS
        for p in methods
        for s in (0.5, 0.8)
    ]
    task = ["model=simplecnn,resnetsmall", f"pruning={','.join(methods)}", "sparsity=0.5,0.8"]
    sweep = make_sweep(tmp_path, results, task)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a drawing that warns is omitted, and said so
        result = build(sweep, wandb=False)
    assert not result.omitted_figures and len(result.figures) == 7


def test_a_methods_sweeps_legends_stand_beside_the_panels_they_would_cover(tmp_path, monkeypatch):
    """2 models x 6 methods: the size figure's 24 entries sat inside its panel, squeezed to a
    strip under them, and the accuracy figure's 12 covered its curves."""
    from prunelab.report import figures, figures_cost, plotkit

    drawn = {}

    def keep(fig, path, dpi):
        plotkit.save_png(fig, path, dpi)  # lays the figure out
        drawn[path.name] = fig

    monkeypatch.setattr(figures, "save_png", keep)
    monkeypatch.setattr(figures_cost, "save_png", keep)
    methods = ("magnitude", "gradual", "random", "layerwise", "lottery", "structured")
    results = [
        {**fake_result(m, s), "pruning": p} for m in MODELS for p in methods for s in (0.5, 0.8)
    ]
    task = ["model=simplecnn,resnetsmall", f"pruning={','.join(methods)}", "sparsity=0.5,0.8"]
    build(make_sweep(tmp_path, results, task), wandb=False)
    # The Pareto plot's 13 entries and the latency figure's left panel's 12 too (they covered
    # points there).
    for name in (
        "size_vs_sparsity",
        "accuracy_vs_sparsity",
        "latency_vs_sparsity",
        "pareto_accuracy_latency",
    ):
        fig = drawn[f"{name}.png"]
        panels = [ax for ax in fig.axes if ax.get_legend() is not None]
        many = [ax for ax in panels if len(ax.get_legend().get_texts()) > 6]
        assert many == panels and many, name
        for panel in many:
            box = panel.get_legend().get_window_extent()
            assert not any(box.overlaps(ax.bbox) for ax in fig.axes), name
            assert panel.bbox.height > 0.6 * fig.bbox.height, name  # not squeezed to a strip
