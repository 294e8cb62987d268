"""Ctrl-C and SIGTERM: one line saying how to go on, wherever it lands; another process's job
kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sweep_tools import ctrl_c_when, default_signals, start_train, wait_for

from prunelab import errors, stopping
from prunelab.pipeline import job_lock
from prunelab.stopping import GRACE_S

from conftest import DATA, ROOT, run_train


def _submitit_sweep(tmp_path: Path) -> tuple[Path, subprocess.Popen]:
    """A submitit_local sweep of one job, long enough to be stopped while it fine-tunes."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=submitit_local", "sparsity=0.5", "experiment=smoke",
            "data.train_size=2048", "finetune.max_epochs=3", f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={DATA}"]  # fmt: skip
    return sweep, start_train(args, terminal=True, group=True, stdout=subprocess.DEVNULL)


@pytest.mark.slow
def test_ctrl_c_under_submitit_says_so_on_the_launching_terminal(tmp_path):
    """submitit's jobs write their lines into <sweep>/.submitit/<job id>/: the terminal that
    launched them showed no prunelab line at Ctrl-C, only submitit's own tracebacks."""
    sweep, child = _submitit_sweep(tmp_path)
    if wait_for(child, sweep, "*/checkpoints/last.ckpt"):  # fine-tuning
        os.killpg(child.pid, signal.SIGINT)  # Ctrl-C reaches submitit's processes too
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    ours = [line for line in err.splitlines() if line.startswith("prunelab:")]
    assert ours == [
        "prunelab: interrupted; run the same command again to resume where it stopped "
        f"(jobs' logs: {sweep}/.submitit/)"
    ], err[-3000:]
    (job,) = sweep.glob("*/FAILED")
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.err"))
    assert "prunelab: interrupted; run the same command again" in logs


@pytest.mark.parametrize(
    ("sig", "said", "code"),
    [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated (SIGTERM)", 143)],
)
def test_a_stop_while_waiting_for_another_processs_job_leaves_its_folder_alone(
    tmp_path, sig, said, code
):
    """The FAILED mark a job writes first thing on SIGTERM is its own folder's only once it
    holds the folder: waiting, the folder is the other process's."""
    out = tmp_path / "run"
    out.mkdir()
    held = job_lock(out)
    held.acquire()  # as another process running this job would
    try:
        args = ["experiment=smoke", f"hydra.run.dir={out}", f"paths.data_dir={DATA}",
                f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
        child = start_train(args, terminal=True)
        for line in child.stdout:  # type: ignore[union-attr]
            if "another process is running this job in this folder; waiting" in line:
                child.send_signal(sig)
                break
        _, err = child.communicate(timeout=60)
    finally:
        held.release()
    assert child.returncode == code, err[-3000:]
    assert err.strip().splitlines() == [
        f"prunelab: {said} while another process ran this job; it goes on"
    ]
    assert not (out / "FAILED").exists()


def test_ctrl_c_says_how_to_go_on(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "run"
    args = ["experiment=smoke", "data.train_size=2048", "baseline.max_epochs=3",
            "baseline.patience=3", f"paths.data_dir={DATA}", f"paths.cache_dir={cache}",
            f"hydra.run.dir={out}"]  # fmt: skip
    code, err = ctrl_c_when(args, ".*.work/last.ckpt", cache)  # inside the baseline's training
    assert code == 130, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last == "prunelab: interrupted; run the same command again to resume where it stopped"
    assert "Traceback" not in err
    assert (out / "FAILED").is_file() and not (out / "results.json").exists()


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_of_hydras_timed_folder_names_the_folder_to_resume(tmp_path):
    """The default sweep folder is named by the launch time: the same command again would start
    a new one and fine-tune from scratch. The line names the folder, and that command resumes."""
    args = ["-m", "sparsity=0.5", "experiment=smoke", "data.train_size=2048",
            "finetune.max_epochs=3", f"paths.data_dir={DATA}",
            f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    fine_tuning = "multirun_sweeps/*/*/checkpoints/last.ckpt"
    code, err = ctrl_c_when(args, fine_tuning, tmp_path, cwd=tmp_path)
    assert code == 130, err[-3000:]
    (sweep,) = (tmp_path / "multirun_sweeps").iterdir()
    last = err.strip().splitlines()[-1]
    hint = f"hydra.sweep.dir=multirun_sweeps/{sweep.name}"
    assert last == f"prunelab: interrupted; run the same command again with {hint} to resume " \
        "where it stopped", err[-3000:]  # fmt: skip
    proc = run_train([*args, hint], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "multirun_sweeps").iterdir()] == [sweep.name]
    (job,) = sweep.glob("*/results.json")
    assert not (job.parent / "FAILED").exists()


@pytest.mark.slow
def test_sigterm_stops_a_sweep_as_ctrl_c_does_and_the_same_command_resumes(tmp_path):
    """`timeout`, `kill` and schedulers send SIGTERM: Lightning alone made it a silent exit 0,
    so a stopped job looked finished. Now: one line, a FAILED mark, exit 143, the sweep stops."""
    sweep = tmp_path / "sweep"
    args = ["-m", "sparsity=0.2,0.5", "experiment=smoke", "data.train_size=2048",
            "finetune.max_epochs=3", f"paths.data_dir={DATA}", f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    code, err = ctrl_c_when(args, "*/checkpoints/last.ckpt", sweep, sig=signal.SIGTERM)
    assert code == 143, err[-3000:]
    assert err.strip().splitlines()[-1] == (
        "prunelab: terminated (SIGTERM); run the same command again to resume where it stopped"
    )
    (failed,) = sweep.glob("*/FAILED")
    assert "terminated (SIGTERM)" in failed.read_text() and len(list(sweep.iterdir())) < 5
    proc = run_train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resuming from" in proc.stdout + proc.stderr
    assert len(list(sweep.glob("*/results.json"))) == 2 and not list(sweep.glob("*/FAILED"))


def _loky_workers(parent: int) -> list[int]:
    """The pids of joblib's worker processes started by `parent` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and b"LokyProcess" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _stop_joblib_sweep(tmp_path: Path, sig: int) -> tuple[list[str], Path, str, list[int]]:
    """A joblib sweep of two jobs on three workers, sent `sig` once both fine-tune, to the
    launching process only (as `kill` does): its args, folder, stderr and the workers' pids."""
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=3", "sparsity=0.2,0.5",
            "experiment=smoke", "data.train_size=2048", "finetune.max_epochs=3",
            f"paths.data_dir={DATA}", f"hydra.sweep.dir={sweep}",
            f"paths.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    child = start_train(args, terminal=True, group=True, stdout=subprocess.DEVNULL)
    both = wait_for(child, sweep, "*/checkpoints/last.ckpt")
    while both and len(list(sweep.glob("*/checkpoints/last.ckpt"))) < 2 and child.poll() is None:
        time.sleep(0.02)  # both jobs fine-tuning
    workers = _loky_workers(child.pid)
    child.send_signal(sig)
    start = time.monotonic()
    _, err = child.communicate(timeout=120)  # returns: no worker holds its pipes any longer
    assert len(workers) == 3, err[-3000:]
    assert time.monotonic() - start < GRACE_S  # the full grace: it waited for the idle worker
    assert len(list(sweep.glob("*/FAILED"))) == 2 and not list(sweep.glob("*/results.json"))
    for _ in range(100):  # joblib kills its workers as the launcher ends
        if not any(Path(f"/proc/{pid}").exists() for pid in workers):
            break
        time.sleep(0.1)
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)
    assert child.returncode == (143 if sig == signal.SIGTERM else 130), err[-3000:]
    return args, sweep, err, workers


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")
def test_sigterm_to_a_joblib_launcher_stops_its_workers_jobs_too(tmp_path):
    """`kill <pid>` of the launching process: it died at once, silent, and joblib's workers ran
    on (then sat idle with their memory, holding the terminal's pipes). Now each job is marked
    FAILED with the terminated line, the workers end, and the same command resumes. Three
    workers for two jobs: the launcher waits for the busy ones' marks, not for the idle one."""
    args, sweep, err, _ = _stop_joblib_sweep(tmp_path, signal.SIGTERM)
    line = "prunelab: terminated (SIGTERM); run the same command again to resume where it stopped"
    # One per job, each whole: the workers write theirs at one moment (once they ran together).
    assert [x for x in err.splitlines() if "prunelab:" in x] == [line, line], err[-3000:]
    proc = run_train(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(sweep.glob("*/results.json"))) == 2 and not list(sweep.glob("*/FAILED"))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")
def test_sigint_to_a_joblib_launcher_alone_stops_its_workers_jobs_too(tmp_path):
    """`kill -INT <pid>`: Ctrl-C that reaches the launcher but not its workers. joblib's abort
    killed the workers mid-job, unmarked; now the launcher passes it on and waits for the
    marks, as at SIGTERM (a terminal's Ctrl-C, which reaches every worker, waits the same)."""
    _, sweep, err, _ = _stop_joblib_sweep(tmp_path, signal.SIGINT)
    line = "prunelab: interrupted; run the same command again to resume where it stopped"
    assert [x for x in err.splitlines() if "prunelab:" in x] == [line, line], err[-3000:]
    assert all("interrupted" in f.read_text() for f in sweep.glob("*/FAILED"))


@pytest.mark.slow
def test_sigterm_to_a_submitit_launcher_stops_its_job_too(tmp_path):
    """`kill <pid>` of a submitit_local launcher: its jobs' processes are no multiprocessing
    children, so they got no signal, and submitit's SIGTERM bypass would have kept them from
    ours (Lightning ended the fit with exit status 0, the job unmarked). Now the job is marked
    FAILED and says the terminated line into its log, and the launcher names the logs."""
    sweep, child = _submitit_sweep(tmp_path)
    if wait_for(child, sweep, "*/checkpoints/last.ckpt"):  # fine-tuning
        child.send_signal(signal.SIGTERM)  # to the launcher alone, as `kill` does
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-3000:]
    line = "prunelab: terminated (SIGTERM); run the same command again to resume where it stopped"
    ours = [x for x in err.splitlines() if x.startswith("prunelab:")]
    assert ours == [f"{line} (jobs' logs: {sweep}/.submitit/)"], err[-3000:]
    assert [f.read_text() for f in sweep.glob("*/FAILED")] == [line + "\n"]
    logs = "".join(p.read_text() for p in sweep.glob(".submitit/*/*_log.err"))
    assert [x for x in logs.splitlines() if "prunelab:" in x] == [line], logs[-3000:]


def test_a_second_ctrl_c_cuts_a_launchers_wait_short_and_a_second_sigterm_does_not(monkeypatch):
    """While the launcher waits for its workers' marks: Ctrl-C again means now; a second
    SIGTERM (the process group's beside `kill`'s) must not turn the stop into an interrupt."""
    monkeypatch.setattr(stopping, "_STOPPING", threading.Event())
    stopping._STOPPING.set()  # the first signal's wait under way
    with pytest.raises(KeyboardInterrupt):
        stopping._forward(signal.SIGINT, None)
    assert stopping._forward(signal.SIGTERM, None) is None


def test_a_launchers_ack_folder_goes_even_after_a_sigkill(tmp_path, monkeypatch):
    """A launcher killed with SIGKILL left its folder in the temp dir (the CI machine had
    dozens); the next launcher removes those of this host's launchers that are gone, and keeps
    live ones, other hosts' (a temp dir on a shared file system) and names not of a pid."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    host = stopping._host()
    stale = tmp_path / f"prunelab-stop-{gone}-{host}-x1"
    kept = [
        tmp_path / f"prunelab-stop-{os.getpid()}-{host}-x2",  # live
        tmp_path / f"prunelab-stop-{gone}-{host}x-x3",  # another host's
        tmp_path / f"prunelab-stop-abc-{host}-x4",
        tmp_path / f"prunelab-stop-{2**64}-{host}-x5",  # no pid: os.kill raised OverflowError
        tmp_path / f"prunelab-stop-\u00b2-{host}-x6",  # a digit, not an ASCII one
    ]
    for folder in (stale, *kept):
        folder.mkdir()
        (folder / "busy-1").touch()
    monkeypatch.setattr(stopping.tempfile, "tempdir", str(tmp_path))
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # it acts only where SIGTERM is
    try:
        with stopping.sigterm_in_launcher():
            ours = Path(os.environ[stopping.ACK_DIR])
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert ours.parent == tmp_path and ours.name.startswith(f"prunelab-stop-{os.getpid()}-")
    assert not stale.exists() and all(p.exists() for p in kept) and not ours.exists()


_WORKER = """
import os, signal, sys, time, pathlib
acks = pathlib.Path(sys.argv[1])
def stop(signum, frame):  # as a job: its line said, then its ack
    (acks / f"got-{os.getpid()}").touch()
    (acks / str(os.getpid())).touch()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
(acks / f"ready-{os.getpid()}").touch()
time.sleep(60)
"""


def test_a_launchers_sigterm_goes_to_the_processes_running_jobs_only(tmp_path, monkeypatch):
    """An idle joblib worker killed by the forwarded SIGTERM broke joblib's pool, which then
    killed the busy ones before their lines; and submitit's job processes, which are no
    multiprocessing children, got none. Now: each process marked busy, and only those."""
    workers = [subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path)]) for _ in range(3)]
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("ready-*"))) < 3:
            assert time.monotonic() < deadline and all(w.poll() is None for w in workers)
            time.sleep(0.05)
        idle, *busy = workers
        for worker in busy:
            (tmp_path / f"busy-{worker.pid}").touch()
        monkeypatch.setenv(stopping.ACK_DIR, str(tmp_path))
        monkeypatch.setattr(stopping, "_STOPPING", threading.Event())
        monkeypatch.setattr(stopping, "_JOBS_SAID", threading.Event())
        monkeypatch.setattr(errors, "_TERMINATED", threading.Event())
        previous = signal.getsignal(signal.SIGTERM)
        try:
            with pytest.raises(errors.Terminated):
                stopping._forward(signal.SIGTERM, None)
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert sorted(p.name for p in tmp_path.glob("got-*")) == sorted(
            f"got-{w.pid}" for w in busy
        )
        assert idle.poll() is None and stopping.jobs_said()
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


@pytest.mark.parametrize(
    "stop, status, mark",
    [
        # Lightning's own stop, where submitit's handler stays: no exit code, was a success
        ("raise SIGTERMException()", 143, "prunelab: terminated (SIGTERM); run the same"),
        ("errors._TERMINATED.set(); raise RuntimeError('DataLoader worker (pid 7) is killed')",
         143, "prunelab: terminated (SIGTERM); run the same"),
        ("errors._INTERRUPTED.set(); raise AttributeError('partially initialized module')",
         130, "prunelab: interrupted; run the same"),
        # No signal: an error stays the job's error, and another's exit (submitit's requeue at
        # its time limit) passes unchanged.
        ("raise RuntimeError('a bug')", 1, "prunelab: error: RuntimeError: a bug (traceback in"),
        ("raise SystemExit(144)", 144, None),
    ],
)  # fmt: skip
def test_a_stop_surfacing_as_another_error_still_stops_the_sweep(
    stop, status, mark, make_cfg, monkeypatch
):
    """SIGTERM under submitit ends Lightning's fit with a SystemExit of no code (the job exited
    0, unmarked), and a stop can surface as another error (a DataLoader worker's death, a
    half-done import): the sweep went on to its next job, SIGTERM ignored from then on."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from prunelab import pipeline

    cfg = make_cfg("sparsity=0.5")
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True)

    def run(cfg):
        exec(stop, {"errors": errors, "SIGTERMException": SIGTERMException})

    monkeypatch.setattr(pipeline, "run", run)
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stopped:
            pipeline._main(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
        errors._TERMINATED.clear()
        errors._INTERRUPTED.clear()
    assert stopped.value.code == status
    if mark is None:
        assert not (out / "FAILED").exists()
    else:
        assert (out / "FAILED").read_text().startswith(mark)
        assert (out / "error.log").is_file() == ("raise SIGTERM" not in stop)


def test_a_jobs_repeated_sigterm_changes_nothing(monkeypatch):
    """The process group's SIGTERM, a launcher's and submitit's controller's can all reach a
    job, and Lightning's teardown puts our handler back: a repeat raised again mid-clean-up."""
    monkeypatch.setattr(errors, "_TERMINATED", threading.Event())
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(errors.Terminated):
            errors.on_sigterm(signal.SIGTERM, None)
        assert errors.on_sigterm(signal.SIGTERM, None) is None
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_job_locks_folder_must_be_this_users_own(tmp_path, monkeypatch):
    """A shared temp dir: another user may have made prunelab-<uid> first (or a link)."""
    monkeypatch.setattr("prunelab.pipeline.tempfile.tempdir", str(tmp_path))
    folder = tmp_path / f"prunelab-{os.getuid()}"
    folder.mkdir(mode=0o700)
    assert job_lock(tmp_path / "job").lock_file.startswith(str(folder))
    folder.chmod(0o777)
    with pytest.raises(errors.PrunelabError, match="not a folder of this user's"):
        job_lock(tmp_path / "job")
    folder.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    folder.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(errors.PrunelabError, match="TMPDIR"):
        job_lock(tmp_path / "job")


def _entry_with(stop: str, entry: str, tmp_path: Path) -> str:
    """Python code running `entry` (train.py's checks, prunelab.evaluate's run, the report's
    build) with the function defined in `stop` put in place of its work."""
    return (
        stop
        + {
            "train": "import prunelab.cli\nprunelab.cli.check_argv = stop\n"
            f"import runpy, sys\nsys.argv = ['train.py', 'sparsity=0.5']\n"
            f"runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n",
            "evaluate": "import sys, prunelab.evaluate as e\ne.run = stop\n"
            f"sys.exit(e.main(['ckpt={tmp_path}']))\n",
            "report": "import sys, prunelab.report.writer as w\nw.build = stop\n"
            "from prunelab.report.__main__ import main\n"
            f"sys.exit(main([{str(tmp_path)!r}]))\n",
        }[entry]
    )


def _run_code(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -c code` with SIGINT and SIGTERM as at a terminal (see start_train)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        preexec_fn=default_signals,
    )


@pytest.mark.parametrize("entry", ["train", "evaluate", "report"])
def test_ctrl_c_outside_a_job_is_one_line_too(entry, tmp_path):
    """Ctrl-C while train.py checks its command line (seconds of composing and importing), or
    in prunelab.evaluate or prunelab.report: one line and status 130, no traceback."""
    stop = "def stop(*args, **kwargs):\n    raise KeyboardInterrupt\n"
    proc = _run_code(_entry_with(stop, entry, tmp_path))
    assert proc.returncode == 130, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunelab: interrupted"), proc.stderr


@pytest.mark.parametrize("signum, status", [("SIGINT", 130), ("SIGTERM", 143), (None, 1)])
def test_a_stop_inside_an_import_of_the_checks_is_still_one_line(signum, status, tmp_path):
    """Ctrl-C landing inside an import (torch's, seconds of train.py's checks) can surface as
    another error of the half-imported module: that was a traceback. Without a signal, such an
    error is a bug, and stays a traceback."""
    kill = f"os.kill(os.getpid(), signal.{signum})" if signum else "raise KeyboardInterrupt"
    stop = (
        "import os, signal\ndef stop(*args, **kwargs):\n"
        f"    try:\n        {kill}\n    except KeyboardInterrupt:\n"
        "        raise AttributeError(\"partially initialized module 'torch'\")\n"
    )
    proc = _run_code(_entry_with(stop, "train", tmp_path))
    assert proc.returncode == status, proc.stderr[-3000:]
    what = {"SIGINT": "interrupted", "SIGTERM": "terminated (SIGTERM)"}.get(signum)
    line = f"prunelab: {what} before any job started"
    if what is None:
        line = "AttributeError: partially initialized module 'torch'"
    assert proc.stderr.strip().splitlines()[-1] == line, proc.stderr


@pytest.mark.parametrize(
    "stop, status, line",
    [
        ("raise KeyboardInterrupt", 130, "prunelab: interrupted before any job started"),
        ("os.kill(os.getpid(), signal.SIGTERM)", 143,
         "prunelab: terminated (SIGTERM) before any job started"),
        ("raise RuntimeError('a launcher bug')", 1, "RuntimeError: a launcher bug"),
    ],
)  # fmt: skip
def test_a_sweep_stopped_before_its_first_job_says_so_and_leaves_no_folder(
    stop, status, line, tmp_path
):
    """train.py has claimed `multirun_sweeps/<time>` (prunelab.sweep_dir) when Hydra starts the
    sweep: stopped there, it exited 130 without a word and left that folder, empty."""
    code = (
        f"import os, signal\ndef stop(*args, **kwargs):\n    {stop}\n"
        "import hydra._internal.hydra as h\nh.Hydra.multirun = stop\n"
        f"import runpy, sys\nsys.argv = ['train.py', '-m', 'sparsity=0.2,0.5', "
        f"'paths.data_dir={DATA}']\n"
        f"runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n"
    )
    proc = _run_code(code, cwd=tmp_path)
    assert proc.returncode == status, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == line, proc.stderr[-3000:]
    assert not list((tmp_path / "multirun_sweeps").iterdir())


@pytest.mark.parametrize("where", ["run", "run_job"])
def test_a_single_run_stopped_outside_its_job_says_whether_the_job_had_run(where, tmp_path):
    """Ctrl-C in Hydra's own code around a single run's job (no sweep): it said nothing."""
    stop = "raise KeyboardInterrupt"
    if where == "run_job":  # the job runs, then the stop lands as Hydra finishes it
        stop = "real(*args, **kwargs)\n    raise KeyboardInterrupt"
    code = (
        "import hydra.core.utils as u\nimport hydra._internal.hydra as h\n"
        "real = u.run_job\n"
        f"def stop(*args, **kwargs):\n    {stop}\n"
        + ("h.Hydra.run = stop\n" if where == "run" else "h.run_job = stop\n")
        + "import runpy, sys\nsys.argv = ['train.py', 'sparsity=0.5', 'experiment=smoke', "
        f"'paths.data_dir={DATA}', 'paths.cache_dir={tmp_path / 'cache'}', "
        f"'hydra.run.dir={tmp_path / 'run'}']\n"
        f"runpy.run_path({str(ROOT / 'train.py')!r}, run_name='__main__')\n"
    )
    proc = _run_code(code, cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr[-3000:]
    line = "before the job started" if where == "run" else "after the job ended"
    assert proc.stderr.strip().splitlines()[-1] == f"prunelab: interrupted {line}", proc.stderr
    assert (tmp_path / "run" / "results.json").is_file() == (where == "run_job")


@pytest.mark.parametrize("entry", ["train", "evaluate", "report"])
def test_sigterm_outside_a_job_is_one_line_too(entry, tmp_path):
    """SIGTERM while train.py checks its command line (it died silent), or in
    prunelab.evaluate or prunelab.report: one line and status 143."""
    stop = (
        "import os, signal\ndef stop(*args, **kwargs):\n    os.kill(os.getpid(), signal.SIGTERM)\n"
    )
    proc = _run_code(_entry_with(stop, entry, tmp_path))
    assert proc.returncode == 143, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    start = "prunelab: terminated (SIGTERM)" + (" before any job" if entry == "train" else "; ")
    assert len(lines) == 1 and lines[0].startswith(start), lines


@pytest.mark.parametrize("entry", ["evaluate", "report"])
def test_ctrl_c_inside_an_import_is_one_line_whatever_error_it_leaves(entry, tmp_path):
    """Ctrl-C in the first second lands inside numpy's or matplotlib's import, which can leave
    a half-imported module raising RecursionError or AttributeError instead: still the
    interrupt's, one line and status 130. Any other error stays a traceback (a bug)."""
    stop = (
        "import os, signal\n"
        "def stop(*args, **kwargs):\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    except KeyboardInterrupt:\n"
        "        raise RecursionError('maximum recursion depth exceeded') from None\n"
    )
    proc = _run_code(_entry_with(stop, entry, tmp_path))
    assert proc.returncode == 130, proc.stderr[-3000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("prunelab: interrupted"), proc.stderr
    bug = "def stop(*args, **kwargs):\n    return 1 / 0\n"
    proc = _run_code(_entry_with(bug, entry, tmp_path))
    assert "ZeroDivisionError" in proc.stderr and proc.returncode == 1
