"""Architectures: shapes, sizes near the study's, normalisation as the first layer."""

import re

import pytest
import torch

from prunelab.errors import PrunelabError
from prunelab.models import Normalize, ResNetSmall, SimpleCNN
from prunelab.pruning import prunable_weights


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
@pytest.mark.parametrize("cls", [SimpleCNN, ResNetSmall])
def test_forward_shape(cls, shape):
    net = cls(shape, 7, mean=[0.5] * shape[0], std=[0.25] * shape[0])
    out = net(torch.rand(4, *shape))
    assert out.shape == (4, 7)


def test_sizes_documented_in_configs():
    simple = SimpleCNN((1, 28, 28), 10, [0.286], [0.353])
    resnet = ResNetSmall((1, 28, 28), 10, [0.286], [0.353])
    assert sum(p.numel() for p in simple.parameters()) == 241_770
    assert sum(p.numel() for p in resnet.parameters()) == 696_042


def test_normalize_is_first_and_exact():
    net = SimpleCNN((1, 28, 28), 10, [0.5], [0.25])
    first = next(m for m in net.modules() if not list(m.children()))
    assert isinstance(first, Normalize)
    x = torch.rand(2, 1, 28, 28)
    assert torch.allclose(first(x), (x - 0.5) / 0.25)


def test_prunable_weights_are_conv_and_linear_only():
    net = ResNetSmall((1, 28, 28), 10, [0.5], [0.5])
    names = prunable_weights(net)
    assert all(n.endswith(".weight") for n in names)
    assert all(w.dim() in (2, 4) for w in names.values())
    assert not any("bn" in n for n in names)
    # stem conv + 6 blocks x 2 convs + 2 projection shortcuts + fc
    assert len(names) == 1 + 12 + 2 + 1


def test_channels_last_training_computes_the_same_function():
    """Classifier(channels_last=True) only changes memory layout: same logits, same loss."""
    import copy

    from prunelab.module import Classifier

    torch.manual_seed(0)
    net = ResNetSmall(in_shape=(1, 28, 28), num_classes=10, mean=(0.5,), std=(0.25,)).eval()
    plain = Classifier(copy.deepcopy(net), 10)
    fast = Classifier(copy.deepcopy(net), 10, channels_last=True)
    fast.setup("fit")
    weight = fast.net.stem[1].weight
    assert weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(8, 1, 28, 28)
    torch.testing.assert_close(fast(x), plain(x), rtol=1e-4, atol=1e-5)
    # Its weights load into a default (contiguous) net unchanged.
    back = copy.deepcopy(net)
    back.load_state_dict(fast.net.state_dict())
    torch.testing.assert_close(back(x), plain(x), rtol=1e-4, atol=1e-5)


def _bare_trainer(tmp_path, **kwargs):
    """A Lightning Trainer with no validation, logger, checkpoint, bar or summary."""
    import lightning as L

    return L.Trainer(
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path),
        **kwargs,
    )


def test_training_accuracy_counts_every_image_of_the_epoch(tmp_path):
    """`train/acc` is the accuracy of the epoch's own predictions, over all of its images."""
    import functools

    from torch import nn

    from prunelab.data import FashionMNISTDataModule
    from prunelab.module import Classifier

    from conftest import DATA

    dm = FashionMNISTDataModule(str(DATA), train_size=200, val_size=100, test_size=100)
    dm.setup()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))  # no dropout: train = eval
    frozen = functools.partial(torch.optim.SGD, lr=0.0)  # the weights never move
    module = Classifier(net, 10, frozen, scheduler=None)
    trainer = _bare_trainer(tmp_path, max_epochs=1)
    trainer.fit(module, datamodule=dm)
    x = torch.stack([dm.train_set[i][0] for i in range(len(dm.train_set))])
    y = torch.tensor([int(dm.train_set[i][1]) for i in range(len(dm.train_set))])
    with torch.no_grad():
        expected = (net(x).argmax(dim=1) == y).float().mean()
    assert 0.0 < expected < 1.0  # an untrained net: neither extreme, so the count matters
    torch.testing.assert_close(trainer.callback_metrics["train/acc"], expected)
    # Nothing carried into the next epoch.
    assert module._logits == [] and module._targets == [] and module._losses == []


def test_nan_loss_is_caught_at_its_own_step_between_logging_steps(tmp_path):
    """A NaN loss stops training naming the step it appeared at, whatever the logging window."""
    import functools

    from torch import nn

    from prunelab.data import FashionMNISTDataModule
    from prunelab.errors import PrunelabError
    from prunelab.module import Classifier

    from conftest import DATA

    class NanAfter(nn.Module):
        """A linear classifier whose logits turn NaN from its `bad`-th training call on."""

        def __init__(self, bad: int | None) -> None:
            super().__init__()
            self.linear = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
            self.bad, self.calls = bad, 0

        def forward(self, x):
            self.calls += self.training
            out = self.linear(x)
            return out * float("nan") if self.bad is not None and self.calls > self.bad else out

    def fit(bad: int | None, epochs: int = 2) -> Classifier:
        dm = FashionMNISTDataModule(str(DATA), train_size=128, val_size=50, test_size=50)
        module = Classifier(NanAfter(bad), 10, functools.partial(torch.optim.SGD, lr=0.0), None)
        # Windows of 3 steps over 4-step epochs: one ends mid-window, one on a window's end.
        _bare_trainer(tmp_path, max_epochs=epochs, log_every_n_steps=3).fit(module, datamodule=dm)
        return module

    fit(None, epochs=3)  # 12 steps, no NaN: windows that end with and between epochs pass
    for bad, epoch in ((4, 1), (6, 1)):  # step 4 (epoch 1's first) and step 6 (mid-window)
        with pytest.raises(PrunelabError, match=f"loss became nan at epoch {epoch}, step {bad}:"):
            fit(bad)


@pytest.mark.parametrize(("accumulate", "every"), [(1, 3), (2, 2), (3, 1)])
def test_logged_train_loss_is_the_stepped_windows_mean_at_lightnings_steps(
    tmp_path, accumulate, every
):
    """`train/loss` reaches the logger at exactly the optimizer steps Lightning writes, with the
    mean loss of the batches that step accumulated (a partial window at an epoch's end too)."""
    import functools

    from lightning.pytorch.loggers.logger import Logger
    from torch import nn

    from prunelab.data import FashionMNISTDataModule
    from prunelab.module import Classifier

    from conftest import DATA

    class Capture(Logger):
        name, version = "capture", 0
        rows: list = []

        def log_hyperparams(self, *args, **kwargs) -> None:
            pass

        def log_metrics(self, metrics, step=None) -> None:
            if "train/loss" in metrics:
                self.rows.append((step, metrics["train/loss"]))

    class Recording(Classifier):
        losses: list = []

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.losses.append((self.current_epoch, batch_idx, loss.item()))
            return loss

    dm = FashionMNISTDataModule(str(DATA), train_size=160, val_size=32, test_size=32)
    dm.batch_size = 32  # 5 batches an epoch: windows of 2 or 3 end one batch short
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    module = Recording(net, 10, functools.partial(torch.optim.SGD, lr=0.01), None)
    logger = Capture()
    trainer = _bare_trainer(tmp_path, max_epochs=2, log_every_n_steps=every)
    trainer.accumulate_grad_batches = accumulate
    trainer.logger = logger
    trainer.fit(module, datamodule=dm)

    expected, step = [], 0
    for epoch in range(2):
        losses = [loss for e, _, loss in module.losses if e == epoch]
        assert len(losses) == 5
        for start in range(0, 5, accumulate):
            step += 1
            window = losses[start : start + accumulate]
            if step % every == 0:
                expected.append((step - 1, sum(window) / len(window)))
    assert [s for s, _ in logger.rows] == [s for s, _ in expected]
    for (_, got), (_, want) in zip(logger.rows, expected, strict=True):
        assert got == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize(
    ("cls", "kwargs", "expected"),
    [
        (SimpleCNN, {"hidden": 0}, "model.hidden must be a whole number >= 1, got 0"),
        (SimpleCNN, {"widths": [8, 0, 16]}, "model.widths must be a non-empty list"),
        (SimpleCNN, {"widths": []}, "model.widths must be a non-empty list"),
        (SimpleCNN, {"widths": [8] * 5}, "give model.widths at most 4 entries"),
        (ResNetSmall, {"blocks": 0}, "model.blocks must be a whole number >= 1"),
        (ResNetSmall, {"widths": [16, -1]}, "model.widths must be a non-empty list"),
    ],
)
def test_bad_sizes_are_one_clear_error(cls, kwargs, expected):
    with pytest.raises(PrunelabError, match=re.escape(expected)):
        cls((1, 28, 28), 10, [0.5], [0.25], **kwargs)


def test_images_too_small_for_any_conv_block_say_so_rather_than_ask_for_no_widths():
    with pytest.raises(PrunelabError, match=r"1x1 images to nothing; images need at least 2x2"):
        SimpleCNN((3, 1, 1), 10, [0.5] * 3, [0.25] * 3, widths=[8])


@pytest.mark.parametrize("lines", [False, True])
def test_training_bars_name_their_stage_and_never_say_epoch(lines, make_cfg, tmp_path, capsys):
    """A job's console shows "baseline 1/2", "baseline 2/2", never Lightning's 0-based
    "Epoch N" label drawn before the stage's, nor the logger's v_num. Where it is no terminal
    (`lines`), one line per epoch with its figures, no redrawn bar, no validation bar."""
    import functools

    from lightning.pytorch.loggers import CSVLogger
    from torch import nn

    from prunelab.data import FashionMNISTDataModule
    from prunelab.fitting import make_trainer
    from prunelab.module import Classifier

    from conftest import DATA

    cfg = make_cfg(
        "trainer.enable_progress_bar=true",
        "progress_bar.refresh_rate=1",
        "trainer.log_every_n_steps=1",
        f"progress_bar.lines={lines}",
    )
    dm = FashionMNISTDataModule(str(DATA), train_size=64, val_size=32, test_size=32)
    net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    module = Classifier(net, 10, functools.partial(torch.optim.SGD, lr=0.01), scheduler=None)
    trainer = make_trainer(cfg, "baseline", 2, [], CSVLogger(tmp_path), tmp_path)
    trainer.fit(module, datamodule=dm)
    console = capsys.readouterr()
    shown = console.out + console.err
    assert "baseline 1/2" in shown and "baseline 2/2" in shown and "train/loss=" in shown
    assert "Epoch" not in shown and "v_num" not in shown
    if lines:
        said = [line for line in console.err.splitlines() if line.strip()]
        assert [line.split(":")[0] for line in said] == ["baseline 1/2", "baseline 2/2"]
        assert all("train/acc=" in line and "val/acc=" in line for line in said), said
        assert "\r" not in shown and "Validation" not in shown
