"""Evaluation of a pruned model against its dense baseline: accuracy with intervals, robustness,
latency, size and FLOPs, under the names of docs/metrics.md."""

from prunelab.evaluation.accuracy import accuracy_metrics, predict, wilson_interval
from prunelab.evaluation.core import baseline_tag, compare, evaluate, model_record, resolve_device
from prunelab.evaluation.flops import count_macs
from prunelab.evaluation.latency import measure_latency, strip_pruning
from prunelab.evaluation.robustness import eval_subset, measure_robustness
from prunelab.evaluation.size import (
    dense_file_bytes,
    load_sparse,
    save_sparse,
    size_metrics,
)

__all__ = [
    "accuracy_metrics",
    "baseline_tag",
    "compare",
    "count_macs",
    "dense_file_bytes",
    "eval_subset",
    "evaluate",
    "load_sparse",
    "measure_latency",
    "measure_robustness",
    "model_record",
    "predict",
    "resolve_device",
    "save_sparse",
    "size_metrics",
    "strip_pruning",
    "wilson_interval",
]
