"""More pruning methods under the same protocol: gradual, random, layer-wise, lottery rewinding."""

import copy
import re

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint

from prunelab import pipeline
from prunelab.build import build_datamodule, data_spec
from prunelab.data import FashionMNISTDataModule
from prunelab.errors import PrunelabError
from prunelab.models import SimpleCNN
from prunelab.module import Classifier
from prunelab.pruning import (
    CubicSchedule,
    GradualMagnitudePruning,
    LayerwiseMagnitudePruning,
    LotteryRewinding,
    MagnitudePruning,
    MaskGuard,
    RandomPruning,
    SaveWeightsAt,
    cubic_sparsity,
    global_magnitude_masks,
    initial_state,
    layerwise_magnitude_masks,
    load_rewind_weights,
    mask_violations,
    measure_sparsity,
    prunable_weights,
    random_masks,
)
from prunelab.pruning.masks import max_amount, n_to_prune

from conftest import DATA, quiet_trainer, undocumented

# Under pytest-xdist (`make test`) this module's tests stay on one worker, so its module-scoped
# fixtures are built once.
pytestmark = pytest.mark.xdist_group("test_pruning_methods")


def _trainer(epochs: int, callbacks: list, root, **kwargs) -> L.Trainer:
    # No validation: nothing here reads validation metrics; the CPUs are shared.
    return quiet_trainer(epochs, callbacks, root, limit_val_batches=0, **kwargs)


def _module(net) -> Classifier:
    return Classifier(net, 10, lambda p: torch.optim.Adam(p, lr=1e-3, weight_decay=1e-4))


def _clone(tensors: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in tensors.items()}


def count_pruned(masks: dict) -> int:
    """How many positions the masks remove."""
    return sum(int((~m).sum()) for m in masks.values())


def _n_weights(net) -> int:
    return sum(w.numel() for w in prunable_weights(net).values())


@pytest.fixture(scope="module")
def data():
    dm = FashionMNISTDataModule(str(DATA), train_size=256, val_size=64, test_size=64)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """(net trained one epoch on real Fashion-MNIST, its state at initialisation)."""
    L.seed_everything(0)
    net = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    init = _clone(net.state_dict())
    _trainer(1, [], tmp_path_factory.mktemp("base")).fit(_module(net), data)
    return net, init


class Record(L.Callback):
    """Keeps (global step, masks, violations) at every batch start, after pruning acted."""

    def __init__(self, pruning: MagnitudePruning) -> None:
        self.pruning, self.seen = pruning, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        masks = _clone(self.pruning.masks)
        violations = mask_violations(pl_module.net, masks)
        self.seen.append((trainer.global_step, masks, violations))


class Interrupt(Exception):
    """Stands for a job killed mid-run."""


class InterruptAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise Interrupt


# --- gradual magnitude pruning -------------------------------------------------------------


def test_cubic_schedule_values():
    # Zhu & Gupta: s_i at t0, s_f at t0 + n*dt, s_f + (s_i - s_f) / 8 halfway; dense before t0.
    assert cubic_sparsity(100, 0.1, 0.8, start=100, span=1000) == pytest.approx(0.1)
    assert cubic_sparsity(600, 0.1, 0.8, start=100, span=1000) == pytest.approx(0.8 - 0.7 / 8)
    assert cubic_sparsity(1100, 0.1, 0.8, start=100, span=1000) == 0.8
    assert cubic_sparsity(5000, 0.1, 0.8, start=100, span=1000) == 0.8
    assert cubic_sparsity(99, 0.1, 0.8, start=100, span=1000) == 0.0

    schedule = CubicSchedule.for_budget(100, 0.0, 0.8, start=0.0, end=0.7, every=10)
    assert (schedule.start, schedule.every, schedule.events, schedule.end) == (0, 10, 7, 70)
    values = [schedule.sparsity_at(t) for t in range(100)]
    assert values == sorted(values), "the schedule never decreases"
    assert values[0] == 0.0 and values[69] < 0.8 and values[70] == 0.8 and values[99] == 0.8
    assert values[35] == pytest.approx(0.8 * (1 - (1 - 30 / 70) ** 3))  # holds event 3's value
    # Too short for one interval: one event at the end of the span; a 1-step run prunes at once.
    short = CubicSchedule.for_budget(8, 0.0, 0.8, start=0.0, end=0.7, every=50)
    assert (short.every, short.events, short.sparsity_at(4), short.sparsity_at(5)) == (5, 1, 0, 0.8)
    assert CubicSchedule.for_budget(1, 0.0, 0.8, 0.0, 0.7, 50).sparsity_at(0) == 0.8
    with pytest.raises(PrunelabError, match="finite"):
        CubicSchedule.for_budget(float("inf"), 0.0, 0.8, 0.0, 0.7, 50)


@pytest.mark.parametrize(
    "bad", [{"initial_amount": 0.9}, {"start": 0.7, "end": 0.7}, {"every": 0}, {"scope": "x"}]
)
def test_gradual_rejects_bad_schedules(bad):
    with pytest.raises(PrunelabError):
        GradualMagnitudePruning(0.8, **bad)


def test_gradual_masks_grow_monotonically_to_the_exact_target(trained, data, tmp_path):
    net = copy.deepcopy(trained[0])
    before = _clone(prunable_weights(net))
    pruning = GradualMagnitudePruning(0.8, every=2, end=0.7)
    record = Record(pruning)
    _trainer(2, [pruning, record, MaskGuard(pruning)], tmp_path).fit(_module(net), data)

    schedule, total = pruning.schedule, _n_weights(net)
    assert (schedule.every, schedule.events, schedule.end) == (2, 5, 10)  # 16 steps, 70 % = 11
    for (_, earlier, _), (_, later, _) in zip(record.seen, record.seen[1:], strict=False):
        assert all(not (later[n] & ~earlier[n]).any() for n in earlier), "a weight came back"
    for step, masks, violations in record.seen:
        assert violations == {}
        assert count_pruned(masks) == round(schedule.sparsity_at(step) * total), step
    levels = {count_pruned(m) for _, m, _ in record.seen}
    assert len(levels) == schedule.events + 1  # really gradual: one level per event

    assert count_pruned(pruning.masks) == round(0.8 * total)
    assert measure_sparsity(net)["prune/sparsity_measured"] == round(0.8 * total) / total
    assert mask_violations(net, pruning.masks) == {}
    weights = prunable_weights(net)
    kept = {n: m.cpu() for n, m in pruning.masks.items()}
    assert all(not torch.equal(weights[n][kept[n]], before[n][kept[n]]) for n in weights)


class StopAt(L.Callback):
    """Stands for a stop signal (trainer.max_time, Ctrl-C's graceful stop) at `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            trainer.should_stop = True


def test_gradual_stopped_early_says_so_in_one_prunelab_line(data, tmp_path, capsys):
    """The stop was a UserWarning: two lines naming gradual.py and its source line."""
    import warnings

    net = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    pruning = GradualMagnitudePruning(0.8, every=2, end=0.7)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _trainer(2, [pruning, StopAt(3), MaskGuard(pruning)], tmp_path).fit(_module(net), data)
    assert not [w for w in caught if "gradual" in str(w.message)]
    lines = [line for line in capsys.readouterr().err.splitlines() if "gradual" in line]
    assert lines == [
        f"prunelab: warning: gradual pruning stopped at event 1 of {pruning.schedule.events}; "
        "pruning to the final sparsity 0.8 without further training"
    ]
    assert count_pruned(pruning.masks) == round(0.8 * _n_weights(net))


# The mid-epoch save is the point here (the pipeline saves at epoch ends only).
@pytest.mark.filterwarnings("ignore:You're resuming from a checkpoint that ended before")
@pytest.mark.filterwarnings("ignore:Be aware that when using")
def test_gradual_resume_mid_schedule_restores_schedule_and_masks(trained, data, tmp_path):
    first = GradualMagnitudePruning(0.8, every=2, end=0.7)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, every_n_train_steps=5)
    with pytest.raises(Interrupt):
        _trainer(2, [first, ckpt, InterruptAt(7)], tmp_path).fit(
            _module(copy.deepcopy(trained[0])), data
        )
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"]
    state = saved["GradualMagnitudePruning"]
    assert state["events_done"] == 2  # events at steps 0, 2, 4 of 0..10 before the save at 5
    saved_masks = state["masks"]

    # Other knobs and other weights: a re-planned schedule or re-pruning would differ.
    other = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    second = GradualMagnitudePruning(0.8, every=3, end=0.5)
    record = Record(second)
    _trainer(2, [second, record, MaskGuard(second)], tmp_path).fit(
        _module(other), data, ckpt_path=str(tmp_path / "last.ckpt"), weights_only=True
    )
    assert second.schedule == CubicSchedule.from_dict(state["schedule"]) == first.schedule
    step, masks, _ = record.seen[0]
    assert step == 5
    assert all(torch.equal(masks[n], saved_masks[n]) for n in saved_masks)
    final = {n: m.cpu() for n, m in second.masks.items()}
    assert all(not (final[n] & ~saved_masks[n]).any() for n in final), "monotone across resume"
    assert count_pruned(final) == round(0.8 * _n_weights(other))
    assert second.events_done == second.schedule.events
    assert mask_violations(other, final) == {}


# --- reference baselines -------------------------------------------------------------------


def test_random_masks_same_count_as_magnitude_but_other_weights(trained):
    weights = prunable_weights(trained[0])
    magnitude = global_magnitude_masks(weights, 0.5)
    rand = random_masks(weights, 0.5, seed=0)
    assert count_pruned(rand) == count_pruned(magnitude) == round(0.5 * _n_weights(trained[0]))
    agree = sum(int((rand[n] == magnitude[n]).sum()) for n in rand) / _n_weights(trained[0])
    assert agree < 0.6  # chance agreement is 0.5; magnitude masks would agree fully
    again, other = random_masks(weights, 0.5, seed=0), random_masks(weights, 0.5, seed=1)
    assert all(torch.equal(rand[n], again[n]) for n in rand)
    assert not all(torch.equal(rand[n], other[n]) for n in rand)


def test_layerwise_masks_exact_per_layer(trained):
    weights = prunable_weights(trained[0])
    masks = layerwise_magnitude_masks(weights, 0.8)
    for name, w in weights.items():
        mask = masks[name]
        assert int((~mask).sum()) == round(0.8 * w.numel()), name
        assert w[mask].abs().min() >= w[~mask].abs().max(), name  # smallest |w| of this layer
    glob = global_magnitude_masks(weights, 0.8)
    assert not all(torch.equal(masks[n], glob[n]) for n in masks)


def _lottery(amount, init):
    pruning = LotteryRewinding(amount)
    pruning.rewind_state = init
    return pruning


ONE_SHOT = {
    "random": lambda init: RandomPruning(0.8, seed=0),
    "layerwise": lambda init: LayerwiseMagnitudePruning(0.8),
    "lottery": lambda init: _lottery(0.8, init),
}
RESUMED = {  # a second instance that would prune (or rewind) differently if asked to
    "random": lambda: RandomPruning(0.8, seed=7),
    "layerwise": lambda: LayerwiseMagnitudePruning(0.8),
    "lottery": lambda: LotteryRewinding(0.8, rewind_epoch=5),  # no source: must not rewind
}


# The resuming Trainer has no ModelCheckpoint on purpose: Lightning's note about it is expected.
@pytest.mark.filterwarnings("ignore:Be aware that when using")
@pytest.mark.parametrize("method", sorted(ONE_SHOT))
def test_one_shot_methods_hold_masks_and_restore_them_on_resume(method, trained, data, tmp_path):
    net = copy.deepcopy(trained[0])
    pruning = ONE_SHOT[method](trained[1])
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    _trainer(1, [pruning, MaskGuard(pruning), ckpt], tmp_path, limit_train_batches=3).fit(
        _module(net), data
    )
    masks = _clone(pruning.masks)
    expected = {
        "random": round(0.8 * _n_weights(net)),
        "layerwise": sum(round(0.8 * m.numel()) for m in masks.values()),
        "lottery": round(0.8 * _n_weights(net)),
    }[method]
    assert count_pruned(masks) == expected
    assert mask_violations(net, masks) == {}

    other = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    second = RESUMED[method]()
    _trainer(2, [second, MaskGuard(second)], tmp_path, limit_train_batches=3).fit(
        _module(other), data, ckpt_path=str(tmp_path / "last.ckpt"), weights_only=True
    )
    assert all(torch.equal(second.masks[n].cpu(), masks[n]) for n in masks)
    assert mask_violations(other, masks) == {}


# --- lottery-ticket rewinding --------------------------------------------------------------


class Snapshot(L.Callback):
    """The net's full state when training starts (after pruning and rewinding)."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.state = _clone(pl_module.net.state_dict())


@pytest.mark.parametrize("scope", ["all", "prunable"])
def test_lottery_rewinds_survivors_to_init_and_keeps_pruned_zero(scope, trained, data, tmp_path):
    net, init = copy.deepcopy(trained[0]), trained[1]
    trained_state = _clone(net.state_dict())
    expected = global_magnitude_masks(prunable_weights(net), 0.8)  # ranked on trained weights
    pruning = LotteryRewinding(0.8, scope=scope)
    pruning.rewind_state = init
    snap = Snapshot()
    _trainer(1, [pruning, MaskGuard(pruning), snap], tmp_path, limit_train_batches=2).fit(
        _module(net), data
    )

    assert all(torch.equal(pruning.masks[n].cpu(), expected[n]) for n in expected)
    for name, value in snap.state.items():
        if name in expected:
            assert torch.equal(value, init[name] * expected[name]), name
            assert not value[~expected[name]].any()
        else:  # biases, BatchNorm affine and running statistics, Normalize buffers
            source = init if scope == "all" else trained_state
            assert torch.equal(value, source[name]), name
    assert mask_violations(net, expected) == {}
    assert count_pruned(pruning.masks) == round(0.8 * _n_weights(net))


def test_init_rebuild_matches_what_train_baseline_builds(make_cfg, monkeypatch, tmp_path):
    cfg = make_cfg()
    dm = build_datamodule(cfg)
    spec = data_spec(dm)
    built, real_build = [], pipeline.build_net

    def spy(model_cfg, spec_):
        net = real_build(model_cfg, spec_)
        built.append(_clone(net.state_dict()))  # the init, before any training step
        return net

    monkeypatch.setattr(pipeline, "build_net", spy)
    pipeline.train_baseline(cfg, dm, spec, [], tmp_path / "work")
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    rebuilt = initial_state(cfg.model, spec, cfg.seed)
    assert torch.equal(torch.rand(3), expected_next), "initial_state must not move global RNGs"
    assert built[0].keys() == rebuilt.keys()
    assert all(torch.equal(built[0][k], rebuilt[k]) for k in rebuilt)


# The resuming Trainer has no ModelCheckpoint on purpose: Lightning's note about it is expected.
@pytest.mark.filterwarnings("ignore:Be aware that when using")
def test_save_weights_at_and_rewind_to_an_early_epoch(data, tmp_path):
    L.seed_everything(0)
    net = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    init = _clone(net.state_dict())
    rewind_dir, ckpt_dir = tmp_path / "rewind", tmp_path / "ckpt"
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_top_k=0)
    _trainer(1, [SaveWeightsAt([0, 1, 2], rewind_dir), ckpt], tmp_path).fit(_module(net), data)
    after_one = _clone(net.state_dict())
    epoch0, epoch1 = load_rewind_weights(rewind_dir, 0), load_rewind_weights(rewind_dir, 1)
    assert all(torch.equal(epoch0[k], init[k]) for k in init)
    assert all(torch.equal(epoch1[k], after_one[k]) for k in after_one)
    with pytest.raises(PrunelabError, match="epoch 2"):
        load_rewind_weights(rewind_dir, 2)

    # A resumed baseline keeps epoch 0 as it was and adds epoch 2.
    _trainer(2, [SaveWeightsAt([0, 1, 2], rewind_dir)], tmp_path).fit(
        _module(net), data, ckpt_path=str(ckpt_dir / "last.ckpt"), weights_only=True
    )
    assert all(torch.equal(load_rewind_weights(rewind_dir, 0)[k], init[k]) for k in init)
    assert all(torch.equal(load_rewind_weights(rewind_dir, 1)[k], after_one[k]) for k in init)
    assert load_rewind_weights(rewind_dir, 2)["head.1.weight"].shape == (128, 1152)

    # Late rewinding: survivors take their epoch-1 values, read from the folder.
    pruning = LotteryRewinding(0.5, rewind_epoch=1, rewind_dir=str(rewind_dir))
    expected = global_magnitude_masks(prunable_weights(net), 0.5)
    snap = Snapshot()
    _trainer(1, [pruning, snap], tmp_path, limit_train_batches=1).fit(
        _module(copy.deepcopy(net)), data
    )
    for name in expected:
        assert torch.equal(snap.state[name], after_one[name] * expected[name]), name


def test_lottery_without_rewind_weights_fails_clearly(trained, data, tmp_path):
    pruning = LotteryRewinding(0.5, rewind_epoch=1, rewind_dir=str(tmp_path / "none"))
    # The message says what to set, not how the code saves states.
    with pytest.raises(PrunelabError, match="set baseline.rewind_epochs to include 1"):
        _trainer(1, [pruning], tmp_path).fit(_module(copy.deepcopy(trained[0])), data)


def test_lottery_rewinding_past_an_early_stopped_baseline_says_when_it_stopped(make_cfg):
    # lr 0.05, patience 1: the smoke baseline stops early, before epoch 5. Which epoch it
    # stops after (2 or 3 so far) varies with the CPU's float rounding, so the test reads it
    # from the message and checks the rest of the message agrees with it.
    cfg = make_cfg(
        "pruning=lottery",
        "pruning.rewind_epoch=5",
        "baseline.rewind_epochs=[0,2,5]",
        "baseline.max_epochs=8",
        "baseline.patience=1",
        "baseline.optimizer.lr=0.05",
    )
    with pytest.raises(PrunelabError) as err:
        pipeline.run(cfg)
    stopped = re.search(r"stopped after epoch (\d+) of", str(err.value))
    assert stopped, str(err.value)
    stopped = int(stopped.group(1))
    assert 1 <= stopped < 5
    reached = "0 or 2" if stopped >= 2 else "0"
    assert str(err.value) == (
        "pruning.rewind_epoch=5 needs the baseline's weights after epoch 5, but the baseline "
        f"stopped after epoch {stopped} of baseline.max_epochs=8 (early stopping: no better "
        "validation accuracy in baseline.patience=1 epochs): rewind to an epoch it reached "
        f"(pruning.rewind_epoch={reached}), or train the baseline longer with a larger "
        "baseline.patience (a new baseline)"
    )


# --- settings refused before the baseline trains --------------------------------------------

# SimpleCNN on 1x28x28: 241,184 prunable weights, the smallest layer (features.1) holds 288.
GLOBAL = {
    "magnitude": lambda a: MagnitudePruning(a),
    "random": lambda a: RandomPruning(a, seed=0),
    "gradual": lambda a: GradualMagnitudePruning(a),
    "lottery": lambda a: LotteryRewinding(a),
}
PER_LAYER = {
    "layerwise": lambda a: LayerwiseMagnitudePruning(a),
    "gradual": lambda a: GradualMagnitudePruning(a, scope="layer"),
}


def _simplecnn():
    torch.manual_seed(0)
    return SimpleCNN((1, 28, 28), 10, (0.5,), (0.25,))


@pytest.mark.parametrize("amount", [0.999999, 0.9999999])
@pytest.mark.parametrize("method", sorted(GLOBAL))
def test_a_sparsity_that_prunes_every_weight_is_refused_with_the_largest_that_works(method, amount):
    # round(0.999999 * 241184) = 241184: every weight goes, a constant classifier, exit 0.
    net = _simplecnn()
    with pytest.raises(PrunelabError) as err:
        GLOBAL[method](amount).check_net(net)
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"sparsity={amount} would prune all 241,184 prunable weights of SimpleCNN "
        f"(round({amount} * 241184) = 241184); use at most 0.999997"
    )
    # The stated value works (one weight left) and the next step up would not.
    pruning = GLOBAL[method](0.999997)
    pruning.check_net(net)
    if method != "gradual":  # gradual starts dense; its last event prunes the same count
        assert count_pruned(pruning.compute_masks(net)) == 241184 - 1
    assert n_to_prune(0.999998, 241184) == 241184


@pytest.mark.parametrize("method", sorted(PER_LAYER))
def test_a_sparsity_that_empties_a_layer_is_refused_naming_the_layer(method):
    net = _simplecnn()
    with pytest.raises(PrunelabError) as err:
        PER_LAYER[method](0.999).check_net(net)
    message = str(err.value)
    assert "would prune every weight of features.1 (288 weights: round(0.999 * 288) = 288)" in (
        message
    )
    assert message.endswith("the largest sparsity that keeps a weight in every layer is 0.998")
    pruning = PER_LAYER[method](0.998)
    pruning.check_net(net)
    masks = layerwise_magnitude_masks(prunable_weights(net), 0.998)
    assert min(int(m.sum()) for m in masks.values()) == 1  # features.1 keeps one of 288
    # Global ranking at 0.999 keeps 241 weights: refused per layer only.
    MagnitudePruning(0.999).check_net(net)


def test_the_stated_largest_sparsity_keeps_a_weight_and_is_the_largest_at_its_digits():
    for sizes in ([1], [2], [3], [7, 1000], [288, 1280], [241184], [693792], [10**7]):
        best = max_amount(sizes)
        assert all(n_to_prune(best, n) < n for n in sizes), sizes
        digits = len(repr(best).split(".")[1])
        step = round(best + 10**-digits, digits)
        assert any(n_to_prune(step, n) >= n for n in sizes), (sizes, best)
    assert max_amount([241184]) == 0.999997 and max_amount([288, 1280]) == 0.998
    assert max_amount([]) is None


# Pruning seeds follow the run seed's 32-bit range (prunelab.validate.SEED_LIMIT): lottery
# rewinding rebuilds the initialisation through Lightning's seed_everything.
SEED_RULE = "a whole number >= 0 and < 4294967296"

# (method, keyword arguments, the message's end): each once failed only at fine-tuning, after
# the baseline trained, or was truncated in silence (every=1.5 ran as 1).
BAD_ARGS = [
    (
        MagnitudePruning,
        {"amount": "abc"},
        "pruning.amount (the sparsity) must be a number in [0, 1), got 'abc'",
    ),
    (MagnitudePruning, {"amount": 1.0}, "must be a number in [0, 1), got 1.0"),
    (RandomPruning, {"seed": 1.5}, f"pruning.seed must be {SEED_RULE}, got 1.5"),
    (RandomPruning, {"seed": "x"}, f"pruning.seed must be {SEED_RULE}, got 'x'"),
    (RandomPruning, {"seed": 2**32}, f"pruning.seed must be {SEED_RULE}, got 4294967296"),
    (GradualMagnitudePruning, {"every": 1.5}, "pruning.every must be a whole number >= 1, got 1.5"),
    (GradualMagnitudePruning, {"every": "x"}, "pruning.every must be a whole number >= 1, got 'x'"),
    (GradualMagnitudePruning, {"start": "x"}, "pruning.start must be a number, got 'x'"),
    (GradualMagnitudePruning, {"end": None}, "pruning.end must be a number, got None"),
    (
        GradualMagnitudePruning,
        {"initial_amount": "x"},
        "pruning.initial_amount must be a number, got 'x'",
    ),
    (
        LotteryRewinding,
        {"rewind_epoch": 1.5},
        "pruning.rewind_epoch must be a whole number >= 0, got 1.5",
    ),
    (
        LotteryRewinding,
        {"rewind_epoch": "x"},
        "pruning.rewind_epoch must be a whole number >= 0, got 'x'",
    ),
    (LotteryRewinding, {"seed": -1}, f"pruning.seed must be {SEED_RULE} or null, got -1"),
    (LotteryRewinding, {"rewind_dir": 3}, "pruning.rewind_dir must be a folder or null, got 3"),
    (LotteryRewinding, {"model": "x"}, "pruning.model must be a model config or null, got 'x'"),
]


@pytest.mark.parametrize("cls, kwargs, message", BAD_ARGS)
def test_constructor_arguments_that_would_fail_after_training_are_refused(cls, kwargs, message):
    with pytest.raises(PrunelabError) as err:
        cls(**{"amount": 0.5, **kwargs})
    assert str(err.value).endswith(message)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["sparsity=0.999999"], "would prune all 241,184 prunable weights of SimpleCNN"),
        (["pruning=random", "sparsity=0.9999999"], "use at most 0.999997"),
        (["pruning=layerwise", "sparsity=0.999"], "every weight of features.1 (288 weights"),
        (["pruning=gradual", "pruning.every=1.5"], "pruning.every must be a whole number >= 1"),
    ],
)
def test_the_pipeline_refuses_before_the_baseline_trains(overrides, message, make_cfg, monkeypatch):
    def trains(*args, **kwargs):
        raise AssertionError("the baseline must not train for a refused setting")

    monkeypatch.setattr(pipeline, "train_baseline", trains)
    with pytest.raises(Exception) as err:
        pipeline.run(make_cfg(*overrides))
    cause = err.value.__cause__ if not isinstance(err.value, PrunelabError) else err.value
    assert isinstance(cause, PrunelabError)  # Hydra wraps a constructor's error; main unwraps it
    assert message in str(cause)


def test_the_pipeline_checks_no_net_at_sparsity_zero(make_cfg, monkeypatch):
    # sparsity 0 fine-tunes nothing: no check applies (and none may fail).
    class Stop(Exception):
        pass

    def trains(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(pipeline, "train_baseline", trains)
    monkeypatch.setattr(
        MagnitudePruning, "check_net", lambda *a, **k: pytest.fail("checked at sparsity 0")
    )
    with pytest.raises(Stop):
        pipeline.run(make_cfg("sparsity=0"))


# --- configs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, cls",
    [
        ("gradual", GradualMagnitudePruning),
        ("random", RandomPruning),
        ("layerwise", LayerwiseMagnitudePruning),
        ("lottery", LotteryRewinding),
    ],
)
def test_configs_instantiate_the_callbacks(option, cls, make_cfg):
    cfg = make_cfg(f"pruning={option}", "sparsity=0.8", "seed=3")
    pruning = instantiate(cfg.pruning)
    assert type(pruning) is cls and pruning.amount == 0.8
    if option == "random":
        assert pruning.seed == 3
    if option == "lottery":  # retrains with the baseline's step size; can rebuild the init
        assert cfg.finetune.optimizer.lr == cfg.baseline.optimizer.lr
        assert pruning.seed == 3 and pruning.model["_target_"] == cfg.model["_target_"]
    else:
        assert cfg.finetune.optimizer.lr == 1e-4


def test_dense_control_measures_what_the_extra_epochs_alone_do(make_cfg, tmp_path):
    """finetune.dense_control: the baseline fine-tuned like the pruned models, without pruning.

    Trained once per baseline (the first job asks, the next reuses it from the cache entry),
    compared with the baseline in every job and, image by image, with each pruned model.
    """
    from prunelab.report.aggregate import build_rows
    from prunelab.report.collect import Job
    from prunelab.report.findings import accuracy_finding, band_digits, control_finding

    # logger=csv: no W&B service in the pytest process (its children would inherit it).
    control = ["finetune.dense_control=true", "finetune.max_epochs=2", "logger=csv"]
    pruned = pipeline.run(make_cfg("sparsity=0.5", *control, out=tmp_path / "s0.5"))
    dense = pipeline.run(make_cfg("sparsity=0", *control, out=tmp_path / "s0"))
    assert pruned["control/trained"] and pruned["time/control_s"] > 0
    assert not dense["control/trained"] and "time/control_s" not in dense
    acc, base = pruned["control/test_acc"], pruned["test/acc_baseline"]
    assert dense["control/test_acc"] == acc and dense["test/acc"] == base
    assert acc != base  # two more epochs move a one-epoch smoke baseline (deterministic on CPU)
    for results in (pruned, dense):
        delta = results["control/test_acc_delta_pts"]
        assert delta == pytest.approx(100 * (acc - base))
        assert results["control/test_acc_delta_ci_low"] <= delta
        assert delta <= results["control/test_acc_delta_ci_high"]
    assert not undocumented([*pruned, *dense])  # the dense job's keys as well as the pruned one's
    gap = pruned["vs_control/test_acc_delta_pts"]
    assert gap == pytest.approx(100 * (pruned["test/acc"] - acc))
    assert pruned["vs_control/test_acc_delta_ci_low"] <= gap
    assert gap <= pruned["vs_control/test_acc_delta_ci_high"]
    assert not any(k.startswith("vs_control/") for k in dense)  # the dense job has no pruning

    # The report: the dense row carries the control whether or not a sparsity-0 job ran.
    for jobs in ([pruned, dense], [pruned]):
        rows = next(iter(build_rows([Job(r["model"], tmp_path, None, r) for r in jobs]).values()))
        delta = rows[0].values("control/test_acc_delta_pts")[0]
        ends = [rows[0].values(f"control/test_acc_delta_ci_{end}")[0] for end in ("low", "high")]
        d = band_digits(delta, *ends)
        assert f"{delta:+.{d}f} pts (95 % paired interval" in control_finding(rows[0])
        text = accuracy_finding(rows)
        assert "Pruning's own effect (each pruned model against the dense control" in text
        ends = [pruned[f"vs_control/test_acc_delta_ci_{end}"] for end in ("low", "high")]
        d = band_digits(gap, *ends)
        assert f"sparsity 0.5 ({gap:+.{d}f} pts; 95 % interval" in text


@pytest.mark.parametrize(
    ("per_layer", "amount", "warned"),
    [(False, 1e-9, True), (True, 1e-3, True), (False, 0.01, False)],
)
def test_a_sparsity_that_rounds_to_no_weight_warns(per_layer, amount, warned, capsys):
    from prunelab.pruning.masks import check_keeps_a_weight

    weights = {"a.weight": torch.zeros(100), "b.weight": torch.zeros(10)}
    check_keeps_a_weight(weights, amount, per_layer, "Net")
    err = capsys.readouterr().err
    assert ("prunes no weight of Net (110 prunable weights)" in err) == warned
