"""The meta-episode runner: every task of a meta-batch steps in lockstep, with one batched policy forward.

Each of the ``T`` tasks runs ``E`` episodes side by side, so ``T * E`` environments advance together, one
time step at a time, for at most ``horizon`` steps. At every step a single call ``agent.act(params [T, P],
obs [T, E, obs_dim])`` gives every environment its action from its own task's parameters: there is no
Python loop of forward calls over tasks. The environments are either

* the family's native vectorized batch (``family.make_batch(tasks)``, e.g. ``PointNavBatch``): numpy arrays
  in, numpy arrays out, no Python loop over environments at all; or
* a ``gymnasium.vector.SyncVectorEnv`` over ``family.make_env(task)``, re-targeted with ``family.set_task``
  when the tasks change (the environments are built once per meta-batch size).

Each environment runs exactly one episode per collection. Once it ends (terminated or truncated) its slot is
padding: gymnasium's autoreset (``NEXT_STEP``: reset on the following ``step``; ``SAME_STEP``: reset at once,
the true last observation in ``infos["final_obs"]``) starts a new episode there, or the native batch keeps
moving, and the buffer masks all of it, so no stored transition mixes two episodes. Truncated episodes (the
time limit, or the runner's ``horizon``) are bootstrapped with the critic's value of the true last observation.
The buffer also keeps every step's true next observation (``buffer.next_obs``) for off-policy replay.

The policy acts in ``[-1, 1]`` per action component: sampled actions are stored as drawn (their
log-probability is exact) and clipped and rescaled to the action space's bounds only on the way to the
environment (``to_env_actions``).

Reproducibility: ``seeds[t]`` alone decides task ``t``'s episodes: its environments are reset with
``episode_seeds(seeds[t], E)`` and its action noise is ``noise.action_noise(seeds[t], horizon, E, act_dim, ...)``
of the runner's ``noise`` process. The same seed gives the same episodes whatever else is in the meta-batch.

>>> from reptile_engine.rl.agents import ActorCritic
>>> from reptile_engine.rl.families import make_family
>>> family = make_family("point-nav-2d")
>>> agent = ActorCritic(family.observation_dim, family.action_dim, actor_hidden=(8,), critic_hidden=(8,))
>>> runner = MetaEpisodeRunner(family, agent, horizon=20)
>>> tasks = family.sample_tasks(np.random.default_rng(0), 3)
>>> params = agent.init(torch.Generator().manual_seed(0)).expand(3, -1)
>>> rollout = runner.collect(params, tasks, seeds=[1, 2, 3], episodes=2)
>>> rollout.episode_returns.shape, tuple(rollout.buffer.obs.shape)
((3, 2), (3, 2, 20, 2))
"""

from __future__ import annotations

import functools
from collections.abc import Generator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from reptile_engine.learner import exhaust
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.buffers import RolloutBuffer
from reptile_engine.rl.families.base import TaskFamily
from reptile_engine.rl.noise import action_noise

Task = Mapping[str, Any]
T = TypeVar("T")

SEED_HIGH = 2**62
"""Episode seeds are drawn from ``[0, SEED_HIGH)``."""

Ticks = Generator[Any, None, T]
"""Long work written as a generator: it yields now and then (a chance to report progress or to stop it
early by closing it) and returns its result."""


def relay(ticks: Ticks[T], value: Any) -> Ticks[T]:
    """Yield ``value`` at each of ``ticks``'s yields; return its result."""
    while True:
        try:
            next(ticks)
        except StopIteration as done:
            return done.value
        yield value


class Rollout(NamedTuple):
    """A filled buffer (values and log-probabilities included, GAE not yet computed) and per-episode stats."""

    buffer: RolloutBuffer
    episode_returns: np.ndarray
    """Undiscounted return of every episode, ``[T, E]`` (float64)."""
    episode_lengths: np.ndarray
    """Steps of every episode, ``[T, E]``."""


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """Reset seeds of a task's ``episodes`` environments, derived from the task's collection seed."""
    return [int(s) for s in np.random.SeedSequence(int(seed)).generate_state(episodes)]


def to_env_actions(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Policy actions in ``[-1, 1]`` (clipped there) mapped linearly onto the Box ``[low, high]``."""
    return torch.addcmul((high + low) / 2, torch.clamp(actions, -1.0, 1.0), (high - low) / 2)


class _NativePool:
    """The family's own vectorized batch (``make_batch``); it does not reset itself."""

    def __init__(self, family: TaskFamily, tasks: list[Task]):
        self.family = family
        self.retarget(tasks)

    def retarget(self, tasks: list[Task]) -> None:
        self.batch = self.family.make_batch(tasks)

    def reset(self, seeds: list[int]) -> np.ndarray:
        return np.asarray(self.batch.reset())

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, rewards, terminated, truncated = self.batch.step(actions)
        return obs, rewards, terminated, truncated, obs

    def close(self) -> None:
        pass


def _bare_env(family: TaskFamily, task: Task) -> gymnasium.Env:
    """``family.make_env(task)`` without gymnasium's wrappers: the runner enforces the horizon itself and steps in
    order, so ``TimeLimit``, ``OrderEnforcing`` and ``PassiveEnvChecker`` would only add Python calls per step."""
    return family.make_env(task).unwrapped


class _VectorPool:
    """``SyncVectorEnv`` over the family's bare environments; returns the true next observation in either
    autoreset mode."""

    def __init__(self, family: TaskFamily, tasks: list[Task], autoreset_mode: AutoresetMode):
        self.family = family
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        if self.autoreset_mode == AutoresetMode.DISABLED:
            raise ValueError("use AutoresetMode.NEXT_STEP or SAME_STEP: finished slots keep being stepped (masked)")
        # copy=False: collect() copies every observation into a tensor before the next step.
        self.envs = SyncVectorEnv([functools.partial(_bare_env, family, task) for task in tasks],
                                  autoreset_mode=self.autoreset_mode, copy=False)

    def retarget(self, tasks: list[Task]) -> None:
        for env, task in zip(self.envs.envs, tasks, strict=True):
            self.family.set_task(env, task)

    def reset(self, seeds: list[int]) -> np.ndarray:
        obs, _ = self.envs.reset(seed=seeds)
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, rewards, terminated, truncated, infos = self.envs.step(actions)
        final_obs = obs
        if self.autoreset_mode == AutoresetMode.SAME_STEP and "final_obs" in infos:
            # The returned observation of a finished sub-env is already the next episode's first one.
            final_obs = obs.copy()
            for i in np.flatnonzero(infos["_final_obs"]):
                final_obs[i] = infos["final_obs"][i]
        return obs, rewards, terminated, truncated, final_obs

    def close(self) -> None:
        self.envs.close()


class MetaEpisodeRunner:
    """Collects episodes of all tasks of a meta-batch in lockstep (see the module docstring).

    Args:
        family: the task family (``make_env``/``set_task``; ``make_batch`` for the native backend).
        agent: the actor-critic whose flat per-task parameters drive the episodes.
        horizon: cut episodes after this many steps (a truncation, bootstrapped); default the family's.
        backend: ``"native"`` (the family's ``make_batch``), ``"vector"`` (``SyncVectorEnv``) or ``"auto"``
            (native where the family has it).
        autoreset_mode: the ``SyncVectorEnv`` autoreset mode (both handled alike); ``DISABLED`` is refused.
        device: where the forward passes and the buffer live.
    """

    def __init__(self, family: TaskFamily, agent: ActorCritic, *, horizon: int | None = None, backend: str = "auto",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, device: torch.device | str = "cpu",
                 noise: str = "gaussian", noise_correlation: float = 0.0):
        if backend not in ("auto", "native", "vector"):
            raise ValueError(f"backend must be auto, native or vector, got {backend!r}")
        if backend == "auto":
            backend = "native" if hasattr(family, "make_batch") else "vector"
        if backend == "native" and not hasattr(family, "make_batch"):
            raise ValueError(f"{family.name} has no native batch (make_batch)")
        if (agent.obs_dim, agent.act_dim) != (family.observation_dim, family.action_dim):
            raise ValueError(f"the agent's sizes {(agent.obs_dim, agent.act_dim)} do not fit {family.name}'s "
                             f"{(family.observation_dim, family.action_dim)}")
        self.family, self.agent, self.backend = family, agent, backend
        self.horizon = family.horizon if horizon is None else min(int(horizon), family.horizon)
        if self.horizon < 1:
            raise ValueError(f"horizon must be positive, got {horizon}")
        self.autoreset_mode = AutoresetMode(autoreset_mode)
        self.device = torch.device(device)
        probe = family.make_env(family.sample_tasks(np.random.default_rng(0), 1)[0])
        space = probe.action_space
        probe.close()
        if not isinstance(space, gymnasium.spaces.Box) or not np.all(np.isfinite(space.low)) \
                or not np.all(np.isfinite(space.high)):
            raise ValueError(f"{family.name}: the runner needs a bounded Box action space, got {space}")
        self.action_low = torch.as_tensor(space.low, dtype=torch.float32, device=self.device)
        self.action_high = torch.as_tensor(space.high, dtype=torch.float32, device=self.device)
        self._pools: dict[tuple[int, int], tuple[list[Task], _NativePool | _VectorPool]] = {}
        self.env_steps = 0
        """Environment steps taken in real episodes (padding excluded) since construction."""
        self.noise, self.noise_correlation = noise, noise_correlation
        """The exploration noise process (``rl.noise``) and its step-to-step correlation for the next collections."""

    def _pool(self, tasks: list[Task], episodes: int) -> _NativePool | _VectorPool:
        """Environments for ``tasks`` x ``episodes`` (task-major): built once per meta-batch shape, then re-targeted."""
        repeated = [task for task in tasks for _ in range(episodes)]
        key = (len(tasks), episodes)
        cached = self._pools.get(key)
        if cached is None:
            pool = _NativePool(self.family, repeated) if self.backend == "native" else \
                _VectorPool(self.family, repeated, self.autoreset_mode)
        else:
            current, pool = cached
            if current != repeated:
                pool.retarget(repeated)
        self._pools[key] = (repeated, pool)
        return pool

    def close(self) -> None:
        for _, pool in self._pools.values():
            pool.close()
        self._pools.clear()

    def collect(self, params: torch.Tensor, tasks: Sequence[Task], seeds: Sequence[int], episodes: int = 1, *,
                deterministic: bool = False) -> Rollout:
        """One episode per slot for each of ``episodes`` slots of every task, task ``t`` acting with ``params[t]``.

        ``deterministic`` acts with the mean action (the noise is zero). Returns the filled buffer
        ``[T, E, horizon]`` and the episodes' undiscounted returns and lengths ``[T, E]``.
        """
        return exhaust(self.collect_steps(params, tasks, seeds, episodes, deterministic=deterministic))

    def collect_steps(self, params: torch.Tensor, tasks: Sequence[Task], seeds: Sequence[int], episodes: int = 1, *,
                      deterministic: bool = False) -> Ticks[Rollout]:
        """``collect`` as ``Ticks``: yields after every environment step, ``env_steps`` counting as it goes.

        Closed early, it leaves the environments mid-episode; the next collection resets them.
        """
        tasks = list(tasks)
        t, e, s = len(tasks), int(episodes), self.horizon
        d, a = self.agent.obs_dim, self.agent.act_dim
        if params.dim() != 2 or params.shape != (t, self.agent.size):
            raise ValueError(f"params must be [{t}, {self.agent.size}] for {t} tasks, got {tuple(params.shape)}")
        if len(seeds) != t or e < 1:
            raise ValueError(f"need one seed per task ({t}) and at least one episode, got {len(seeds)} and {e}")
        pool = self._pool(tasks, e)
        noise = torch.stack([action_noise(seed, s, e, a, self.noise, correlation=self.noise_correlation)
                             for seed in seeds]).to(self.device)  # [T, S, E, A]
        if deterministic:
            noise.zero_()
        obs = pool.reset([r for seed in seeds for r in episode_seeds(seed, e)])
        buffer = RolloutBuffer(t, s, d, a, envs=e, device=self.device)
        running = np.ones(t * e, dtype=bool)
        returns = np.zeros(t * e)
        lengths = np.zeros(t * e, dtype=np.int64)
        prepared = self.agent.prepare(params.detach().to(self.device))
        obs_t = torch.tensor(obs, dtype=torch.float32, device=self.device).view(t, e, d)  # a copy: kept
        for step in range(s):  # no_grad per step: the yield below must not leave it switched off
            with torch.no_grad():
                act = self.agent.act(prepared, obs_t, noise[:, step])
                env_actions = to_env_actions(act.actions, self.action_low, self.action_high)
                obs, rewards, terminated, truncated, final_obs = pool.step(env_actions.view(t * e, a).cpu().numpy())
                terminated = np.asarray(terminated, dtype=bool)
                truncated = np.asarray(truncated, dtype=bool) | (step == s - 1)
                truncated &= ~terminated
                next_obs = torch.tensor(final_obs, dtype=torch.float32, device=self.device).view(t, e, d)  # kept
                # Without a reset in between (the usual case) the next step starts where this one ended.
                next_start = next_obs if final_obs is obs else \
                    torch.tensor(obs, dtype=torch.float32, device=self.device).view(t, e, d)
                next_values = self.agent.value(prepared, next_obs) if np.any(truncated & running) else None
                buffer.add(obs_t, act.actions, rewards, terminated, truncated, act.values, act.log_probs,
                           next_values, running, next_obs)
                returns += rewards * running
                lengths += running
                self.env_steps += int(np.count_nonzero(running))
                running = running & ~(terminated | truncated)
            if not running.any():
                break
            obs_t = next_start
            yield
        return Rollout(buffer, returns.reshape(t, e), lengths.reshape(t, e))

    def evaluate_returns(self, params: torch.Tensor, tasks: Sequence[Task], episodes: int, seeds: Sequence[int], *,
                         deterministic: bool = False) -> np.ndarray:
        """Mean undiscounted return of each task's ``episodes`` episodes, ``[T]`` (float64)."""
        return self.collect(params, tasks, seeds, episodes, deterministic=deterministic).episode_returns.mean(axis=1)
