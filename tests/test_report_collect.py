"""The report's reading of a sweep folder: expected cells, failed and missing jobs, jobs of other
sweeps or settings excluded (made-up sweeps: layout and rules only)."""

from __future__ import annotations

import pytest
from fake_sweeps import (
    fake_result,
    job_settings,
    make_sweep,
    write_settings,
)
from omegaconf import OmegaConf

from prunelab.report import build
from prunelab.report.__main__ import main as report_main
from prunelab.report.collect import collect, expected_cells, make_cell
from prunelab.report.sweep_record import (
    JOB_RECORD,
    RECORD,
    job_sweep_id,
    note_launch,
    read_record,
    stamp_job,
)


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


def test_collect_rejects_a_folder_that_is_no_sweep(tmp_path):
    from prunelab.errors import PrunelabError

    with pytest.raises(PrunelabError, match="not a sweep folder"):
        collect(tmp_path)


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
    # A damaged record cannot vouch for the moved folder's jobs: the report says so.
    assert not [n for n in data.notes if RECORD in n]
    (moved / RECORD).write_text("id: [\n")
    assert f"{RECORD} cannot be read: which jobs are" in " ".join(collect(moved).notes)


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


def test_a_job_of_other_settings_is_excluded_naming_the_settings_that_differ(tmp_path):
    """'config/recipe differs; its config.json lists them' sent users comparing files; the
    excluded job's line names the keys, as the rerun warning does, but not the cell's own."""
    import os

    old, new = fake_result("simplecnn", 0.2), fake_result("simplecnn", 0.5)
    old["config/recipe"], new["config/recipe"] = "aaaaaaaaaaaa", "bbbbbbbbbbbb"
    sweep = make_sweep(tmp_path, [old, new], ["sparsity=0.2,0.5"])
    write_settings(sweep, old, job_settings(0.2, epochs=1))
    write_settings(sweep, new, job_settings(0.5, epochs=2))
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
    many = job_settings(0.2, epochs=1)
    many.update({"a": 1, "b": 2, "c": 3, "d": 4})
    write_settings(sweep, old, many)
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
        write_settings(sweep, dense, old)
        write_settings(sweep, pruned, new)
        first, then = (dense, pruned) if dense_first else (pruned, dense)
        when = (sweep / make_cell(then).label / "results.json").stat().st_mtime - 60
        os.utime(sweep / make_cell(first).label / "results.json", (when, when))
        return [name for name, _ in collect(sweep).excluded]

    assert excluded(job_settings(0.0, epochs=1), job_settings(0.5, epochs=2)) == []
    assert excluded(job_settings(0.0, lr=1e-3), job_settings(0.5, lr=1e-4), dense_first=False) == []
    with_control = job_settings(0.5, epochs=2)
    with_control["finetune"]["dense_control"] = True
    assert excluded(job_settings(0.0, epochs=1), with_control) == [make_cell(dense).label]
    attacked = job_settings(0.5, epochs=2)
    attacked["attack"] = {"n_images": 32}
    assert excluded(job_settings(0.0, epochs=1), attacked) == [make_cell(dense).label]
    # The dense job newer and of another attack: the pruned job sets the recipe still.
    assert excluded(attacked, job_settings(0.5), dense_first=False) == [make_cell(dense).label]


def test_a_sweep_folder_that_cannot_be_written_is_one_line_before_any_work(
    tmp_path, monkeypatch, capsys
):
    """A read-only mount (root ignores chmod, so the probe writes): the report said so in a
    traceback from its first write."""
    import tempfile

    sweep = make_sweep(tmp_path, [fake_result("simplecnn", 0.5)], ["sparsity=0.5"])
    real = tempfile.mkdtemp

    def read_only(*args, **kwargs):
        if str(kwargs.get("dir")) == str(sweep):
            raise OSError(30, "Read-only file system")
        return real(*args, **kwargs)

    monkeypatch.setattr("prunelab.cli.tempfile.mkdtemp", read_only)
    assert report_main([str(sweep), "--no-wandb"]) == 1
    err = capsys.readouterr().err
    assert err == f"prunelab: error: cannot write to {sweep}: {sweep} is not writable\n"
    assert not (sweep / "report.md").exists() and not (sweep / "results.csv").exists()


def test_results_without_the_settings_hashes_are_named_as_unchecked(tmp_path):
    """A results.json without config/hash and config/recipe (an older prunelab's, or made by
    hand) is tabulated unchecked against its folder's settings: the report says so."""
    from prunelab.identity import config_hash

    results = [fake_result("simplecnn", s) for s in (0.0, 0.5, 0.8)]
    settings = [job_settings(r["sparsity"]) for r in results]
    for r, own in zip(results[:2], settings[:2], strict=True):  # two stamped as a job stamps
        r.update({"config/hash": config_hash(own), "config/recipe": "r1"})
    sweep = make_sweep(tmp_path, results, ["model=simplecnn", "sparsity=0,0.5,0.8"])
    for r, own in zip(results, settings, strict=True):
        write_settings(sweep, r, own)
    data = collect(sweep)
    label = make_cell(results[2]).label
    assert [n for n in data.notes if "without config/hash" in n] == [
        f"`{label}`: results.json without config/hash or config/recipe (an older prunelab's, "
        "or written by hand): tabulated without the checks that they are of their folder's "
        "settings and of one recipe with the other jobs"
    ]
    assert len(data.ok) == 3  # tabulated still
    build(sweep, figures=False, wandb=False)
    assert "without config/hash" in (sweep / "report.md").read_text()
