"""Structured (channel) pruning: shrunk layers, residuals, fine-tuning, save/load, resume."""

from __future__ import annotations

import copy
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from prunelab.data import FashionMNISTDataModule
from prunelab.errors import PrunelabError
from prunelab.models import Normalize, ResNetSmall, SimpleCNN
from prunelab.models.resnet_small import BasicBlock
from prunelab.module import Classifier
from prunelab.pruning import structured
from prunelab.pruning.shapes import conform
from prunelab.pruning.structured import (
    StructuredPruning,
    classifier_layer,
    kept_channels,
    max_channel_ratio,
    measure_removed,
    prunable_layers,
    prune_channels,
)

from conftest import DATA, quiet_trainer

# Under pytest-xdist (`make test`) this module's tests stay on one worker, so its module-scoped
# fixtures are built once.
pytestmark = pytest.mark.xdist_group("test_structured")

ARCHS = [SimpleCNN, ResNetSmall]
# Resuming without the checkpoint's ModelCheckpoint is deliberate here; Lightning says so.
resume_warning = pytest.mark.filterwarnings("ignore:Be aware that when using")


@pytest.fixture(scope="module")
def data():
    dm = FashionMNISTDataModule(str(DATA), train_size=256, val_size=64, test_size=128)
    dm.setup()
    return dm


@pytest.fixture(scope="module")
def batch(data):
    x, y = next(iter(data.test_dataloader()))
    return x[:32], y[:32]


def _net(arch, data, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return arch(data.in_shape, data.num_classes, data.mean, data.std)


def _trainer(epochs: int, root, callbacks: list) -> L.Trainer:
    # Three batches and no validation: nothing here reads validation metrics.
    return quiet_trainer(epochs, callbacks, root, limit_train_batches=3, limit_val_batches=0)


def _adam(params):
    return torch.optim.Adam(params, lr=1e-3)


def _layers(net: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in net.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)}


@pytest.mark.parametrize("amount", [0.25, 0.5])
@pytest.mark.parametrize("arch", ARCHS)
def test_removes_the_share_of_channels_and_keeps_a_valid_forward(arch, amount, data, batch):
    net = _net(arch, data)
    dense = copy.deepcopy(net)
    prune_channels(net, amount, data.in_shape)

    head = classifier_layer(net)
    for name, layer in _layers(net).items():
        before = _layers(dense)[name].weight.shape[0]
        expected = before if layer is head else int(before * (1 - amount))
        assert layer.weight.shape[0] == expected, name
    first_conv = next(m for m in net.modules() if isinstance(m, nn.Conv2d))
    assert first_conv.in_channels == data.in_shape[0]
    norm = next(m for m in net.modules() if isinstance(m, Normalize))
    assert norm.mean.shape == (1, data.in_shape[0], 1, 1)

    net.eval()
    with torch.no_grad():
        assert net(batch[0]).shape == (len(batch[0]), data.num_classes)
    removed = measure_removed(net, dense, data.in_shape)
    assert removed["prune/channels_removed"] == pytest.approx(amount)
    # Both the inputs and the outputs of inner layers shrink: roughly 1 - (1 - a)^2 goes.
    assert removed["prune/macs_removed"] == pytest.approx(1 - (1 - amount) ** 2, abs=0.01)
    assert removed["prune/sparsity_measured"] == pytest.approx(1 - (1 - amount) ** 2, abs=0.01)


def _widths(net: nn.Module) -> dict[str, int]:
    return {name: m.weight.shape[0] for name, m in _layers(net).items()}


@pytest.mark.parametrize("amount", [0.1, 0.7, 0.9, 0.968])
@pytest.mark.parametrize("arch", ARCHS)
def test_every_layer_keeps_floor_of_its_channels_up_to_high_ratios(arch, amount, data, batch):
    net = _net(arch, data)
    before = _widths(net)
    prune_channels(net, amount, data.in_shape)
    head = next(n for n, m in net.named_modules() if m is classifier_layer(net))
    expected = {n: c if n == head else int(c * (1 - amount)) for n, c in before.items()}
    assert _widths(net) == expected
    assert min(expected.values()) >= 1
    net.eval()
    with torch.no_grad():
        assert net(batch[0]).shape == (len(batch[0]), data.num_classes)


def _stated_ratio(message: str) -> float:
    return float(re.search(r"the largest ratio that keeps .* is ([0-9.]+)$", message).group(1))


@pytest.mark.parametrize(("arch", "smallest"), [(SimpleCNN, "features.1"), (ResNetSmall, "stem.1")])
def test_a_ratio_that_empties_a_layer_is_refused_with_the_largest_that_works(arch, smallest, data):
    # Torch-Pruning would leave these layers whole in silence and report a ratio it did not get.
    net = _net(arch, data)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(PrunelabError) as err:
        prune_channels(net, 0.99, data.in_shape)
    message = str(err.value)
    assert "\n" not in message
    assert f"every channel of {smallest} (32 channels: floor(32 * 0.01) = 0)" in message
    assert _stated_ratio(message) == 0.968  # 1 - 1/32 = 0.96875, to three decimals
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "net untouched"

    prune_channels(net, 0.968, data.in_shape)
    assert min(m.weight.shape[0] for m in prunable_layers(net).values()) == 1
    with pytest.raises(PrunelabError, match="the largest ratio .* is 0.968$"):
        prune_channels(_net(arch, data), 0.969, data.in_shape)


def test_the_largest_ratio_counts_round_to(data):
    with pytest.raises(PrunelabError, match="rounded down to a multiple of round_to=8: 0") as err:
        prune_channels(_net(ResNetSmall, data), 0.76, data.in_shape, round_to=8)
    assert _stated_ratio(str(err.value)) == 0.75
    net = prune_channels(_net(ResNetSmall, data), 0.75, data.in_shape, round_to=8)
    assert {m.weight.shape[0] for m in prunable_layers(net).values()} == {8, 16, 32}


def test_the_stated_largest_ratio_survives_float_rounding():
    # 1 - 0.9 is 0.0999... in floats: floor(10 * it) = 0, so 0.9 itself must not be stated.
    assert kept_channels(10, 0.9) == 0
    assert max_channel_ratio([10, 40]) == 0.899 and kept_channels(10, 0.899) == 1
    assert max_channel_ratio([2048]) == 0.9995  # enough decimals to reach one channel's step
    assert max_channel_ratio([16], round_to=16) is None


class _GroupedConvNet(nn.Module):
    """A grouped conv: Torch-Pruning removes channels per group, not by the documented rule."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 3, padding=1)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=2)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.grouped(torch.relu(self.conv(x))).mean((2, 3)))


def test_a_layer_torch_pruning_prunes_otherwise_than_documented_is_an_error():
    # floor(32 * 0.8) = 25, but each of the two groups keeps floor(16 * 0.8) = 12: 24 channels.
    torch.manual_seed(0)
    with pytest.raises(PrunelabError, match="left conv with 24 of 32 channels, not the 25"):
        prune_channels(_GroupedConvNet(), 0.2, (1, 8, 8))


def test_round_to_keeps_channel_counts_aligned(data, batch):
    # Multiples of 16 fp32 lanes suit AVX-512 kernels; widths like 24/48/96 run far slower per MAC.
    net = prune_channels(_net(ResNetSmall, data), 0.3, data.in_shape, round_to=8).eval()
    widths = {m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)}
    assert widths == {16, 40, 88}
    with torch.no_grad():
        assert net(batch[0]).shape == (len(batch[0]), data.num_classes)


def test_residual_additions_stay_shape_consistent(data, batch):
    net = prune_channels(_net(ResNetSmall, data), 0.5, data.in_shape).eval()
    seen = []

    def check(block: BasicBlock, inputs, output) -> None:
        (x,) = inputs
        main = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        assert main.shape == block.shortcut(x).shape == output.shape
        seen.append(block)

    for block in net.modules():
        if isinstance(block, BasicBlock):
            block.register_forward_hook(check)
    with torch.no_grad():
        net(batch[0])
    assert len(seen) == 6
    # The stem and every block of a stage share one channel set through the identity shortcuts.
    assert net.stem[1].out_channels == net.stages[0].conv2.out_channels == 16
    assert net.stages[2].shortcut[0].out_channels == net.stages[3].conv2.out_channels == 32


def test_lowest_norm_channels_go_first(data):
    net = _net(SimpleCNN, data)
    conv, bn, nxt = net.features[1], net.features[2], net.features[5]
    with torch.no_grad():
        conv.weight[3] *= 100.0  # by far the largest: must survive
        conv.weight[7] = 0.0  # zero across the whole coupled group: must go
        bn.weight[7] = 0.0
        bn.bias[7] = 0.0
        nxt.weight[:, 7] = 0.0
    big = conv.weight[3].clone()
    prune_channels(net, 0.5, data.in_shape)
    kept = net.features[1].weight
    assert any(torch.equal(row, big) for row in kept)
    assert all(row.abs().sum() > 0 for row in kept)


def test_amount_zero_is_a_no_op_and_bad_settings_are_refused(data):
    net = _net(SimpleCNN, data)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    prune_channels(net, 0.0, data.in_shape)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    for amount in (1.0, -0.1):
        with pytest.raises(PrunelabError, match="channel ratio"):
            prune_channels(net, amount, data.in_shape)
    with pytest.raises(PrunelabError, match="norm"):
        prune_channels(net, 0.5, data.in_shape, norm=3)


def test_pruning_keeps_train_mode_and_batchnorm_statistics(data):
    net = _net(ResNetSmall, data).train()
    prune_channels(net, 0.5, data.in_shape)
    assert net.training
    # Tracing ran in eval mode: the dummy input did not leak into the running statistics.
    assert torch.equal(net.stem[2].running_mean, torch.zeros(16))
    assert int(net.stem[2].num_batches_tracked) == 0


class _Spy(L.Callback):
    """Records the optimizer's parameters and the net's weights when training starts."""

    def on_train_start(self, trainer, pl_module) -> None:
        self.opt_params = [p for g in trainer.optimizers[0].param_groups for p in g["params"]]
        self.start = {k: v.clone() for k, v in pl_module.net.state_dict().items()}


def test_finetunes_through_lightning_with_a_fresh_optimizer(data, tmp_path):
    net = _net(ResNetSmall, data)
    pruning, spy = StructuredPruning(0.5), _Spy()
    _trainer(1, tmp_path, [pruning, spy]).fit(Classifier(net, 10, _adam), data)

    assert net.stem[1].out_channels == 16 and net.fc.in_features == 64
    params = list(net.parameters())
    assert len(spy.opt_params) == len(params)
    assert all(a is b for a, b in zip(spy.opt_params, params, strict=True))
    moved = [not torch.equal(spy.start[k], v) for k, v in net.state_dict().items() if "conv" in k]
    assert all(moved), "fine-tuning must update the shrunk weights"
    assert pruning.stats["prune/channel_ratio"] == 0.5
    assert pruning.stats["prune/channels_removed"] == pytest.approx(0.5)
    assert pruning.stats["prune/macs_removed"] > 0.74
    assert pruning.masks is None


@pytest.mark.parametrize("arch", ARCHS)
def test_conform_round_trips_a_shrunk_model_saved_weights_only(arch, data, batch, tmp_path):
    net = prune_channels(_net(arch, data), 0.5, data.in_shape).eval()
    path = tmp_path / "model.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    state = torch.load(path, weights_only=True)["state_dict"]

    fresh = _net(arch, data, seed=1)
    with pytest.raises(RuntimeError, match="size mismatch"):
        fresh.load_state_dict(state)
    conform(fresh, state).load_state_dict(state)
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(fresh(batch[0]), net(batch[0]))
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }


def test_conform_is_a_no_op_for_an_unshrunk_state_dict(data):
    net = _net(ResNetSmall, data)
    modules = dict(net.named_modules())
    conform(net, _net(ResNetSmall, data, seed=1).state_dict())
    assert all(modules[n] is m for n, m in net.named_modules())


def test_conform_refuses_weights_of_another_architecture(data):
    net = _net(SimpleCNN, data)
    state = net.state_dict()
    state["features.1.weight"] = torch.zeros(16, 1, 5, 5)
    with pytest.raises(PrunelabError, match="kernel"):
        conform(_net(SimpleCNN, data), state)


def _checkpoint(data, tmp_path) -> tuple[str, dict]:
    """Fine-tune a ResNetSmall at channel ratio 0.5 for one epoch; its last.ckpt and net state."""
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    net = _net(ResNetSmall, data)
    _trainer(1, tmp_path, [StructuredPruning(0.5), ckpt]).fit(Classifier(net, 10, _adam), data)
    path = tmp_path / "last.ckpt"
    state = torch.load(path, weights_only=True)["state_dict"]
    return str(path), {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}


def _assert_resumed(net: nn.Module, spy: _Spy, saved: dict) -> None:
    assert {k: v.shape for k, v in net.state_dict().items()} == {
        k: v.shape for k, v in saved.items()
    }
    assert all(torch.equal(spy.start[k], v) for k, v in saved.items())
    assert all(a is b for a, b in zip(spy.opt_params, net.parameters(), strict=True))


@resume_warning
def test_resume_with_trainer_ckpt_path_conforms_instead_of_repruning(data, tmp_path, monkeypatch):
    path, saved = _checkpoint(data, tmp_path)

    def refuse(*args, **kwargs):
        raise AssertionError("a resume must not prune again")

    monkeypatch.setattr(structured, "prune_channels", refuse)
    net, spy = _net(ResNetSmall, data, seed=1), _Spy()
    trainer = _trainer(2, tmp_path, [StructuredPruning(0.5), spy])
    trainer.ckpt_path = path
    trainer.fit(Classifier(net, 10, _adam), data)
    _assert_resumed(net, spy, saved)
    assert trainer.current_epoch == 2


@resume_warning
def test_resume_with_fit_ckpt_path_takes_the_checkpoint_shapes(data, tmp_path):
    path, saved = _checkpoint(data, tmp_path)
    # Another ratio on purpose: re-pruning alone would give other shapes; the checkpoint wins.
    net, spy, pruning = _net(ResNetSmall, data, seed=1), _Spy(), StructuredPruning(0.25)
    _trainer(2, tmp_path, [pruning, spy]).fit(Classifier(net, 10, _adam), data, ckpt_path=path)
    _assert_resumed(net, spy, saved)
    assert pruning.stats["prune/channels_removed"] == pytest.approx(0.5)


def test_other_stages_do_not_prune(data, tmp_path):
    net = _net(SimpleCNN, data)
    _trainer(1, tmp_path, [StructuredPruning(0.5)]).test(Classifier(net, 10), data, verbose=False)
    assert net.features[1].out_channels == 32


def test_a_ratio_too_small_to_drop_a_channel_names_no_checkpoint(data, tmp_path):
    # 1 - 1e-17 == 1.0: no layer loses a channel; a fresh run has no checkpoint to blame.
    trainer = _trainer(1, tmp_path, [StructuredPruning(1e-17)])
    with pytest.raises(PrunelabError, match="removed no channel") as err:
        trainer.fit(Classifier(_net(SimpleCNN, data), 10, _adam), data)
    assert "checkpoint" not in str(err.value)


@resume_warning
def test_resuming_from_a_dense_checkpoint_fails_loudly(data, tmp_path):
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0)
    _trainer(1, tmp_path, [ckpt]).fit(Classifier(_net(SimpleCNN, data), 10, _adam), data)
    trainer = _trainer(2, tmp_path, [StructuredPruning(0.5)])
    with pytest.raises(PrunelabError, match="left the net dense"):
        trainer.fit(
            Classifier(_net(SimpleCNN, data), 10, _adam), data, ckpt_path=tmp_path / "last.ckpt"
        )


# --- settings refused before the baseline trains --------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"norm": 3}, "pruning.norm must be 1 or 2, got 3"),
        ({"norm": "abc"}, "pruning.norm must be 1 or 2, got 'abc'"),
        ({"norm": True}, "pruning.norm must be 1 or 2, got True"),
        ({"round_to": "abc"}, "pruning.round_to must be a whole number >= 1 or null, got 'abc'"),
        ({"round_to": 0}, "pruning.round_to must be a whole number >= 1 or null, got 0"),
        ({"round_to": -1}, "pruning.round_to must be a whole number >= 1 or null, got -1"),
        ({"round_to": 2.5}, "pruning.round_to must be a whole number >= 1 or null, got 2.5"),
        ({"in_shape": "abc"}, "pruning.in_shape must be null or whole numbers >= 1"),
        ({"in_shape": [1, 0, 28]}, "pruning.in_shape must be null or whole numbers >= 1"),
        ({"amount": "abc"}, "channel ratio) must be in [0, 1), got 'abc'"),
    ],
)
def test_bad_settings_are_refused_when_built(kwargs, message):
    # These once failed only when fine-tuning began (or round_to=0 and -1 passed in silence).
    with pytest.raises(PrunelabError) as err:
        StructuredPruning(**{"amount": 0.5, **kwargs})
    assert message in str(err.value)
    with pytest.raises(PrunelabError, match="norm must be 1 or 2"):
        prune_channels(nn.Linear(2, 2), 0.5, (2,), norm=3)


def test_check_net_refuses_another_in_shape_than_the_data_s(data):
    net = _net(SimpleCNN, data)
    pruning = StructuredPruning(0.5, in_shape=[3, 32, 32])
    with pytest.raises(PrunelabError) as err:
        pruning.check_net(net, in_shape=[1, 28, 28])
    assert str(err.value) == (
        "pruning.in_shape=[3, 32, 32] does not match the data's [1, 28, 28] (leave it null)"
    )
    StructuredPruning(0.5, in_shape=[1, 28, 28]).check_net(net, in_shape=[1, 28, 28])
    StructuredPruning(0.5).check_net(net, in_shape=[1, 28, 28])


def test_a_fit_with_another_in_shape_than_the_data_s_fails_before_pruning(data, tmp_path):
    trainer = _trainer(1, tmp_path, [StructuredPruning(0.5, in_shape=[3, 32, 32])])
    with pytest.raises(PrunelabError, match=r"does not match the data's \[1, 28, 28\]"):
        trainer.fit(Classifier(_net(SimpleCNN, data), 10, _adam), data)


def test_check_net_refuses_a_ratio_that_removes_no_channel(data):
    with pytest.raises(PrunelabError, match="would remove no channel"):
        StructuredPruning(1e-17).check_net(_net(SimpleCNN, data))
    StructuredPruning(1e-9).check_net(_net(SimpleCNN, data))  # 1 - 1e-9 < 1: a channel goes
    StructuredPruning(0.0).check_net(_net(SimpleCNN, data))  # nothing to check


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["pruning.norm=3"], "pruning.norm must be 1 or 2, got 3"),
        (["pruning.round_to=abc"], "pruning.round_to must be a whole number >= 1 or null"),
        (["pruning.in_shape=[3,32,32]"], "pruning.in_shape=[3, 32, 32] does not match"),
        (["sparsity=0.99"], "would remove every channel of features.1"),
    ],
)
def test_the_pipeline_refuses_before_the_baseline_trains(overrides, message, make_cfg, monkeypatch):
    from prunelab import pipeline

    def trains(*args, **kwargs):
        raise AssertionError("the baseline must not train for a refused setting")

    monkeypatch.setattr(pipeline, "train_baseline", trains)
    with pytest.raises(Exception) as err:
        pipeline.run(make_cfg("pruning=structured", *overrides))
    cause = err.value if isinstance(err.value, PrunelabError) else err.value.__cause__
    assert isinstance(cause, PrunelabError)  # Hydra wraps a constructor's error; main unwraps it
    assert message in str(cause)
