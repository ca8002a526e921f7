"""MountainCarContinuous with a random goal position and a random gravity.

=====================  ==========================  ================================================
parameter              documented range            meaning
=====================  ==========================  ================================================
``goal_position``      U(0.45, 0.55)               position the car must reach (stock: 0.45)
``gravity``            U(0.0025, 0.006)            slope pull per step, ``g * cos(3x)`` (stock: 0.0025)
=====================  ==========================  ================================================

gymnasium's ``Continuous_MountainCarEnv`` (``MountainCarContinuous-v0``) reads ``self.goal_position`` in
``step()`` but hard-codes the gravity as the literal ``0.0025``; it has no ``gravity`` attribute (only the
discrete ``MountainCarEnv`` has one), so setting ``env.unwrapped.gravity`` on the stock env would change
nothing. ``GoalGravityMountainCarEnv`` is the stock env with that one literal replaced by ``self.gravity``;
at the stock values it reproduces ``MountainCarContinuous-v0`` exactly.

>>> import numpy as np
>>> family = MountainCarFamily()
>>> task = family.sample_tasks(np.random.default_rng(0), 1)[0]
>>> env = family.make_env(task)
>>> env.unwrapped.gravity == task["gravity"], env.unwrapped.goal_position == task["goal_position"]
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.classic_control.continuous_mountain_car import Continuous_MountainCarEnv

from reptile_engine.rl.families.base import TaskFamily, Uniform, register_env

ENV_ID = "ReptileLab/MountainCarGoalGravity-v0"
BASE_ID = "MountainCarContinuous-v0"
HORIZON = 999
STOCK_GRAVITY = 0.0025


class GoalGravityMountainCarEnv(Continuous_MountainCarEnv):
    """``Continuous_MountainCarEnv`` whose ``step()`` uses ``self.gravity`` instead of the literal 0.0025."""

    def __init__(self, render_mode: str | None = None, goal_velocity: float = 0, gravity: float = STOCK_GRAVITY):
        super().__init__(render_mode=render_mode, goal_velocity=goal_velocity)
        self.gravity = gravity

    def step(self, action: np.ndarray):
        # gymnasium 1.x Continuous_MountainCarEnv.step, with ``0.0025`` replaced by ``self.gravity``.
        position = self.state[0]
        velocity = self.state[1]
        force = min(max(action[0], self.min_action), self.max_action)

        velocity += force * self.power - self.gravity * math.cos(3 * position)
        if velocity > self.max_speed:
            velocity = self.max_speed
        if velocity < -self.max_speed:
            velocity = -self.max_speed
        position += velocity
        if position > self.max_position:
            position = self.max_position
        if position < self.min_position:
            position = self.min_position
        if position == self.min_position and velocity < 0:
            velocity = 0

        terminated = bool(position >= self.goal_position and velocity >= self.goal_velocity)

        reward = 0
        if terminated:
            reward = 100.0
        reward -= math.pow(action[0], 2) * 0.1

        self.state = np.array([position, velocity], dtype=np.float32)

        if self.render_mode == "human":
            self.render()
        return self.state, reward, terminated, False, {}


class MountainCarFamily(TaskFamily):
    """Goal position and gravity of the continuous mountain car, set on ``env.unwrapped``."""

    name = "mountaincar-goal-gravity"
    env_id = ENV_ID
    parameters = {
        "goal_position": Uniform(0.45, 0.55, "position the car must reach"),
        "gravity": Uniform(0.0025, 0.006, "slope pull per step"),
    }
    observation_dim = 2
    action_dim = 1
    horizon = HORIZON
    trace_labels = ("step", "position")  # the default trace, the first observation component: the position

    def trace_target(self, task: Mapping[str, Any]) -> tuple[str, tuple[float, ...]]:
        return "level", (float(task["goal_position"]),)


register_env(ENV_ID, f"{__name__}:GoalGravityMountainCarEnv", max_episode_steps=HORIZON,
             reward_threshold=gymnasium.spec(BASE_ID).reward_threshold)
