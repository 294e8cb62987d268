"""Does a sparse kernel make an unstructured-pruned model faster on this CPU?

SimpleCNN's hidden Linear (1152 -> 128 on Fashion-MNIST) holds most of its weights, so it is the
best case for sparse inference. Times that layer dense vs torch.sparse (CSR via MKL, COO) at
50/80/90/95 % sparsity of its own weights, then the whole model with the layer swapped for a CSR
version after global magnitude pruning at 50/80/90 %, batch 1 and batch N, interleaved, in eval
mode under inference_mode, after warm-up; checks the outputs match (allclose).

    .venv/bin/python benchmarks/sparse_inference.py --threads 1 2
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import lightning as L
import torch
from latency_ab import cpu_name, interleaved_ms, median
from torch import nn

from prunelab.data import FashionMNISTDataModule
from prunelab.models import SimpleCNN
from prunelab.module import Classifier
from prunelab.pruning.masks import apply_masks, global_magnitude_masks, prunable_weights

ROOT = Path(__file__).resolve().parents[1]


class CSRLinear(nn.Module):
    """y = x W^T + b with W stored as a CSR tensor (MKL sparse x dense on CPU)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = linear.weight.detach().to_sparse_csr()
        self.bias = linear.bias.detach().unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, self.weight, x.t()).t()


def _layer_at(linear: nn.Linear, sparsity: float) -> nn.Linear:
    """A copy of `linear` with its own smallest-|w| `sparsity` share zeroed."""
    layer = copy.deepcopy(linear)
    w = layer.weight.detach()
    k = round(sparsity * w.numel())
    with torch.no_grad():
        w.view(-1)[w.abs().view(-1).argsort()[:k]] = 0.0
    return layer


def baseline(train_size: int, epochs: int, seed: int) -> tuple[nn.Module, torch.Tensor]:
    """A briefly trained SimpleCNN (weights with real structure) and 256 test images."""
    dm = FashionMNISTDataModule(str(ROOT / "data"), train_size=train_size, test_size=256)
    dm.setup()
    L.seed_everything(seed)
    net = SimpleCNN(dm.in_shape, dm.num_classes, dm.mean, dm.std)
    L.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    ).fit(Classifier(net, 10, lambda p: torch.optim.Adam(p, 1e-3)), dm)
    return net.eval(), torch.stack([dm.test_set[i][0] for i in range(len(dm.test_set))])


def main() -> None:
    """Print the layer table and the model table for each thread count."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this thread's CPU time (only with --threads 1; robust on a busy machine)",
    )
    args = p.parse_args()
    if args.clock == "cpu" and args.threads != [1]:
        raise SystemExit("--clock cpu measures one thread: use --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter

    net, images = baseline(args.train_size, args.epochs, args.seed)
    batches = {1: images[:1], len(images): images}
    linear = net.head[1]
    feats = {b: net.head[0](net.features(x)).detach() for b, x in batches.items()}

    for threads in args.threads:
        torch.set_num_threads(threads)
        print(f"\n## {threads} thread(s), {args.clock} clock, {cpu_name()}, {torch.__version__}")
        print("Layer Linear(1152, 128), us per call (median over interleaved rounds)")
        print("| layer sparsity | batch | dense | CSR | COO | CSR speed-up | allclose |")
        print("|---|---|---|---|---|---|---|")
        for s in (0.5, 0.8, 0.9, 0.95):
            layer = _layer_at(linear, s)
            csr, coo = CSRLinear(layer), layer.weight.detach().to_sparse()
            for b, x in feats.items():
                fns = {
                    "dense": lambda x=x, layer=layer: layer(x),
                    "csr": lambda x=x, csr=csr: csr(x),
                    "coo": lambda x=x, coo=coo, bias=layer.bias: (
                        torch.sparse.mm(coo, x.t()).t() + bias
                    ),
                }
                same = torch.allclose(csr(x), layer(x), rtol=1e-4, atol=1e-5)
                t = interleaved_ms(fns, args.repeats, 100 if b == 1 else 5, clock=clock)
                d, c, o = (1e3 * median(t[k]) for k in ("dense", "csr", "coo"))
                print(f"| {s:.0%} | {b} | {d:.1f} | {c:.1f} | {o:.1f} | {d / c:.2f}x | {same} |")

        print("\nWhole SimpleCNN after global magnitude pruning, ms per call (median)")
        print("| global sparsity | head Linear sparsity | batch | dense | CSR head | speed-up |")
        print("|---|---|---|---|---|---|")
        for s in (0.5, 0.8, 0.9):
            dense = copy.deepcopy(net)
            apply_masks(dense, global_magnitude_masks(prunable_weights(dense), s))
            layer_s = float((dense.head[1].weight == 0).float().mean())
            sparse = copy.deepcopy(dense)
            sparse.head[1] = CSRLinear(dense.head[1])
            for b, x in batches.items():
                with torch.inference_mode():
                    assert torch.allclose(sparse(x), dense(x), rtol=1e-4, atol=1e-5)
                fns = {"dense": lambda x=x, m=dense: m(x), "csr": lambda x=x, m=sparse: m(x)}
                t = interleaved_ms(fns, args.repeats, 20 if b == 1 else 2, clock=clock)
                d, c = median(t["dense"]), median(t["csr"])
                print(f"| {s:.0%} | {layer_s:.1%} | {b} | {d:.3f} | {c:.3f} | {d / c:.2f}x |")


if __name__ == "__main__":
    main()
