"""2D point navigation, the meta-RL toy problem of MAML (Finn et al. 2017, section 5.3).

A point starts at the origin and moves by its action each step; the task is the goal position.

=============  ==========================  ================================================
parameter      documented range            meaning
=============  ==========================  ================================================
``goal``       U[-0.5, 0.5]^2              goal position (x, y)
=============  ==========================  ================================================

- observation: the position, shape (2,), float32; every episode starts at (0, 0)
- action: the displacement, shape (2,), clipped to [-0.1, 0.1] per component
- reward: ``-||position - goal||_2`` measured after the move
- terminated: when that distance is below 0.01; truncated after 100 steps (``TimeLimit``)

``PointNavBatch`` steps many goals at once as numpy arrays, with exactly the numbers that the same number of
single environments would give (they share one step function).

>>> import numpy as np
>>> family = PointNavFamily()
>>> env = family.make_env({"goal": [0.3, 0.4]}, seed=0)
>>> obs, info = env.reset(seed=0)
>>> obs.tolist()
[0.0, 0.0]
>>> obs, reward, terminated, truncated, info = env.step(np.array([0.5, 0.0], dtype=np.float32))
>>> obs.tolist(), round(reward, 6), terminated, truncated
([0.10000000149011612, 0.0], -0.447214, False, False)
>>> batch = family.make_batch([{"goal": [0.3, 0.4]}, {"goal": [0.0, -0.005]}])
>>> batch.reset().shape
(2, 2)
>>> obs, reward, terminated, truncated = batch.step(np.zeros((2, 2)))
>>> terminated.tolist()
[False, True]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium
import numpy as np
from numpy.typing import ArrayLike

from reptile_engine.rl.families.base import TaskFamily, Uniform, register_env

ENV_ID = "ReptileLab/PointNav2D-v0"
HORIZON = 100
MAX_STEP = 0.1
"""Each action component is clipped to ``[-MAX_STEP, MAX_STEP]``."""
SUCCESS_RADIUS = 0.01
"""An episode terminates once the distance to the goal is below this."""
DEFAULT_GOAL = (0.3, 0.4)


def point_nav_step(position: np.ndarray, goal: np.ndarray,
                   action: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step for positions and goals shaped ``[..., 2]``: (new position, reward, terminated).

    The single environment and the batch both call this, so they agree bit for bit.
    """
    # maximum/minimum rather than np.clip: the same values, without np.clip's dispatch cost on tiny arrays
    step = np.minimum(np.maximum(np.asarray(action, dtype=np.float64), -MAX_STEP), MAX_STEP)
    if step.shape != position.shape:
        raise ValueError(f"action must have shape {position.shape}, got {step.shape}")
    new_position = position + step
    dx = new_position[..., 0] - goal[..., 0]
    dy = new_position[..., 1] - goal[..., 1]
    distance = np.sqrt(dx * dx + dy * dy)
    return new_position, -distance, distance < SUCCESS_RADIUS


class PointNavEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """A point in the plane that should reach ``goal``; see the module docstring for the exact semantics."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, goal: ArrayLike = DEFAULT_GOAL, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Box(-MAX_STEP, MAX_STEP, shape=(2,), dtype=np.float32)
        self.goal = goal
        self._position = np.zeros(2)

    @property
    def goal(self) -> np.ndarray:
        """The goal position, a float64 array of shape (2,) (a copy: assign to change it)."""
        return self._goal.copy()

    @goal.setter
    def goal(self, value: ArrayLike) -> None:
        goal = np.array(value, dtype=np.float64)
        if goal.shape != (2,) or not np.all(np.isfinite(goal)):
            raise ValueError(f"goal must be two finite numbers, got {value!r}")
        self._goal = goal

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._position = np.zeros(2)
        return self._position.astype(np.float32), {}

    def step(self, action: ArrayLike) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        self._position, reward, terminated = point_nav_step(self._position, self._goal, action)
        return self._position.astype(np.float32), float(reward), bool(terminated), False, {}

    def render(self) -> np.ndarray | None:
        """A 64x64 RGB image of the square [-1, 1]^2: the goal in red, the point in blue."""
        if self.render_mode != "rgb_array":
            return None
        size = 64
        image = np.full((size, size, 3), 255, dtype=np.uint8)
        for xy, colour in ((self._goal, (220, 40, 40)), (self._position, (40, 70, 220))):
            col, row = np.clip(np.round((np.array([xy[0], -xy[1]]) + 1.0) * (size - 1) / 2), 0, size - 1).astype(int)
            image[max(row - 1, 0):row + 2, max(col - 1, 0):col + 2] = colour
        return image


class PointNavBatch:
    """``T`` point-navigation tasks stepped in lockstep, as numpy arrays, for a meta-episode runner.

    ``reset()`` returns observations ``[T, 2]`` (float32); ``step(actions [T, 2])`` returns
    ``(obs [T, 2] float32, reward [T] float64, terminated [T] bool, truncated [T] bool)``, equal to what ``T``
    single ``PointNavEnv``s made with ``gymnasium.make`` return for the same actions. Like them, the batch does
    not reset itself: a task keeps moving after its episode has ended, and the caller masks it out.
    """

    def __init__(self, goals: ArrayLike, *, max_episode_steps: int = HORIZON):
        goals = np.array(goals, dtype=np.float64)
        if goals.ndim != 2 or goals.shape[1] != 2 or not np.all(np.isfinite(goals)):
            raise ValueError(f"goals must be finite and shaped [tasks, 2], got shape {goals.shape}")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be positive, got {max_episode_steps}")
        self.goals = goals
        self.max_episode_steps = int(max_episode_steps)
        self._positions: np.ndarray | None = None
        self._elapsed = 0

    @classmethod
    def from_tasks(cls, tasks: Sequence[Mapping[str, Any]], **kwargs: Any) -> PointNavBatch:
        return cls([PointNavFamily().validate(task)["goal"] for task in tasks], **kwargs)

    @property
    def num_tasks(self) -> int:
        return self.goals.shape[0]

    @property
    def positions(self) -> np.ndarray:
        """Current positions ``[T, 2]`` (float64, a copy)."""
        if self._positions is None:
            raise RuntimeError("call reset() first")
        return self._positions.copy()

    def reset(self) -> np.ndarray:
        self._positions = np.zeros_like(self.goals)
        self._elapsed = 0
        return self._positions.astype(np.float32)

    def step(self, actions: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self._positions is None:
            raise RuntimeError("call reset() before step()")
        self._positions, reward, terminated = point_nav_step(self._positions, self.goals, actions)
        self._elapsed += 1
        truncated = np.full(self.num_tasks, self._elapsed >= self.max_episode_steps)
        return self._positions.astype(np.float32), reward, terminated, truncated


class PointNavFamily(TaskFamily):
    """Goals drawn uniformly from the square [-0.5, 0.5]^2."""

    name = "point-nav-2d"
    env_id = ENV_ID
    parameters = {"goal": Uniform(-0.5, 0.5, "goal position (x, y)", size=2)}
    observation_dim = 2
    action_dim = 2
    horizon = HORIZON
    trace_labels = ("x", "y")

    def trace(self, observations: np.ndarray) -> np.ndarray:
        """The path in the plane (the observation is the position)."""
        return np.asarray(observations, dtype=np.float64)[:, :2]

    def trace_target(self, task: Mapping[str, Any]) -> tuple[str, tuple[float, ...]]:
        return "point", tuple(float(v) for v in task["goal"])

    def make_batch(self, tasks: Sequence[Mapping[str, Any]]) -> PointNavBatch:
        """The vectorized counterpart of ``[make_env(task) for task in tasks]``."""
        return PointNavBatch.from_tasks(tasks, max_episode_steps=self.horizon)


register_env(ENV_ID, f"{__name__}:PointNavEnv", max_episode_steps=HORIZON)
