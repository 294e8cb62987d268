"""Evaluation cost against fine-tuning cost for one ResNetSmall job (issue 3: eval <= 1/2 of it).

In one process, at the default config (model=resnetsmall, sparsity 0.5, Fashion-MNIST 4,000
training images, 10 fine-tuning epochs, the full 10,000-image test split, conf/attack/default):

1. the dense baseline comes from the cache (`cache_dir`), or is trained there first;
2. the pipeline's own `finetune()` prunes and fine-tunes it for all 10 epochs (`epochs` fewer:
   scaled linearly to 10, setup included, which overstates fine-tuning a little);
3. the pipeline's own `evaluate()` runs twice on that fine-tuned model: once as the first job
   of a sweep (the baseline's figures computed and cached) and once as every later job (the
   baseline's figures read from the cache, latency still measured against it);
4. `finetune()` runs again from the baseline for `epochs_after` epochs (default 3), scaled to 10.

On a shared machine the load drifts during minutes of measuring: `finetune_s` is the mean of
the per-epoch rates before and after the evaluations, which cancels a linear drift
(`finetune_s_before`/`_after` show how much there was). `ratio` = later-job evaluation /
fine-tuning (the issue's target: <= 0.5); `ratio_first_job` adds the baseline's one-off
evaluation. `attack_steps` (forward-backward passes, images x steps) measure the attacks' work
independently of the machine.

    .venv/bin/python benchmarks/eval_cost.py [--epochs 10] [--threads 2] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def measure(
    quick: bool = False,
    epochs: int | None = None,
    threads: int | None = None,
    cache_dir: str | Path | None = None,
    sparsity: float = 0.5,
    epochs_after: int = 3,
) -> dict:
    """Seconds of fine-tuning and of evaluation for one ResNetSmall job, and their ratio.

    `quick` runs the same code paths at smoke size (seconds; the ratio then means nothing).
    """
    from prunelab.build import build_datamodule, build_net, data_spec
    from prunelab.cache import BaselineCache, baseline_key, baseline_key_material
    from prunelab.evaluation import evaluate, resolve_device
    from prunelab.pipeline import finetune, quiet_libraries, train_baseline
    from prunelab.runtime import cheap_cuda_check

    quiet_libraries()
    cheap_cuda_check()  # as the job does
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    scratch = Path(tempfile.mkdtemp(prefix="prunelab-eval-cost-"))
    cache_dir = Path(cache_dir or (scratch / "cache" if quick else ROOT / "outputs" / "cache"))
    overrides = [
        "model=resnetsmall",
        f"sparsity={sparsity}",
        f"paths.cache_dir={cache_dir}",
        f"paths.data_dir={ROOT / 'data'}",
        "trainer.enable_progress_bar=false",
        *(["experiment=smoke"] if quick else []),
    ]
    try:
        cfg = _compose(overrides)
        full_epochs = int(cfg.finetune.max_epochs)
        timed_epochs = min(int(epochs or full_epochs), full_epochs)
        dm = build_datamodule(cfg)
        spec = data_spec(dm)
        key = baseline_key(cfg)
        state, _, trained = BaselineCache(cache_dir).get_or_train(
            key,
            baseline_key_material(cfg),
            lambda work: train_baseline(cfg, dm, spec, [], work),
        )
        baseline = build_net(cfg.model, spec)
        baseline.load_state_dict(state)

        def timed_finetune(n_epochs: int, job: str) -> tuple[torch.nn.Module, float]:
            """A fresh prune + fine-tune of the baseline; seconds scaled to all epochs."""
            model = build_net(cfg.model, spec)
            model.load_state_dict(state)
            cfg.finetune.max_epochs = n_epochs
            start = time.perf_counter()
            finetune(cfg, model, dm, spec, [], scratch / job)
            return model, (time.perf_counter() - start) * full_epochs / n_epochs

        net, finetune_before = timed_finetune(timed_epochs, "job")

        # A fresh cache entry for the evaluation records: the first call pays for the baseline.
        eval_cache = BaselineCache(scratch / "eval-cache")
        eval_cache.entry(key).mkdir(parents=True)
        first_parts: dict[str, float] = {}
        start = time.perf_counter()
        evaluate(net, baseline, dm, spec, cfg, cache=eval_cache, key=key, timings=first_parts)
        eval_first = time.perf_counter() - start
        parts: dict[str, float] = {}
        start = time.perf_counter()
        results = evaluate(
            net, baseline, dm, spec, cfg, cache=eval_cache, key=key, timings=parts,
            sparse_path=scratch / "model.sparse",
        )  # fmt: skip
        eval_s = time.perf_counter() - start
        after_epochs = min(max(1, int(epochs_after)), full_epochs)
        _, finetune_after = timed_finetune(after_epochs, "again")
        finetune_s = (finetune_before + finetune_after) / 2
        return {
            "model": "resnetsmall",
            "mode": "quick (smoke size)" if quick else "default config",
            "device": str(resolve_device(cfg.eval.device)),
            "threads": torch.get_num_threads(),
            "sparsity": sparsity,
            "train_images": len(dm.train_set),
            "test_images": len(dm.test_set),
            "attack_images": results["robust/n_images"],
            "attack_steps": int(parts.get("robust_steps", 0)),
            "baseline_trained_here": trained,
            "finetune_epochs": full_epochs,
            "finetune_epochs_timed": f"{timed_epochs} before, {after_epochs} after",
            "finetune_s": finetune_s,
            "finetune_s_before": finetune_before,
            "finetune_s_after": finetune_after,
            "eval_s": eval_s,
            "eval_first_job_s": eval_first,
            **{f"eval_{part}_s": s for part, s in parts.items() if part != "robust_steps"},
            "ratio": eval_s / finetune_s,
            "ratio_first_job": eval_first / finetune_s,
            "robust/pgd_acc": results["robust/pgd_acc"],
            "robust/pgd_acc_baseline": results["robust/pgd_acc_baseline"],
            "test/acc": results["test/acc"],
        }
    finally:
        torch.set_num_threads(previous_threads)
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """Print the measurement (and write it as JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke size: checks the code paths only")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs to time (scaled to 10)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    p.add_argument("--cache-dir", help="baseline cache (default: outputs/cache)")
    p.add_argument("--json", type=Path, help="also write the numbers here")
    args = p.parse_args(argv)
    result = measure(args.quick, args.epochs, args.threads, args.cache_dir)
    width = max(map(len, result))
    for k, v in result.items():
        print(f"{k:<{width}}  {v:.4g}" if isinstance(v, float) else f"{k:<{width}}  {v}")
    verdict = "within" if result["ratio"] <= 0.5 else "OVER"
    print(f"\nevaluation / fine-tuning = {result['ratio']:.3f} ({verdict} the 0.5 target)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
