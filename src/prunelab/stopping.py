"""SIGTERM to the process that launches a sweep (`kill <pid>`): the whole sweep stops as at Ctrl-C.

By default that process died at once, silent, and joblib's workers ran their jobs on, then sat
idle holding their memory and the terminal's pipes. Now it passes SIGTERM on to its worker
processes, waits (GRACE_S at most) until each has marked its job FAILED or ended, and then stops
as a job does (prunelab.errors.Terminated); joblib then ends the workers. A job that runs in
this process (the basic launcher) takes the signal as its own.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prunelab.errors import ACK_DIR, on_sigterm

GRACE_S = 20.0  # a job marks itself first thing on SIGTERM: seconds only under heavy load


def _forward(signum: int, frame: object) -> None:
    children = multiprocessing.active_children()  # joblib's (loky's) workers among them
    for child in children:
        try:
            os.kill(child.pid, signal.SIGTERM)  # type: ignore[arg-type]
        except OSError:  # ended meanwhile
            pass
    acks = Path(os.environ.get(ACK_DIR, "/nonexistent"))
    deadline = time.monotonic() + GRACE_S
    # A worker running a job says so (busy-<pid>) and acknowledges once it has marked it FAILED.
    while time.monotonic() < deadline and any(
        c.is_alive() and (acks / f"busy-{c.pid}").exists() and not (acks / str(c.pid)).exists()
        for c in children
    ):
        time.sleep(0.02)
    on_sigterm(signum, frame)


@contextmanager
def sigterm_in_launcher() -> Iterator[None]:
    """While a sweep (or single job) launched from this process runs, SIGTERM stops it and its
    worker processes' jobs, each marked FAILED (see the module's doc)."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    acks = tempfile.mkdtemp(prefix="prunelab-stop-")
    os.environ[ACK_DIR] = acks  # the workers inherit it
    previous = signal.signal(signal.SIGTERM, _forward)
    try:
        yield
    finally:
        os.environ.pop(ACK_DIR, None)
        shutil.rmtree(acks, ignore_errors=True)
        if signal.getsignal(signal.SIGTERM) is _forward:  # on_sigterm ignores a second one
            signal.signal(signal.SIGTERM, previous)
