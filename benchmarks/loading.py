"""3. Data loading: training from the DataModule's loader vs the same tensors pre-batched."""

from __future__ import annotations

import statistics
import time
from itertools import islice

import torch
import torch.nn.functional as F
from common import (
    Section,
    datamodule,
    finetune_optimizer,
    net_for,
    paired_ratio,
    progress,
    rotated,
    sync,
    table,
    train_tensors,
    verdict,
)

TARGET = 0.95


def prebatched(dm, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's first `steps` batches of epoch 0, cut from the in-memory tensors by index."""
    images, labels = train_tensors(dm)
    order = torch.as_tensor(list(iter(dm.train_sampler)))  # the same order the loader uses
    b = dm.batch_size
    return [(images[order[i : i + b]], labels[order[i : i + b]]) for i in range(0, steps * b, b)]


def measure(model: str, steps: int, rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds to train `steps` batches from each source, per round, alternating (ABAB...)."""
    dm = datamodule()
    dm.train_sampler.set_epoch(0)
    batches = [(x.to(device), y.to(device)) for x, y in prebatched(dm, steps)]
    net = net_for(model, dm).to(device).train()
    opt = finetune_optimizer()(net.parameters())

    def train(source) -> float:
        sync(device)
        start = time.perf_counter()
        for x, y in source:
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        sync(device)
        return time.perf_counter() - start

    sources = {
        "loader": lambda: train(islice(dm.train_dataloader(), steps)),
        "memory": lambda: train(batches),
        # The loader alone, no training: what a batch costs to produce.
        "fetch": lambda: _fetch(dm, steps),
    }
    times: dict[str, list[float]] = {name: [] for name in sources}
    for r in range(-1, rounds):  # round -1 warms up
        for name in rotated(list(sources), r):
            seconds = sources[name]()
            if r >= 0:
                times[name].append(seconds)
    return times


def _fetch(dm, steps: int) -> float:
    start = time.perf_counter()
    for _ in islice(dm.train_dataloader(), steps):
        pass
    return time.perf_counter() - start


def run(plan: dict, device: torch.device) -> Section:
    """Section 3 for every model of `plan` ({model: {"steps", "rounds"}})."""
    section = Section("3. Data loading: the DataModule's loader vs tensors already in memory")
    rows = []
    for model, p in plan.items():
        progress(f"loading {model}: {p['rounds']} rounds of {p['steps']} steps per source")
        t = measure(model, p["steps"], p["rounds"], device)
        ratio = paired_ratio(t["memory"], t["loader"])  # equal images: seconds invert to img/s
        per_batch = statistics.median(t["fetch"]) / p["steps"] * 1e3
        step = statistics.median(t["memory"]) / p["steps"] * 1e3
        rows.append(
            [
                model,
                p["steps"],
                f"{32 * p['steps'] / statistics.median(t['memory']):,.0f}",
                f"{32 * p['steps'] / statistics.median(t['loader']):,.0f}",
                ratio.text(),
                verdict(ratio, TARGET, True),
                f"{per_batch:.3f} ms ({100 * per_batch / step:.1f} % of a {step:.1f} ms step)",
            ]
        )
        section.summary.append(
            [f"3. loader ÷ in-memory images/s, {model}", f"≥ {TARGET}", ratio.text(), rows[-1][5]]
        )
        section.numbers[model] = {
            "ratio": ratio.__dict__,
            "fetch_ms_per_batch": per_batch,
            "step_ms": step,
        }
    section.lines += [
        f"Target: images/s training from `FashionMNISTDataModule(...).train_dataloader()` ÷ "
        f"images/s training from the same tensors pre-batched in memory ≥ {TARGET}. Same model, "
        "same raw training step (Adam, batch 32), same batches in the same order (epoch 0 of "
        "the `EpochShuffleSampler`, cut from the training tensors by index before the clock "
        "starts). Rounds alternate the sources (rotating order); ratio = median of per-round "
        "(in-memory seconds ÷ loader seconds).",
        "",
        *table(
            [
                "model",
                "steps/round",
                "in-memory img/s",
                "loader img/s",
                "ratio",
                "verdict",
                "loader alone, per batch",
            ],
            rows,
        ),
        "",
        "The loader is a `DataLoader` with `num_workers=0` (the default config) over the "
        "training `Subset` of the in-memory Fashion-MNIST tensors, read a batch at a time "
        "(`TensorBatches`: per batch one index op per tensor, no per-image lookup or stack). "
        "'Loader alone' iterates it without training.",
    ]
    return section
