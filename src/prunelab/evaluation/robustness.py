"""Adversarial robustness with torchattacks: FGSM, the study's PGD, a PGD robust-accuracy curve.

Images enter the nets in [0, 1] (normalisation is each net's first layer), so the attacks are
never told about a normalisation. Only images the model classifies correctly are attacked;
the others count as not robust. With `cascade` (the default) the PGD figures are per-image
worst cases: an image counts as robust at eps only if no attack we ran with eps' <= eps (FGSM
at any of its eps, the study's PGD, the curve's PGD) found an adversarial example, because
an example inside a smaller L-inf ball also lies inside every larger one. So only the images
still robust at the previous eps are attacked at the next, and `robust/pgd_acc` is the
accuracy under the worst of every attack with eps <= 0.03. Likewise PGD stops on an image at
its first misclassified iterate. FGSM figures are always FGSM alone. With `cascade: false`
every attack runs alone, to its last step, on every correctly classified image.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torchattacks
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from prunelab.data.base import capped_size, seeded_indices
from prunelab.errors import PrunelabError


class SeededPGD(torchattacks.PGD):
    """torchattacks' PGD with the random start drawn per image from a fixed tensor.

    The library draws its start from the global RNG per batch, so one image would get another
    start whenever its batch differs (a different model classifies other images correctly);
    a per-image start gives every model the same randomness on the same image.

    With `stop_early`, an image leaves the batch at the first iterate the model gets wrong (or,
    targeted, calls the target), and that iterate is returned: in a per-image worst case any
    adversarial iterate counts, and later steps on that image would only cost time.
    """

    stop_early = False
    image_steps = 0  # forward-backward passes spent, counted per image
    # Per image of the last call: the class the model gave the iterate it stopped at (-1:
    # ran to the end). The attack's own verdict, so a near-tie scored again in another batch
    # cannot turn an image it fooled back into a robust one.
    stopped_pred: torch.Tensor | None = None

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, start: torch.Tensor | None = None
    ) -> torch.Tensor:
        random = start is not None and self.random_start
        self.stopped_pred = None
        if not random and not self.stop_early:
            self.image_steps += len(images) * self.steps
            return super().forward(images, labels)
        images = images.clone().detach().to(self.device)
        labels = labels.clone().detach().to(self.device)
        targets = self.get_target_label(images, labels) if self.targeted else labels
        loss = nn.CrossEntropyLoss()
        adv = images.clone()
        if random:
            adv = torch.clamp(images + self.eps * start.to(self.device), 0, 1).detach()
        elif self.random_start:  # no per-image start given: the library's own draw
            adv = torch.clamp(adv + torch.empty_like(adv).uniform_(-self.eps, self.eps), 0, 1)
        active = torch.arange(len(images), device=images.device)
        stopped = torch.full((len(images),), -1, dtype=torch.long, device=images.device)
        for _ in range(self.steps):
            self.image_steps += len(active)
            x = adv[active].requires_grad_(True)
            logits = self.get_logits(x)
            cost = loss(logits, targets[active])
            grad = torch.autograd.grad(-cost if self.targeted else cost, x)[0]
            if self.stop_early:
                pred = logits.argmax(1)
                hit = pred == targets[active]
                going = ~hit if self.targeted else hit
                stopped[active[~going]] = pred[~going]
                active, x, grad = active[going], x[going], grad[going]
                if len(active) == 0:
                    break
            step = x.detach() + self.alpha * grad.sign()
            delta = torch.clamp(step - images[active], min=-self.eps, max=self.eps)
            adv[active] = torch.clamp(images[active] + delta, min=0, max=1)
        self.stopped_pred = stopped if self.stop_early else None
        return adv


@dataclass(frozen=True)
class PGDSpec:
    """One PGD run: where its result goes, its eps, step size, steps and random start."""

    name: str
    eps: float
    alpha: float
    steps: int
    random_start: bool


def eval_subset(dataset: Dataset, n_images: int | None, seed: int) -> tuple[torch.Tensor, ...]:
    """(images, labels, indices) of a fixed subset of `dataset` that depends only on `seed`."""
    order = seeded_indices(len(dataset), seed)
    if n_images is not None:
        size = capped_size("attack.n_images", int(n_images), len(dataset), "test images")
        order = order[: max(0, size)]
    if len(order) == 0:
        return torch.empty(0), torch.empty(0, dtype=torch.long), order
    pairs = [dataset[int(i)] for i in order]
    images = torch.stack([torch.as_tensor(p[0]) for p in pairs])
    labels = torch.as_tensor([int(p[1]) for p in pairs], dtype=torch.long)
    return images, labels, order


def start_noise(seed: int, tag: str, shape: Sequence[int]) -> torch.Tensor:
    """Uniform [-1, 1] random-start directions for one attack, fixed by (seed, tag)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(tag.encode()))
    return torch.rand(tuple(shape), generator=generator) * 2 - 1


@contextmanager
def frozen(net: nn.Module) -> Iterator[nn.Module]:
    """`net` with parameter gradients off (attacks need input gradients only), restored after."""
    flags = [(p, p.requires_grad) for p in net.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield net
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@torch.no_grad()
def _predict(net: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([net(chunk).argmax(1) for chunk in x.split(batch_size)])


def _run(
    attack: torchattacks.attack.Attack,
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    todo: torch.Tensor,
    batch_size: int,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Predictions on the adversarial images of `todo` (a bool mask over x); -1 elsewhere."""
    preds = torch.full_like(y, -1)
    for chunk in todo.nonzero().flatten().split(batch_size):
        extra = () if start is None else (start[chunk.cpu()],)
        with torch.inference_mode(False), torch.enable_grad():
            adv = attack(x[chunk], y[chunk], *extra)
        preds[chunk] = _predict(net, adv, batch_size)
        stopped = getattr(attack, "stopped_pred", None)
        if stopped is not None:
            held = stopped >= 0
            preds[chunk[held]] = stopped[held].to(preds.device)
    return preds


def fgsm_direction(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, todo: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """sign(input gradient of the loss) per image of `todo` (0 elsewhere), via torchattacks.

    FGSM(x, eps) = clamp(x + eps * sign(grad), 0, 1), and the sign does not depend on eps, so
    one gradient serves every eps. One FGSM at eps 1 yields it: sign(FGSM(x, 1) - x) is
    sign(grad) except where the step is clipped away (x = 1 stepping up, x = 0 stepping down),
    and there any eps leaves x unchanged too.
    """
    direction = torch.zeros_like(x)
    attack = torchattacks.FGSM(net, eps=1.0)
    for chunk in todo.nonzero().flatten().split(batch_size):
        with torch.inference_mode(False), torch.enable_grad():
            adv = attack(x[chunk], y[chunk])
        direction[chunk] = torch.sign(adv - x[chunk])
    return direction


def _fgsm_predictions(net, x, direction, eps, todo, batch_size) -> torch.Tensor:
    """Predictions on FGSM(eps) images of `todo` (torchattacks' formula, bit for bit); -1 else."""
    preds = torch.full((len(x),), -1, dtype=torch.long, device=x.device)
    for chunk in todo.nonzero().flatten().split(batch_size):
        adv = torch.clamp(x[chunk] + eps * direction[chunk], min=0, max=1)
        preds[chunk] = _predict(net, adv, batch_size)
    return preds


def _curve_specs(cfg: DictConfig) -> list[PGDSpec]:
    steps = int(cfg.curve.steps)
    return [
        PGDSpec(
            f"curve_acc@eps{k}",
            k / 255,
            float(cfg.curve.alpha_factor) * (k / 255) / steps,
            steps,
            bool(cfg.curve.random_start),
        )
        for k in cfg.curve.eps_255
    ]


def _pgd(net: nn.Module, spec: PGDSpec, stop_early: bool = False) -> SeededPGD:
    attack = SeededPGD(
        net, eps=spec.eps, alpha=spec.alpha, steps=spec.steps, random_start=spec.random_start
    )
    attack.stop_early = stop_early
    return attack


def measure_robustness(
    net: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    cfg: DictConfig,
    device: torch.device,
    stats: dict[str, float] | None = None,
    per_image: dict[str, torch.Tensor] | None = None,
) -> dict[str, float | int | None]:
    """`robust/...` metrics of `net` (eval mode, on `device`) on `images` in [0, 1].

    `cfg` is the attack config (conf/attack/default.yaml); `stats["robust_steps"]` counts the
    attack's forward-backward passes (images x steps), the measure of its cost. `per_image`,
    if given, receives each accuracy key's per-image outcome (a bool tensor on the CPU), so two
    models attacked on the same images can be compared image by image.
    """
    stats = stats if stats is not None else {}
    stats.setdefault("robust_steps", 0)

    def spent(image_steps: int) -> None:
        stats["robust_steps"] += int(image_steps)

    net = net.eval()
    n, bs, seed = len(labels), int(cfg.batch_size), int(cfg.seed)
    pgd = cfg.pgd
    # The study's PGD settings, so the report labels the figures with what was run.
    out: dict[str, float | int | None] = {
        "robust/n_images": n,
        "robust/cascade": bool(cfg.cascade),
        "robust/pgd_eps": float(pgd.eps),
        "robust/pgd_alpha": float(pgd.alpha),
        "robust/pgd_steps": int(pgd.steps),
    }
    if n == 0:
        return out
    x, y = images.to(device), labels.to(device)

    def share(mask: torch.Tensor) -> float:
        return float(mask.sum()) / n

    with frozen(net):
        correct = _predict(net, x, bs) == y
        n_correct = int(correct.sum())
        out["robust/clean_acc"] = share(correct)
        if per_image is not None:
            per_image["robust/clean_acc"] = correct.cpu()

        def record(key: str, robust: torch.Tensor) -> None:
            out[f"robust/{key}"] = share(robust)
            if per_image is not None:
                per_image[f"robust/{key}"] = robust.cpu()
            if not key.startswith("curve"):
                asr = key.replace("_acc", "_asr")
                flipped = int((correct & ~robust).sum())
                out[f"robust/{asr}"] = flipped / n_correct if n_correct else None

        # Smallest eps at which some attack found an adversarial example, per image.
        broken = torch.full((n,), math.inf, device=device)
        study = PGDSpec("pgd_acc", pgd.eps, pgd.alpha, int(pgd.steps), bool(pgd.random_start))
        specs = sorted([study, *_curve_specs(cfg)], key=lambda s: s.eps)
        targeted = cfg.get("targeted_class") is not None
        # The attacks are most of an evaluation (about a minute for ResNetSmall on the CPU):
        # a bar on a terminal (tqdm's disable=None stays silent in logs and pipes).
        bar = tqdm(
            total=len(cfg.fgsm_eps) + len(specs) + targeted,
            desc=f"attacks on {n} images",
            unit="attack",
            disable=None,
            leave=False,
        )
        if len(cfg.fgsm_eps):
            direction = fgsm_direction(net, x, y, correct, bs)
            spent(correct.sum())
        for eps in cfg.fgsm_eps:
            fooled = correct & (_fgsm_predictions(net, x, direction, float(eps), correct, bs) != y)
            record(f"fgsm_acc@{float(eps):g}", correct & ~fooled)
            broken[fooled] = torch.clamp(broken[fooled], max=float(eps))
            bar.update()

        for spec in specs:
            todo = correct & (broken > spec.eps) if cfg.cascade else correct
            fooled = torch.zeros_like(correct)
            # At eps 0 the ball is the image itself; the pure mode still runs it as a check.
            if spec.eps > 0 or not cfg.cascade:
                start = start_noise(seed, spec.name, x.shape) if spec.random_start else None
                attack = _pgd(net, spec, stop_early=bool(cfg.cascade))
                fooled = todo & (_run(attack, net, x, y, todo, bs, start) != y)
                spent(attack.image_steps)
            broken[fooled] = torch.clamp(broken[fooled], max=spec.eps)
            robust = correct & (broken > spec.eps) if cfg.cascade else correct & ~fooled
            record(spec.name, robust)
            bar.update()

        if targeted:
            steered, still_right, image_steps = _targeted(net, x, y, correct, cfg, bs)
            out.update(steered)
            if per_image is not None:
                per_image["robust/pgd_targeted_acc"] = still_right.cpu()
            spent(image_steps)
            bar.update()
        bar.close()
    return out


def _targeted(net, x, y, correct, cfg, bs) -> tuple[dict, torch.Tensor, int]:
    """PGD (the study's settings) steering correctly classified images to one class.

    Returns the figures, which images stay correctly classified, and the attack's image-steps.
    """
    with torch.no_grad():
        target, classes = int(cfg.targeted_class), int(net(x[:1]).shape[1])
    if not 0 <= target < classes:
        raise PrunelabError(f"attack.targeted_class must be in 0..{classes - 1}, got {target}")
    pgd = cfg.pgd
    spec = PGDSpec("pgd_targeted", pgd.eps, pgd.alpha, int(pgd.steps), bool(pgd.random_start))
    attack = _pgd(net, spec)
    attack.set_mode_targeted_by_function(
        lambda _images, labels: torch.full_like(labels, target), quiet=True
    )
    todo = correct & (y != target)
    start = start_noise(int(cfg.seed), spec.name, x.shape) if spec.random_start else None
    preds = _run(attack, net, x, y, todo, bs, start)
    still_right = correct & ~todo | (todo & (preds == y))
    n_todo = int(todo.sum())
    hits = int((todo & (preds == target)).sum())
    figures = {
        "robust/pgd_target_class": target,
        "robust/pgd_targeted_acc": float(still_right.sum()) / len(y),
        "robust/pgd_targeted_asr": hits / n_todo if n_todo else None,
    }
    return figures, still_right, attack.image_steps
