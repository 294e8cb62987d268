"""2. What holding the masks costs per fine-tuning step: ours vs torch.nn.utils.prune vs Lightning.

Trainer level (the headline): every variant is its own Classifier + Trainer; each round fits every
variant for a few steps, order rotating, and a step is timed from the first callback's
`on_train_batch_start` to the last callback's `on_train_batch_end` (forward, backward, optimizer
step and every hook in between; not the data fetch). Direct (a cross-check with less noise): one
raw step per variant per round, our callback's two hook methods called around it.
"""

from __future__ import annotations

import copy
import statistics
import time

import lightning as L
import mask_direct
import torch
from common import (
    Section,
    conf,
    datamodule,
    finetune_optimizer,
    net_for,
    paired_ratio,
    progress,
    rotated,
    sync,
    table,
    verdict,
)
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelPruning
from torch.nn.utils import prune

from prunelab.module import Classifier
from prunelab.pruning import MagnitudePruning, measure_sparsity
from prunelab.pruning.masks import PRUNABLE

TARGET_OVER_DENSE = 1.03
NAMES = {
    "dense": "dense (unpruned)",
    "ours": "(a) ours: `MagnitudePruning` callback",
    "torch_prune": "(b) `torch.nn.utils.prune` hooks",
    "lightning": "(c) Lightning `ModelPruning`",
}


class StepClock:
    """Per-step seconds, between two callbacks placed first and last in the callback list."""

    def __init__(self, device: torch.device, skip: int) -> None:
        self.device, self.skip = device, skip
        self.times: list[float] = []
        self._start = 0.0
        clock = self

        class Start(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                sync(clock.device)
                clock._start = time.perf_counter()

        class End(L.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                sync(clock.device)
                if batch_idx >= clock.skip:  # the first steps of a fit warm up
                    clock.times.append(time.perf_counter() - clock._start)

        self.start, self.end = Start(), End()

    def take(self) -> float:
        """Median step seconds since the last take."""
        value, self.times = statistics.median(self.times), []
        return value


class PruneOnce:
    """ModelPruning's `apply_pruning`: True for the first epoch end it sees, then never again.

    Every round starts a new Trainer at epoch 0; a constant `apply_pruning=True` would prune
    again at each of those epoch ends, compounding the sparsity (Lightning's docs for ModelPruning).
    """

    def __init__(self) -> None:
        self.done = False

    def __call__(self, epoch: int) -> bool:
        first, self.done = not self.done, True
        return first


def prunable_pairs(net: torch.nn.Module) -> list[tuple[torch.nn.Module, str]]:
    """(module, 'weight') for every Conv2d and Linear: the weights our masks cover."""
    return [(m, "weight") for m in net.modules() if isinstance(m, PRUNABLE)]


def variants(model: str, amount: float) -> dict[str, dict]:
    """Each variant's Classifier and the callbacks it fine-tunes with (same initial weights)."""
    dm = datamodule()
    base = net_for(model, dm)
    out = {}
    for name in NAMES:
        net = copy.deepcopy(base)
        callbacks: list = []
        if name == "ours":
            callbacks = [MagnitudePruning(amount)]
        elif name == "torch_prune":
            prune.global_unstructured(
                prunable_pairs(net), pruning_method=prune.L1Unstructured, amount=amount
            )
        elif name == "lightning":
            callbacks = [
                ModelPruning(
                    pruning_fn="l1_unstructured",
                    parameters_to_prune=prunable_pairs(net),  # default: every weight and bias
                    use_global_unstructured=True,
                    amount=amount,
                    apply_pruning=PruneOnce(),
                    use_lottery_ticket_hypothesis=False,  # default True rewinds survivors
                    # Default True removes the hooks at train end; kept so later rounds (new
                    # Trainers) measure the steady state with the hooks in place.
                    make_pruning_permanent=False,
                    verbose=0,
                )
            ]
        module = Classifier(net, dm.num_classes, finetune_optimizer(), scheduler=None)
        out[name] = {"module": module, "callbacks": callbacks, "dm": dm}
    return out


def _fit(variant: dict, clock: StepClock, steps: int, root) -> None:
    trainer = instantiate(
        conf("trainer/default"),
        max_epochs=1,
        limit_train_batches=steps,
        limit_val_batches=0,
        callbacks=[clock.start, *variant["callbacks"], clock.end],
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        default_root_dir=str(root),
    )
    trainer.fit(variant["module"], datamodule=variant["dm"])


def trainer_level(model: str, amount: float, p: dict, root, device) -> dict[str, list[float]]:
    """Median step seconds per variant per round (Trainer level)."""
    vs = variants(model, amount)
    clock = StepClock(device, skip=p["warm"])
    for v in vs.values():  # Lightning's ModelPruning prunes at the end of this first epoch
        _fit(v, clock, p["warm"] + 1, root)
        clock.times = []
    times: dict[str, list[float]] = {name: [] for name in vs}
    for r in range(p["rounds"]):
        for name in rotated(list(vs), r):
            _fit(vs[name], clock, p["warm"] + p["steps"], root)
            times[name].append(clock.take())
    sparsity = {
        n: measure_sparsity(v["module"].net)["prune/sparsity_measured"] for n, v in vs.items()
    }
    return {"times": times, "sparsity": sparsity}


def _trainer_rows(model: str, t: dict, section: Section) -> list[list[str]]:
    """Table rows (dense first) and summary entries of the Trainer-level measurement."""
    ms = {name: f"{1e3 * statistics.median(t[name]):.2f}" for name in NAMES}
    rows = [[model, NAMES["dense"], ms["dense"], "1", "", "", ""]]
    for name in ("ours", "torch_prune", "lightning"):
        over = paired_ratio(t[name], t["dense"])
        section.numbers[model][name] = over.__dict__
        rows.append([model, NAMES[name], ms[name], over.text(), "", "", ""])
    over = paired_ratio(t["ours"], t["dense"])
    checks = [
        (f"ours ÷ dense step, {model} (Trainer)", TARGET_OVER_DENSE, over),
        (f"ours ÷ (b) torch prune, {model}", 1.0, paired_ratio(t["ours"], t["torch_prune"])),
        (f"ours ÷ (c) ModelPruning, {model}", 1.0, paired_ratio(t["ours"], t["lightning"])),
    ]
    for what, target, ratio in checks:
        section.summary.append(
            [f"2. {what}", f"≤ {target:g}", ratio.text(), verdict(ratio, target, False)]
        )
    # The ÷ dense ratio is already in its column: the target column gets the verdict only.
    rows[1][4:] = [verdict(over, TARGET_OVER_DENSE, False)] + [
        f"{r.text()}: {verdict(r, 1.0, False)}" for _, _, r in checks[1:]
    ]
    section.numbers[model]["ours_vs_torch_prune"] = checks[1][2].__dict__
    section.numbers[model]["ours_vs_lightning"] = checks[2][2].__dict__
    return rows


def _direct_rows(model: str, d: dict, section: Section) -> tuple[list, list]:
    """Rows of the direct table and of the hook-work table (+ summary entries)."""
    dense = statistics.median(d["dense"])
    ours = paired_ratio(d["ours"], d["dense"])
    vs_b = paired_ratio(d["ours"], d["torch_prune"])
    gradmask = paired_ratio(d["ours_gradmask"], d["dense"])
    section.summary += [
        [
            f"2. ours ÷ dense step, {model} (direct)",
            f"≤ {TARGET_OVER_DENSE}",
            ours.text(),
            verdict(ours, TARGET_OVER_DENSE, False),
        ],
    ]
    work = {k: statistics.median(d[k]) for k in ("hooks_ours", "hooks_torch_prune")}
    steps = ("dense", "ours", "ours_gradmask", "torch_prune")
    adam = {k: statistics.median(d[f"opt_{k}"]) for k in steps}
    section.numbers[model].update(
        direct_ours=ours.__dict__,
        direct_ours_vs_torch_prune=vs_b.__dict__,
        direct_ours_gradmask=gradmask.__dict__,
        direct_dense_step_ms=1e3 * dense,
        adam_step_ms={k: 1e3 * v for k, v in adam.items()},
        **{f"{k}_us": 1e6 * v for k, v in work.items()},
    )
    direct_row = [
        model,
        f"{1e3 * dense:.2f}",
        ours.text(),
        verdict(ours, TARGET_OVER_DENSE, False),
        paired_ratio(d["torch_prune"], d["dense"]).text(),
        f"{vs_b.text()}: {verdict(vs_b, 1.0, False)}",
        " / ".join(f"{1e3 * v:.2f}" for v in adam.values()),
        gradmask.text(),
    ]
    work_row = [model, f"{1e3 * dense:.2f}"] + [
        f"{1e6 * v:.0f} µs ({100 * v / dense:.2f} %)" for v in work.values()
    ]
    return direct_row, work_row


def run(plan: dict, amount: float, root, device) -> Section:
    """Section 2 for every model of `plan` ({model: {"warm", "steps", "rounds", "direct"}})."""
    section = Section("2. Cost of holding the masks during fine-tuning")
    rows, direct_rows, work_rows, checks = [], [], [], []
    sqrt_slowdown: dict[str, float] = {}
    for model, p in plan.items():
        section.numbers[model] = {}
        progress(f"mask cost {model}: Trainer level, {p['rounds']} rounds x 4 variants")
        found = trainer_level(model, amount, p, root / f"mask-{model}", device)
        rows += _trainer_rows(model, found["times"], section)
        sp = found["sparsity"]
        section.numbers[model]["sparsity_measured"] = sp
        checks.append(f"{model}: " + ", ".join(f"{n} {100 * s:.1f} %" for n, s in sp.items()))
        progress(f"mask cost {model}: direct, {p['direct']} interleaved rounds")
        d = mask_direct.measure(variants(model, amount), p["direct"], device)
        direct_row, work_row = _direct_rows(model, d, section)
        direct_rows.append(direct_row)
        n_weights = sum(m.weight.numel() for m, _ in prunable_pairs(net_for(model, datamodule())))
        sqrt_slowdown[model] = mask_direct.sqrt_of_zeros(n_weights)
        section.numbers[model]["sqrt_zeros_slowdown"] = sqrt_slowdown[model]
        work_rows.append(work_row)
    section.lines += [
        f"Targets: ours ≤ {TARGET_OVER_DENSE} × the dense step, and ours ÷ each alternative "
        f"≤ 1. Sparsity {amount:g} of the Conv2d/Linear weights, batch 32, Adam (fine-tuning "
        "settings), no LR schedule. Ratios are medians of per-round paired ratios "
        "(each round times every variant, order rotating).",
        "",
        TRAINER_METHOD,
        "",
        *table(
            [
                "model",
                "variant",
                "step ms",
                "÷ dense",
                f"ours ≤ {TARGET_OVER_DENSE:g}",
                "ours ÷ (b)",
                "ours ÷ (c)",
            ],
            rows,
        ),
        "",
        DIRECT_METHOD,
        "",
        *table(
            [
                "model",
                "dense step ms",
                "ours ÷ dense",
                "verdict",
                "(b) ÷ dense",
                "ours ÷ (b)",
                "Adam step ms: dense / ours / ours, gradients masked / (b)",
                "ours with gradients masked ÷ dense",
            ],
            direct_rows,
        ),
        "",
        "Why ours masks only the weights: Adam is elementwise, so a pruned weight's gradient "
        "changes only that weight's own update, which `on_train_batch_end` zeroes again; the "
        "surviving weights come out bit-identical (tested: tests/test_pruning.py). Masking the "
        "gradients too would pin Adam's `exp_avg_sq` at exactly 0 for the pruned weights, and "
        "`torch.sqrt` of exact zeros took "
        + ", ".join(f"{x:.1f}x ({m})" for m, x in sqrt_slowdown.items())
        + " as long as of ordinary floats on this CPU (measured in this run, tensors the size "
        "of each model's prunable weights): see the Adam column and the last column, which "
        "time that variant. The callback still masks the gradients where they matter: under "
        "gradient-norm clipping (the norm must not count pruned gradients) and for an "
        "optimizer outside its list of elementwise ones. (b) escapes the slow path anyway: its "
        "`weight_orig` keeps its pruned values, weight decay feeds them into the gradient, so "
        "no second moment is exactly 0.",
        "",
        HOOK_METHOD,
        "",
        *table(
            [
                "model",
                "dense step ms",
                "ours: hook work per step",
                "(b): forward pre-hooks alone",
            ],
            work_rows,
        ),
        "",
        *CONFIGS,
        "",
        "Measured sparsity after the runs (zeros among Conv2d/Linear weights; dense should be "
        "0): " + "; ".join(checks) + ".",
    ]
    return section


TRAINER_METHOD = (
    "**Trainer level** (method: `Trainer.fit` of a few steps per variant per round; a step "
    "is timed from the first callback's `on_train_batch_start` to the last callback's "
    "`on_train_batch_end`, i.e. forward, backward, `on_before_optimizer_step`, optimizer "
    "step, `on_train_batch_end` of every callback; data fetch excluded; the first steps "
    "of each fit dropped; no logger, no progress bar, no checkpoint for any variant):"
)
DIRECT_METHOD = (
    "**Direct** (cross-check with less noise: one raw step per variant per round on one fixed "
    "batch, our callback's `on_before_optimizer_step` and `on_train_batch_end` called around "
    "`optimizer.step()` as Lightning calls them; (c) adds no per-step work to (b)'s hooks, so "
    "it is not repeated here):"
)
HOOK_METHOD = (
    "**Hook work alone** (same rounds, medians; % of the direct dense step): ours, both hook "
    "methods as they are (one `torch._foreach_mul_` over the weights with float masks, the "
    "masked weights cached as a list; no gradient work under Adam), and (b)'s pre-hooks "
    "(`weight_orig * weight_mask` per layer; its backward multiply comes on top and is only in "
    "the step ratios):"
)
CONFIGS = [
    "Configuration of the alternatives (comparable to ours: global L1 over exactly the "
    "Conv2d/Linear weights, pruned once):",
    "- (b) `prune.global_unstructured(pairs, pruning_method=L1Unstructured, amount)` before "
    "fine-tuning: `weight_orig` is the parameter, a forward pre-hook recomputes "
    "`weight = weight_orig * weight_mask` on every forward (and autograd pays the multiply "
    "backwards).",
    "- (c) `ModelPruning('l1_unstructured', parameters_to_prune=pairs, "
    "use_global_unstructured=True, amount, use_lottery_ticket_hypothesis=False, "
    "apply_pruning=<once>, make_pruning_permanent=False)`. Its defaults do not fit "
    "for this study: it would prune biases and BatchNorm too, rewind survivors (lottery "
    "ticket), prune again at every epoch end. It prunes at the *end* of epoch 0, so a "
    "warm-up fit prunes and the timed rounds measure the steady state with the hooks in "
    "place; `make_pruning_permanent=False` because its default folds the hooks away at "
    "train end, and every round is a new `fit`.",
    "- (a) ours: masks computed in `on_fit_start`; the masked weights and their masks as "
    "float tensors are cached as two lists (rebuilt only when the masks change); "
    "`on_train_batch_end` multiplies the weights by the masks with one `torch._foreach_mul_`; "
    "`on_before_optimizer_step` does the same to the gradients only under gradient-norm "
    "clipping or a non-elementwise optimizer (not here: Adam, no clipping).",
]
