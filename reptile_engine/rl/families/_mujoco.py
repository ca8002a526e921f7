"""Shared pieces of the MuJoCo families (optional extra ``mujoco``).

This module imports without MuJoCo; only building an environment needs it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import gymnasium
import numpy as np

from reptile_engine.rl.families.base import over_time

INSTALL_HINT = "pip install 'reptile-lab[mujoco]'"


def mujoco_available() -> bool:
    """Whether gymnasium's MuJoCo environments import (they need ``mujoco`` and ``imageio``)."""
    try:
        importlib.import_module("gymnasium.envs.mujoco")
    except (ImportError, gymnasium.error.DependencyNotInstalled):
        return False
    return True


def require_mujoco(what: str) -> None:
    """Raise an ``ImportError`` with the install hint unless the MuJoCo environments import."""
    try:
        importlib.import_module("gymnasium.envs.mujoco")
    except (ImportError, gymnasium.error.DependencyNotInstalled) as exc:
        raise ImportError(f"{what} needs the optional dependency mujoco: {INSTALL_HINT} ({exc})") from exc


class HeldMujocoEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """A small environment that holds one stock MuJoCo environment (``self.inner``) instead of wrapping it.

    Spaces, reset, render and close are the inner environment's; subclasses write ``step``. There is one
    random generator: the one ``reset(seed=...)`` seeds here is handed to the inner environment, so a seeded
    reset starts exactly where the stock environment with the same seed starts.
    """

    inner_entry_point: str
    """``module:Class`` of the stock environment, imported on construction."""

    def __init__(self, render_mode: str | None = None, **inner_kwargs: Any):
        require_mujoco(type(self).__name__)
        module_name, _, class_name = self.inner_entry_point.partition(":")
        inner_cls = getattr(importlib.import_module(module_name), class_name)
        self.inner = inner_cls(render_mode=render_mode, **inner_kwargs)
        self.render_mode = render_mode
        self.observation_space = self.inner.observation_space
        self.action_space = self.inner.action_space

    @property
    def dt(self) -> float:
        return self.inner.dt

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.inner.np_random = self.np_random
        return self.inner.reset(options=options)

    def render(self) -> Any:
        return self.inner.render()

    def close(self) -> None:
        self.inner.close()


FORWARD_VELOCITY_INDEX = 8
"""Where the torso's forward velocity sits in HalfCheetah-v5's and Walker2d-v5's observations (``qpos[1:]`` has 8
entries, then ``qvel`` starts with the forward velocity)."""


class ForwardVelocityTrace:
    """Rollout traces of a velocity task: the forward velocity over time against the task's target velocity."""

    trace_labels = ("step", "forward velocity (m/s)")

    def trace(self, observations: np.ndarray) -> np.ndarray:
        return over_time(np.asarray(observations, dtype=np.float64)[:, FORWARD_VELOCITY_INDEX])

    def trace_target(self, task: Mapping[str, Any]) -> tuple[str, tuple[float, ...]]:
        return "level", (float(task["target_velocity"]),)
