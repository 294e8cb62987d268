"""Helpers for the tests that run, kill and rerun sweeps in subprocesses."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import DATA, ROOT

VOLATILE = ("latency/", "time/")  # wall-clock measurements differ between runs by nature


def stable_metrics(result: dict) -> dict:
    """A results.json without its wall-clock keys: what two runs must agree on."""
    return {k: v for k, v in result.items() if not k.startswith(VOLATILE)}


def killable_sweep_args(sweep: Path, cache: Path) -> list[str]:
    """A two-job smoke sweep slow enough to kill mid-job."""
    # Three 1-epoch-long fine-tuning epochs on 2,048 images: long enough to kill one mid-way.
    return [
        "-m",
        "model=simplecnn",
        "sparsity=0.5,0.8",
        "experiment=smoke",
        "data.train_size=2048",
        "finetune.max_epochs=3",
        f"hydra.sweep.dir={sweep}",
        f"paths.cache_dir={cache}",
        f"paths.data_dir={DATA}",
    ]


def csv_rows(path: Path) -> list[tuple]:
    """A metrics.csv's rows as sorted (column, value) pairs of their non-empty cells."""
    with open(path, newline="") as fh:
        return [tuple(sorted((k, v) for k, v in row.items() if v)) for row in csv.DictReader(fh)]


def csv_rows_of(text: str, tmp_path: Path) -> list[tuple]:
    """csv_rows of a CSV given as text."""
    path = tmp_path / "expected.csv"
    path.write_text(text)
    return csv_rows(path)


def default_signals() -> None:
    """SIGINT and SIGTERM back to their defaults (a background runner may ignore them)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def start_train(
    cmd: list[str], *, cwd: Path = ROOT, terminal: bool = False, group: bool = False, **streams
) -> subprocess.Popen:
    """Start train.py with `cmd` (text streams; `streams` as for Popen, default piped).

    terminal: SIGINT raises KeyboardInterrupt in it, as at a terminal: a suite started in the
    background (`make test &`) passes its children SIGINT as ignored, and Python then never
    raises it (SIGTERM is reset too, should the runner ignore it). group: in a process group of
    its own, as a terminal's Ctrl-C reaches all of it.
    """
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **streams}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *cmd],
        cwd=cwd,
        text=True,
        start_new_session=group,
        preexec_fn=default_signals if terminal else None,
        **streams,
    )


def wait_for(child: subprocess.Popen, where: Path, pattern: str, timeout: float = 300) -> bool:
    """Wait until a file matching `pattern` appears in `where` (True) or `child` ends (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline and child.poll() is None:
        if list(where.glob(pattern)):
            return True
        time.sleep(0.02)
    return False


def ctrl_c_when(
    cmd: list[str], pattern: str, where: Path, cwd: Path = ROOT, sig: int = signal.SIGINT
) -> tuple[int, str]:
    """Run train.py as from a terminal, Ctrl-C it (or send `sig`) once `pattern` appears in
    `where`; return its exit status and stderr."""
    child = start_train(cmd, cwd=cwd, terminal=True, stdout=subprocess.DEVNULL)
    if wait_for(child, where, pattern):
        child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    return child.returncode, err


def kill_when(cmd: list[str], pattern: str, where: Path) -> str:
    """Run train.py with `cmd`, SIGKILL it once a file matching `pattern` appears in `where`;
    return what it wrote (stdout and stderr)."""
    err = tempfile.TemporaryFile(mode="w+")
    child = start_train(cmd, stdout=err, stderr=subprocess.STDOUT)
    if wait_for(child, where, pattern):
        child.send_signal(signal.SIGKILL)
    if child.poll() is None:
        child.kill()
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"the run ended before {pattern} appeared"
    err.seek(0)
    return err.read()


def assert_one_line_failure(proc: subprocess.CompletedProcess, expected: str) -> None:
    """`proc` failed with one `prunelab: error:` line holding `expected`, and no traceback."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1 and lines[0].startswith("prunelab: error:"), proc.stderr[-3000:]
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
