"""The report's figures and whole documents on made-up sweeps (layout and rules only)."""

from __future__ import annotations

from fake_sweeps import (
    MODELS,
    fake_result,
    job_of,
    make_sweep,
)

from prunelab.report import build
from prunelab.report.aggregate import Group, Row, build_rows


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


def test_pareto_draws_the_dense_network_the_methods_share_once(tmp_path, monkeypatch):
    """Every method's group has a dense row of the same network: one point and one label,
    not one per method printed over each other ("densdense")."""
    from prunelab.report import figures_cost

    results = []
    for method in ("magnitude", "random", "gradual"):
        r = fake_result("simplecnn", 0.5)
        r["pruning"] = method
        results.append(r)
    rows = build_rows([job_of(r) for r in results])
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
    assert robust_vs_eps(build_rows([job_of(r) for r in results]), tmp_path / "r.png", 40)
    width, height = Image.open(tmp_path / "r.png").size
    assert 1.5 < width / height < 2.5, (width, height)  # 3 x 5.2 in wide, 2 x 4.4 in tall


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
