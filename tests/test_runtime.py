"""Process-wide settings: the per-step GPU probe is skipped only where there is no GPU."""

import os

import lightning  # noqa: F401  (sets torch's NVML-based CUDA check, as in every job)
import torch

from prunelab.runtime import NVML_CHECK, cheap_cuda_check


def test_cpu_only_machine_switches_to_the_plain_check(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cheap_cuda_check()
    assert os.environ[NVML_CHECK] == "0"
    assert not cheap_cuda_check()  # once is enough


def test_machine_with_a_gpu_keeps_the_fork_safe_check(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not cheap_cuda_check()
    assert os.environ[NVML_CHECK] == "1"


def test_a_check_the_user_chose_is_left_alone(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "0")
    assert not cheap_cuda_check()
    monkeypatch.delenv(NVML_CHECK)
    assert not cheap_cuda_check()
    assert NVML_CHECK not in os.environ


def test_this_machine_gets_the_same_answer_either_way(monkeypatch):
    monkeypatch.setenv(NVML_CHECK, "1")
    before = torch.cuda.is_available()
    cheap_cuda_check()
    assert torch.cuda.is_available() == before
