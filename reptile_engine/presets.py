"""Named starting points: a preset is a set of changes to the default config."""

from __future__ import annotations

from typing import Any

from reptile_engine import catalog
from reptile_engine.config import ConfigError, ExperimentConfig

PRESETS: dict[str, dict[str, Any]] = {
    # Tuned for sine regression on a 2-core CPU: about half a minute to a good adaptation curve.
    # Minibatches of 10 from 50 points per task give Reptile the gradient noise it learns from; Adam
    # on the pseudo-gradient, annealed linearly to zero, beats plain interpolation at equal time.
    "default": {"task.support": 50, "inner.batch_size": 10, "inner.steps": 5, "inner.lr": 0.02,
                "meta.meta_batch": 5, "meta.optimizer": "adam", "meta.lr": 0.003, "meta.iterations": 36_000},
    # The public sine demo's protocol: one task per iteration, 50 points, 5 inner steps of 10 points,
    # the meta step size annealed linearly from 0.1 to 0 over 30,000 iterations.
    "paper": {"meta.iterations": 30_000, "meta.meta_batch": 1, "meta.lr": 0.1, "task.support": 50,
              "inner.batch_size": 10, "inner.steps": 5, "inner.lr": 0.02},
    # Meta-RL on MAML's 2D navigation, tuned on a 2-core CPU (benchmarks/bench_rl_quality.py): Reptile over a
    # PPO actor-critic (the rl section's defaults: 3 plain-SGD updates of 20 episodes, clip 0.4, log_std -1
    # held fixed by the outer step), 40 goals per meta-iteration, the paper's interpolation annealed to 0
    # over 75 iterations: the return after adaptation peaks there and then slowly drifts down.
    "meta-rl": {"task.name": "point-nav-2d", "meta.iterations": 75, "meta.meta_batch": 40, "meta.lr": 0.1,
                "meta.optimizer": "sgd", "meta_schedule.kind": "linear", "evaluation.tasks": 40,
                "evaluation.steps": 3, "evaluation.every": 5, "landscape.plane": "task", "landscape.span": 2.0,
                "landscape.loss": "policy", "landscape.resolution": 31, "landscape.every": 25,
                "landscape.snapshot_every": 1},
    # A few seconds, for smoke tests and first looks.
    "quick": {"meta.iterations": 300, "evaluation.tasks": 50, "evaluation.every": 50},
}


def preset(name: str) -> ExperimentConfig:
    """The validated config of a named preset."""
    if name not in PRESETS:
        raise ConfigError("preset", name, "one of " + ", ".join(PRESETS))
    return ExperimentConfig().with_updates(PRESETS[name])


def preset_for_task(name: str) -> str:
    """The preset a task picker loads with ``name``: ``meta-rl`` for a meta-RL family, else ``default``."""
    return "meta-rl" if catalog.kind_of(name) == "rl" else "default"
