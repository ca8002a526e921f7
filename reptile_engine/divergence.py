"""Telling a diverging run from a noisy one, and the healthy snapshots a divergence rolls back to."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

DIVERGENCE_WINDOW = 200
"""In-range iterations whose median is a monitored loss's recent level."""
DIVERGENCE_WARMUP = 20
"""In-range iterations a loss needs before its recent level is trusted."""
DIVERGENCE_FACTOR = 10.0
"""A loss above this multiple of its recent level is out of range. Measured on sine regression: single
iterations reach 27 times the median with one task per meta-batch, but never 10 times for more than 2 in a row."""
DIVERGENCE_SUSTAIN = 5
"""Consecutive out-of-range iterations that make a divergence."""
DIVERGENCE_EXTREME = 1000.0
"""A loss above this multiple of its recent level is a divergence at once."""
SNAPSHOT_EVERY = 50
"""Iterations between the healthy snapshots a divergence rolls back to, unless a learner asks for another spacing."""
SNAPSHOTS_KEPT = 4
"""Healthy snapshots kept, oldest dropped first."""


class RecentLevel:
    """The median of a loss's last ``DIVERGENCE_WINDOW`` in-range values, refreshed every few values."""

    REFRESH_EVERY = 8

    def __init__(self) -> None:
        self._values = np.empty(DIVERGENCE_WINDOW)
        self._count = 0
        self._level = math.nan

    def clear(self) -> None:
        self._count = 0
        self._level = math.nan

    def level(self) -> float | None:
        """The recent level, or ``None`` while fewer than ``DIVERGENCE_WARMUP`` values are in."""
        return self._level if self._count >= DIVERGENCE_WARMUP else None

    def add(self, value: float) -> None:
        self._values[self._count % DIVERGENCE_WINDOW] = value
        self._count += 1
        if self._count == DIVERGENCE_WARMUP or self._count % self.REFRESH_EVERY == 0:
            self._level = float(np.median(self._values[:min(self._count, DIVERGENCE_WINDOW)]))


class DivergenceMonitor:
    """Tells a diverging run from a noisy one by its losses, not only by non-finite values.

    Each monitored loss is compared with its recent level (``RecentLevel``), or while that warms up with a
    reference the caller passes (the supervised trainer uses the loss before adaptation for the loss after it).
    A non-finite loss, one above ``DIVERGENCE_EXTREME`` times its level, or ``DIVERGENCE_SUSTAIN`` iterations in a
    row above ``DIVERGENCE_FACTOR`` times it are a divergence. Out-of-range values never enter a level, so a
    climbing loss cannot drag its own yardstick up.
    """

    def __init__(self, names: tuple[str, ...]):
        self._levels = {name: RecentLevel() for name in names}
        self.trouble_since: int | None = None
        """The first iteration of the current out-of-range stretch, ``None`` while all is in range."""
        self._streak = 0

    def forget(self, names: tuple[str, ...]) -> None:
        """Drop the recent levels of ``names``: a settings change moved them on purpose."""
        for name in names:
            self._levels[name].clear()

    def end_trouble(self) -> None:
        """Start counting afresh (after a rollback)."""
        self.trouble_since, self._streak = None, 0

    def check(self, iteration: int, losses: Mapping[str, float],
              references: Mapping[str, float] | None = None) -> str | None:
        """``None`` unless ``losses`` of ``iteration`` make a divergence; then the reason, in words."""
        worst: tuple[float, str] | None = None
        for name, value in losses.items():
            if not math.isfinite(value):
                return self._diverged(iteration, f"the {name} became {value}")
            level = self._levels[name].level()
            if level is None and references is not None:
                level = references.get(name)
            if level is not None and value > DIVERGENCE_FACTOR * level:
                ratio = value / level if level > 0 else math.inf
                if worst is None or ratio > worst[0]:
                    worst = (ratio, f"the {name} ({value:.4g}) is {ratio:.3g} times its recent level ({level:.4g})")
        if worst is None:
            for name, value in losses.items():
                self._levels[name].add(value)
            self.end_trouble()
            return None
        if self.trouble_since is None:
            self.trouble_since = iteration
        self._streak += 1
        if worst[0] > DIVERGENCE_EXTREME:
            return self._diverged(iteration, worst[1])
        if self._streak >= DIVERGENCE_SUSTAIN:
            return self._diverged(iteration, f"{worst[1]} for {self._streak} iterations in a row")
        return None

    def _diverged(self, iteration: int, reason: str) -> str:
        if self.trouble_since is None:
            self.trouble_since = iteration
        return reason


class HealthySnapshots:
    """A few spaced snapshots of a trainer's state taken while its losses were in range, oldest first.

    ``capture(buffers)`` makes a snapshot, reusing the buffers of the one it replaces (``None`` at first).
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[int, Any]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def newest_iteration(self) -> int | None:
        return self._entries[-1][0] if self._entries else None

    def clear(self) -> None:
        self._entries.clear()

    def take(self, iteration: int, capture: Callable[[Any], Any]) -> None:
        reused = self._entries.popleft()[1] if len(self._entries) >= SNAPSHOTS_KEPT else None
        self._entries.append((iteration, capture(reused)))

    def rollback_target(self, trouble_since: int) -> tuple[int, Any]:
        """The newest snapshot older than the parameters that caused the trouble; newer ones are dropped.

        The loss of iteration ``i`` measures the parameters after ``i - 1`` iterations, so the trouble that
        showed at ``trouble_since`` started in the parameters after ``trouble_since - 1``. With no snapshot
        that old, the oldest one.
        """
        while len(self._entries) > 1 and self._entries[-1][0] > trouble_since - 2:
            self._entries.pop()
        return self._entries[-1]


class DivergenceGuard:
    """A trainer's divergence monitor and healthy snapshots, kept in step with its iteration counter: both
    start afresh when the counter moved without the guard seeing it (a loaded checkpoint)."""

    def __init__(self, losses: tuple[str, ...]):
        self._losses = losses
        self.monitor = DivergenceMonitor(losses)
        self.snapshots = HealthySnapshots()
        self._seen: int | None = None

    def before(self, iteration: int, every: int, capture: Callable[[Any], Any]) -> None:
        """Before an iteration: take a snapshot every ``every`` iterations while the losses are in range."""
        if self._seen is not None and self._seen != iteration:
            self.snapshots.clear()
            self.monitor = DivergenceMonitor(self._losses)
        self._seen = iteration
        due = iteration % every == 0 and self.monitor.trouble_since is None
        if not len(self.snapshots) or (due and self.snapshots.newest_iteration != iteration):
            self.snapshots.take(iteration, capture)

    def counted(self, iteration: int) -> None:
        """An iteration finished: the counter moved to ``iteration`` under the guard's eyes."""
        self._seen = iteration

    def rollback_target(self, failed: int, only_outer_step: bool) -> tuple[int, Any]:
        """The snapshot to restore after iteration ``failed`` diverged (``only_outer_step``: the parameters it
        started from are still trusted); counting starts afresh."""
        trouble_since = self.monitor.trouble_since or (failed + 1 if only_outer_step else failed)
        target = self.snapshots.rollback_target(trouble_since)
        self.monitor.end_trouble()
        return target


Snapshot = tuple[torch.Tensor, dict[str, torch.Tensor]]
"""Theta and the outer optimizer's state tensors (Adam's moments and step)."""


def capture(theta: torch.nn.Parameter, optimizer: torch.optim.Optimizer, reused: Snapshot | None) -> Snapshot:
    """A snapshot of theta and its optimizer state, copied into the buffers of ``reused`` where they fit."""
    state = {k: v for k, v in optimizer.state.get(theta, {}).items() if isinstance(v, torch.Tensor)}
    theta_copy, state_copy = reused if reused is not None else (torch.empty_like(theta.detach()), {})
    theta_copy.copy_(theta.detach())
    if state.keys() != state_copy.keys() or any(state_copy[k].shape != v.shape for k, v in state.items()):
        state_copy = {k: v.clone() for k, v in state.items()}
    elif state:
        torch._foreach_copy_(list(state_copy.values()), list(state.values()))
    return theta_copy, state_copy


def restore(theta: torch.nn.Parameter, optimizer: torch.optim.Optimizer, snapshot: Snapshot) -> None:
    """Put back what ``capture`` took."""
    theta_copy, state_copy = snapshot
    with torch.no_grad():
        theta.copy_(theta_copy)
    theta.grad = None
    if not state_copy:
        optimizer.state.pop(theta, None)
        return
    state = optimizer.state[theta]
    for name, saved in state_copy.items():
        if name in state and state[name].shape == saved.shape:
            state[name].copy_(saved)
        else:
            state[name] = saved.clone()
