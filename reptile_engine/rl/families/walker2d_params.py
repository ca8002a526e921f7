"""Walker2d-v5 with random gravity and torso mass, rewarded for a target velocity; optional extra ``mujoco``.

=======================  ==========================  ================================================
parameter                documented range            where it is set (stock value)
=======================  ==========================  ================================================
``gravity``              U(5, 15)                    ``model.opt.gravity[2] = -gravity`` (9.81)
``torso_mass``           U(1, 5)                     ``model.body_mass[torso]`` (about 3.67)
``target_velocity``      U(0.5, 3)                   reward term only
=======================  ==========================  ================================================

reward = the stock Walker2d reward ``+ -0.5 * |v - target_velocity|`` with ``v = info["x_velocity"]``;
``info["reward_env"]`` keeps the stock reward. Observations, termination and the stock reward are the stock
``Walker2dEnv``'s: with the stock gravity and torso mass (``get_task`` of a fresh environment) the walker
reproduces ``Walker2d-v5`` exactly, whatever task it ran before. Episodes last 200 steps (meta-RL convention).

Each environment loads its own MuJoCo model, so changing one task's physics never touches another's.
The module imports without MuJoCo; building the environment needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from reptile_engine.rl.families._mujoco import ForwardVelocityTrace, HeldMujocoEnv, require_mujoco
from reptile_engine.rl.families.base import TaskFamily, Uniform, register_env

ENV_ID = "ReptileLab/Walker2dParams-v0"
BASE_ID = "Walker2d-v5"
HORIZON = 200
VELOCITY_WEIGHT = 0.5


class Walker2dParamsEnv(HeldMujocoEnv):
    """The stock Walker2d whose gravity and torso mass are properties writing into its MuJoCo model."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 125}
    inner_entry_point = "gymnasium.envs.mujoco.walker2d_v5:Walker2dEnv"

    def __init__(self, render_mode: str | None = None, target_velocity: float = 1.0, **inner_kwargs: Any):
        super().__init__(render_mode=render_mode, **inner_kwargs)
        self._torso = self.inner.model.body("torso").id
        self.target_velocity = float(target_velocity)

    @property
    def gravity(self) -> float:
        """Magnitude of the downward gravity, ``-model.opt.gravity[2]``."""
        return float(-self.inner.model.opt.gravity[2])

    @gravity.setter
    def gravity(self, value: float) -> None:
        self.inner.model.opt.gravity[2] = -float(value)

    @property
    def torso_mass(self) -> float:
        """``model.body_mass`` of the body named ``torso``."""
        return float(self.inner.model.body_mass[self._torso])

    @torso_mass.setter
    def torso_mass(self, value: float) -> None:
        self.inner.model.body_mass[self._torso] = float(value)

    def step(self, action: ArrayLike) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.inner.step(action)
        reward_velocity = -VELOCITY_WEIGHT * abs(float(info["x_velocity"]) - self.target_velocity)
        info = {**info, "reward_env": float(reward), "reward_velocity": reward_velocity}
        return observation, float(reward) + reward_velocity, terminated, truncated, info


class Walker2dParamsFamily(ForwardVelocityTrace, TaskFamily):
    """Gravity, torso mass and target velocity of the 2D walker."""

    name = "walker2d-params"
    env_id = ENV_ID
    parameters = {
        "gravity": Uniform(5.0, 15.0, "downward gravitational acceleration (m/s^2)"),
        "torso_mass": Uniform(1.0, 5.0, "mass of the torso body (kg)"),
        "target_velocity": Uniform(0.5, 3.0, "forward speed to hold (m/s)"),
    }
    observation_dim = 17
    action_dim = 6
    horizon = HORIZON

    def __init__(self) -> None:
        require_mujoco(f"the {self.name!r} family")


register_env(ENV_ID, f"{__name__}:Walker2dParamsEnv", max_episode_steps=HORIZON)
