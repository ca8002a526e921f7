"""Helpers for the meta-RL family tests, exposed as fixtures (not imported) so any pytest import mode works."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

# check_env warnings each family may legitimately raise; any other warning fails the check.
# MAML's point is unbounded, as are MuJoCo's joint velocities; Pendulum-v1's own torque range is [-2, 2].
UNBOUNDED = ("Box observation space minimum value is -infinity", "Box observation space maximum value is infinity")
ALLOWED_CHECK_ENV_WARNINGS = {
    "point-nav-2d": UNBOUNDED,
    "mountaincar-goal-gravity": (),
    "pendulum-physics": ("symmetric and normalized",),
    "halfcheetah-vel": UNBOUNDED,
    "walker2d-params": UNBOUNDED,
}
# Rendering through pygame or OpenGL is not part of the engine's dependencies.
RENDER_CHECKED = {"point-nav-2d"}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch) -> None:
    """MuJoCo appends its warnings to ./MUJOCO_LOG.TXT (gymnasium's half_cheetah.xml triggers one): not here."""
    monkeypatch.chdir(tmp_path)


class Trajectory(NamedTuple):
    observations: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    infos: list[dict]

    def same_as(self, other: Trajectory) -> bool:
        return (self.observations.shape == other.observations.shape
                and np.array_equal(self.observations, other.observations)
                and np.array_equal(self.rewards, other.rewards)
                and np.array_equal(self.terminated, other.terminated)
                and np.array_equal(self.truncated, other.truncated))


def _rollout(env: gymnasium.Env, seed: int, actions: Sequence[np.ndarray]) -> Trajectory:
    """Reset with ``seed`` and apply ``actions`` until they run out or the episode ends."""
    obs, _ = env.reset(seed=seed)
    observations, rewards, terminated, truncated, infos = [obs], [], [], [], []
    for action in actions:
        obs, reward, term, trunc, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        terminated.append(term)
        truncated.append(trunc)
        infos.append(info)
        if term or trunc:
            break
    return Trajectory(np.array(observations), np.array(rewards, dtype=np.float64), np.array(terminated, dtype=bool),
                      np.array(truncated, dtype=bool), infos)


@pytest.fixture
def rollout() -> Callable[[gymnasium.Env, int, Sequence[np.ndarray]], Trajectory]:
    return _rollout


def _mountaincar_pump(steps: int = 300) -> list[np.ndarray]:
    """Bang-bang actions that pump the stock car (stock goal and gravity, reset seed 0) up the hill.

    Recorded on ``MountainCarContinuous-v0`` itself and replayed open loop; the recording runs past the goal.
    """
    env = gymnasium.make("MountainCarContinuous-v0").unwrapped
    obs, _ = env.reset(seed=0)
    actions = []
    for _ in range(steps):
        action = np.array([1.0 if obs[1] >= 0 else -1.0], dtype=np.float32)
        obs, *_ = env.step(action)
        actions.append(action)
    return actions


def _probe_actions(family_name: str, steps: int = 60) -> list[np.ndarray]:
    """A fixed action sequence that exercises the family's dynamics (reset seed 0)."""
    if family_name == "mountaincar-goal-gravity":
        return _mountaincar_pump()
    rng = np.random.default_rng(12345)
    scale = {"point-nav-2d": 0.15, "pendulum-physics": 2.0}.get(family_name, 1.0)
    dim = {"point-nav-2d": 2, "pendulum-physics": 1}.get(family_name, 6)
    return list(rng.uniform(-scale, scale, size=(steps, dim)).astype(np.float32))


@pytest.fixture
def probe_actions() -> Callable[[str], list[np.ndarray]]:
    return _probe_actions


def _check_env_strict(family_name: str, env: gymnasium.Env) -> None:
    """``check_env(env.unwrapped)`` where every warning not allowed for the family is an error."""
    allowed = ALLOWED_CHECK_ENV_WARNINGS[family_name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=family_name not in RENDER_CHECKED)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]
    assert not unexpected, unexpected


@pytest.fixture
def check_env_strict() -> Callable[[str, gymnasium.Env], None]:
    return _check_env_strict
