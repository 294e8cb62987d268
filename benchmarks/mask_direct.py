"""2, cross-check: raw steps with the masks held, and the per-step hook work timed on its own.

One raw training step per variant per round on one fixed batch, order rotating, our callback's
two hook methods called around `optimizer.step()` as Lightning calls them. In the same rounds:
the hook work alone (our callback's two hooks as they are, torch.nn.utils.prune's forward
pre-hooks), and ours with the pruned gradients masked too (what the callback does under
gradient-norm clipping or a non-elementwise optimizer, and did at every step up to b93df18):
the cost its default now skips.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from common import finetune_optimizer, rotated, sync
from torch.nn.utils import prune


def _ours_hooks(
    callback, net: torch.nn.Module, opt, clip: bool = False
) -> tuple[Callable, Callable]:
    """The callback's two per-step hooks bound to `net` (masks computed or applied first).

    `clip`: as under a Trainer with gradient-norm clipping, which makes the callback mask the
    pruned gradients too (the clipping itself is not run).
    """
    holder = SimpleNamespace(net=net)
    trainer = SimpleNamespace(gradient_clip_val=1.0 if clip else None)
    callback.on_fit_start(trainer, holder)
    return (
        lambda: callback.on_before_optimizer_step(trainer, holder, opt),
        lambda: callback.on_train_batch_end(None, holder, None, None, 0),
    )


def _prune_prehooks(net: torch.nn.Module) -> Callable[[], None]:
    """torch.nn.utils.prune's per-forward work: weight = weight_orig * weight_mask, per layer."""
    hooks = [
        (m, h)
        for m in net.modules()
        for h in m._forward_pre_hooks.values()
        if isinstance(h, prune.BasePruningMethod)
    ]

    def work() -> None:
        for module, hook in hooks:
            hook(module, None)

    return work


def _both(before: Callable, after: Callable) -> Callable[[], None]:
    def work() -> None:
        before()
        after()

    return work


def sqrt_of_zeros(n: int, repeats: int = 30) -> float:
    """How many times longer torch.sqrt takes on n exact zeros than on n positive floats.

    Adam divides by sqrt(exp_avg_sq); where pruned gradients are masked from the start,
    exp_avg_sq stays exactly 0, and on some CPUs (this one) sqrt of 0 takes a slow path.
    """
    zeros, values, out = torch.zeros(n), torch.rand(n) + 1e-3, torch.empty(n)
    times: dict[str, list[float]] = {"zeros": [], "values": []}
    for r in range(repeats):
        for name in rotated(list(times), r):
            source = zeros if name == "zeros" else values
            start = time.perf_counter()
            torch.sqrt(source, out=out)
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["zeros"]) / statistics.median(times["values"])


def _step(net, opt, x, y, before: Callable, after: Callable) -> Callable[[], float]:
    """One training step with the mask hooks around the optimizer; returns Adam's seconds."""

    def step() -> float:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        before()
        sync(x.device)
        start = time.perf_counter()
        opt.step()
        sync(x.device)
        seconds = time.perf_counter() - start
        after()
        return seconds

    return step


def measure(vs: dict, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds per call of each step and hook-work variant, interleaved round by round.

    Steps: dense, ours, torch_prune, and ours_gradmask (ours masking the pruned gradients too,
    as under norm clipping). Hook work: hooks_ours, hooks_torch_prune. `opt_<step>` holds each
    step's optimizer time.
    """
    dm = vs["dense"]["dm"]
    x, y = (t.to(device) for t in next(iter(dm.train_dataloader())))
    nop = lambda: None  # noqa: E731
    fns: dict[str, Callable[[], float | None]] = {}
    for name in ("dense", "ours", "torch_prune"):
        net = vs[name]["module"].net.to(device).train()
        opt = finetune_optimizer()(net.parameters())
        before, after = nop, nop
        if name == "ours":
            callback = vs[name]["callbacks"][0]
            before, after = _ours_hooks(callback, net, opt)
            F.cross_entropy(net(x), y).backward()  # grads exist for the hook-only timings
            fns["hooks_ours"] = _both(before, after)
            # A second callback with the same masks: the first one caches `net`'s weights.
            twin_callback = type(callback)(callback.amount)
            twin_callback.load_state_dict(callback.state_dict())
            twin = copy.deepcopy(net)
            twin_opt = finetune_optimizer()(twin.parameters())
            hooks = _ours_hooks(twin_callback, twin, twin_opt, clip=True)
            fns["ours_gradmask"] = _step(twin, twin_opt, x, y, *hooks)
        if name == "torch_prune":
            fns["hooks_torch_prune"] = _prune_prehooks(net)
        fns[name] = _step(net, opt, x, y, before, after)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(-3, rounds):  # three warm-up rounds
        for name in rotated(list(fns), r):
            sync(device)
            start = time.perf_counter()
            opt_seconds = fns[name]()
            sync(device)
            if r >= 0:
                times[name].append(time.perf_counter() - start)
                if opt_seconds is not None:
                    times.setdefault(f"opt_{name}", []).append(opt_seconds)
    return times
