"""The sweep report on a real smoke sweep: files agree with results.json, gaps are named."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from prunelab.report import build
from prunelab.report.__main__ import main as report_main
from prunelab.report.collect import collect
from prunelab.report.hydra_callback import ReportCallback

from conftest import DATA, job_results, run_train, undocumented

# `make test` runs the suite under pytest-xdist: the modules reading the smoke sweep share one
# worker, so that sweep runs once.
pytestmark = pytest.mark.xdist_group("smoke_sweep")

HEAVY = shutil.ignore_patterns("model.pt", "checkpoints", "wandb", "csv", "*.ckpt")


def copy_sweep(sweep: Path, dest: Path) -> Path:
    """A light copy of a sweep folder (no weights, checkpoints or W&B runs), without the report."""
    copy = dest / sweep.name
    shutil.copytree(sweep, copy, ignore=HEAVY)
    for name in ("report.md", "results.csv"):
        (copy / name).unlink(missing_ok=True)
    for png in copy.glob("*.png"):
        png.unlink()
    return copy


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def same(text: str, value: object) -> bool:
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == str(value).lower()
    if isinstance(value, int | float):
        return float(text) == float(value)  # written with repr: exact round trip
    return text == str(value)


def test_multirun_end_wrote_a_report_that_agrees_with_the_jobs(smoke_sweep):
    results = job_results(smoke_sweep)
    assert (smoke_sweep / "report.md").is_file()
    rows = read_csv(smoke_sweep / "results.csv")
    assert len(rows) == len(results) == 6
    by_job = {r["job"]: r for r in rows}
    for path in sorted(smoke_sweep.glob("*/results.json")):
        row = by_job[path.parent.name]
        for key, value in json.loads(path.read_text()).items():
            assert same(row[key], value), (path.parent.name, key, row[key], value)
    report = (smoke_sweep / "report.md").read_text()
    assert "All 6 expected cells have results." in report
    for r in results:  # every measured accuracy is in the report, rounded as printed
        assert f"{100 * r['test/acc']:.1f} %" in report
        assert f"{100 * r['test/acc_baseline']:.1f} %" in report
    assert "| 0 (dense) |" in report
    figures = sorted(smoke_sweep.glob("*.png"))
    evaluated = any("latency/b1_ms" in r for r in results)
    if evaluated:
        assert len(figures) >= 4, figures
        # The dense rows (rebuilt from the pruned jobs) show their measured compression-only
        # reduction, and the PGD labels the eps the jobs ran.
        for r in results:
            assert f"| {r['size/reduction_pct_baseline']:.1f} % (compression alone) |" in report
        (eps,) = {r["robust/pgd_eps"] for r in results}
        assert f"| PGD ε={eps:g} |" in report and f"the study's PGD, ε = {eps:g}" in report
    else:  # a sweep without the evaluation module: the report says what it left out
        assert "Figures left out for lack of data" in report
    assert (smoke_sweep / "accuracy_vs_sparsity.png").is_file()
    for png in figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png.name})" in report


def test_summary_run_is_offline_in_the_sweep_dir(smoke_sweep):
    runs = list((smoke_sweep / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert list(runs[0].glob("run-*.wandb"))
    assert f"wandb sync {runs[0]}" in (smoke_sweep / "report.md").read_text()


def test_regenerating_the_report_updates_the_same_summary_run(smoke_sweep, tmp_path):
    """One W&B summary run per sweep: a second report logs to the first one's run id."""
    from prunelab.report.wandb_summary import summary_run_id

    copy = copy_sweep(smoke_sweep, tmp_path)  # without the wandb folder
    build(copy, wandb=True, figures=False)
    build(copy, wandb=True, figures=False)
    expected = summary_run_id("prunelab", smoke_sweep.name)

    def run_ids(sweep: Path) -> list[str]:
        # The id from each run's data file: two runs in one second get folders `…-<id>-1`.
        files = sorted(sweep.glob("wandb/offline-run-*/run-*.wandb"))
        return [f.name.removeprefix("run-").removesuffix(".wandb") for f in files]

    assert run_ids(copy) == [expected, expected]
    assert run_ids(smoke_sweep) == [expected]  # the sweep's own report: the same id


def test_builder_on_a_copy_gives_the_same_csv(smoke_sweep, tmp_path):
    copy = copy_sweep(smoke_sweep, tmp_path)
    result = build(copy, wandb=False)
    assert result.jobs == 6 and not result.problems
    assert (copy / "results.csv").read_text() == (smoke_sweep / "results.csv").read_text()
    assert {p.name for p in result.figures} == {p.name for p in smoke_sweep.glob("*.png")}
    assert "No summary run" in (copy / "report.md").read_text()


def test_a_removed_job_is_named_missing_and_the_rest_reported(smoke_sweep, tmp_path, capsys):
    copy = copy_sweep(smoke_sweep, tmp_path)
    gone = sorted(p.parent for p in copy.glob("*/results.json"))[0]
    shutil.rmtree(gone)
    assert report_main([str(copy), "--no-wandb"]) == 0
    out = capsys.readouterr().out
    assert "missing cells: " + gone.name in out
    report = (copy / "report.md").read_text()
    assert f"MISSING `{gone.name}`" in report and "5 of 6 expected cells" in report
    assert len(read_csv(copy / "results.csv")) == 5


def test_a_sweep_without_any_results_is_reported_and_exits_1(smoke_sweep, tmp_path, capsys):
    copy = copy_sweep(smoke_sweep, tmp_path)
    for found in copy.glob("*/results.json"):
        found.unlink()
    assert report_main([str(copy), "--no-wandb", "--no-figures"]) == 1
    out, err = capsys.readouterr()
    assert "(0 jobs with results" in out and "report: unfinished: " in out
    assert err.strip() == f"prunelab: error: no job in {copy} has results"


def test_a_job_folder_given_as_the_sweep_says_so(smoke_sweep, capsys):
    job = sorted(p.parent for p in smoke_sweep.glob("*/results.json"))[0]
    assert report_main([str(job), "--no-wandb"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("(it is a job's folder: report the folder above it)") and "\n" not in err


def test_a_failed_job_is_reported_and_the_callback_exits_1(smoke_sweep, tmp_path, capsys):
    copy = copy_sweep(smoke_sweep, tmp_path)
    job = sorted(p.parent for p in copy.glob("*/results.json"))[-1]
    (job / "results.json").unlink()
    (job / "FAILED").write_text("prunelab: error: diverged (loss is nan)\n")
    cfg = OmegaConf.load(copy / "multirun.yaml")
    cfg.hydra.sweep.dir = str(copy)
    cfg.report = {"wandb": False, "figures": False}
    with pytest.raises(SystemExit) as exit_info:
        ReportCallback().on_multirun_end(cfg)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{job.name} (failed)" in err[0]
    report = (copy / "report.md").read_text()
    assert f"FAILED `{job.name}`: prunelab: error: diverged (loss is nan)" in report


def test_a_report_bug_is_one_line_with_its_traceback_in_a_file(
    smoke_sweep, tmp_path, capsys, monkeypatch
):
    copy = copy_sweep(smoke_sweep, tmp_path)
    cfg = OmegaConf.load(copy / "multirun.yaml")
    cfg.hydra.sweep.dir = str(copy)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("prunelab.report.build", broken)
    with pytest.raises(SystemExit) as exit_info:
        ReportCallback().on_multirun_end(cfg)
    assert exit_info.value.code == 1
    log = copy / "report-error.log"
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"prunelab: error: report failed: RuntimeError: boom (traceback in {log})"]
    assert log.read_text().startswith("Traceback") and "boom" in log.read_text()


def test_a_job_folder_from_another_sweep_is_not_mixed_in(smoke_sweep, tmp_path):
    copy = copy_sweep(smoke_sweep, tmp_path)
    job = sorted(p.parent for p in copy.glob("*/results.json"))[0]
    hydra_yaml = job / ".hydra" / "hydra.yaml"
    hydra_yaml.write_text(hydra_yaml.read_text().replace(str(smoke_sweep), "/elsewhere/other"))
    result = build(copy, wandb=False, figures=False)
    assert [name for name, _ in result.excluded] == [job.name]
    assert result.jobs == 5 and [c.label for c in result.missing] == [job.name]
    assert f"EXCLUDED `{job.name}`" in (copy / "report.md").read_text()


def test_a_results_json_copied_in_from_another_run_is_not_tabulated(smoke_sweep, tmp_path):
    """A job folder is its own sweep's, but its results.json was copied in from another run:
    its config/hash is not the hash of the folder's config.json, and its numbers would have
    been tabulated under this job's cell and settings (here: a second row of another cell)."""
    copy = copy_sweep(smoke_sweep, tmp_path)
    source, job = sorted(p.parent for p in copy.glob("*/results.json"))[:2]
    shutil.copyfile(source / "results.json", job / "results.json")
    result = build(copy, wandb=False, figures=False)
    assert result.jobs == 5 and [c.label for c in result.missing] == []
    rows = read_csv(copy / "results.csv")
    assert [r["job"] for r in rows].count(source.name) == 1 and job.name not in [
        r["job"] for r in rows
    ]
    recorded = json.loads((source / "results.json").read_text())["config/hash"]
    assert (
        f"FAILED `{job.name}`: results.json is of other settings (config/hash {recorded}) "
        "than the job's config.json"
    ) in (copy / "report.md").read_text()
    # Where the job's config.json cannot be read, nothing can be checked: the report says so.
    (job / "config.json").write_text('{"sparsity": 0.')
    build(copy, wandb=False, figures=False)
    assert (
        f"- Note: `{job.name}/config.json` cannot be read: its results are tabulated without "
        "the check that they are of the job's own settings"
    ) in (copy / "report.md").read_text()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (None, "does not exist"),
        ("file", "is not a directory"),
        ("yaml", "multirun.yaml is not valid YAML (expected the node content, but found "),
    ],
)
def test_cli_rejects_a_non_sweep_in_one_line(tmp_path, make, says):
    target = tmp_path / "nope"
    if make == "file":
        target.write_text("not a sweep")
    elif make == "yaml":  # a truncated multirun.yaml: YAML's own message spans four lines
        target.mkdir()
        (target / "multirun.yaml").write_text("hydra:\n  sweep: [\n")
    proc = subprocess.run(
        [sys.executable, "-m", "prunelab.report", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1  # as train.py's and prunelab.evaluate's missing files
    assert proc.stderr.strip().count("\n") == 0 and says in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def relaunched_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(methods, relaunched): a two-method smoke sweep with dense jobs, as launched; and the
    same folder after a second launch into it added one seed-1 cell (multirun.yaml: 1 cell)."""
    base = tmp_path_factory.mktemp("relaunch")
    sweep = base / "sweep"
    common = [
        "experiment=smoke",
        f"hydra.sweep.dir={sweep}",
        f"paths.cache_dir={base / 'cache'}",
        f"paths.data_dir={DATA}",
    ]
    first = ["-m", "model=simplecnn", "pruning=magnitude,random", "sparsity=0,0.5"]
    proc = run_train([*first, *common])
    assert proc.returncode == 0, proc.stderr[-4000:]
    methods = copy_sweep(sweep, base / "methods")
    proc = run_train(["-m", "model=simplecnn", "sparsity=0.5", "seed=1", *common])
    assert proc.returncode == 0, proc.stderr[-4000:]
    return methods, sweep


def _advice(report: str) -> list[str]:
    section = report.split("## Deployment recommendations", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("- **")]


def test_methods_sharing_a_dense_baseline_count_it_once_in_the_advice(relaunched_sweep):
    """Two methods, each with a dense job of the same baseline: 3 distinct models, not 4."""
    methods, _ = relaunched_sweep
    results = job_results(methods)
    assert len({r["baseline/key"] for r in results}) == 1  # one trained dense network
    assert not undocumented(k for r in results for k in r)  # dense jobs' keys too
    result = build(methods, wandb=False, figures=False)
    report = result.report.read_text()
    assert "### simplecnn · magnitude" in report and "### simplecnn · random" in report
    lines = _advice(report)
    assert len(lines) == 3  # mobile, edge, server
    for line in lines:
        assert "(magnitude, dense)" not in line and "(random, dense)" not in line
        once = " of 3 measured cells fit (the dense baseline the methods share counted once)"
        assert once in line or "nothing measured fits" in line  # smoke latency on a busy CPU
        # Listed once among the alternatives (the chosen cell may also be named in the reason).
        alternatives = line.partition("Also within accuracy noise of the best:")[2]
        assert alternatives.count("**simplecnn** (dense)") <= 1
    server = next(line for line in lines if line.startswith("- **server**"))
    assert "3 of 3 measured cells fit" in server  # no limits: every distinct model fits
    dense_acc = next(r["test/acc"] for r in results if r["sparsity"] == 0)
    best = max(r["test/acc"] for r in results)
    if best == dense_acc:
        assert server.split(" — ", 1)[0].endswith("**simplecnn** (dense)")


def test_a_relaunch_into_the_folder_is_counted_honestly(relaunched_sweep, smoke_sweep, tmp_path):
    """multirun.yaml names only the last launch's cell; the earlier four jobs are named as
    such, tabulated, and a job written by another sweep folder is still kept out."""
    _, sweep = relaunched_sweep
    assert len(collect(sweep).expected) == 1  # the latest launch's grid only
    report = (sweep / "report.md").read_text()  # written by the multirun-end callback
    assert "All 1 expected cells" not in report
    assert "The one expected cell of the latest launch (`multirun.yaml`) has results." in report
    assert "4 jobs outside that grid (4 with results), from earlier launches" in report
    assert "`simplecnn-fashion_mnist-random-s0.5-seed0`" in report
    assert "(5 jobs)" in report and "seeds: 0, 1." in report
    assert len(read_csv(sweep / "results.csv")) == 5
    copy = copy_sweep(sweep, tmp_path)
    stranger = sorted(p.parent for p in smoke_sweep.glob("*/results.json"))[0]
    shutil.copytree(stranger, copy / stranger.name, ignore=HEAVY)
    result = build(copy, wandb=False, figures=False)
    assert result.jobs == 5 and not result.problems
    assert [name for name, _ in result.excluded] == [stranger.name]
    text = (copy / "report.md").read_text()
    assert f"EXCLUDED `{stranger.name}`" in text and "4 jobs outside that grid" in text


def test_jobs_left_by_other_settings_are_set_aside(relaunched_sweep, tmp_path):
    """A launch with other settings into an old folder reruns the cells it names; the cells it
    does not name keep the old settings' results, which the report must not tabulate beside."""
    _, sweep = relaunched_sweep
    folder = tmp_path / "sweep"
    common = [
        "experiment=smoke",
        "model=simplecnn",
        f"hydra.sweep.dir={folder}",
        f"paths.cache_dir={sweep.parent / 'cache'}",  # the smoke baseline is cached there
        f"paths.data_dir={DATA}",
    ]
    assert run_train(["-m", "sparsity=0,0.5", *common]).returncode == 0
    proc = run_train(["-m", "sparsity=0.5", "finetune.max_epochs=2", *common])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "was run with other settings (finetune.max_epochs: 1 -> 2)" in proc.stderr
    old = "simplecnn-fashion_mnist-magnitude-s0-seed0"
    recipes = {r["sparsity"]: r["config/recipe"] for r in job_results(folder)}
    assert recipes[0] != recipes[0.5]
    # The dense job fine-tunes nothing: the new fine-tuning recipe leaves it as it was.
    result = build(folder, wandb=False, figures=False)
    assert result.excluded == []
    assert [float(r["sparsity"]) for r in read_csv(folder / "results.csv")] == [0, 0.5]
    # A setting the dense job's figures depend on (its attack) sets it aside.
    proc = run_train(["-m", "sparsity=0.5", "finetune.max_epochs=2", "attack.n_images=32", *common])
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = build(folder, wandb=False, figures=False)
    assert [name for name, _ in result.excluded] == [old]
    rows = read_csv(folder / "results.csv")
    assert [float(r["sparsity"]) for r in rows] == [0.5]
    assert (
        f"EXCLUDED `{old}`: run with other settings than the latest job of its method, "
        "`simplecnn-fashion_mnist-magnitude-s0.5-seed0` (attack.n_images: 64 -> 32)"
    ) in (folder / "report.md").read_text()


def test_a_moved_sweep_folder_launched_into_again_keeps_its_own_jobs(
    smoke_sweep, relaunched_sweep, tmp_path
):
    """Users rename multirun_sweeps/<time> (mv, cp -a). A new launch into the renamed folder
    rewrites multirun.yaml with the new path, while the earlier jobs' Hydra records name the
    old one: they are still this folder's own (its prunelab_sweep.yaml lists both paths, and
    each job carries its id), and a job folder copied in from another sweep is still not."""
    moved = tmp_path / "renamed"
    shutil.copytree(smoke_sweep, moved, ignore=HEAVY)  # cp -a: same files, same times
    methods, _ = relaunched_sweep
    stranger = methods / "simplecnn-fashion_mnist-random-s0.5-seed0"
    shutil.copytree(stranger, moved / stranger.name, ignore=HEAVY)
    proc = run_train(
        [
            "-m",
            "model=simplecnn",
            "sparsity=0",
            "experiment=smoke",
            f"hydra.sweep.dir={moved}",
            f"paths.cache_dir={smoke_sweep.parent / 'cache'}",  # its baselines are cached there
            f"paths.data_dir={DATA}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (moved / "report.md").read_text()  # written by the multirun-end callback
    assert "6 jobs outside that grid (6 with results), from earlier launches" in report
    assert report.count("EXCLUDED `") == 1 and f"EXCLUDED `{stranger.name}`" in report
    assert len(read_csv(moved / "results.csv")) == 7
    own = {p.parent.name for p in smoke_sweep.glob("*/results.json")}
    assert own <= {r["job"] for r in read_csv(moved / "results.csv")}
    (moved / "report.md").unlink()
    assert report_main([str(moved), "--no-wandb", "--no-figures"]) == 0  # the CLI: the same
    assert (moved / "report.md").read_text().count("EXCLUDED `") == 1
    assert len(read_csv(moved / "results.csv")) == 7


def test_a_report_without_figures_removes_the_earlier_reports_figures(smoke_sweep, tmp_path):
    """`--no-figures` / `report.figures=false` after a report with figures: report.md says it
    has none, so none of its figure files may stay; a user's own PNG does."""
    from prunelab.report.figures import FIGURES

    copy = copy_sweep(smoke_sweep, tmp_path)
    drawn = build(copy, wandb=False).figures
    assert drawn and all(p.is_file() for p in drawn)
    mine = copy / "my_plot.png"
    mine.write_bytes(b"\x89PNG\r\n\x1a\n")
    assert report_main([str(copy), "--no-wandb", "--no-figures"]) == 0
    assert not [name for name in FIGURES if (copy / name).exists()]
    assert mine.is_file()
    report = (copy / "report.md").read_text()
    assert "Figures were switched off for this report" in report and ".png)" not in report
    build(copy, wandb=False)  # and through the config, as the multirun-end callback builds
    cfg = OmegaConf.load(copy / "multirun.yaml")
    cfg.report = {"wandb": False, "figures": False}
    assert build(copy, cfg).figures == []
    assert not [name for name in FIGURES if (copy / name).exists()] and mine.is_file()
