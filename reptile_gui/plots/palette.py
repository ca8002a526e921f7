"""The plots' colours: one palette for every concept, and the colours of the adaptation steps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtGui import QColor


@dataclass(frozen=True)
class Palette:
    """The colours every plot uses, so a concept looks the same everywhere."""

    meta_init: str = "#1550b0"        # strong blue: the meta-learned initialisation
    scratch: str = "#8c8c8c"          # grey: a randomly initialised network
    pre_adaptation: str = "#e8710a"   # orange: before the inner loop (0 steps)
    post_adaptation: str = "#1f77b4"  # blue: after the inner loop (K steps)
    intermediate: str = "#2ca02c"     # green: steps between 0 and K
    marker: str = "#7b3fa0"           # purple: hyperparameter changes
    truth: str = "#000000"            # black: the true function
    support: str = "#d62728"          # red: the support points
    policy_loss: str = "#d62728"      # red: the actor's loss (meta-RL)
    critic_loss: str = "#17becf"      # teal: the critic's loss (meta-RL)
    agent_loss: str = "#333333"       # near black: their weighted sum (meta-RL)
    goal: str = "#ffbf00"             # amber: what a meta-RL task's agent should reach
    background: str = "#ffffff"
    foreground: str = "#222222"       # axes, ticks, labels
    grid_alpha: float = 0.15

    def color(self, name: str, alpha: float = 1.0) -> QColor:
        """A ``QColor`` for a palette entry with opacity ``alpha`` (0..1)."""
        return translucent(getattr(self, name), alpha)


def translucent(color: str, alpha: float) -> QColor:
    """``color`` (a name or ``#rrggbb``) with opacity ``alpha`` (0..1)."""
    result = QColor(color)
    result.setAlphaF(float(np.clip(alpha, 0.0, 1.0)))
    return result


PALETTE = Palette()

BETWEEN_COLORS: tuple[str, ...] = (PALETTE.intermediate, "#17becf", PALETTE.marker, "#bcbd22")
"""Colours of the adaptation steps between 0 and K, in order."""


def step_color(index: int, steps: tuple[int, ...]) -> str:
    """The colour of adaptation step ``steps[index]``: orange before adaptation (0 steps), blue after the
    last step, green and then other colours in between (the task view and the rollout view agree)."""
    if steps[index] == 0:
        return PALETTE.pre_adaptation
    if index == len(steps) - 1:
        return PALETTE.post_adaptation
    return BETWEEN_COLORS[(index - 1) % len(BETWEEN_COLORS)]
