"""Gradual magnitude pruning inside the fine-tuning budget (Zhu & Gupta 2017)."""

from __future__ import annotations

import lightning as L
import torch

from prunelab.errors import PrunelabError, warn
from prunelab.pruning.callback import MagnitudePruning
from prunelab.pruning.checks import number, whole
from prunelab.pruning.masks import (
    apply_masks,
    global_masks_from_scores,
    layerwise_masks_from_scores,
    magnitude_scores,
    prunable_weights,
)
from prunelab.pruning.schedules import CubicSchedule, check_schedule_args

SCOPES = ("global", "layer")


@torch.no_grad()
def zero_optimizer_state(
    optimizers: list[torch.optim.Optimizer], net: torch.nn.Module, masks: dict[str, torch.Tensor]
) -> None:
    """Zero per-weight optimizer state (Adam moments, momentum) at pruned positions."""
    by_id = {id(w): masks[name] for name, w in prunable_weights(net).items() if name in masks}
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            for param in group["params"]:
                mask = by_id.get(id(param))
                if mask is None:
                    continue
                for value in optimizer.state.get(param, {}).values():
                    if torch.is_tensor(value) and value.shape == param.shape:
                        value.mul_(mask.to(value.device))


class GradualMagnitudePruning(MagnitudePruning):
    """Magnitude pruning that grows from `initial_amount` to `amount` on a cubic schedule.

    Over the fit's optimizer steps T (finetune.max_epochs epochs: the one-shot budget), pruning
    events fall every `every` steps from step start * T to step end * T; each event prunes the
    lowest-|w| surviving weights up to the scheduled sparsity (global ranking, or per layer with
    scope="layer"); after the last event training goes on with the final masks. Pruned weights never
    return: already pruned positions always rank first. The last event prunes exactly
    round(amount * n), as one-shot pruning does. The schedule and its position are saved with the
    masks in the callback state, so a resumed fit continues where it stopped.
    """

    def __init__(
        self,
        amount: float,
        initial_amount: float = 0.0,
        start: float = 0.0,
        end: float = 0.7,
        every: int = 50,
        scope: str = "global",
    ) -> None:
        super().__init__(amount)
        initial_amount = number("pruning.initial_amount", initial_amount)
        start, end = number("pruning.start", start), number("pruning.end", end)
        every = whole("pruning.every", every, 1)
        check_schedule_args(self.amount, initial_amount, start, end, every)
        if scope not in SCOPES:
            raise PrunelabError(f"pruning.scope must be one of {SCOPES}, got '{scope}'")
        self.initial_amount = initial_amount
        self.start, self.end, self.every = start, end, every
        self.scope = scope
        self.schedule: CubicSchedule | None = None
        self.events_done = -1  # index of the last pruning event applied; -1 = none yet

    @property
    def per_layer(self) -> bool:  # the final masks are ranked as masks_at ranks them
        return self.scope == "layer"

    @property
    def label(self) -> str:
        return "gradual pruning with pruning.scope=layer"

    def compute_masks(self, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Masks at the final sparsity for `net`'s weights, keeping pruned positions pruned."""
        return self.masks_at(net, self.amount)

    def masks_at(self, net: torch.nn.Module, amount: float) -> dict[str, torch.Tensor]:
        """Grow the current masks to `amount` by |w| of the surviving weights."""
        scores = magnitude_scores(prunable_weights(net), self.masks)
        if self.scope == "layer":
            return layerwise_masks_from_scores(scores, amount)
        return global_masks_from_scores(scores, amount)

    def prune(self, trainer: L.Trainer, net: torch.nn.Module) -> dict[str, torch.Tensor]:
        """Start dense: the schedule's events prune from the first batch on."""
        return {
            name: torch.ones_like(w, dtype=torch.bool) for name, w in prunable_weights(net).items()
        }

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.schedule is None:  # not restored from a checkpoint: plan it for this fit
            self.schedule = CubicSchedule.for_budget(
                trainer.estimated_stepping_batches,
                self.initial_amount,
                self.amount,
                self.start,
                self.end,
                self.every,
            )
        super().on_fit_start(trainer, pl_module)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        due = self.schedule.event_index(trainer.global_step)
        if due > self.events_done:
            self._advance(trainer, pl_module.net, due)

    def on_train_end(self, trainer, pl_module) -> None:
        # Only when the fit stopped before the schedule's end (max_steps, a stop signal): the result
        # must still be at the target sparsity, so apply the final masks, but say so.
        if self.schedule is not None and self.events_done < self.schedule.events:
            warn(  # one prunelab line, not a UserWarning naming this file and line
                f"gradual pruning stopped at event {self.events_done} of {self.schedule.events}; "
                f"pruning to the final sparsity {self.amount} without further training"
            )
            self._advance(trainer, pl_module.net, self.schedule.events)

    def _advance(self, trainer: L.Trainer, net: torch.nn.Module, index: int) -> None:
        self.masks = self.masks_at(net, self.schedule.sparsity_of_event(index))
        apply_masks(net, self.masks)
        zero_optimizer_state(trainer.optimizers, net, self.masks)
        self.events_done = index

    def state_dict(self) -> dict:
        schedule = None if self.schedule is None else self.schedule.to_dict()
        return {**super().state_dict(), "schedule": schedule, "events_done": self.events_done}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        if state_dict.get("schedule") is not None:
            self.schedule = CubicSchedule.from_dict(state_dict["schedule"])
            self.events_done = int(state_dict["events_done"])
