"""Each sweep launched gets a folder of its own: two in one second shared one and mixed."""

from datetime import datetime, timedelta

import pytest

from prunelab.cli import check_argv, interrupted_launch
from prunelab.sweep_dir import CLAIMED, claim, quoted

from conftest import DATA

SWEEP = ["-m", "sparsity=0.2,0.5", "experiment=smoke", f"paths.data_dir={DATA}"]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Run in tmp_path (multirun_sweeps/ is relative), with no claim left in the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(CLAIMED, "")  # so that the claim a test makes is undone after it
    monkeypatch.delenv(CLAIMED)
    return tmp_path


def _folder(args: list[str]) -> str:
    (given,) = [a.split("=", 1)[1] for a in args if a.startswith("hydra.sweep.dir=")]
    return given


def test_claim_takes_the_first_free_name(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "t_2").mkdir()
    assert claim(tmp_path / "t") == tmp_path / "t_3"
    assert claim(tmp_path / "new" / "u") == tmp_path / "new" / "u" and (tmp_path / "new/u").is_dir()


def test_a_sweep_launched_in_the_second_of_another_gets_its_own_folder(here, monkeypatch):
    start = datetime.now()
    taken = [(start + timedelta(seconds=s)).strftime("%Y-%m-%d_%H-%M-%S") for s in range(60)]
    for name in taken:  # as sweeps launched in this minute would have (the checks take seconds)
        (here / "multirun_sweeps" / name).mkdir(parents=True)
    args = check_argv(SWEEP, launch=True)
    folder = _folder(args)
    assert folder.startswith("multirun_sweeps/") and folder.endswith("_2"), folder
    assert folder.removeprefix("multirun_sweeps/").removesuffix("_2") in taken
    assert (here / folder).is_dir() and not any((here / folder).iterdir())
    assert args[:-1] == SWEEP  # the user's overrides, in order, then the folder
    # A Ctrl-C line names the claimed folder: the user's command line does not hold it.
    monkeypatch.setattr("sys.argv", ["train.py", *args])
    submitit = ["hydra/launcher=submitit_local", *args]
    none_yet = "prunelab: interrupted before any job started"
    assert interrupted_launch(submitit, False, False) == none_yet
    (here / folder / "simplecnn-fashion_mnist-magnitude-s0.2-seed0").mkdir()  # a job started
    line = interrupted_launch(submitit, False, False)
    assert f"run the same command again with hydra.sweep.dir={folder} to resume" in str(line)
    assert interrupted_launch(args, True, False) is None  # joblib's jobs said it themselves


@pytest.mark.parametrize(
    "args",
    [
        ["hydra.sweep.dir=given"],  # the user's folder: a rerun into it resumes there
        ["hydra.sweep.dir=daily/${now:%Y-%m-%d}"],  # shared by the day's launches on purpose
    ],
)
def test_a_folder_not_named_to_the_second_is_left_as_given(here, args):
    assert check_argv([*SWEEP, *args], launch=True) == [*SWEEP, *args]
    assert not list(here.iterdir())


def test_a_users_timed_pattern_is_claimed_too(here):
    args = check_argv([*SWEEP, "hydra.sweep.dir=mine/${now:%H%M%S}"], launch=True)
    folder = _folder(args)
    assert folder.startswith("mine/") and "${" not in folder and (here / folder).is_dir()
    assert args.count(f"hydra.sweep.dir={folder}") == 1 and len(args) == len(SWEEP) + 1


@pytest.mark.parametrize(
    "args",
    [
        ["sparsity=0.5", "experiment=smoke", f"paths.data_dir={DATA}"],  # one job: outputs/
        ["sparsity=0.5", "experiment=smoke", f"paths.data_dir={DATA}", "hydra.mode=RUN"],
        ["-m", "sparsity=0.5", "--help"],  # prints, runs nothing
    ],
)
def test_no_folder_is_made_for_a_launch_that_is_no_sweep(here, args):
    check_argv(args, launch=True)
    assert not (here / "multirun_sweeps").exists()


def test_only_train_py_claims(here):
    """check_argv alone (tests, prunelab.evaluate) makes no folder."""
    assert check_argv(SWEEP) == SWEEP and not (here / "multirun_sweeps").exists()


def test_a_stop_line_reads_the_folder_as_hydra_does(here, monkeypatch):
    """The stop line took `hydra.sweep.dir` as written: a folder Hydra names as it launches
    (${now:...}) was never found, so a stop after jobs had run said none had started; a claimed
    name that needs quotes was not known as claimed, so the hint left the folder out."""
    daily = ["hydra/launcher=submitit_local", *SWEEP, "hydra.sweep.dir=daily/${now:%Y-%m-%d}"]
    line = str(interrupted_launch(daily, False, False))
    assert "before any job started" not in line and "run the same command again to" in line
    folder = here / "multirun_sweeps" / "12:00:00 b"
    (folder / "simplecnn-fashion_mnist-magnitude-s0.2-seed0").mkdir(parents=True)
    monkeypatch.setenv(CLAIMED, str(folder))
    args = ["hydra/launcher=submitit_local", *SWEEP, f"hydra.sweep.dir={quoted(str(folder))}"]
    line = str(interrupted_launch(args, False, False))
    assert f"again with hydra.sweep.dir='{folder}' to resume" in line, line
