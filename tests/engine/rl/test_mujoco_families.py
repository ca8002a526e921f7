"""HalfCheetah velocity and Walker2d parameters (optional extra ``mujoco``)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("gymnasium.envs.mujoco")

from reptile_engine.rl.families import make_family  # noqa: E402


def test_halfcheetah_vel_reward_and_stock_dynamics(rollout, probe_actions):
    family = make_family("halfcheetah-vel")
    actions = probe_actions(family.name)
    env = family.make_env({"target_velocity": 1.5})
    ours = rollout(env, 0, actions)
    stock = rollout(gymnasium.make("HalfCheetah-v5"), 0, actions)
    steps = len(ours.rewards)
    assert steps == len(actions)
    assert np.array_equal(ours.observations, stock.observations)
    velocity = np.array([info["x_velocity"] for info in ours.infos])
    assert np.array_equal(velocity, [info["x_velocity"] for info in stock.infos])
    control = 0.05 * np.sum(np.square(np.array(actions, dtype=np.float64)), axis=1)
    np.testing.assert_allclose(ours.rewards, -np.abs(velocity - 1.5) - control, rtol=0, atol=1e-12)
    assert env.unwrapped.target_velocity == 1.5
    assert gymnasium.spec(family.env_id).max_episode_steps == family.horizon == 200


def test_halfcheetah_metadata_matches_the_stock_env():
    env = make_family("halfcheetah-vel").make_env({"target_velocity": 1.0})
    assert env.unwrapped.metadata == env.unwrapped.inner.metadata
    assert not isinstance(env.unwrapped, gymnasium.Wrapper)


def test_walker_physics_live_in_the_model():
    family = make_family("walker2d-params")
    env = family.make_env({"gravity": 12.0, "torso_mass": 2.0, "target_velocity": 1.0})
    model = env.unwrapped.inner.model
    assert model.opt.gravity[2] == -12.0
    assert model.body_mass[model.body("torso").id] == 2.0
    assert env.unwrapped.metadata == env.unwrapped.inner.metadata


def test_walker_restoring_the_defaults_reproduces_walker2d_v5(rollout, probe_actions):
    family = make_family("walker2d-params")
    actions = probe_actions(family.name)
    stock_model = gymnasium.make("Walker2d-v5").unwrapped.model
    defaults = family.get_task(gymnasium.make(family.env_id))  # a fresh env, no task set
    assert defaults["gravity"] == -stock_model.opt.gravity[2] == pytest.approx(9.81)
    assert defaults["torso_mass"] == stock_model.body_mass[stock_model.body("torso").id]

    stock = rollout(gymnasium.make("Walker2d-v5"), 0, actions)
    env = family.make_env({"gravity": 14.0, "torso_mass": 1.5, "target_velocity": 2.5})
    changed = rollout(env, 0, actions)
    assert changed.observations[1:5].tolist() != stock.observations[1:5].tolist()
    family.set_task(env, {**defaults, "target_velocity": 2.0})
    restored = rollout(env, 0, actions)
    assert np.array_equal(restored.observations, stock.observations)
    assert np.array_equal(restored.terminated, stock.terminated)
    env_rewards = np.array([info["reward_env"] for info in restored.infos])
    assert np.array_equal(env_rewards, stock.rewards)
    velocity = np.array([info["x_velocity"] for info in restored.infos])
    np.testing.assert_allclose(restored.rewards, stock.rewards - 0.5 * np.abs(velocity - 2.0), rtol=0, atol=1e-12)
