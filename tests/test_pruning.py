"""The pruning callback: same masks as torch.nn.utils.prune, held through fine-tuning and I/O."""

import copy

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.nn.utils import prune

from prunelab.data import FashionMNISTDataModule
from prunelab.errors import PrunelabError
from prunelab.models import ResNetSmall, SimpleCNN
from prunelab.module import Classifier
from prunelab.pruning import (
    MagnitudePruning,
    MaskGuard,
    global_magnitude_masks,
    layer_sparsity,
    mask_violations,
    measure_sparsity,
    prunable_weights,
)

from conftest import DATA, quiet_trainer

# Under pytest-xdist (`make test`) this module's tests stay on one worker, so its module-scoped
# fixtures are built once.
pytestmark = pytest.mark.xdist_group("test_pruning")


def _trainer(epochs: int, callbacks: list, root, **kwargs) -> L.Trainer:
    return quiet_trainer(epochs, callbacks, root, **kwargs)


def _adam(lr):
    return lambda params: torch.optim.Adam(params, lr=lr, weight_decay=1e-4)


@pytest.fixture(scope="module")
def data():
    dm = FashionMNISTDataModule(str(DATA), train_size=512, val_size=128, test_size=256)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def baseline(data, tmp_path_factory):
    """A SimpleCNN trained briefly on real Fashion-MNIST (weights with real structure)."""
    L.seed_everything(0)
    net = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    _trainer(2, [], tmp_path_factory.mktemp("base")).fit(Classifier(net, 10, _adam(1e-3)), data)
    return net


def _torch_reference_masks(net, amount):
    ref = copy.deepcopy(net)
    modules = dict(ref.named_modules())
    params = [(modules[n.removesuffix(".weight")], "weight") for n in prunable_weights(ref)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    return {
        f"{n}.weight": m.weight_mask.bool()
        for n, m in ref.named_modules()
        if hasattr(m, "weight_mask")
    }


@pytest.mark.parametrize("amount", [0.2, 0.5, 0.8])
def test_masks_equal_torch_global_l1(baseline, amount):
    ours = global_magnitude_masks(prunable_weights(baseline), amount)
    ref = _torch_reference_masks(baseline, amount)
    assert ours.keys() == ref.keys()
    for name in ours:
        assert torch.equal(ours[name], ref[name]), name
    kept = sum(int(m.sum()) for m in ours.values())
    total = sum(m.numel() for m in ours.values())
    assert total - kept == round(amount * total)


def test_masks_hold_through_finetuning_and_save_load(baseline, data, tmp_path):
    net = copy.deepcopy(baseline)
    expected = _torch_reference_masks(baseline, 0.5)
    before = {k: v.clone() for k, v in prunable_weights(net).items()}
    pruning = MagnitudePruning(0.5)
    _trainer(2, [pruning, MaskGuard(pruning)], tmp_path).fit(Classifier(net, 10, _adam(1e-3)), data)

    for name, mask in expected.items():
        assert torch.equal(pruning.masks[name].cpu(), mask)
    assert mask_violations(net, expected) == {}
    total = sum(m.numel() for m in expected.values())
    assert measure_sparsity(net)["prune/sparsity_measured"] == round(0.5 * total) / total
    moved = [
        not torch.equal(w[expected[n]], before[n][expected[n]])
        for n, w in prunable_weights(net).items()
    ]
    assert all(moved), "fine-tuning must update the surviving weights"

    path = tmp_path / "pruned.pt"
    torch.save({"state_dict": net.state_dict(), "masks": pruning.state_dict()["masks"]}, path)
    loaded = torch.load(path, weights_only=True)
    fresh = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    fresh.load_state_dict(loaded["state_dict"])
    assert mask_violations(fresh, expected) == {}
    for name, mask in expected.items():
        assert torch.equal(loaded["masks"][name], mask)


def _finetune(baseline, data, root, **trainer_kwargs) -> tuple[torch.nn.Module, dict]:
    """Two fine-tuning epochs at 0.5 sparsity; the net and its pruned weights' gradients."""
    net = copy.deepcopy(baseline)
    pruning = MagnitudePruning(0.5)
    seen: dict = {}

    class LastGradients(L.Callback):  # runs after the pruning callback's hook
        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            weights = prunable_weights(pl_module.net)
            seen.update({n: weights[n].grad[~m].clone() for n, m in pruning.masks.items()})

    L.seed_everything(3)  # the same dropout draws in every call
    trainer = _trainer(2, [pruning, LastGradients(), MaskGuard(pruning)], root, **trainer_kwargs)
    trainer.fit(Classifier(net, 10, _adam(1e-3)), data)
    return net, seen


def test_unmasked_gradients_leave_surviving_weights_bit_identical(baseline, data, tmp_path):
    # Adam is elementwise: the hold skips the gradient mask (faster, see the callback), and
    # the result must not move by one bit against masking the gradients too, which norm
    # clipping forces (a clip threshold far above the norm scales gradients by exactly 1).
    fast, fast_grads = _finetune(baseline, data, tmp_path / "a")
    masked, masked_grads = _finetune(baseline, data, tmp_path / "b", gradient_clip_val=1e30)
    assert any(bool(g.ne(0).any()) for g in fast_grads.values()), "pruned grads were masked"
    assert all(not bool(g.ne(0).any()) for g in masked_grads.values()), "clipping saw them"
    for key, value in fast.state_dict().items():
        assert torch.equal(value, masked.state_dict()[key]), key


def test_gradients_are_masked_for_an_optimizer_that_is_not_elementwise(baseline, data, tmp_path):
    net = copy.deepcopy(baseline)
    pruning = MagnitudePruning(0.5)
    holder = type("Holder", (), {"net": net})()
    pruning.on_fit_start(None, holder)
    for w in prunable_weights(net).values():
        w.grad = torch.ones_like(w)
    adam = torch.optim.Adam(net.parameters())
    pruning.on_before_optimizer_step(None, holder, adam)
    assert all(bool(w.grad.eq(1).all()) for w in prunable_weights(net).values())
    pruning.on_before_optimizer_step(None, holder, torch.optim.Adafactor(net.parameters()))
    for name, mask in pruning.masks.items():
        assert not bool(prunable_weights(net)[name].grad[~mask].any()), name


# The resuming Trainer has no ModelCheckpoint on purpose: Lightning's note about it is expected.
@pytest.mark.filterwarnings("ignore:Be aware that when using")
def test_resume_restores_masks_instead_of_repruning(baseline, data, tmp_path):
    net = copy.deepcopy(baseline)
    first = MagnitudePruning(0.8)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    _trainer(1, [first, ckpt], tmp_path).fit(Classifier(net, 10, _adam(1e-3)), data)
    masks = {k: v.clone() for k, v in first.masks.items()}

    # A fresh net with different weights: re-pruning would give other masks.
    other = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    second = MagnitudePruning(0.8)
    _trainer(2, [second, MaskGuard(second)], tmp_path).fit(
        Classifier(other, 10, _adam(1e-3)), data, ckpt_path=str(tmp_path / "last.ckpt")
    )
    for name in masks:
        assert torch.equal(second.masks[name].cpu(), masks[name].cpu())
    assert mask_violations(other, masks) == {}


def test_guard_fails_loudly_when_a_pruned_weight_comes_back(baseline, data, tmp_path):
    net = copy.deepcopy(baseline)
    pruning = MagnitudePruning(0.5)

    class Revive(L.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            name, mask = next(iter(pruning.masks.items()))
            with torch.no_grad():
                prunable_weights(pl_module.net)[name][~mask] = 1.0

    with pytest.raises(PrunelabError, match="came back"):
        _trainer(1, [pruning, Revive(), MaskGuard(pruning)], tmp_path).fit(
            Classifier(net, 10, _adam(1e-3)), data
        )


def test_no_bias_or_batchnorm_is_pruned(data, tmp_path):
    net = ResNetSmall(data.in_shape, 10, data.mean, data.std)
    masks = global_magnitude_masks(prunable_weights(net), 0.8)
    assert all(n.endswith(".weight") for n in masks)
    named = dict(net.named_parameters())
    assert all(named[n].dim() in (2, 4) for n in masks)


def test_layer_sparsity_per_layer_adds_up_and_an_emptied_layer_warns_once(
    baseline, data, tmp_path, capsys
):
    net = copy.deepcopy(baseline)
    with torch.no_grad():  # the smallest weights of the net: global ranking takes them all
        net.features[1].weight.mul_(1e-6)
    pruning = MagnitudePruning(0.5)
    _trainer(2, [pruning, MaskGuard(pruning)], tmp_path).fit(Classifier(net, 10, _adam(1e-3)), data)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        "prunelab: warning: the masks (pruning to sparsity=0.5) remove every weight of 1 "
        "layer(s): features.1; only a residual path can carry a signal past such a layer "
        "(prune/layer/<layer> in results.json)"
    ]
    shares = layer_sparsity(net)
    names = [n.removesuffix(".weight") for n in prunable_weights(net)]
    assert list(shares) == [f"prune/layer/{n}" for n in names]
    assert shares["prune/layer/features.1"] == 1.0
    sizes = [w.numel() for w in prunable_weights(net).values()]
    pruned = sum(s * n for s, n in zip(shares.values(), sizes, strict=True))
    assert pruned / sum(sizes) == pytest.approx(measure_sparsity(net)["prune/sparsity_measured"])


def test_layer_sparsity_of_a_shrunk_net_counts_removed_channels(data):
    from prunelab.pruning.structured import prune_channels

    dense = SimpleCNN(data.in_shape, 10, data.mean, data.std)
    shrunk = prune_channels(copy.deepcopy(dense), 0.5, data.in_shape)
    shares = layer_sparsity(shrunk, reference=dense)
    kept = {n: w.numel() for n, w in prunable_weights(shrunk).items()}
    for name, w in prunable_weights(dense).items():
        assert shares[f"prune/layer/{name.removesuffix('.weight')}"] == 1 - kept[name] / w.numel()
    assert shares["prune/layer/features.5"] == 0.75  # half the inputs and half the outputs
    assert layer_sparsity(dense, reference=dense) == dict.fromkeys(shares, 0.0)


def test_guard_warns_of_final_masks_applied_when_the_fit_ends(baseline, capsys):
    """Gradual pruning cut short applies its final masks in on_train_end, after the last check."""
    pruning = MagnitudePruning(0.5)
    pruning.masks = {
        n: torch.ones_like(w, dtype=torch.bool) for n, w in prunable_weights(baseline).items()
    }
    pruning.masks["head.4.weight"][:] = False
    guard = MaskGuard(pruning)
    guard.on_train_end(None, None)
    guard.on_train_end(None, None)  # once per layer
    err = capsys.readouterr().err
    assert err.count("remove every weight of 1 layer(s): head.4;") == 1
