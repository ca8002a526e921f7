"""Pendulum-v1 with random mass, length and gravity.

=============  ==========================  ================================================
parameter      documented range            attribute of ``PendulumEnv`` (stock value)
=============  ==========================  ================================================
``mass``       U(0.5, 2.0)                 ``m`` (1.0)
``length``     U(0.5, 1.5)                 ``l`` (1.0)
``gravity``    U(8.0, 12.0)                ``g`` (10.0)
=============  ==========================  ================================================

gymnasium's ``PendulumEnv.step()`` reads ``self.g``, ``self.m`` and ``self.l`` on every step
(``thdot += (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt``), so the family sets those on ``env.unwrapped``.
The id ``ReptileLab/PendulumPhysics-v0`` is the stock entry point with the stock 200-step limit.

>>> import numpy as np
>>> family = PendulumFamily()
>>> env = family.make_env({"mass": 2.0, "length": 0.5, "gravity": 9.0})
>>> (env.unwrapped.m, env.unwrapped.l, env.unwrapped.g)
(2.0, 0.5, 9.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np

from reptile_engine.rl.families.base import TaskFamily, Uniform, over_time, register_env

ENV_ID = "ReptileLab/PendulumPhysics-v0"
BASE_ID = "Pendulum-v1"
HORIZON = 200


class PendulumFamily(TaskFamily):
    """Mass, length and gravity of the pendulum, set on ``env.unwrapped``."""

    name = "pendulum-physics"
    env_id = ENV_ID
    parameters = {
        "mass": Uniform(0.5, 2.0, "mass of the rod", attribute="m"),
        "length": Uniform(0.5, 1.5, "length of the rod", attribute="l"),
        "gravity": Uniform(8.0, 12.0, "gravitational acceleration", attribute="g"),
    }
    observation_dim = 3
    action_dim = 1
    horizon = HORIZON
    trace_labels = ("step", "angle (rad, 0 is upright)")

    def trace(self, observations: np.ndarray) -> np.ndarray:
        """The angle over time, from the observation's cos and sin."""
        observations = np.asarray(observations, dtype=np.float64)
        return over_time(np.arctan2(observations[:, 1], observations[:, 0]))

    def trace_target(self, task: Mapping[str, Any]) -> tuple[str, tuple[float, ...]]:
        return "level", (0.0,)


register_env(ENV_ID, gymnasium.spec(BASE_ID).entry_point, max_episode_steps=HORIZON)
