"""SIGTERM or SIGINT to the process that launches a sweep (`kill <pid>`, Ctrl-C): the whole
sweep stops, each started job marked FAILED.

By default, at SIGTERM that process died at once, silent, and joblib's workers ran their jobs
on, then sat idle holding their memory and the terminal's pipes; at a SIGINT that reached it
alone (`kill -INT <pid>`) joblib's abort killed the workers mid-job, unmarked, and even a
terminal's Ctrl-C, which reaches every worker, raced that abort. Now it passes the signal on to
its worker processes (SIGINT only to those it has not reached within SEEN_S), waits (GRACE_S at
most) until each has marked its job FAILED and said so, or ended, and then stops as a job does
(prunelab.errors.Terminated, KeyboardInterrupt); joblib then ends the workers. A job that runs
in this process (the basic launcher) takes the signal as its own.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from prunelab.errors import ACK_DIR, on_sigint, on_sigterm

GRACE_S = 20.0  # a job marks itself first thing on SIGTERM: seconds only under heavy load
SEEN_S = 1.0  # a terminal's Ctrl-C reaches a worker's handler within this, unless it is stuck

# A job runs in the worker (busy-), or has begun (seen-) or ended (<pid>) stopping on Ctrl-C.
_RUNNING = ("busy-", "seen-", "")
_PREFIX = "prunelab-stop-"  # then the launcher's pid
_STOPPING = threading.Event()
_JOBS_SAID = threading.Event()  # a worker was running a job: it has said the stop line itself


def _acks() -> Path:
    return Path(os.environ.get(ACK_DIR, "/nonexistent"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def _remove_stale(temp: Path) -> None:
    """Remove the ack folders of launchers that are gone (a SIGKILL skips their clean-up)."""
    for folder in temp.glob(f"{_PREFIX}*-*"):
        pid = folder.name[len(_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _wait(busy: Sequence[multiprocessing.process.BaseProcess], prefix: str, limit: float):
    """Wait (`limit` seconds at most) until each child that was running a job has written
    `<prefix><pid>` (see prunelab.errors._note) or ended; the children still waited for."""
    acks = _acks()
    deadline = time.monotonic() + limit
    while True:
        waiting = [c for c in busy if c.is_alive() and not (acks / f"{prefix}{c.pid}").exists()]
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(0.02)


def _signal(children: Sequence[multiprocessing.process.BaseProcess], signum: int) -> None:
    for child in children:
        try:
            os.kill(child.pid, signum)  # type: ignore[arg-type]
        except OSError:  # ended meanwhile
            pass


def _forward(signum: int, frame: object) -> None:
    if _STOPPING.is_set():
        if signum == signal.SIGINT:  # a second Ctrl-C while waiting: stop now
            raise KeyboardInterrupt
        return  # a second SIGTERM (the process group's beside `kill`'s): the first one waits
    _STOPPING.set()
    children = multiprocessing.active_children()  # joblib's (loky's) workers among them
    acks = _acks()
    # Those running a job now: a job's busy-<pid> goes as it unwinds, before it says its line.
    busy = [c for c in children if any((acks / f"{m}{c.pid}").exists() for m in _RUNNING)]
    if busy:
        _JOBS_SAID.set()  # each job running says the stop line itself
    if signum == signal.SIGTERM:
        _signal(children, signal.SIGTERM)  # a job ignores a second one (on_sigterm)
    else:  # a second SIGINT would cut short a job's hooks: only where the first did not land
        _signal(_wait(busy, "seen-", SEEN_S), signal.SIGINT)
    _wait(busy, "", GRACE_S)
    (on_sigterm if signum == signal.SIGTERM else on_sigint)(signum, frame)


def jobs_said() -> bool:
    """Whether the stop reached worker processes' running jobs, which said its line themselves."""
    return _JOBS_SAID.is_set()


@contextmanager
def sigterm_in_launcher() -> Iterator[None]:
    """While a sweep (or single job) launched from this process runs, SIGTERM and Ctrl-C stop it
    and its worker processes' jobs, each marked FAILED (see the module's doc)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    _remove_stale(Path(tempfile.gettempdir()))
    acks = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    os.environ[ACK_DIR] = acks  # the workers inherit it
    _STOPPING.clear()
    _JOBS_SAID.clear()
    previous = signal.signal(signal.SIGTERM, _forward)
    ctrl_c = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ctrl_c:
        signal.signal(signal.SIGINT, _forward)
    try:
        yield
    finally:
        os.environ.pop(ACK_DIR, None)
        shutil.rmtree(acks, ignore_errors=True)
        if signal.getsignal(signal.SIGTERM) is _forward:  # on_sigterm ignores a second one
            signal.signal(signal.SIGTERM, previous)
        if ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)
