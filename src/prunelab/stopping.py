"""SIGTERM or SIGINT to the process that launches a sweep (`kill <pid>`, Ctrl-C): the whole
sweep stops, each started job marked FAILED.

By default, at SIGTERM that process died at once, silent, and joblib's workers (or submitit's
job processes) ran their jobs on, then sat idle holding their memory and the terminal's pipes;
at a SIGINT that reached it alone (`kill -INT <pid>`) joblib's abort killed the workers mid-job,
unmarked, and even a terminal's Ctrl-C, which reaches every worker, raced that abort. Now it
passes the signal on to the processes running a job (each marks itself busy in this process's
ack folder; SIGINT only to those it has not reached within SEEN_S), waits (GRACE_S at most)
until each has marked its job FAILED and said so, or ended, and then stops as a job does
(prunelab.errors.Terminated, KeyboardInterrupt); joblib then ends its workers. Idle workers get
no signal: one ending breaks joblib's pool, which then kills every worker, lines unsaid. A job
that runs in this process (the basic launcher) takes the signal as its own.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import socket
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
_PREFIX = "prunelab-stop-"  # then the launcher's pid and host
_STOPPING = threading.Event()
_JOBS_SAID = threading.Event()  # the jobs running in other processes have said the stop line


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
    """Remove the ack folders of this host's launchers that are gone (a SIGKILL skips their
    clean-up); those of other hosts (a temp dir on a shared file system) are theirs to judge."""
    here = f"-{_host()}-"
    for folder in temp.glob(f"{_PREFIX}*{here}*"):
        pid, _, rest = folder.name[len(_PREFIX) :].partition("-")
        if pid.isascii() and pid.isdigit() and f"-{rest}".startswith(here):
            try:
                gone = not _alive(int(pid))
            except OverflowError:  # too large for a pid: not ours
                continue
            if gone:
                shutil.rmtree(folder, ignore_errors=True)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def _marked(acks: Path, prefixes: Sequence[str]) -> set[int]:
    """The pids that wrote `<prefix><pid>` in the ack folder, for any of `prefixes`."""
    pids = set()
    for prefix in prefixes:
        for mark in acks.glob(f"{prefix}[0-9]*"):
            pid = mark.name[len(prefix) :]
            if pid.isascii() and pid.isdigit():
                pids.add(int(pid))
    return pids


def _running(pid: int, children: dict[int, multiprocessing.process.BaseProcess]) -> bool:
    # A child of this process (joblib's worker) stays a zombie until reaped: ask its handle.
    child = children.get(pid)
    return child.is_alive() if child is not None else _alive(pid)


def _wait(busy: Sequence[int], children: dict, prefix: str, limit: float) -> list[int]:
    """Wait (`limit` seconds at most) until each process that was running a job has written
    `<prefix><pid>` (see prunelab.errors._note) or ended; the processes still waited for."""
    acks = _acks()
    deadline = time.monotonic() + limit
    while True:
        waiting = [
            p for p in busy if not (acks / f"{prefix}{p}").exists() and _running(p, children)
        ]
        if not waiting or time.monotonic() >= deadline:
            return waiting
        time.sleep(0.02)


def _signal(pids: Sequence[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:  # ended meanwhile
            pass


def _forward(signum: int, frame: object) -> None:
    if _STOPPING.is_set():
        if signum == signal.SIGINT:  # a second Ctrl-C while waiting: stop now
            raise KeyboardInterrupt
        return  # a second SIGTERM (the process group's beside `kill`'s): the first one waits
    _STOPPING.set()
    acks = _acks()
    children = {c.pid: c for c in multiprocessing.active_children()}  # joblib's (loky's) workers
    # The processes running a job now, whoever started them (joblib's workers, submitit's tasks,
    # children of its controllers), as they marked themselves: a job's busy-<pid> goes as it
    # unwinds, before it says its line. A job in this process takes the signal as its own.
    busy = sorted(p for p in _marked(acks, _RUNNING) if p != os.getpid() and _running(p, children))
    if signum == signal.SIGTERM:
        _signal(busy, signal.SIGTERM)  # a job ignores a second one (on_sigterm)
    else:  # a second SIGINT would cut short a job's hooks: only where the first did not land
        _signal(_wait(busy, children, "seen-", SEEN_S), signal.SIGINT)
    _wait(busy, children, "", GRACE_S)
    if _marked(acks, ("",)) & set(busy):
        _JOBS_SAID.set()  # they said the stop line themselves
    (on_sigterm if signum == signal.SIGTERM else on_sigint)(signum, frame)


def jobs_said() -> bool:
    """Whether the stop reached processes' running jobs, which said its line themselves."""
    return _JOBS_SAID.is_set()


@contextmanager
def sigterm_in_launcher() -> Iterator[None]:
    """While a sweep (or single job) launched from this process runs, SIGTERM and Ctrl-C stop it
    and its worker processes' jobs, each marked FAILED (see the module's doc)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    try:
        _remove_stale(Path(tempfile.gettempdir()))
        acks = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-{_host()}-")
    except OSError:  # no writable temp dir: the signals work as by default
        acks = None
    if acks is None:
        yield
        return
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
