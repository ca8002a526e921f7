"""What every meta-RL environment family provides, and the shared machinery behind it.

A family is a distribution over tasks of one gymnasium environment. A *task* is a small JSON-serialisable
dict of named parameters (floats, or lists of floats for vectors such as a goal). The family

- draws tasks from a random generator the caller passes (``sample_tasks(rng, n)``; no global random state),
- builds an environment for a task with ``gymnasium.make(env_id)``, so that the stock wrappers
  (``TimeLimit``, ``OrderEnforcing``, ``PassiveEnvChecker``) apply, and sets the task's parameters on
  ``env.unwrapped``: an attribute set on a wrapper is silently ignored by the dynamics,
- changes the task of an existing environment in place (``set_task``) and reads it back (``get_task``).

Each family module registers its gymnasium id when imported (once; see ``register_env``).

=============================  ============================================  ==========================
family                         parameter (task key -> attribute)             documented range
=============================  ============================================  ==========================
``point-nav-2d``               ``goal`` (2 floats)                           U[-0.5, 0.5]^2
``mountaincar-goal-gravity``   ``goal_position``, ``gravity``                U(0.45, 0.55), U(0.0025, 0.006)
``pendulum-physics``           ``mass`` -> m, ``length`` -> l, ``gravity``    U(0.5, 2), U(0.5, 1.5), U(8, 12)
                               -> g
``halfcheetah-vel``            ``target_velocity``                           U(0, 2)
``walker2d-params``            ``gravity``, ``torso_mass``,                  U(5, 15), U(1, 5), U(0.5, 3)
                               ``target_velocity``
=============================  ============================================  ==========================

>>> import numpy as np
>>> class Toy(TaskFamily):
...     name = "toy"
...     env_id = "ReptileLab/Toy-v0"
...     parameters = {"speed": Uniform(1.0, 2.0, "top speed"), "goal": Uniform(-1.0, 1.0, "goal", size=2)}
>>> tasks = Toy().sample_tasks(np.random.default_rng(0), 3)
>>> sorted(tasks[0]), len(tasks[0]["goal"]), 1.0 <= tasks[0]["speed"] <= 2.0
(['goal', 'speed'], 2, True)
>>> tasks == Toy().sample_tasks(np.random.default_rng(0), 5)[:3]
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np

Task = dict[str, float | list[float]]
"""One task: parameter name to a float, or to a list of floats for a vector parameter."""


@dataclass(frozen=True)
class Uniform:
    """A task parameter drawn uniformly from ``[low, high]``, per component when ``size`` is given.

    ``attribute`` names the attribute of the unwrapped environment that holds the parameter when it differs
    from the task key (``Pendulum-v1`` calls its mass ``m``).
    """

    low: float
    high: float
    doc: str = ""
    size: int | None = None
    attribute: str | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high):
            raise ValueError(f"Uniform range [{self.low}, {self.high}] must be finite and ordered")
        if self.size is not None and self.size < 1:
            raise ValueError(f"Uniform size must be positive, got {self.size}")

    @property
    def width(self) -> int:
        """Number of uniform draws this parameter takes per task."""
        return 1 if self.size is None else self.size


class TaskFamily:
    """A distribution over tasks of one registered gymnasium environment.

    Subclasses set the class attributes below and, when a task parameter is not a plain attribute of the
    unwrapped environment, override ``_apply`` and ``_read``.
    """

    name: ClassVar[str]
    """Registry name, e.g. ``"point-nav-2d"``."""
    env_id: ClassVar[str]
    """The gymnasium id the family's module registers on import, e.g. ``"ReptileLab/PointNav2D-v0"``."""
    parameters: ClassVar[Mapping[str, Uniform]]
    """Task parameters and their documented ranges, in the order they are drawn."""
    observation_dim: ClassVar[int]
    action_dim: ClassVar[int]
    horizon: ClassVar[int]
    """Maximum episode length: the ``max_episode_steps`` the id is registered with (``TimeLimit``)."""
    trace_labels: ClassVar[tuple[str, str]] = ("step", "observation[0]")
    """Axis labels of ``trace``."""

    def trace(self, observations: np.ndarray) -> np.ndarray:
        """One episode's observations ``[S, obs_dim]`` as the ``[S, 2]`` curve a rollout view draws.

        The default is the first observation component over time; families override it with what shows
        their task best (a path in the plane, a position or an angle over time).
        """
        return over_time(np.asarray(observations, dtype=np.float64)[:, 0])

    def trace_target(self, task: Mapping[str, Any]) -> tuple[str, tuple[float, ...]] | None:
        """What the trace should reach for ``task``: ``("point", (x, y))``, ``("level", (y,))`` or ``None``."""
        return None

    def sample_tasks(self, rng: np.random.Generator, n: int) -> list[Task]:
        """``n`` tasks drawn from ``rng`` only.

        Draws are task-major, so the first ``k`` tasks of a sample do not depend on ``n``.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        specs = list(self.parameters.items())
        width = sum(spec.width for _, spec in specs)
        unit = rng.random((int(n), width))
        tasks: list[Task] = [{} for _ in range(int(n))]
        column = 0
        for key, spec in specs:
            block = spec.low + (spec.high - spec.low) * unit[:, column:column + spec.width]
            column += spec.width
            values = block[:, 0].tolist() if spec.size is None else block.tolist()
            for task, value in zip(tasks, values, strict=True):
                task[key] = value
        return tasks

    def make_env(self, task: Mapping[str, Any], *, seed: int | None = None,
                 render_mode: str | None = None) -> gymnasium.Env:
        """A new environment for ``task``, built by ``gymnasium.make(env_id)`` with the task set on ``unwrapped``.

        With ``seed``, the environment is reset once with it and its action space is seeded, so that later
        ``reset()`` calls without a seed continue a reproducible stream.
        """
        env = gymnasium.make(self.env_id, render_mode=render_mode)
        self.set_task(env, task)
        if seed is not None:
            env.reset(seed=seed)
            env.action_space.seed(seed)
        return env

    def set_task(self, env: gymnasium.Env, task: Mapping[str, Any]) -> None:
        """Switch ``env`` (wrapped or not) to ``task`` in place, on ``env.unwrapped``.

        The episode in progress is not reset; ``reset()`` keeps the task.
        """
        self._apply(env.unwrapped, self.validate(task))

    def get_task(self, env: gymnasium.Env) -> Task:
        """The task ``env`` currently runs, read back from ``env.unwrapped``."""
        return self.validate(self._read(env.unwrapped))

    def validate(self, task: Mapping[str, Any]) -> Task:
        """``task`` as plain floats and lists, after checking its keys, shapes and finiteness.

        Values outside the documented ranges are allowed (to probe generalisation); non-finite ones are not.
        """
        if not isinstance(task, Mapping):
            raise TypeError(f"{self.name}: a task is a mapping of parameters, got {type(task).__name__}")
        missing = [key for key in self.parameters if key not in task]
        unknown = [key for key in task if key not in self.parameters]
        if missing or unknown:
            raise ValueError(f"{self.name}: task keys must be {sorted(self.parameters)}; "
                             f"missing {missing}, unknown {unknown}")
        clean: Task = {}
        for key, spec in self.parameters.items():
            try:
                value = np.asarray(task[key], dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{self.name}: task[{key!r}] = {task[key]!r} is not numeric") from None
            shape = () if spec.size is None else (spec.size,)
            if value.shape != shape:
                raise ValueError(f"{self.name}: task[{key!r}] must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{self.name}: task[{key!r}] = {task[key]!r} is not finite")
            clean[key] = value.tolist()
        return clean

    def _apply(self, unwrapped: gymnasium.Env, task: Task) -> None:
        """Write each parameter to its attribute; refuse attributes the environment does not have."""
        for key, spec in self.parameters.items():
            attribute = spec.attribute or key
            if not hasattr(unwrapped, attribute):
                raise AttributeError(f"{self.name}: {type(unwrapped).__name__} has no attribute {attribute!r}; "
                                     "setting it would not change the dynamics")
            value = task[key]
            setattr(unwrapped, attribute, np.array(value, dtype=np.float64) if spec.size else value)

    def _read(self, unwrapped: gymnasium.Env) -> dict[str, Any]:
        return {key: getattr(unwrapped, spec.attribute or key) for key, spec in self.parameters.items()}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, env_id={self.env_id!r})"


def over_time(values: np.ndarray) -> np.ndarray:
    """``values`` ``[S]`` against the step index, ``[S, 2]``: the trace of a quantity over an episode."""
    return np.column_stack([np.arange(len(values), dtype=np.float64), np.asarray(values, dtype=np.float64)])


def register_env(env_id: str, entry_point: str, max_episode_steps: int, **kwargs: Any) -> None:
    """Register ``env_id`` with gymnasium unless it already is (importing or reloading a module twice is fine).

    Raises ``RuntimeError`` if the id is already taken by a different entry point.
    """
    existing = gymnasium.registry.get(env_id)
    if existing is None:
        gymnasium.register(id=env_id, entry_point=entry_point, max_episode_steps=max_episode_steps, **kwargs)
    elif existing.entry_point != entry_point or existing.max_episode_steps != max_episode_steps:
        raise RuntimeError(f"gymnasium id {env_id!r} is already registered for {existing.entry_point!r}")
