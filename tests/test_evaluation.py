"""Evaluation: attack sanity on a model trained on real data, sparse export, FLOPs, intervals."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prunelab.data import FashionMNISTDataModule
from prunelab.evaluation import (
    compare,
    count_macs,
    dense_file_bytes,
    eval_subset,
    load_sparse,
    measure_latency,
    measure_robustness,
    save_sparse,
    strip_pruning,
    wilson_interval,
)
from prunelab.evaluation.size import decode_sparse, encode_sparse
from prunelab.models import ResNetSmall, SimpleCNN
from prunelab.pruning import apply_masks, global_magnitude_masks, prunable_weights
from prunelab.stats import paired_difference

from conftest import CONF, DATA

# Under pytest-xdist (`make test`) this module's tests stay on one worker, so its module-scoped
# fixtures are built once.
pytestmark = pytest.mark.xdist_group("test_evaluation")

CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads that wait on each other
    at every barrier run several times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fmnist() -> FashionMNISTDataModule:
    dm = FashionMNISTDataModule(str(DATA), train_size=2000, val_size=100, test_size=1000)
    dm.setup()
    return dm


def small_cnn(dm) -> SimpleCNN:
    return SimpleCNN(dm.in_shape, dm.num_classes, dm.mean, dm.std, (16, 32, 64), 64, 0.0)


@pytest.fixture(scope="module")
def trained(fmnist) -> SimpleCNN:
    """A small SimpleCNN trained briefly on 2,000 real Fashion-MNIST images (~75 % accuracy)."""
    torch.manual_seed(0)
    net = small_cnn(fmnist)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(2):
        for x, y in fmnist.train_dataloader():
            opt.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()
    return net.eval()


def attack_cfg(**changes):
    """conf/attack/pure.yaml (every attack alone) with `changes`, fewer steps for speed."""
    cfg = OmegaConf.load(CONF / "attack" / "default.yaml")
    cfg.cascade = False
    cfg.n_images = 200
    cfg.pgd.steps = 10
    cfg.curve.steps = 5
    cfg.curve.eps_255 = [0, 1, 2, 4, 8, 16, 64]  # 64/255: far past where a plain CNN breaks
    return OmegaConf.merge(cfg, OmegaConf.create(changes))


@pytest.fixture(scope="module")
def pure(trained, fmnist) -> dict:
    cfg = attack_cfg()
    images, labels, _ = eval_subset(fmnist.test_set, cfg.n_images, cfg.seed)
    return measure_robustness(trained, images, labels, cfg, CPU)


def test_model_is_trained_on_real_data(pure):
    assert pure["robust/clean_acc"] > 0.7


def test_eps_zero_reproduces_clean_accuracy(pure):
    assert pure["robust/curve_acc@eps0"] == pure["robust/clean_acc"]


def test_pgd_is_at_least_as_strong_as_fgsm_at_equal_eps(pure):
    assert pure["robust/pgd_acc"] <= pure["robust/fgsm_acc@0.03"]
    assert pure["robust/pgd_asr"] >= pure["robust/fgsm_asr@0.03"]


def test_accuracy_falls_to_near_zero_at_the_largest_eps(pure):
    curve = [pure[f"robust/curve_acc@eps{k}"] for k in (0, 1, 2, 4, 8, 16, 64)]
    assert curve[-1] <= 0.05
    assert curve[-1] < curve[2] < curve[0]


def test_asr_is_share_of_correct_images_flipped(pure):
    for key in ("fgsm_acc@0.01", "fgsm_acc@0.1", "pgd_acc"):
        acc, asr = pure[f"robust/{key}"], pure[f"robust/{key.replace('_acc', '_asr')}"]
        assert asr == pytest.approx(1 - acc / pure["robust/clean_acc"])


def test_cascade_is_monotone_and_no_weaker_than_pure(trained, fmnist, pure):
    cfg = attack_cfg(cascade=True)
    images, labels, _ = eval_subset(fmnist.test_set, cfg.n_images, cfg.seed)
    cascade = measure_robustness(trained, images, labels, cfg, CPU)
    curve = [cascade[f"robust/curve_acc@eps{k}"] for k in (0, 1, 2, 4, 8, 16, 64)]
    assert curve == sorted(curve, reverse=True)
    assert cascade["robust/curve_acc@eps0"] == cascade["robust/clean_acc"]
    one = 1 / cfg.n_images  # batches differ: allow one image of floating-point luck
    assert cascade["robust/pgd_acc"] <= pure["robust/pgd_acc"] + one
    assert cascade["robust/pgd_acc"] <= cascade["robust/fgsm_acc@0.03"]
    for e in (0.01, 0.03, 0.05, 0.1):  # FGSM figures are FGSM alone in both modes
        assert cascade[f"robust/fgsm_acc@{e:g}"] == pytest.approx(pure[f"robust/fgsm_acc@{e:g}"])


def test_an_image_pgd_stopped_on_counts_as_fooled_whatever_a_rescoring_says(
    trained, fmnist, monkeypatch
):
    """An early-stopped iterate is scored by the attack's own forward pass: a near-tie scored
    again in another batch could round the other way and undo a found adversarial example."""
    from prunelab.evaluation import robustness

    images, labels, _ = eval_subset(fmnist.test_set, 64, 0)
    attack = robustness.SeededPGD(trained, eps=0.1, alpha=0.01, steps=20, random_start=False)
    attack.stop_early = True
    todo = torch.ones(len(labels), dtype=torch.bool)
    honest = robustness._run(attack, trained, images, labels, todo, 64)
    stopped = attack.stopped_pred >= 0
    assert stopped.any() and (attack.stopped_pred[stopped] != labels[stopped]).all()
    assert (honest[stopped] != labels[stopped]).all()
    # A re-scoring that calls every image right must not undo what the attack found.
    monkeypatch.setattr(robustness, "_predict", lambda net, x, batch_size: labels[: len(x)])
    preds = robustness._run(attack, trained, images, labels, todo, 64)
    assert torch.equal(preds[stopped], attack.stopped_pred[stopped])
    assert (preds[~stopped] == labels[~stopped]).all()


def test_subset_and_attack_randomness_are_fixed_by_the_attack_seed(trained, fmnist):
    cfg = attack_cfg(n_images=64, fgsm_eps=[], curve={"eps_255": [4]})
    a = eval_subset(fmnist.test_set, 64, cfg.seed)
    b = eval_subset(fmnist.test_set, 64, cfg.seed)
    assert torch.equal(a[2], b[2]) and not torch.equal(a[2], eval_subset(fmnist.test_set, 64, 7)[2])
    torch.manual_seed(123)  # the run's global RNG must not matter
    first = measure_robustness(trained, a[0], a[1], cfg, CPU)
    torch.manual_seed(456)
    assert measure_robustness(trained, a[0], a[1], cfg, CPU) == first


def test_more_attack_images_than_the_test_split_holds_takes_all_with_a_warning(fmnist, capsys):
    n = len(fmnist.test_set)
    images, _, order = eval_subset(fmnist.test_set, n + 1, 0)
    assert len(images) == n and sorted(order.tolist()) == list(range(n))
    err = capsys.readouterr().err
    assert f"attack.n_images={n + 1} but there are only {n} test images" in err


def test_fgsm_for_every_eps_from_one_gradient_is_torchattacks_fgsm(trained, fmnist):
    import torchattacks

    from prunelab.evaluation.robustness import fgsm_direction

    x, y, _ = eval_subset(fmnist.test_set, 64, 0)
    x[0, 0, :3, :3] = 1.0  # pixels at the box edges, where the step is clipped away
    x[1, 0, :3, :3] = 0.0
    direction = fgsm_direction(trained, x, y, torch.ones(64, dtype=torch.bool), 64)
    for eps in (0.01, 0.1, 0.3):
        ours = torch.clamp(x + eps * direction, 0, 1)
        assert torch.equal(ours, torchattacks.FGSM(trained, eps=eps)(x, y))


def test_targeted_pgd_option(trained, fmnist):
    cfg = attack_cfg(n_images=64, fgsm_eps=[], curve={"eps_255": []}, targeted_class=3)
    images, labels, _ = eval_subset(fmnist.test_set, 64, cfg.seed)
    per_image: dict = {}
    out = measure_robustness(trained, images, labels, cfg, CPU, per_image=per_image)
    assert out["robust/pgd_target_class"] == 3
    assert 0 <= out["robust/pgd_targeted_asr"] <= 1
    assert out["robust/pgd_targeted_acc"] <= out["robust/clean_acc"]
    # Per-image outcomes feed the paired interval against the baseline, like every other attack.
    right = per_image["robust/pgd_targeted_acc"]
    assert right.float().mean().item() == pytest.approx(out["robust/pgd_targeted_acc"])


def test_attacks_leave_the_model_as_they_found_it(trained, fmnist):
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    flags = [p.requires_grad for p in trained.parameters()]
    images, labels, _ = eval_subset(fmnist.test_set, 16, 0)
    measure_robustness(trained, images, labels, attack_cfg(n_images=16, fgsm_eps=[0.03]), CPU)
    assert [p.requires_grad for p in trained.parameters()] == flags
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    assert not trained.training


def pruned_copy(net: nn.Module, amount: float) -> nn.Module:
    """A copy of `net` magnitude-pruned as the pipeline does it (mask multiply, so -0.0 too)."""
    twin = copy.deepcopy(net)
    apply_masks(twin, global_magnitude_masks(prunable_weights(twin), amount))
    return twin


def _bits(t: torch.Tensor) -> bytes:
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


@pytest.mark.parametrize("amount", [0.2, 0.5, 0.8])
def test_sparse_export_round_trips_bit_identical_and_is_small(trained, tmp_path, amount):
    net = pruned_copy(trained, amount)
    state = net.state_dict()
    assert any(torch.signbit(w[w == 0]).any() for w in prunable_weights(net).values())
    size = save_sparse(state, tmp_path / "m.sparse")
    back = load_sparse(tmp_path / "m.sparse")
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape
        assert _bits(back[k]) == _bits(v), k
    dense = dense_file_bytes(state)
    assert size == (tmp_path / "m.sparse").stat().st_size < dense
    if amount == 0.8:
        assert size <= 0.25 * dense, size / dense


def test_sparse_export_of_a_real_pruned_resnet_is_at_most_a_quarter(tmp_path):
    torch.manual_seed(0)
    net = pruned_copy(ResNetSmall((1, 28, 28), 10, (0.286,), (0.353,)), 0.8)
    size = save_sparse(net.state_dict(), tmp_path / "r.sparse")
    assert size <= 0.25 * dense_file_bytes(net.state_dict())


def test_sparse_format_keeps_every_dtype_and_odd_value():
    weird = torch.tensor([0.0, -0.0, float("nan"), float("inf"), -1e-45, 3.5] + [0.0] * 60)
    state = {
        "f32": weird,
        "f16": weird.half(),
        "bf16": weird.bfloat16(),
        "f64": weird.double().view(2, 33),
        "i64": torch.tensor(7),
        "bool": torch.tensor([True, False]),
        "empty": torch.empty(0, 3),
        "scalar": torch.tensor(-0.0),
    }
    back = decode_sparse(encode_sparse(state))
    for k, v in state.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and _bits(back[k]) == _bits(v)


def test_corrupt_sparse_file_is_a_clear_error(tmp_path):
    from prunelab.errors import PrunelabError

    data = encode_sparse({"w": torch.zeros(100)})
    (tmp_path / "bad").write_bytes(data[:-5])
    with pytest.raises(PrunelabError, match="corrupt or truncated"):
        load_sparse(tmp_path / "bad")
    (tmp_path / "other").write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(PrunelabError, match="not a prunelab sparse file"):
        load_sparse(tmp_path / "other")


def test_flops_dense_matches_hand_count_and_nonzero_follows_density():
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(784 * 4, 10)
    )
    dense_macs = 28 * 28 * 4 * 9 + 784 * 4 * 10
    assert count_macs(net, (1, 28, 28))["flops/dense_macs"] == dense_macs
    with torch.no_grad():
        net[0].weight[:2] = 0  # half the conv filters
    out = count_macs(net, (1, 28, 28))
    assert out["flops/nonzero_macs"] == dense_macs - 28 * 28 * 2 * 9
    assert out["flops/theoretical_speedup"] == pytest.approx(dense_macs / out["flops/nonzero_macs"])


def test_flops_of_a_pruned_model(trained):
    dense = count_macs(trained, (1, 28, 28))
    pruned = count_macs(pruned_copy(trained, 0.8), (1, 28, 28))
    assert pruned["flops/dense_macs"] == dense["flops/dense_macs"]
    assert dense["flops/theoretical_speedup"] == pytest.approx(1.0)
    assert pruned["flops/theoretical_speedup"] > 2


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert (round(low, 4), round(high, 4)) == (0.4038, 0.5962)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(
        0.2775, abs=1e-4
    )
    assert wilson_interval(10, 10)[1] == 1.0


def test_a_class_without_test_images_has_no_accuracy_rather_than_zero():
    from prunelab.evaluation.accuracy import accuracy_metrics

    metrics, _ = accuracy_metrics(
        torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), 0.0, list("abc")
    )
    assert metrics["test/acc_class/a"] == metrics["test/acc_class/b"] == 1.0
    assert metrics["test/acc_class/c"] is None


def test_the_wandb_curve_finds_every_measured_eps_also_fractional_ones(make_cfg, monkeypatch):
    import wandb

    from prunelab.evaluation.core import log_wandb

    cfg = make_cfg("attack.curve.eps_255=[0,0.5,4.0]")
    mine = {"robust/curve_acc@eps0": 0.9, "robust/curve_acc@eps0.5": 0.8}
    mine["robust/curve_acc@eps4.0"] = 0.3
    drawn, logged = {}, []
    monkeypatch.setattr(wandb.plot, "line_series", lambda **kw: drawn.update(kw) or "curve")
    monkeypatch.setattr(wandb.plot, "confusion_matrix", lambda **kw: "matrix")
    run = type("Run", (), {"log": lambda self, panels: logged.append(panels)})()
    record = {"metrics": mine, "confusion": [[1, 0], [0, 1]]}
    log_wandb(run, record, None, ["a", "b"], cfg)
    assert drawn["xs"] == [0.0, 0.5, 4.0] and drawn["ys"] == [[0.9, 0.8, 0.3]]
    assert logged[0]["robust/curve"] == "curve"


def test_per_class_keys_are_one_per_class_even_where_names_collide():
    """Folders 'Cats' and 'cats' are two classes: two keys, neither figure lost."""
    from prunelab.evaluation.accuracy import accuracy_metrics

    preds, labels = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([0, 0, 1, 0, 2])
    names = ["Cats", "cats", "T-shirt/top"]
    metrics, _ = accuracy_metrics(preds, labels, 0.0, names)
    per_class = {k: v for k, v in metrics.items() if k.startswith("test/acc_class/")}
    assert per_class == {
        "test/acc_class/cats_0": pytest.approx(2 / 3),
        "test/acc_class/cats_1": 1.0,
        "test/acc_class/t_shirt_top": 1.0,
    }
    metrics, _ = accuracy_metrics(preds, labels, 0.0, ["dog", "dog_baseline", "!!"])
    assert {k for k in metrics if k.startswith("test/acc_class/")} == {
        "test/acc_class/dog",
        "test/acc_class/dog_baseline_1",
        "test/acc_class/2",
    }
    # Accents go, the letters stay; a script with no ASCII letters falls back to the index.
    metrics, _ = accuracy_metrics(preds, labels, 0.0, ["Écureuil", "Façade", "松鼠"])
    assert {k for k in metrics if k.startswith("test/acc_class/")} == {
        "test/acc_class/ecureuil",
        "test/acc_class/facade",
        "test/acc_class/2",
    }


def test_latency_strips_torch_pruning_and_restores_threads(trained):
    from torch.nn.utils import prune

    net = pruned_copy(trained, 0.5)
    prune.l1_unstructured(net.head[1], "weight", amount=0.5)
    strip_pruning(net)
    assert not hasattr(net.head[1], "weight_orig") and not net.head[1]._forward_pre_hooks
    threads = torch.get_num_threads()
    out = measure_latency(
        {"a": net, "b": trained},
        (1, 28, 28),
        CPU,
        batch=4,
        warmup=1,
        repeats_b1=5,
        repeats_bn=3,
        threads=1,
    )
    assert torch.get_num_threads() == threads
    for name in ("a", "b"):
        assert 0 < out[name]["latency/b1_ms"] <= out[name]["latency/b1_p90_ms"]
        assert 0 < out[name]["latency/bN_ms"] <= out[name]["latency/bN_p90_ms"]


def test_compare_suffixes_follow_the_metric_contract():
    mine = {
        "test/acc": 0.8,
        "test/acc_ci_low": 0.7,
        "test/acc_ci_high": 0.9,
        "robust/n_images": 10,
        "robust/pgd_acc": 0.2,
        "size/disk_bytes": 100,
    }
    base = {**mine, "test/acc": 0.9, "robust/pgd_acc": 0.4, "size/disk_bytes": 100}
    out = compare(mine, base)
    assert out["robust/pgd_acc_baseline"] == 0.4
    assert out["robust/pgd_acc_delta_pts"] == pytest.approx(-20)
    assert out["robust/pgd_acc_delta_rel"] == pytest.approx(-50)
    assert out["test/acc_retention"] == pytest.approx(0.8 / 0.9)
    assert out["test/acc_baseline_ci_low"] == 0.7 and "robust/n_images_baseline" not in out
    assert compare(mine, None) == mine
    assert math.isclose(out["test/acc_baseline"], 0.9)
    # A structurally shrunk net's speed-up bound is against the dense baseline's MACs.
    shrunk = compare(
        {**mine, "flops/dense_macs": 25, "flops/nonzero_macs": 25},
        {**base, "flops/dense_macs": 100, "flops/nonzero_macs": 100},
    )
    assert shrunk["flops/dense_macs_baseline"] == 100
    assert shrunk["flops/theoretical_speedup"] == pytest.approx(4.0)


def test_compare_gives_the_dense_models_own_export_and_counts():
    """The dense baseline's sparse export is measured like the model's: the share of the
    reduction that compression alone gives; its parameter count is the dense one."""
    mine = {"test/acc": 0.8, "test/acc_ci_low": 0.7, "test/acc_ci_high": 0.9}
    mine.update({"size/disk_bytes": 250, "size/params": 60, "robust/pgd_eps": 0.05})
    mine.update({"robust/pgd_steps": 7, "robust/pgd_alpha": 0.01, "robust/pgd_acc": 0.2})
    base = {**mine, "size/disk_bytes": 1000, "size/params": 240, "size/sparse_disk_bytes": 920}
    out = compare(mine, base)
    assert out["size/params_baseline"] == 240 and out["size/sparse_disk_bytes_baseline"] == 920
    assert out["size/reduction_pct_baseline"] == pytest.approx(8.0)
    # The attack's settings describe the measurement: no baseline twin, no delta.
    assert out["robust/pgd_eps"] == 0.05 and out["robust/pgd_steps"] == 7
    assert not [k for k in out if k.startswith(("robust/pgd_eps_", "robust/pgd_steps_"))]
    assert "size/reduction_pct_baseline" not in compare(
        mine, {**base, "size/sparse_disk_bytes": None}
    )


def test_compare_pairs_the_images_both_models_were_scored_on():
    """Same images, image by image: the change's interval comes from the discordant pairs."""
    mine = {"test/acc": 0.5, "robust/pgd_acc": 0.5, "robust/n_images": 4, "size/disk_bytes": 1}
    base = {**mine, "test/acc": 0.5, "test/acc_ci_low": 0.1, "test/acc_ci_high": 0.9}
    mine.update({"test/acc_ci_low": 0.1, "test/acc_ci_high": 0.9})
    out = compare(mine, base, {"test/acc": "1100" * 250}, {"test/acc": "1010" * 250})
    low, high = paired_difference(250, 250, 1000)
    assert (out["test/acc_delta_ci_low"], out["test/acc_delta_ci_high"]) == (100 * low, 100 * high)
    assert out["test/acc_delta_pts"] == 0
    assert "robust/pgd_acc_delta_ci_low" not in out  # no per-image outcomes: no interval
    assert not [k for k in compare(mine, base) if k.endswith(("_delta_ci_low", "_delta_ci_high"))]


def test_paired_interval_known_values_and_why_pairing_matters():
    # Agresti & Min (2005), by hand: 30 images only the pruned model keeps, 79 only the dense.
    low, high = paired_difference(30, 79, 1000)
    assert (low, high) == pytest.approx((-0.06919, -0.02861), abs=1e-5)
    assert paired_difference(79, 30, 1000) == pytest.approx((-high, -low))
    # The same 4.9-point drop judged by two unpaired Wilson intervals (48.6 % vs 43.7 %) is
    # "within noise"; paired, it is not.
    dense, pruned = wilson_interval(486, 1000), wilson_interval(437, 1000)
    assert pruned[1] > dense[0] and high < 0
    # Identical outcomes: an interval around 0 narrower than one image in 1,000 either side.
    assert paired_difference(0, 0, 1000) == pytest.approx((-0.00196, 0.00196), abs=1e-5)


def test_latency_compares_nets_in_the_same_memory_layout():
    """A channels-last-trained net must not pass its faster layout off as a pruning speed-up."""
    net = SimpleCNN(in_shape=(1, 28, 28), num_classes=10, mean=(0.5,), std=(0.25,))
    fast = copy.deepcopy(net).to(memory_format=torch.channels_last)
    times = measure_latency(
        {"model": fast, "baseline": net}, (1, 28, 28), torch.device("cpu"), 4, 1, 2, 2
    )
    assert set(times) == {"model", "baseline"}
    for module in (fast, net):
        for p in module.parameters():
            assert p.is_contiguous()


def _bn_count(net: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def test_inference_copy_folds_batchnorm_and_computes_the_same_function(trained, fmnist):
    """The attacks' fast copy (BatchNorm folded, NHWC) equals the net on real test images,
    also for a channel-pruned ResNetSmall, and leaves the net itself as it was."""
    from prunelab.evaluation.fast import inference_copy
    from prunelab.pruning.structured import prune_channels

    x = torch.stack([fmnist.test_set[i][0] for i in range(256)])
    resnet = ResNetSmall(fmnist.in_shape, fmnist.num_classes, fmnist.mean, fmnist.std)
    with torch.no_grad():  # real running statistics: a few train-mode passes over real images
        for chunk in x.split(64):
            resnet(chunk)
    shrunk = prune_channels(copy.deepcopy(resnet), 0.5, fmnist.in_shape).eval()
    for net in (trained, resnet.eval(), shrunk):
        before = {k: v.clone() for k, v in net.state_dict().items()}
        fast = inference_copy(net, CPU)
        assert _bn_count(net) > 0 and _bn_count(fast) == 0
        with torch.no_grad():
            torch.testing.assert_close(fast(x), net(x), rtol=1e-4, atol=1e-4)
        assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
        assert all(p.is_contiguous() for p in net.parameters())


@pytest.mark.parametrize("fold", [True, False])
def test_latency_times_model_and_baseline_as_deployed(trained, make_cfg, monkeypatch, fold):
    """`eval.latency.fold_batchnorm` times both nets with BatchNorm folded (or both unfolded),
    records the choice, and leaves the nets themselves untouched."""
    from prunelab.evaluation import core

    cfg = make_cfg(f"eval.latency.fold_batchnorm={fold}")
    seen: dict[str, nn.Module] = {}

    def capture(nets, *args, **kwargs):
        seen.update(nets)
        return {name: {"latency/b1_ms": 1.0, "latency/bN_ms": 2.0} for name in nets}

    monkeypatch.setattr(core, "measure_latency", capture)
    baseline = copy.deepcopy(trained)
    spec = {"in_shape": (1, 28, 28)}
    out = core._latency(trained, baseline, spec, cfg, CPU)
    assert out["latency/fold_batchnorm"] is fold
    assert {name: _bn_count(net) == 0 for name, net in seen.items()} == {
        "model": fold,
        "baseline": fold,
    }
    assert seen["model"] is not trained and _bn_count(trained) > 0


def test_robustness_records_the_pgd_it_ran(trained, fmnist):
    """results.json names the study's PGD as configured, so the report labels it right."""
    pgd = {"eps": 0.05, "alpha": 0.02, "steps": 2}
    cfg = attack_cfg(n_images=8, fgsm_eps=[], curve={"eps_255": []}, pgd=pgd)
    images, labels, _ = eval_subset(fmnist.test_set, 8, cfg.seed)
    out = measure_robustness(trained, images, labels, cfg, CPU)
    assert {k: out[f"robust/pgd_{k}"] for k in pgd} == pgd


def test_no_curve_and_no_fgsm_are_valid_settings(trained, fmnist):
    # attack.curve.eps_255=[] and attack.fgsm_eps=[] run the other attacks only.
    cfg = attack_cfg(n_images=16, fgsm_eps=[], curve={"eps_255": []})
    images, labels, _ = eval_subset(fmnist.test_set, 16, cfg.seed)
    out = measure_robustness(trained, images, labels, cfg, CPU)
    assert "robust/pgd_acc" in out and not any("curve" in k or "fgsm" in k for k in out)
