"""Forward latency at batch 1 and batch N, pruned and dense baseline timed interleaved."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils import prune


def strip_pruning(net: nn.Module) -> nn.Module:
    """Fold any torch.nn.utils.prune reparametrisation into plain weights (in place).

    prunelab's masks are plain zeros in dense weights, but a net pruned with torch's utilities
    recomputes `weight = weight_orig * weight_mask` in a pre-hook on every forward, which would
    bill that multiplication to the pruned model's latency.
    """
    for module in net.modules():
        for hook in list(module._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(module, hook._tensor_name)
    return net


def device_name(device: torch.device) -> str:
    """'cpu', or 'cuda (<GPU name>)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def _timed(net: nn.Module, x: torch.Tensor) -> float:
    """Seconds of one forward pass, the device synchronised on both sides."""
    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda *_: None)
    sync(x.device)
    start = time.perf_counter()
    net(x)
    sync(x.device)
    return time.perf_counter() - start


def _p90(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=10, method="inclusive")[-1]


@torch.inference_mode()
def measure_latency(
    nets: dict[str, nn.Module],
    in_shape: Sequence[int],
    device: torch.device,
    batch: int = 32,
    warmup: int = 5,
    repeats_b1: int = 100,
    repeats_bn: int = 20,
    threads: int | None = None,
) -> dict[str, dict[str, float]]:
    """Median and p90 milliseconds per forward of each net, at batch 1 and batch `batch`.

    The nets take turns repeat by repeat (order alternating), so slow drift of the machine
    (other processes, clocks, thermals) hits each of them alike and cancels in their ratio.
    Every net is first put in torch's default (contiguous) memory layout, in place: a net
    trained channels-last keeps channels-last weights, whose faster CPU kernels would
    otherwise pass for a speed-up of pruning.
    """
    previous = torch.get_num_threads()
    threads = int(threads or previous)
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    try:
        nets = {
            name: net.to(memory_format=torch.contiguous_format).eval() for name, net in nets.items()
        }
        out: dict[str, dict[str, float]] = {name: {} for name in nets}
        for label, n, repeats in (("b1", 1, repeats_b1), ("bN", batch, repeats_bn)):
            x = torch.rand(n, *in_shape, generator=generator).to(device)
            for net in nets.values():
                for _ in range(warmup):
                    net(x)
            samples: dict[str, list[float]] = {name: [] for name in nets}
            order = list(nets)
            for _ in range(max(repeats, 2)):
                for name in order:
                    samples[name].append(_timed(nets[name], x))
                order.reverse()
            for name, times in samples.items():
                out[name][f"latency/{label}_ms"] = 1e3 * statistics.median(times)
                out[name][f"latency/{label}_p90_ms"] = 1e3 * _p90(times)
        return out
    finally:
        torch.set_num_threads(previous)
