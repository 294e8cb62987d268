"""4. Latency and size: dense, unstructured and structured variants, measured beside theoretical.

Everything measured here comes from the evaluation module (`measure_latency`, `count_macs`,
`size_metrics`, the sparse export) and the structured pruning module (`prune_channels`), so these
are the numbers a job reports.
"""

from __future__ import annotations

import copy

import torch
from common import ROOT, Section, conf, datamodule, net_for, progress, table

from prunelab.evaluation import count_macs, measure_latency, size_metrics
from prunelab.evaluation.fast import inference_copy
from prunelab.evaluation.size import encode_sparse
from prunelab.pruning.masks import apply_masks, global_magnitude_masks, prunable_weights
from prunelab.pruning.structured import prune_channels

AMOUNTS = (0.2, 0.5, 0.8)
LIMIT_UNSTRUCTURED = (
    "unstructured zeros: theoretical speed-up is not realisable by dense kernels; "
    "size shrinks only in the sparse file"
)
LIMIT_STRUCTURED = "realisable: smaller dense tensors"


def build_variants(model: str, dm) -> dict[str, torch.nn.Module]:
    """Dense, unstructured (global magnitude masks) and structured (channels removed) nets."""
    dense = net_for(model, dm).eval()
    nets = {"dense": dense}
    for amount in AMOUNTS:
        net = copy.deepcopy(dense)
        apply_masks(net, global_magnitude_masks(prunable_weights(net), amount))
        nets[f"unstructured {amount:g}"] = net
    for amount in AMOUNTS:
        nets[f"structured {amount:g}"] = prune_channels(copy.deepcopy(dense), amount, dm.in_shape)
    return nets


def _nonzero_weights(net: torch.nn.Module) -> int:
    return sum(int(torch.count_nonzero(w)) for w in prunable_weights(net).values())


def measure(model: str, latency: dict, device: torch.device) -> list[dict]:
    """One row per variant: removed share, MACs, theoretical and measured speed-ups, sizes."""
    dm = datamodule()
    nets = build_variants(model, dm)
    shape = tuple(dm.in_shape)
    fold = bool(conf("config").eval.latency.fold_batchnorm)  # as a job times them
    times = measure_latency(
        {
            name: inference_copy(net, device, fold, channels_last=False)
            for name, net in nets.items()
        },
        shape,
        device,
        **latency,
    )
    base = nets["dense"]
    base_weights = _nonzero_weights(base)
    base_macs = count_macs(base, shape)["flops/dense_macs"]
    base_size = size_metrics(base)["size/disk_bytes"]
    rows = []
    for name, net in nets.items():
        macs = count_macs(net, shape)["flops/nonzero_macs"]
        size = size_metrics(net)
        rows.append(
            {
                "variant": name,
                "removed": 1 - _nonzero_weights(net) / base_weights,
                "params": size["size/params"],
                "macs": macs,
                "theoretical": base_macs / macs,
                "b1_ms": times[name]["latency/b1_ms"],
                "b1_speedup": times["dense"]["latency/b1_ms"] / times[name]["latency/b1_ms"],
                "bN_speedup": times["dense"]["latency/bN_ms"] / times[name]["latency/bN_ms"],
                "dense_file": size["size/disk_bytes"] / base_size,
                "sparse_file": len(encode_sparse(net.state_dict())) / base_size,
            }
        )
    return rows


def structured_accuracy(model: str) -> list[str]:
    """Accuracy lines from a saved run of structured_speedup.py, if one exists."""
    saved = ROOT / "outputs" / "bench_structured" / f"{model}_seed0.pt"
    if not saved.is_file():
        return []
    rows = torch.load(saved, weights_only=True)["rows"]
    parts = [f"{float(r):g}: {row['acc']:.4f}" for r, row in rows.items()]
    return [
        f"- {model}, test accuracy after fine-tuning by channel ratio, from the saved run of "
        f"`benchmarks/structured_speedup.py` ({saved.relative_to(ROOT)}): " + ", ".join(parts)
    ]


def run(models: list[str], latency: dict, device: torch.device) -> Section:
    """Section 4 for `models`; `latency` = measure_latency's batch/warmup/repeats/threads."""
    section = Section("4. Latency and size: measured and theoretical speed-up side by side")
    rows, accuracy = [], []
    for model in models:
        progress(f"latency/size {model}: 7 variants interleaved")
        for r in measure(model, latency, device):
            structured = r["variant"].startswith("structured")
            limit = (
                ""
                if r["variant"] == "dense"
                else (LIMIT_STRUCTURED if structured else LIMIT_UNSTRUCTURED)
            )
            rows.append(
                [
                    model,
                    r["variant"],
                    f"{100 * r['removed']:.1f} %",
                    f"{r['params']:,}",
                    f"{r['macs'] / 1e6:.2f} M",
                    f"{r['theoretical']:.2f}x",
                    f"{r['b1_ms']:.3f}",
                    f"{r['b1_speedup']:.2f}x",
                    f"{r['bN_speedup']:.2f}x",
                    f"{r['dense_file']:.3f}",
                    f"{r['sparse_file']:.3f}",
                    limit,
                ]
            )
            section.numbers.setdefault(model, {})[r["variant"]] = r
        accuracy += structured_accuracy(model)
    dense_cfg = conf("config").eval.latency
    section.lines += [
        "Variants of one seeded, untrained initialisation (latency, MACs and file sizes do not "
        "depend on training; magnitude masks on it have the same per-layer shape statistics "
        "to first order). Unstructured = global L1 magnitude masks over the Conv2d/Linear "
        f"weights at {', '.join(f'{a:g}' for a in AMOUNTS)} (`prunelab.pruning.masks`, as "
        "`pruning=magnitude`); structured = that share of output channels removed from every "
        "Conv2d/Linear but the classifier (`prunelab.pruning.structured.prune_channels`, as "
        "`pruning=structured`, whose `sparsity` is the channel ratio).",
        "",
        f"Measured: `prunelab.evaluation.measure_latency` (eval mode, inference_mode, all "
        f"variants interleaved, medians; BatchNorm folded into the convolutions as in a job "
        f"(`eval.latency.fold_batchnorm`: {dense_cfg.fold_batchnorm}); batch 1 and batch "
        f"{latency['batch']}; warm-up "
        f"{latency['warmup']}, {latency['repeats_b1']} / {latency['repeats_bn']} repeats; a job "
        f"uses {dense_cfg.repeats_b1} / {dense_cfg.repeats_bN}). Theoretical: dense MACs of the "
        "dense net ÷ nonzero MACs of the variant (`count_macs`: torch's FlopCounterMode, "
        "scaled by each layer's weight density). File sizes ÷ the dense net's `torch.save` "
        "file: the variant's dense file and its lossless sparse export (`encode_sparse`).",
        "",
        *table(
            [
                "model",
                "variant",
                "weights removed",
                "params",
                "MACs (nonzero)",
                "theoretical speed-up",
                "b1 ms",
                "measured speed-up b1",
                f"measured speed-up b{latency['batch']}",
                "dense file ÷ dense",
                "sparse file ÷ dense",
                "limit",
            ],
            rows,
        ),
        "",
        "No verdict here: the table shows which theoretical speed-ups dense kernels turn into "
        "time. Unstructured zeros sit inside dense tensors, so every kernel does the full work "
        "(measured ≈ 1x at any sparsity; only the sparse file shrinks). Structured variants "
        "are smaller dense nets and do get faster, but less than their MACs say where fixed "
        "per-layer and framework costs dominate (batch 1, small layers); the batch-1 "
        f"latencies are medians of {latency['repeats_b1']} interleaved calls, noisy under load.",
        *accuracy,
    ]
    return section
