"""What structured (channel) pruning buys on CPU: MACs, parameters, latency, and what it costs.

Trains a dense baseline on a slice of Fashion-MNIST, prunes copies of it to each channel ratio
with the StructuredPruning callback (the same path as `pruning=structured`), fine-tunes them
with a fresh optimizer, tests every model on the full 10k test split, then times all models
interleaved in one process (eval mode, inference_mode, after warm-up, fixed threads).

    .venv/bin/python benchmarks/structured_speedup.py --model resnetsmall --threads 1 2
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import lightning as L
import torch
from latency_ab import cpu_name, interleaved_ms, median, p90

from prunelab.data import FashionMNISTDataModule
from prunelab.models import ResNetSmall, SimpleCNN
from prunelab.module import Classifier
from prunelab.pruning.shapes import conform
from prunelab.pruning.structured import StructuredPruning, measure_removed, prune_channels

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"resnetsmall": ResNetSmall, "simplecnn": SimpleCNN}


def _trainer(epochs: int, root: Path, callbacks: list | None = None) -> L.Trainer:
    return L.Trainer(
        max_epochs=epochs,
        callbacks=callbacks or [],
        logger=False,
        accelerator="cpu",
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,  # no model selection here: the test split is the measurement
        default_root_dir=root,
    )


def _adam(lr: float):
    return lambda params: torch.optim.Adam(params, lr=lr, weight_decay=1e-4)


def test_acc(net: torch.nn.Module, dm, root: Path) -> float:
    """Accuracy on the datamodule's test split."""
    (metrics,) = _trainer(1, root).test(Classifier(net, dm.num_classes), dm, verbose=False)
    return float(metrics["test/acc"])


def train_models(args: argparse.Namespace, dm, work: Path) -> tuple[dict, dict]:
    """Baseline and one fine-tuned model per channel ratio, with their test accuracies."""
    shape = dm.in_shape
    L.seed_everything(args.seed)
    base = MODELS[args.model](shape, dm.num_classes, dm.mean, dm.std)
    t0 = time.perf_counter()
    _trainer(args.epochs, work).fit(Classifier(base, dm.num_classes, _adam(args.lr)), dm)
    rows = {0.0: {"acc": test_acc(base, dm, work), "acc_pruned_no_ft": None}}
    print(f"baseline: {time.perf_counter() - t0:.0f} s, test acc {rows[0.0]['acc']:.4f}")
    models = {0.0: base}
    for ratio in args.ratios:
        # Accuracy right after pruning, before any fine-tuning (same channels as the callback's).
        raw = prune_channels(copy.deepcopy(base), ratio, shape)
        t0 = time.perf_counter()
        models[ratio] = finetuned(base, ratio, args, dm, work)
        rows[ratio] = {
            "acc": test_acc(models[ratio], dm, work),
            "acc_pruned_no_ft": test_acc(raw, dm, work),
        }
        print(f"ratio {ratio}: fine-tune + tests {time.perf_counter() - t0:.0f} s, {rows[ratio]}")
    return models, rows


def finetuned(base: torch.nn.Module, ratio: float, args, dm, work: Path) -> torch.nn.Module:
    """A copy of `base` pruned to `ratio` (0: not pruned) and fine-tuned with the recipe."""
    net = copy.deepcopy(base)
    L.seed_everything(args.seed + 1)
    callbacks = [StructuredPruning(ratio)] if ratio > 0 else []
    _trainer(args.finetune_epochs, work, callbacks).fit(
        Classifier(net, dm.num_classes, _adam(args.finetune_lr)), dm
    )
    return net


def load_models(path: Path, model: str, dm) -> tuple[dict, dict]:
    """The models and accuracies of an earlier run (shrunk shapes restored with `conform`)."""
    saved = torch.load(path, weights_only=True)
    models = {}
    for ratio, state in saved["states"].items():
        net = MODELS[model](dm.in_shape, dm.num_classes, dm.mean, dm.std)
        conform(net, state).load_state_dict(state)
        models[float(ratio)] = net
    return models, {float(r): row for r, row in saved["rows"].items()}


def parse() -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="resnetsmall")
    p.add_argument("--ratios", type=float, nargs="+", default=[0.25, 0.5, 0.75])
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=4, help="baseline epochs")
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3, help="baseline Adam lr")
    p.add_argument("--finetune-lr", type=float, default=1e-3)
    p.add_argument("--train-threads", type=int, default=1, help="threads while training")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="latency thread counts")
    p.add_argument("--repeats", type=int, default=40, help="timing rounds (batch 1)")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    p.add_argument(
        "--clock",
        choices=["wall", "cpu"],
        default="wall",
        help="cpu: this thread's CPU time (only with --threads 1; robust on a busy machine)",
    )
    p.add_argument(
        "--reuse", action="store_true", help="time the models of an earlier run (no training)"
    )
    return p.parse_args()


def main() -> None:
    """Train, prune, fine-tune, test, time; print the table."""
    args = parse()
    torch.set_num_threads(args.train_threads)
    work = ROOT / "outputs" / "bench_structured"
    dm = FashionMNISTDataModule(
        str(ROOT / "data"), train_size=args.train_size, val_size=1000, test_size=None
    )
    dm.setup()
    shape = dm.in_shape
    work.mkdir(parents=True, exist_ok=True)

    saved = work / f"{args.model}_seed{args.seed}.pt"
    if args.reuse and saved.is_file():
        models, rows = load_models(saved, args.model, dm)
    else:
        models, rows = train_models(args, dm, work)
        torch.save(
            {
                "states": {str(r): n.state_dict() for r, n in models.items()},
                "rows": {str(r): row for r, row in rows.items()},
            },
            saved,
        )
    base = models[0.0]
    if "acc_dense_ft" not in rows[0.0]:
        # Control: the dense baseline fine-tuned with the same recipe. The baseline is short-
        # trained, so extra epochs alone raise accuracy; the pruning cost is against this.
        rows[0.0]["acc_dense_ft"] = test_acc(finetuned(base, 0.0, args, dm, work), dm, work)
        payload = torch.load(saved, weights_only=True)
        payload["rows"] = {str(r): row for r, row in rows.items()}
        torch.save(payload, saved)
    control = rows[0.0]["acc_dense_ft"]
    for ratio, net in models.items():
        rows[ratio].update(measure_removed(net, base, shape))
        net.eval()

    x1 = dm.test_set[0][0].unsqueeze(0)
    xb = torch.stack([dm.test_set[i][0] for i in range(args.batch)])
    timings = {}
    if args.clock == "cpu" and args.threads != [1]:
        raise SystemExit("--clock cpu measures one thread: use --threads 1")
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    for threads in args.threads:
        torch.set_num_threads(threads)
        key = lambda r, b: f"{r}@b{b}"  # noqa: E731
        b1 = interleaved_ms(
            {key(r, 1): (lambda n=n: n(x1)) for r, n in models.items()},
            args.repeats,
            20,
            clock=clock,
        )
        bn = interleaved_ms(
            {key(r, args.batch): (lambda n=n: n(xb)) for r, n in models.items()},
            max(args.repeats // 3, 7),
            1,
            warmup=2,
            clock=clock,
        )
        timings[threads] = {**b1, **bn}
        print(
            f"\n{args.model}, torch {torch.__version__}, {threads} thread(s), {args.clock} clock, "
            f"{cpu_name()}; medians over rounds, interleaved"
        )
        print(
            "| channel ratio | MACs removed | params removed | b1 ms (p90) | b1 speed-up "
            f"| b{args.batch} ms (p90) | b{args.batch} speed-up "
            "| acc pruned, no FT | acc after FT | vs dense + same FT |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        d1, dn = median(b1[key(0.0, 1)]), median(bn[key(0.0, args.batch)])
        for ratio, row in rows.items():
            t1, tn = b1[key(ratio, 1)], bn[key(ratio, args.batch)]
            no_ft = row["acc_pruned_no_ft"]
            print(
                f"| {ratio:g} | {100 * row['prune/macs_removed']:.1f} % "
                f"| {100 * row['prune/sparsity_overall']:.1f} % "
                f"| {median(t1):.3f} ({p90(t1):.3f}) | {d1 / median(t1):.2f}x "
                f"| {median(tn):.1f} ({p90(tn):.1f}) | {dn / median(tn):.2f}x "
                f"| {'-' if no_ft is None else f'{no_ft:.4f}'} | {row['acc']:.4f} "
                f"| {100 * (row['acc'] - control):+.2f} pts |"
            )
        print(
            f"baseline: {args.epochs} epochs on {args.train_size} images; fine-tune: "
            f"{args.finetune_epochs} epochs, Adam {args.finetune_lr}, fresh optimizer; "
            f"dense + same FT (control): {control:.4f}; test: {len(dm.test_set)} images"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows, "ms": timings},
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
