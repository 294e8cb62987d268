"""The report's generated findings and intervals: nothing claimed within noise (made-up sweeps:
layout and rules only)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from fake_sweeps import (
    acc_rows,
    fake_result,
    findings_of,
    job_of,
    job_settings,
    make_sweep,
    pgd_rows,
    timed_result,
    write_settings,
)
from omegaconf import OmegaConf

from prunelab.report import build
from prunelab.report.advice import Profile, recommend
from prunelab.report.aggregate import Group, Row, build_rows
from prunelab.report.collect import Job, collect, make_cell
from prunelab.report.findings import (
    accuracy_finding,
    robustness_finding,
    seeds_note,
    speed_finding,
    vs_control_finding,
)
from prunelab.report.retraining import Retraining
from prunelab.report.tables import detail_table, headline_table, robust_tables
from prunelab.stats import wilson


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
    # The finding points at the layer figure only in a report that drew it.
    assert "weights to 55 % of `head.1`'s." in report and "layer_sparsity.png" not in report
    with warnings.catch_warnings():  # resnetsmall's unmeasured shares: no empty panel drawn
        warnings.simplefilter("error")
        drawn = build(sweep, wandb=False).report.read_text()
    assert "`head.1`'s (figure `layer_sparsity.png`)." in drawn
    assert (sweep / "layer_sparsity.png").is_file()


def test_accuracy_finding_claims_nothing_within_noise():
    text = accuracy_finding(acc_rows({0.0: 0.80, 0.5: 0.79, 0.9: 0.60}))
    assert "within noise of dense at sparsity 0.5, its point estimate inside" in text
    assert "beyond noise at sparsity 0.9" in text and "0.5 (" not in text
    assert "No accuracy difference is measurable" in accuracy_finding(
        acc_rows({0.0: 0.8, 0.5: 0.79})
    )


def test_a_paired_change_is_claimed_where_two_separate_intervals_overlap():
    unpaired = pgd_rows(None)
    assert unpaired[1].robust("robust/pgd_acc").overlaps(unpaired[0].robust("robust/pgd_acc"))
    assert "a change of -4.9 pts lies within noise" in robustness_finding(unpaired)
    assert "(within noise)" in headline_table(unpaired)[0]
    paired = pgd_rows([(-4.9, -6.9, -2.9)])
    text = robustness_finding(paired)
    assert "0.5 (-4.9 pts; 95 % interval -6.9 to -2.9) differs from dense beyond noise" in text
    assert "(within noise)" not in headline_table(paired)[0]
    assert "(-4.9)" in robust_tables(paired)[0] and "(-4.9~)" in robust_tables(unpaired)[0]
    # A paired interval that straddles 0 claims nothing.
    assert "lies within noise" in robustness_finding(pgd_rows([(-0.5, -2.4, 1.4)]))
    two = pgd_rows(None)
    two.append(Row(two[1].group, 0.8, two[1].samples, "job"))
    assert "changes of -4.9 pts to -4.9 pts all lie within noise" in robustness_finding(two)


def test_a_dense_model_near_zero_points_at_the_eps_curve_only_where_it_was_drawn():
    rows = pgd_rows(None)
    for row in rows:
        for sample in row.samples:
            sample["robust/pgd_acc"] = 0.01
    assert "read the robust-accuracy tables by ε for where" in robustness_finding(rows)
    drawn = robustness_finding(rows, {"robust_vs_eps.png"})
    assert "read the ε curve (figure `robust_vs_eps.png`) for where they differ." in drawn


def test_several_seeds_judge_the_mean_change_by_its_spread_and_the_image_noise():
    agree = pgd_rows([(-4.9, -6.9, -2.9), (-5.7, -7.7, -3.7), (-4.6, -6.6, -2.6)])
    band = agree[1].change("robust/pgd_acc")
    assert band.mean == pytest.approx(-5.0667, abs=1e-4) and band.n_seeds == 3
    # Seeds: t(2) 4.303 x std 0.569 / sqrt(3) = 1.412; images: half-width 2.0; combined 2.448.
    assert band.hi - band.mean == pytest.approx(2.448, abs=1e-3)
    assert agree[1].differs("robust/pgd_acc", agree[0])
    # Every seed's own interval excludes 0, but three seeds this far apart do not pin the mean.
    spread = pgd_rows([(-1.8, -2.9, -0.7), (-3.6, -5.4, -1.7), (-1.4, -2.6, -0.1)])
    assert spread[1].differs("robust/pgd_acc", spread[0]) is False
    disagree = pgd_rows([(-4.0, -5.0, -3.0), (4.0, 3.0, 5.0), (0.0, -1.0, 1.0)])
    assert disagree[1].differs("robust/pgd_acc", disagree[0]) is False


def test_bands_stop_where_the_quantity_does():
    """Two seeds far apart once gave 'band over seeds and images -177.5 to +120.5' points."""
    wild = pgd_rows([(-40.0, -45.0, -35.0), (10.0, 5.0, 15.0)])
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


def test_a_speed_up_within_the_spread_is_named_beside_one_that_is_claimed():
    """Structured pruning, two cells: 2.16× with tight timings is claimed; 1.61× whose own
    timings spread beyond the limit is named as not claimed, not passed over in silence."""
    g = Group("m", "d", "structured")
    base = {"seed": 0, "latency/b1_ms_baseline": 0.57, "latency/b1_p90_ms_baseline": 0.60}
    tight = {**base, "latency/b1_ms": 0.264, "latency/b1_p90_ms": 0.27, "latency/b1_speedup": 2.16}
    wide = {**base, "latency/b1_ms": 0.354, "latency/b1_p90_ms": 0.546, "latency/b1_speedup": 1.61}
    rows = [Row(g, 0.8, [tight], "job"), Row(g, 0.5, [wide], "job")]
    assert rows[0].speed_verdict(0.1) == "faster" and rows[1].latency_spread() > 1.5
    text = speed_finding(rows, 0.1)
    assert "faster than dense at 0.8" in text and "faster than dense at 0.5" not in text
    assert "; not claimed: 1.61× at 0.5, which lies within the timing spread" in text, text


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
    rows = acc_rows({0.0: 0.800, 0.5: 0.803, 0.8: 0.801}, n=10000)
    rows[1].samples[0].update({"test/acc_delta_pts": 0.3, "test/acc_delta_ci_low": 0.1})
    rows[1].samples[0]["test/acc_delta_ci_high"] = 0.5
    text = accuracy_finding(rows)
    assert "at sparsity 0.8, its point estimate inside the dense band." in text
    assert "Above the dense model beyond noise at sparsity 0.5" in text
    # Within noise by its paired interval, but its point estimate outside the dense band.
    rows.append(acc_rows({0.9: 0.785}, n=10000)[0])
    rows[3].samples[0].update({"test/acc_delta_ci_low": -2.5, "test/acc_delta_ci_high": 0.1})
    text = accuracy_finding(rows)
    assert "within noise of dense at sparsity 0.8, 0.9 (highest 0.9); point estimates" in text
    assert "inside the dense band at sparsity 0.8." in text


def test_no_measurable_difference_names_the_seeds_when_there_are_several():
    g = Group("m", "d", "p")
    rows = [
        Row(g, s, [{"seed": k, "test/acc": 0.8, "data/test_size": 500} for k in (0, 1)], "job")
        for s in (0.0, 0.5)
    ]
    assert "measurable at any sparsity with 2 seeds." in accuracy_finding(rows)
    assert "at this test-set size." in accuracy_finding(acc_rows({0.0: 0.8, 0.5: 0.79}))


def test_a_structured_net_that_buys_no_time_is_not_blamed_on_unstructured_zeros():
    g = Group("m", "d", "structured")
    sample = {"seed": 0, "latency/b1_speedup": 1.02, "flops/theoretical_speedup": 4.0}
    sample.update({"size/params": 2e5, "size/params_baseline": 7e5})
    text = speed_finding([Row(g, 0.5, [sample], "job")], 0.1)
    assert "Unstructured zeros" not in text
    assert "fewer multiply-adds did not turn into batch-1 time here" in text


def test_a_stated_accuracy_change_carries_the_finetuning_caveat():
    changed = accuracy_finding(acc_rows({0.0: 0.80, 0.9: 0.60}), Retraining("1 epoch at lr 0.0001"))
    assert "Caveat: the pruned models had the fine-tuning epochs (1 epoch at lr 0.0001)" in changed
    assert changed.count("Caveat") == 1
    assert "Caveat" not in accuracy_finding(acc_rows({0.0: 0.80, 0.5: 0.79}))  # nothing stated


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
    multirun.finetune = job_settings(0.5, epochs=2)["finetune"]  # the latest launch's
    OmegaConf.save(multirun, sweep / "multirun.yaml")
    for r in magnitude:
        write_settings(sweep, r, job_settings(r["sparsity"]))
    for r in lottery:
        write_settings(sweep, r, job_settings(r["sparsity"], lr=1e-3, rewind=0))
    for r, epochs in zip(mixed, (1, 2), strict=True):
        write_settings(sweep, r, job_settings(r["sparsity"], epochs=epochs))
    report = build(sweep, wandb=False, figures=False).report.read_text()
    own = findings_of(report, "simplecnn · magnitude")
    assert (
        "Caveat: the pruned models had the fine-tuning epochs (`finetune.max_epochs` = 1 epoch "
        "at lr 0.0001) on top of the dense baseline's training" in own
    )
    rewound = findings_of(report, "simplecnn · lottery")
    assert "on top of the dense baseline's training, which" not in rewound
    assert (
        "Caveat: these lottery-ticket models were not fine-tuned on top of the dense baseline's "
        "training: their surviving weights were rewound and retrained with the masks "
        "(`finetune.max_epochs` = 1 epoch at lr 0.001, from the weights at initialisation)"
        in rewound
    )
    differ = findings_of(report, "simplecnn · random")
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


def test_speed_is_worded_as_measured_and_not_claimed_where_dense_times_itself_off():
    """The dense job times the dense model against itself as the pruned jobs time theirs:
    1.20× there is timing noise, so a pruned cell's 1.50× is no finding in that group."""
    g = Group("m", "d", "p")
    rows = [
        Row(g, 0.0, [timed_result(0.0, 1.05)], "job"),
        Row(g, 0.5, [timed_result(0.5, 1.5)], "job"),
    ]
    text = speed_finding(rows, 0.1)
    assert text.startswith("Speed on cpu, 1 thread: measured")
    assert (
        "faster than dense at 0.5 (1.50×; outside the ±10 % tolerance and the timing spread)"
        in text
    )
    assert "beyond noise" not in text
    # The fuller table shows the dense self-timing as what it is, not as a speed-up.
    dense_row = detail_table(rows)[0].splitlines()[2]
    assert "| 1.05× (vs itself) |" in dense_row and "within noise" not in dense_row
    # A dense row rebuilt from the pruned jobs' `_baseline` keys timed nothing against itself.
    derived = [Row(g, 0.0, rows[0].samples, "baseline keys"), rows[1]]
    assert "| reference |" in detail_table(derived)[0].splitlines()[2]
    rows[0].samples.append(timed_result(0.0, 1.2, seed=1))  # a second dense job, further off
    text = speed_finding(rows, 0.1)
    assert "faster than dense" not in text
    assert "no speed-up or slow-down is claimed" in text and "measured 1.20×" in text
    dense_row = detail_table(rows)[0].splitlines()[2]  # 1.125×, off 1× beyond the tolerance
    assert "| 1.12× (vs itself) |" in dense_row and "within noise" not in dense_row
    assert "Re-measure on an idle machine" in text
    rows[1].samples[0]["latency/threads"] = 2
    assert speed_finding(rows[1:], 0.1).startswith("Speed on cpu, 2 threads: measured")


def test_a_batch_n_speed_up_within_its_timing_spread_is_flagged_as_batch_1_is():
    """1.20× at batch N whose p90 reaches past the baseline's median: not a measured gain."""
    g = Group("m", "d", "p")
    cell = timed_result(0.5, 1.0)
    cell.update({"latency/bN_speedup": 1.2, "latency/bN_ms": 5.0, "latency/bN_p90_ms": 6.5})
    cell.update({"latency/bN_ms_baseline": 6.0, "latency/bN_p90_ms_baseline": 6.1})
    rows = [Row(g, 0.0, [timed_result(0.0, 1.0)], "job"), Row(g, 0.5, [cell], "job")]
    assert "| 1.00× | 1.20× (within noise) |" in detail_table(rows)[0].splitlines()[3]
    cell["latency/bN_p90_ms"] = 5.5  # below the baseline's median: the spread is no excuse
    assert "| 1.00× | 1.20× |" in detail_table(rows)[0].splitlines()[3]


def test_a_batch_n_gain_beyond_noise_is_stated_where_batch_1_has_none():
    """Structured pruning can gain at batch N and not at batch 1: the findings judged batch 1
    only, and said no speed-up. Now the batch-N claim follows, under the same rules."""
    g = Group("m", "d", "structured")
    base = {"latency/bN_ms_baseline": 40.0, "latency/bN_p90_ms_baseline": 41.0,
            "latency/batch": 256, "size/params": 1e5, "size/params_baseline": 4e5}  # fmt: skip
    cell = {**timed_result(0.8, 1.02), **base, "flops/theoretical_speedup": 4.0}
    cell.update({"latency/bN_speedup": 2.5, "latency/bN_ms": 16.0, "latency/bN_p90_ms": 16.5})
    dense = timed_result(0.0, 1.0)
    rows = [Row(g, 0.0, [dense], "job"), Row(g, 0.8, [cell], "job")]
    text = speed_finding(rows, 0.1)
    assert "did not turn into batch-1 time here. At batch 256: faster than dense at 0.8 " \
        "(2.50×; outside the ±10 % tolerance and the timing spread)." in text, text  # fmt: skip
    cell["latency/bN_p90_ms"] = 45.0  # its timings overlap the dense model's: no claim
    assert "At batch" not in speed_finding(rows, 0.1)
    cell["latency/bN_p90_ms"] = 16.5
    dense["latency/bN_speedup"] = 1.3  # the dense job timed itself 1.3x off at batch N
    assert "At batch" not in speed_finding(rows, 0.1)
    # Unstructured zeros: no "do not speed up dense kernels" beside a batch-N gain.
    dense["latency/bN_speedup"] = 1.0
    cell["size/params"] = cell["size/params_baseline"]
    text = speed_finding([rows[0], Row(Group("m", "d", "p"), 0.8, [cell], "job")], 0.1)
    assert "do not speed up dense kernels" not in text and "At batch 256: faster" in text


def test_no_speed_claim_for_a_cell_whose_timings_a_busy_machine_spread():
    """1.17× at 20 % unstructured sparsity with the baseline's p90 86× its median (another
    process held the core): no claim, and the noise is said once, not twice."""
    g = Group("m", "d", "p")
    busy = timed_result(0.2, 1.17)
    busy["latency/b1_p90_ms_baseline"] = 86.0
    rows = [Row(g, 0.0, [timed_result(0.0, 1.0)], "job"), Row(g, 0.2, [busy], "job")]
    text = speed_finding(rows, 0.1)
    assert "faster than dense" not in text
    assert "These timings are noisy (p90 up to 86.0× the median; was the machine busy?)" in text
    rows[0].samples[0]["latency/b1_speedup"] = 1.2  # the dense job off too: one noise sentence
    text = speed_finding(rows, 0.1)
    assert text.count("noisy") == 1
    assert "Their p90 reaches 86.0× the median (was the machine busy?): re-measure" in text


def test_rows_of_other_seeds_than_the_dense_row_are_said_to_be_paired_by_seed():
    """Dense over seeds 0-2 beside a pruned cell of seed 0 (the others failed or excluded):
    the rows' means differ by more than the stated (paired) change; the findings say why."""
    jobs = [job_of(fake_result("simplecnn", 0.0, seed=s)) for s in (0, 1, 2)]
    (rows,) = build_rows([*jobs, job_of(fake_result("simplecnn", 0.5, seed=0))]).values()
    assert seeds_note(rows) == (
        "**Seeds differ between rows** (dense: seeds 0, 1, 2; sparsity 0.5: seed 0): each "
        "change is against the dense model of the same seeds, so it is not the difference "
        "of the rows' means."
    )
    more = [job_of(fake_result("simplecnn", 0.5, seed=s)) for s in (1, 2)]
    (rows,) = build_rows([*jobs, job_of(fake_result("simplecnn", 0.5)), *more]).values()
    assert seeds_note(rows) is None


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
