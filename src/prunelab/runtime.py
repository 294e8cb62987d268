"""Process-wide settings applied once before a job trains or evaluates."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch

NVML_CHECK = "PYTORCH_NVML_BASED_CUDA_CHECK"


def cheap_cuda_check() -> bool:
    """On a machine without a GPU, stop torch re-probing NVML at every optimizer step.

    Importing Lightning sets `PYTORCH_NVML_BASED_CUDA_CHECK=1` (so that looking for a GPU never
    initialises CUDA before a fork). Under it, `torch.cuda.is_available()` opens the NVML
    library again on every call until CUDA is initialised, which on a CPU-only machine is never,
    and Adam calls it on every step (its CUDA-graph capture check): 0.17 ms of a 0.71 ms Adam
    step on SimpleCNN here, about 0.8 % of its 20 ms training step. With no GPU there is no
    CUDA state to protect, so torch's plain check (`cudaGetDeviceCount`, which finds no
    device) is used from then on. Returns True when the setting was changed; a machine with a
    GPU is left as it is.
    """
    if os.environ.get(NVML_CHECK) != "1" or torch.cuda.is_available():
        return False
    os.environ[NVML_CHECK] = "0"
    return True


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, `kill`, a scheduler stopping the job), raised where the job stands.

    A KeyboardInterrupt, so Lightning's fit cleans up as after Ctrl-C; by itself Lightning
    turns SIGTERM into a SystemExit without a code, which left a killed job exiting 0, silent.
    """


_TERMINATED = threading.Event()


def _terminate(signum: int, frame: object) -> None:
    _TERMINATED.set()
    raise Terminated()


def was_terminated() -> bool:
    """Whether SIGTERM stopped the job now running (see sigterm_as_interrupt)."""
    return _TERMINATED.is_set()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While a job runs, SIGTERM stops it as Ctrl-C does (one line, a FAILED mark, a non-zero
    exit). A handler someone else installed (submitit's, which requeues on a cluster) stays."""
    _TERMINATED.clear()
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
