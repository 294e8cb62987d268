"""Shared pieces of the benchmarks suite: the job's parts, clocks, paired ratios, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from prunelab.build import build_net, data_spec
from prunelab.data.base import ImageDataModule

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
MODELS = ("simplecnn", "resnetsmall")
_START = time.perf_counter()


def progress(message: str) -> None:
    """One progress line with the seconds since the suite started (the full run takes minutes)."""
    print(f"[{time.perf_counter() - _START:6.1f} s] {message}", flush=True)


def conf(name: str):
    """A config file of conf/ as a DictConfig (`name` without .yaml), e.g. 'trainer/default'."""
    return OmegaConf.load(CONF / f"{name}.yaml")


def default_device() -> torch.device:
    """The GPU when there is one (as the job's accelerator=auto picks it), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read after it counts that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def datamodule(train_size: int | None = None) -> ImageDataModule:
    """The default job's DataModule (conf/data/fashion_mnist.yaml), set up on the repo's data/."""
    cfg = conf("data/fashion_mnist")
    cfg.root = str(ROOT / "data")
    cfg.shuffle_seed = 0
    if train_size is not None:
        cfg.train_size = train_size
    dm = instantiate(cfg)
    dm.prepare_data()
    dm.setup()
    return dm


def net_for(model: str, dm: ImageDataModule, seed: int = 0) -> torch.nn.Module:
    """A freshly initialised net of conf/model/<model>.yaml for `dm`'s images (seeded)."""
    torch.manual_seed(seed)
    return build_net(conf(f"model/{model}"), data_spec(dm))


def finetune_optimizer():
    """The fine-tuning optimizer factory of conf/config.yaml (Adam 1e-4, weight decay 1e-4)."""
    return instantiate(conf("config").finetune.optimizer)


@dataclass
class Ratio:
    """A ratio from paired rounds: median and quartiles of the per-round ratios."""

    median: float
    q1: float
    q3: float
    n: int

    def text(self, digits: int = 3) -> str:
        """'0.981 (IQR 0.970-0.990, n=8)'."""
        return (
            f"{self.median:.{digits}f} (IQR {self.q1:.{digits}f}-{self.q3:.{digits}f}, n={self.n})"
        )


def paired_ratio(numerator: list[float], denominator: list[float]) -> Ratio:
    """Median of numerator[i] / denominator[i]: each pair was measured in the same round.

    Pairing cancels load that drifts slower than a round; the median discards rounds that
    another process interrupted.
    """
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"need equal, nonempty lists, got {len(numerator)}/{len(denominator)}")
    ratios = sorted(a / b for a, b in zip(numerator, denominator, strict=True))
    if len(ratios) == 1:
        return Ratio(ratios[0], ratios[0], ratios[0], 1)
    q1, _, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return Ratio(statistics.median(ratios), q1, q3, len(ratios))


def rotated(names: list[str], round_index: int) -> list[str]:
    """`names` rotated by the round number: no variant always runs first or after the same one."""
    k = round_index % len(names)
    return names[k:] + names[:k]


def verdict(value: Ratio, target: float, higher_is_better: bool) -> str:
    """'met' / 'missed' on the median, flagged when the interquartile range straddles the target."""
    met = value.median >= target if higher_is_better else value.median <= target
    word = "**met**" if met else "**missed**"
    if value.q1 <= target <= value.q3:
        word += " (within noise: the IQR straddles the target)"
    return word


@dataclass
class Section:
    """One part of RESULTS.md: markdown lines and the ratios it measured (also for --json)."""

    title: str
    lines: list[str] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)
    summary: list[list[str]] = field(default_factory=list)  # [what, target, measured, verdict]

    def markdown(self) -> str:
        """The section as markdown."""
        return "\n".join([f"## {self.title}", "", *self.lines, ""])


def table(header: list[str], rows: list[list]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def cpu_model() -> str:
    """The CPU's model name as /proc/cpuinfo gives it (else platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_state() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command that ran this process, as typed (interpreter path relative to the repo)."""
    python = Path(sys.executable)
    try:
        python = python.relative_to(ROOT)
    except ValueError:
        pass
    return " ".join([str(python), *sys.argv])


def machine(device: torch.device) -> dict[str, str]:
    """Machine, versions, date, command and load: the header of RESULTS.md."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    gpu = f"cuda ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "none used"
    return {
        "date (UTC)": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": f"`{command_line()}`",
        "git": _git_state(),
        "CPU": cpu_model(),
        "cores (os / usable)": f"{os.cpu_count()} / {len(os.sched_getaffinity(0))}",
        "torch threads (intra / inter-op)": (
            f"{torch.get_num_threads()} / {torch.get_num_interop_threads()}"
        ),
        "device": f"{device.type}; GPU: {gpu}",
        "load average at start (1/5/15 min)": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": _version("lightning"),
        "torchmetrics": _version("torchmetrics"),
        "torchattacks": _version("torchattacks"),
        "torch-pruning": _version("torch-pruning"),
    }


def train_tensors(dm: ImageDataModule) -> tuple[torch.Tensor, torch.Tensor]:
    """The training split's images and labels as two in-memory tensors (the subset resolved)."""
    subset = dm.train_set
    base, indices = subset.dataset, torch.as_tensor(subset.indices)
    images, labels = base.tensors
    return images[indices], labels[indices]
