"""Sparsity schedules for gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune")."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from prunelab.errors import PrunelabError


def cubic_sparsity(step: int, initial: float, final: float, start: int, span: int) -> float:
    """s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt))**3, clamped to [t0, t0 + n * dt].

    `span` is n * dt. Before `start` the network is dense (0.0); after the span it stays at `final`.
    """
    if step < start:
        return 0.0
    if span <= 0:
        return final
    progress = min(1.0, (step - start) / span)
    return final + (initial - final) * (1.0 - progress) ** 3


@dataclass(frozen=True)
class CubicSchedule:
    """Pruning events at optimizer steps start + i * every, i = 0..events, on the cubic curve.

    Event i sets the sparsity to cubic_sparsity(start + i * every); between events it holds.
    `events` = n of the paper (number of intervals), so there are n + 1 pruning steps.
    """

    initial: float
    final: float
    start: int
    every: int
    events: int

    @property
    def end(self) -> int:
        """The optimizer step of the last pruning event (t0 + n * dt)."""
        return self.start + self.events * self.every

    def event_index(self, step: int) -> int:
        """Index of the latest event at or before `step`; -1 before the first event."""
        if step < self.start:
            return -1
        if self.every <= 0:
            return self.events
        return min(self.events, (step - self.start) // self.every)

    def sparsity_of_event(self, index: int) -> float:
        """Target sparsity set by event `index` (exactly `final` at the last one)."""
        if index < 0:
            return 0.0
        if index >= self.events:
            return self.final
        step = self.start + index * self.every
        return cubic_sparsity(step, self.initial, self.final, self.start, self.events * self.every)

    def sparsity_at(self, step: int) -> float:
        """Target sparsity in force while optimizer step `step` (0-based) is taken."""
        return self.sparsity_of_event(self.event_index(step))

    def to_dict(self) -> dict:
        """Plain values (checkpoint-safe under torch.load(weights_only=True))."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> CubicSchedule:
        """Inverse of to_dict."""
        return cls(**values)

    @classmethod
    def for_budget(
        cls,
        total_steps: float,
        initial: float,
        final: float,
        start: float,
        end: float,
        every: int,
    ) -> CubicSchedule:
        """Place the schedule inside a training run of `total_steps` optimizer steps.

        `start` and `end` are fractions of the run; pruning steps are `every` optimizer steps apart
        (shortened to the whole span when the run is too short for even one interval). The last
        event falls at or before step `end * total_steps`, and never after the run's last step, so
        the final masks always exist before training ends.
        """
        if not math.isfinite(total_steps) or total_steps < 1:
            raise PrunelabError(
                f"gradual pruning needs a finite number of training steps, got {total_steps}: "
                "set finetune.max_epochs"
            )
        total = int(total_steps)
        first = min(int(start * total), total - 1)
        last = min(int(end * total), total - 1)
        span = max(0, last - first)
        if span == 0:
            return cls(initial, final, first, 0, 0)
        step = min(int(every), span)
        return cls(initial, final, first, step, span // step)


def check_schedule_args(
    amount: float, initial: float, start: float, end: float, every: int
) -> None:
    """Reject schedule settings that cannot produce monotone masks ending at `amount`.

    amount 0 is the dense row of a sweep (sparsity=0), which prunes nothing and runs no
    schedule: an initial_amount set for the sweep's pruned jobs does not refuse it."""
    if not 0.0 <= initial <= (amount if amount > 0 else 1.0):
        raise PrunelabError(
            f"pruning.initial_amount must be in [0, amount={amount}], got {initial}"
        )
    if not 0.0 <= start < end <= 1.0:
        raise PrunelabError(
            f"pruning.start and pruning.end must satisfy 0 <= start < end <= 1, got {start}, {end}"
        )
    if int(every) < 1:
        raise PrunelabError(f"pruning.every must be at least 1 optimizer step, got {every}")
