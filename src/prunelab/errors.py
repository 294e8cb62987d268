"""Errors that reach the user as one clear line instead of a traceback, and warnings."""

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class PrunelabError(Exception):
    """A problem the user can fix (bad input, missing data, diverged training)."""


class UsageError(PrunelabError):
    """A malformed command line (exit status 2, as argparse's); other errors exit with 1."""


def instantiation_message(err: Exception) -> str:
    """One line for a Hydra InstantiationException: a method's own check, else target, cause."""
    cause = err.__cause__
    if isinstance(cause, PrunelabError):  # a bad knob of a config group (e.g. pruning.every)
        return str(cause)
    # Hydra's first line names the target, the cause says what was wrong with it.
    where = str(err).splitlines()[0].rstrip(": ")
    why = f"{type(cause).__name__}: {cause}".splitlines()[0] if cause else ""
    return where + (f": {why}" if why else "")


# The console line's own "prunelab: warning: " says what the log record's name and level say.
_PREFIXES = ("prunelab: warning: ", "prunelab: error: ", "prunelab: ")


def to_log_file(line: str, level: int = logging.WARNING) -> None:
    """Append `line` to the job's log file (Hydra's train.log), not to the console again."""
    text = next((line[len(p) :] for p in _PREFIXES if line.startswith(p)), line)
    record = logging.LogRecord("prunelab", level, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def say(line: str, level: int = logging.WARNING) -> None:
    """`line` on stderr once, and in the job's train.log."""
    # One write: parallel workers' lines (joblib's, stopped at once) then do not run together.
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    to_log_file(line, level)


def warn(text: str) -> None:
    """`prunelab: warning: <text>` on stderr, and in the job's train.log."""
    say(f"prunelab: warning: {text}")


@contextmanager
def noting_interrupts() -> Iterator[threading.Event]:
    """Ctrl-C raises KeyboardInterrupt as ever, and is noted in the event yielded: one landing
    inside an import (numpy's, torch's) can surface as another error of the half-imported
    module (RecursionError, AttributeError), which is then the interrupt's, not a bug."""
    noted = threading.Event()

    def note(signum: int, frame: object) -> None:
        noted.set()
        raise KeyboardInterrupt

    ours = threading.current_thread() is threading.main_thread()
    ours = ours and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, note) if ours else None
    try:
        yield noted
    finally:
        if ours:
            signal.signal(signal.SIGINT, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, `kill`, a scheduler stopping the job), raised where the job stands.

    A KeyboardInterrupt, so Lightning's fit cleans up as after Ctrl-C; by itself Lightning
    turns SIGTERM into a SystemExit without a code, which left a killed job exiting 0, silent.
    """


_TERMINATED = threading.Event()
_INTERRUPTED = threading.Event()  # Ctrl-C reached the running job (on_sigint)
# Set as a job begins in this process (prunelab.pipeline.main): a stop outside any job then
# came before the first or after one had ended (train.py's line says which).
JOB_BEGUN = threading.Event()


# What the running job does first on SIGTERM (writes its FAILED mark): see on_stop.
_ON_STOP: list[Callable[[], None]] = []
# Set by a launching process (prunelab.stopping): where a job says it has marked itself.
ACK_DIR = "PRUNELAB_STOP_ACK_DIR"
_SUBMITIT_LOCAL = "SUBMITIT_LOCAL_JOB_ID"  # set in the job processes of submitit's local executor


def _run_stop_hooks() -> None:
    for hook in _ON_STOP:
        try:
            hook()
        except Exception:  # the mark is written again as the job ends; never fail here
            pass


def _note(prefix: str) -> None:
    """Tell a launching process (prunelab.stopping) how far this one is in stopping its job:
    `seen-<pid>` (the signal reached it), `<pid>` (its job is marked FAILED and has said so)."""
    acks = os.environ.get(ACK_DIR)
    if acks:
        try:
            (Path(acks) / f"{prefix}{os.getpid()}").touch()
        except OSError:
            pass


def on_sigint(signum: int, frame: object) -> None:
    """The Ctrl-C handler of a job: its stop hooks (the FAILED mark), then KeyboardInterrupt."""
    # Ctrl-C reaches joblib's workers and their launcher at once, and the launcher's abort
    # kills the workers: the mark goes in before anything else can be cut short. `seen-`: the
    # launcher then does not pass on a second SIGINT, which would cut short this one's hooks.
    _note("seen-")
    _INTERRUPTED.set()
    _run_stop_hooks()
    raise KeyboardInterrupt


def on_sigterm(signum: int, frame: object) -> None:
    """The SIGTERM handler of a job: its stop hooks (the FAILED mark), then Terminated."""
    if _TERMINATED.is_set():  # a repeat (the group's, a launcher's, submitit's controller's):
        return  # Lightning's teardown puts this handler back, and the job is stopping already
    _TERMINATED.set()
    # Once: a second SIGTERM (the launcher's forwarded one beside the process group's) would
    # cut short the clean-up that writes the FAILED mark; the process is ending anyway.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _run_stop_hooks()
    raise Terminated()


def stop_said() -> None:
    """Tell a launching process that this job has said its stop line (after its FAILED mark):
    a joblib launcher waits for this before it ends, and kills, its workers."""
    _note("")


def stopped() -> bool:
    """Whether SIGTERM or Ctrl-C has reached the job running now (sigterm_as_interrupt): a stop
    can surface as another error, raised as the job unwinds (a DataLoader worker's death, a
    half-done import), and is still a stop."""
    return _TERMINATED.is_set() or _INTERRUPTED.is_set()


def stop_status() -> tuple[str, int]:
    """What stopped the process and its exit status: ('interrupted', 130) for Ctrl-C,
    ('terminated (SIGTERM)', 143) for SIGTERM (see sigterm_as_interrupt)."""
    return ("terminated (SIGTERM)", 143) if _TERMINATED.is_set() else ("interrupted", 130)


def stop_line(rest: str) -> tuple[str, int]:
    """The line and exit status for Ctrl-C or SIGTERM: 'prunelab: interrupted; <rest>' and 130,
    or 'prunelab: terminated (SIGTERM); <rest>' and 143."""
    what, status = stop_status()
    return f"prunelab: {what}; {rest}", status


@contextmanager
def on_stop(hook: Callable[[], None]) -> Iterator[None]:
    """Within this block SIGTERM and Ctrl-C run `hook` first thing (a job's FAILED mark, written
    before a parallel launcher may end the process), then stop the job (sigterm_as_interrupt)."""
    _ON_STOP.append(hook)
    try:
        with busy():
            yield
    finally:
        _ON_STOP.remove(hook)


@contextmanager
def busy() -> Iterator[None]:
    """Within this block the process is busy with a job: `busy-<pid>` in a launching process's
    ack folder, which at a stop passes the signal to busy processes only and waits for them (an
    idle worker has no job to mark, and killing one broke joblib's pool: it then killed all)."""
    acks = os.environ.get(ACK_DIR)
    mark = Path(acks) / f"busy-{os.getpid()}" if acks else None
    try:
        if mark is not None:
            mark.touch()
    except OSError:
        mark = None
    try:
        yield
    finally:
        if mark is not None:
            mark.unlink(missing_ok=True)


def _replaceable(handler: object) -> bool:
    """Whether SIGTERM's handler is ours to replace: the default, or submitit's bypass in a
    submitit_local job. On a cluster the bypass keeps the scheduler's SIGTERM from ending a job
    that submitit requeues; locally nothing is requeued, and under it a launcher's SIGTERM
    ended the job with Lightning's exit status 0, unmarked."""
    if handler in (signal.SIG_DFL, None):
        return True
    func = getattr(handler, "__func__", handler)
    submitit = str(getattr(func, "__module__", "")).startswith("submitit")
    return submitit and getattr(func, "__name__", "") == "bypass" and _SUBMITIT_LOCAL in os.environ


def note_sigterm() -> None:
    """Note a SIGTERM that stopped the job by another's handler (Lightning's, at a cluster's
    SIGTERM): stop_status then says so."""
    _TERMINATED.set()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a job runs, SIGTERM stops it as Ctrl-C does (one line, a FAILED mark, a non-zero
    exit). A handler someone else installed (submitit's on a cluster, see _replaceable) stays."""
    _TERMINATED.clear()
    _INTERRUPTED.clear()
    main = threading.current_thread() is threading.main_thread()
    ours = main and _replaceable(signal.getsignal(signal.SIGTERM))
    previous = signal.signal(signal.SIGTERM, on_sigterm) if ours else None
    # Ctrl-C as before (KeyboardInterrupt), the stop hooks first (see on_stop).
    ctrl_c = main and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ctrl_c:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        if ctrl_c:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if ours and not _TERMINATED.is_set():  # else ignored until the job has exited
            signal.signal(signal.SIGTERM, previous)
