"""Which task the task view shows, and which of the trainer's answers is the one last asked for.

The task view of a supervised run is a ``TaskFit``; a meta-RL run answers the same ``FitTask`` request with
``Rollouts`` of a held-out task after 0, 1 and ``rl.updates`` inner updates. Each request is numbered, so that
an answer to an older one (a seed or points since replaced) is dropped.
"""

from __future__ import annotations

from reptile_engine.commands import FitTask
from reptile_engine.config import ExperimentConfig

Support = tuple[tuple[float, ...], tuple[float, ...]]
"""Support points as ``(xs, ys)``."""


class TaskViewRequests:
    """The task view's seed and edited support points, and the number of the latest request."""

    def __init__(self) -> None:
        self.request = 0
        self.seed = 0
        self.support: Support | None = None

    def choose(self, seed: int | None, support: Support | None, keep_support: bool) -> None:
        """A new seed drops edited points unless ``keep_support``; new ``support`` replaces them."""
        if seed is not None:
            self.seed = seed
            self.support = None
        if support is not None:
            self.support = support
        elif not keep_support and seed is not None:
            self.support = None

    def next_request(self, kind: str, config: ExperimentConfig) -> FitTask:
        """The next request: after 0, 1 and ``evaluation.steps`` steps on the support points (supervised), or
        after 0, 1 and ``rl.updates`` updates (meta-RL, which has no support points to edit)."""
        self.request += 1
        if kind == "rl":
            return FitTask(self.request, self.seed, tuple(sorted({0, 1, config.rl.updates})))
        xs, ys = self.support if self.support is not None else (None, None)
        return FitTask(self.request, self.seed, (0, 1, config.evaluation.steps), xs, ys)
