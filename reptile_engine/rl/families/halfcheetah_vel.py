"""HalfCheetah-v5 that should run at a target velocity (MAML's "cheetah velocity"); optional extra ``mujoco``.

=======================  ==========================  ================================================
parameter                documented range            meaning
=======================  ==========================  ================================================
``target_velocity``      U(0, 2)                     forward speed to hold, in m/s
=======================  ==========================  ================================================

reward = ``-|v - target_velocity| - 0.05 * ||a||^2`` with ``v = info["x_velocity"]`` of the stock step;
observations, dynamics and termination (none) are the stock ``HalfCheetahEnv``'s. Episodes last 200 steps, the
meta-RL convention (MAML, ProMP), instead of the stock 1000.

``HalfCheetahVelEnv`` is not a ``gymnasium.Wrapper``: it is a small ``gymnasium.Env`` holding the stock
environment, so ``gymnasium.make`` puts the usual wrappers around it and ``target_velocity`` lives on
``env.unwrapped``. The module imports without MuJoCo; building the environment needs it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from reptile_engine.rl.families._mujoco import ForwardVelocityTrace, HeldMujocoEnv, require_mujoco
from reptile_engine.rl.families.base import TaskFamily, Uniform, register_env

ENV_ID = "ReptileLab/HalfCheetahVel-v0"
BASE_ID = "HalfCheetah-v5"
HORIZON = 200
CONTROL_WEIGHT = 0.05


class HalfCheetahVelEnv(HeldMujocoEnv):
    """The stock HalfCheetah with the reward replaced by a velocity-tracking one."""

    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 20}
    inner_entry_point = "gymnasium.envs.mujoco.half_cheetah_v5:HalfCheetahEnv"

    def __init__(self, render_mode: str | None = None, target_velocity: float = 1.0, **inner_kwargs: Any):
        super().__init__(render_mode=render_mode, **inner_kwargs)
        self.target_velocity = float(target_velocity)

    def step(self, action: ArrayLike) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        observation, _, terminated, truncated, info = self.inner.step(action)
        velocity = float(info["x_velocity"])
        reward_velocity = -abs(velocity - self.target_velocity)
        reward_ctrl = -CONTROL_WEIGHT * float(np.sum(np.square(np.asarray(action, dtype=np.float64))))
        info = {"x_position": info["x_position"], "x_velocity": velocity,
                "reward_velocity": reward_velocity, "reward_ctrl": reward_ctrl}
        return observation, reward_velocity + reward_ctrl, terminated, truncated, info


class HalfCheetahVelFamily(ForwardVelocityTrace, TaskFamily):
    """Target velocities of the half cheetah."""

    name = "halfcheetah-vel"
    env_id = ENV_ID
    parameters = {"target_velocity": Uniform(0.0, 2.0, "forward speed to hold (m/s)")}
    observation_dim = 17
    action_dim = 6
    horizon = HORIZON

    def __init__(self) -> None:
        require_mujoco(f"the {self.name!r} family")


register_env(ENV_ID, f"{__name__}:HalfCheetahVelEnv", max_episode_steps=HORIZON)
