"""The evaluation of one job: a pruned net against its dense baseline, keys of docs/metrics.md."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from prunelab.evaluation.accuracy import accuracy_metrics, class_slugs, predict
from prunelab.evaluation.fast import inference_copy
from prunelab.evaluation.flops import count_macs
from prunelab.evaluation.latency import device_name, measure_latency, strip_pruning
from prunelab.evaluation.robustness import eval_subset, measure_robustness
from prunelab.evaluation.size import dense_file_bytes, encode_sparse, save_sparse, size_metrics
from prunelab.fingerprint import code_fingerprint, versions
from prunelab.stats import paired_difference

if TYPE_CHECKING:
    from wandb.sdk.wandb_run import Run

    from prunelab.cache import BaselineCache
    from prunelab.data.base import ImageDataModule

log = logging.getLogger("prunelab")

# Bump when a change to this package changes any cached baseline figure.
EVAL_VERSION = 3  # 2: per-image outcomes (paired comparisons); 3: the sparse export size
# Robust keys that describe the run rather than measure the model: no baseline suffixes.
_ROBUST_PLAIN = {
    "robust/n_images",
    "robust/cascade",
    "robust/pgd_target_class",
    "robust/pgd_eps",
    "robust/pgd_alpha",
    "robust/pgd_steps",
}


def resolve_device(name: str | None = "auto") -> torch.device:
    """`auto` = the GPU when there is one, else the CPU; anything else as torch spells it."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def baseline_tag(
    cfg: DictConfig,
    test_size: int,
    device: torch.device,
    subset: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> str:
    """Cache name of a baseline's evaluation: a hash of all that determines its figures.

    The images count with the settings: the data keys that pick the test split and, where
    given, the attack `subset` itself, so prunelab.evaluate run with other test data
    (data.split_seed, an image folder's other files) never reuses another set's figures.
    """
    import prunelab.evaluation as evaluation  # this package: its code computes the figures
    from prunelab.cache import data_settings

    images = hashlib.sha256()
    for tensor in subset or ():
        images.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    material = {
        "version": EVAL_VERSION,
        "attack": OmegaConf.to_container(cfg.attack, resolve=True),
        "channels_last": bool(cfg.eval.channels_last),
        "fold_batchnorm": bool(cfg.eval.fold_batchnorm),
        "test_size": int(test_size),
        "data": data_settings(cfg.data),
        "subset": images.hexdigest() if subset else None,
        "device": device.type,
        # The code that computes a baseline's figures: an edited attack re-measures them.
        "code": code_fingerprint(evaluation),
        **versions("torch", "torchattacks", "torchmetrics"),
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:12]
    return f"eval-{digest}"


class _Clock:
    """Seconds spent per part of the evaluation, for logs and benchmarks."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink if sink is not None else {}

    def run(self, part: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        result = fn()
        self.sink[part] = self.sink.get(part, 0.0) + time.perf_counter() - start
        return result


def model_record(
    net: nn.Module,
    dm: ImageDataModule,
    spec: dict,
    cfg: DictConfig,
    device: torch.device,
    subset: tuple[torch.Tensor, torch.Tensor],
    clock: _Clock | None = None,
) -> dict[str, Any]:
    """What one model's figures are, whoever it is compared with.

    {"metrics", "confusion", "per_image"}: `per_image` holds, per accuracy key, which images
    the model got right ('0'/'1' per image, in a fixed order), for paired comparisons.
    """
    clock = clock or _Clock(None)
    work = inference_copy(net, device, bool(cfg.eval.fold_batchnorm), bool(cfg.eval.channels_last))
    preds, labels, loss = clock.run("test", lambda: predict(work, dm.test_dataloader(), device))
    metrics, confusion = accuracy_metrics(preds, labels, loss, list(spec["class_names"]))
    outcomes: dict[str, torch.Tensor] = {"test/acc": preds == labels}
    metrics.update(
        clock.run(
            "robust",
            lambda: measure_robustness(work, *subset, cfg.attack, device, clock.sink, outcomes),
        )
    )
    metrics.update(clock.run("size", lambda: size_metrics(net)))
    metrics.update(clock.run("flops", lambda: count_macs(net, spec["in_shape"])))
    per_image = {k: "".join("1" if v else "0" for v in m.tolist()) for k, m in outcomes.items()}
    return {"metrics": metrics, "confusion": confusion, "per_image": per_image}


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


def _delta(value: float | None, base: float | None) -> tuple[float | None, float | None]:
    if value is None or base is None:
        return None, None
    pts = 100 * (value - base)
    return pts, (100 * (value - base) / base if base else None)


def paired_change(mine: str, base: str) -> dict[str, float]:
    """95 % interval, in points, of the change of an accuracy scored on the same images."""
    if len(mine) != len(base) or not mine:
        return {}
    pairs = Counter(zip(mine, base, strict=True))
    low, high = paired_difference(pairs["1", "0"], pairs["0", "1"], len(mine))
    return {"_delta_ci_low": 100 * low, "_delta_ci_high": 100 * high}


def compare(
    mine: dict[str, Any],
    base: dict[str, Any] | None,
    mine_images: dict[str, str] | None = None,
    base_images: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The job's keys: this model's figures, with `_baseline`/deltas where docs/metrics.md says.

    With both models' per-image outcomes (`model_record`'s `per_image`), every accuracy also
    gets its paired change against the baseline and that change's 95 % interval.
    """
    out: dict[str, Any] = {}
    for key, value in mine.items():
        out[key] = value
        if base is None or key in _ROBUST_PLAIN:
            continue
        if key.startswith("robust/"):
            out[f"{key}_baseline"] = base.get(key)
            out[f"{key}_delta_pts"], out[f"{key}_delta_rel"] = _delta(value, base.get(key))
        elif key.startswith("test/acc_class/"):
            out[f"{key}_baseline"] = base.get(key)
    if base is not None:
        out["test/acc_baseline"] = base["test/acc"]
        out["test/acc_baseline_ci_low"] = base["test/acc_ci_low"]
        out["test/acc_baseline_ci_high"] = base["test/acc_ci_high"]
        acc, acc_base = mine["test/acc"], base["test/acc"]
        out["test/acc_retention"] = acc / acc_base if acc_base else None
        out["test/acc_delta_pts"], out["test/acc_delta_rel"] = _delta(acc, acc_base)
        out["size/disk_bytes_baseline"] = base["size/disk_bytes"]
        if "size/params" in base:  # the dense count: a structurally shrunk net has fewer
            out["size/params_baseline"] = base["size/params"]
        # The baseline's own export, measured as the model's is: the share of
        # size/reduction_pct that compression alone gives, without any pruning.
        base_sparse = base.get("size/sparse_disk_bytes")
        if base_sparse is not None and base["size/disk_bytes"]:
            out["size/sparse_disk_bytes_baseline"] = base_sparse
            out["size/reduction_pct_baseline"] = 100 * (1 - base_sparse / base["size/disk_bytes"])
        # Against the dense baseline's MACs: a structurally shrunk net has no zeros of its own.
        if "flops/dense_macs" in base and "flops/nonzero_macs" in mine:
            dense, nonzero = base["flops/dense_macs"], mine["flops/nonzero_macs"]
            out["flops/dense_macs_baseline"] = dense
            out["flops/theoretical_speedup"] = dense / nonzero if nonzero else None
    if base is not None and mine_images and base_images:
        for key in sorted(mine_images.keys() & base_images.keys()):
            change = paired_change(mine_images[key], base_images[key])
            out.update({f"{key}{suffix}": v for suffix, v in change.items()})
    return out


def control_keys(control: dict, record: dict, base_record: dict | None) -> dict[str, Any]:
    """The dense control against the baseline and, for a pruned model, the model against it.

    `control`: {"test/acc", "per_image"} of the dense model fine-tuned as the pruned ones are.
    `vs_control/test_acc_delta_pts` is pruning's own change of test accuracy, the extra
    training cancelled; both changes carry their 95 % paired interval (same test images).
    """
    acc, images = control["test/acc"], control["per_image"]
    out: dict[str, Any] = {"control/test_acc": acc}
    if base_record is not None:
        out["control/test_acc_delta_pts"] = 100 * (acc - base_record["metrics"]["test/acc"])
        change = paired_change(images, base_record.get("per_image", {}).get("test/acc", ""))
        out.update({f"control/test_acc{suffix}": v for suffix, v in change.items()})
    if record is not base_record:
        out["vs_control/test_acc_delta_pts"] = 100 * (record["metrics"]["test/acc"] - acc)
        change = paired_change(record.get("per_image", {}).get("test/acc", ""), images)
        out.update({f"vs_control/test_acc{suffix}": v for suffix, v in change.items()})
    return out


def evaluate(
    net: nn.Module,
    baseline: nn.Module | None,
    dm: ImageDataModule,
    spec: dict,
    cfg: DictConfig,
    *,
    cache: BaselineCache | None = None,
    key: str | None = None,
    sparse_path: str | Path | None = None,
    wandb_run: Run | None = None,
    timings: dict[str, float] | None = None,
    control: dict | None = None,
    dense: nn.Module | None = None,
) -> dict[str, Any]:
    """Every evaluation key of docs/metrics.md for `net` against its dense `baseline`.

    `timings`, if given, receives the seconds spent per part, `robust_steps`, and whether
    the baseline and the model were measured here (attacked_models says it in words).
    Without a baseline, `dense` (a net of the unpruned architecture, any weights) is the
    reference of size/reduction_pct and flops/theoretical_speedup; without either, both are
    left out: a structurally shrunk net's own dense file and MACs are no reference.

    The baseline's figures are cached in `cache` (a BaselineCache) under `key` when given, so
    a sweep evaluates each baseline once. `sparse_path` receives the lossless sparse export
    (else it is only measured). `wandb_run` gets the confusion matrix and tables.
    """
    clock = _Clock(timings)
    device = resolve_device(cfg.eval.get("device", "auto"))
    strip_pruning(net)
    if baseline is not None:
        strip_pruning(baseline)
    attack = cfg.attack
    images, labels, _ = clock.run(
        "subset", lambda: eval_subset(dm.test_set, attack.n_images, int(attack.seed))
    )
    subset = (images, labels)

    base_record = None
    if baseline is not None:

        def compute_base() -> dict[str, Any]:
            clock.sink["baseline_measured"] = 1.0
            record = model_record(baseline, dm, spec, cfg, device, subset, clock)
            # Its sparse export's size, cached with the rest: the dense model's
            # compression-only reduction (size/reduction_pct_baseline) in every job.
            record["metrics"]["size/sparse_disk_bytes"] = clock.run(
                "size", lambda: len(encode_sparse(baseline.state_dict()))
            )
            return record

        if cache is not None and key is not None:
            tag = baseline_tag(cfg, len(dm.test_set), device, subset)
            base_record = cache.cached_json(key, tag, compute_base)
        else:
            base_record = compute_base()
    if base_record is not None and _same_weights(net, baseline):
        record = base_record  # sparsity 0: the job's model is its baseline
    else:
        clock.sink["model_measured"] = 1.0
        record = model_record(net, dm, spec, cfg, device, subset, clock)

    base_metrics = base_record["metrics"] if base_record is not None else None
    base_images = base_record.get("per_image") if base_record is not None else None
    results = compare(record["metrics"], base_metrics, record.get("per_image"), base_images)
    if base_metrics is None:  # else compare() measured it against the baseline's MACs
        speedup = _dense_speedup(results, dense, spec)
        if speedup is None:
            results.pop("flops/theoretical_speedup", None)
        else:
            results["flops/theoretical_speedup"] = speedup
    if control is not None:
        results.update(control_keys(control, record, base_record))
    results.update(clock.run("latency", lambda: _latency(net, baseline, spec, cfg, device)))
    reference = _dense_bytes(base_metrics, dense)
    results.update(clock.run("size", lambda: _sparse(net, sparse_path, reference)))
    if wandb_run is not None:
        log_wandb(wandb_run, record, base_record, spec["class_names"], cfg)
    seconds = {part: s for part, s in clock.sink.items() if part not in _COUNTS}
    log.info(
        "evaluation: %s; %s attack steps (images x steps: %s)",
        ", ".join(f"{part} {s:.1f}s" for part, s in seconds.items()),
        f"{int(clock.sink.get('robust_steps', 0)):,}",
        attacked_models(clock.sink, baseline is not None),
    )
    return results


# Entries of evaluate's `timings` that count rather than time.
_COUNTS = ("robust_steps", "baseline_measured", "model_measured")


def attacked_models(timings: dict[str, float], has_baseline: bool) -> str:
    """Whose attack steps `evaluate`'s `timings` counted: a baseline's figures read from the
    cache cost none, so without this a count looks like half the work of a full one."""
    base, model = timings.get("baseline_measured"), timings.get("model_measured")
    if not has_baseline:
        return "this model"
    if not model:  # a sparsity-0 job: the model is its baseline
        if base:
            return "this model, its own baseline"
        return "none: this model is its baseline, whose figures came from the cache"
    return "this model and its baseline" if base else "this model; the baseline's from the cache"


def _latency(
    net: nn.Module, baseline: nn.Module | None, spec: dict, cfg: DictConfig, device: torch.device
) -> dict[str, Any]:
    lat = cfg.eval.latency
    fold = bool(lat.fold_batchnorm)
    # Copies as deployed (BatchNorm folded when asked), the baseline exactly like the model.
    nets = {"model": inference_copy(net, device, fold, channels_last=False)}
    if baseline is not None:
        nets["baseline"] = inference_copy(baseline, device, fold, channels_last=False)
    times = measure_latency(
        nets,
        spec["in_shape"],
        device,
        batch=int(lat.batch),
        warmup=int(lat.warmup),
        repeats_b1=int(lat.repeats_b1),
        repeats_bn=int(lat.repeats_bN),
        threads=lat.get("threads"),
    )
    out: dict[str, Any] = dict(times["model"])
    if baseline is not None:
        for k, v in times["baseline"].items():
            out[f"{k}_baseline"] = v
        for label in ("b1", "bN"):
            mine = times["model"][f"latency/{label}_ms"]
            out[f"latency/{label}_speedup"] = times["baseline"][f"latency/{label}_ms"] / mine
    out["latency/batch"] = int(lat.batch)
    out["latency/fold_batchnorm"] = fold
    out["latency/threads"] = int(lat.get("threads") or torch.get_num_threads())
    out["latency/device"] = device_name(device)
    return out


def _dense_speedup(results: dict[str, Any], dense: nn.Module | None, spec: dict) -> float | None:
    """flops/theoretical_speedup without a baseline: the dense architecture's MACs over the net's.

    count_macs' own ratio divides by the net's own dense MACs, which for a structurally shrunk
    net are already the shrunk ones (x1.00). MACs depend on the shapes alone, not the weights.
    """
    nonzero = results.get("flops/nonzero_macs")
    if dense is None or not nonzero:
        return None
    return count_macs(dense, spec["in_shape"])["flops/dense_macs"] / nonzero


def _dense_bytes(base_metrics: dict[str, Any] | None, dense: nn.Module | None) -> int | None:
    """The dense file that size/reduction_pct is measured against: the baseline's, else that
    of the unpruned architecture (torch.save's size depends on the shapes, not the values)."""
    if base_metrics is not None:
        return int(base_metrics["size/disk_bytes"])
    return dense_file_bytes(dense.state_dict()) if dense is not None else None


def _sparse(net: nn.Module, path: str | Path | None, dense_bytes: int | None) -> dict[str, Any]:
    state = net.state_dict()
    if path is not None:
        sparse = save_sparse(state, path)
    else:
        sparse = len(encode_sparse(state))
    out: dict[str, Any] = {"size/sparse_disk_bytes": sparse}
    if dense_bytes:  # no reference, no reduction: the net's own file may be a shrunk one
        out["size/reduction_pct"] = 100 * (1 - sparse / dense_bytes)
    return out


def log_wandb(
    run: Run,
    record: dict,
    base_record: dict | None,
    class_names: Sequence[str],
    cfg: DictConfig,
) -> None:
    """Confusion matrix, per-class accuracy and the robustness curve as W&B tables and plots."""
    import wandb

    names = list(class_names)
    y_true, y_pred = [], []
    for i, row in enumerate(record["confusion"]):
        for j, count in enumerate(row):
            y_true += [i] * int(count)
            y_pred += [j] * int(count)
    mine = record["metrics"]
    base = base_record["metrics"] if base_record is not None else {}
    per_class = wandb.Table(columns=["class", "acc", "acc_baseline"])
    for name, slug in zip(names, class_slugs(names), strict=True):
        k = f"test/acc_class/{slug}"
        per_class.add_data(name, mine.get(k), base.get(k))
    eps = list(cfg.attack.curve.eps_255)  # as robustness._curve_specs spells them in the keys
    series = {"model": [mine.get(f"robust/curve_acc@eps{k}") for k in eps]}
    if base:
        series["baseline"] = [base.get(f"robust/curve_acc@eps{k}") for k in eps]
    panels = {
        "test/confusion_matrix": wandb.plot.confusion_matrix(
            y_true=y_true, preds=y_pred, class_names=names, title="test confusion matrix"
        ),
        "test/per_class": per_class,
    }
    if eps:  # attack.curve.eps_255=[] runs no curve: nothing to plot
        panels["robust/curve"] = wandb.plot.line_series(
            xs=[float(k) for k in eps],
            ys=list(series.values()),
            keys=list(series),
            title="PGD accuracy vs eps",
            xname="eps (x 1/255)",
        )
    run.log(panels)
