"""The learner a config's task needs: a task distribution's or a meta-RL family's."""

from __future__ import annotations

from typing import Any

from reptile_engine.config import ExperimentConfig
from reptile_engine.learner import MetaLearner
from reptile_engine.supervised import SupervisedLearner


def make_learner(config: ExperimentConfig, **options: Any) -> MetaLearner:
    """``SupervisedLearner`` for a task distribution, ``RLLearner`` for a meta-RL family (``options`` go to it)."""
    if config.kind == "rl":
        from reptile_engine.rl.learner import RLLearner  # late: the RL stack loads gymnasium

        return RLLearner(config, **options)
    return SupervisedLearner(config, **options)
