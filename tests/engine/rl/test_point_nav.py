"""2D point navigation: exact reward, termination and clipping semantics, and the vectorized batch."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest

from reptile_engine.rl.families import make_family
from reptile_engine.rl.families.point_nav import PointNavBatch, PointNavEnv


@pytest.fixture
def family():
    return make_family("point-nav-2d")


def test_spaces_and_reset(family):
    env = family.make_env({"goal": [0.3, -0.2]})
    assert env.observation_space.dtype == env.action_space.dtype == np.float32
    assert env.action_space.low.tolist() == [np.float32(-0.1)] * 2
    assert env.action_space.high.tolist() == [np.float32(0.1)] * 2
    obs, info = env.reset(seed=11)
    assert obs.dtype == np.float32 and obs.tolist() == [0.0, 0.0]
    env.step(np.array([0.1, 0.1], dtype=np.float32))
    obs, _ = env.reset()
    assert obs.tolist() == [0.0, 0.0]  # every episode starts at the origin ...
    assert env.unwrapped.goal.tolist() == [0.3, -0.2]  # ... and reset keeps the task


def test_reward_is_minus_the_distance_after_the_move(family):
    env = family.make_env({"goal": [0.3, -0.2]})
    env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(np.array([0.05, -0.02]))
    assert obs.tolist() == np.array([0.05, -0.02], dtype=np.float32).tolist()
    assert reward == pytest.approx(-math.hypot(0.05 - 0.3, -0.02 + 0.2), abs=1e-12)
    assert not terminated and not truncated
    obs, reward, *_ = env.step(np.array([0.05, -0.02]))
    assert reward == pytest.approx(-math.hypot(0.1 - 0.3, -0.04 + 0.2), abs=1e-12)


def test_actions_are_clipped_per_component(family):
    env = family.make_env({"goal": [0.5, 0.5]})
    env.reset(seed=0)
    obs, reward, *_ = env.step(np.array([1.0, -5.0]))
    assert obs.tolist() == np.array([0.1, -0.1], dtype=np.float32).tolist()
    assert reward == pytest.approx(-math.hypot(0.1 - 0.5, -0.1 - 0.5), abs=1e-12)
    obs, *_ = env.step(np.array([0.03, 0.25]))
    assert obs.tolist() == np.array([0.13, 0.0], dtype=np.float32).tolist()


def test_terminates_within_0_01_of_the_goal(family):
    env = family.make_env({"goal": [0.05, 0.0]})
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.array([0.035, 0.0]))  # distance 0.015
    assert not terminated and reward == pytest.approx(-0.015)
    _, reward, terminated, _, _ = env.step(np.array([0.006, 0.0]))  # distance 0.009
    assert terminated and reward == pytest.approx(-0.009)
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.array([0.05, 0.0099]))  # Euclidean distance, not per component
    assert terminated
    env.reset(seed=0)
    _, _, terminated, _, _ = env.step(np.array([0.058, 0.008]))  # both components within 0.01, distance > 0.01
    assert not terminated


def test_truncated_after_100_steps(family):
    env = family.make_env({"goal": [0.5, 0.5]})
    env.reset(seed=0)
    for step in range(1, 101):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
        assert not terminated
        assert truncated == (step == 100)
    assert family.horizon == gymnasium.spec(family.env_id).max_episode_steps == 100


def test_set_task_changes_the_goal_of_the_unwrapped_env(family):
    env = family.make_env({"goal": [0.1, 0.1]})
    family.set_task(env, {"goal": [-0.4, 0.2]})
    assert isinstance(env.unwrapped, PointNavEnv)
    assert env.unwrapped.goal.tolist() == [-0.4, 0.2]
    env.reset(seed=0)
    assert env.step(np.zeros(2))[1] == pytest.approx(-math.hypot(0.4, 0.2))


def test_rgb_render(family):
    env = family.make_env({"goal": [0.5, -0.5]}, render_mode="rgb_array")
    env.reset(seed=0)
    image = env.render()
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image[47, 47].tolist() == [220, 40, 40]  # the goal, lower right
    assert image[31, 31].tolist() == [40, 70, 220]  # the point, in the middle


def test_batch_equals_independent_single_envs(family):
    rng = np.random.default_rng(2024)
    tasks = family.sample_tasks(rng, 8)
    batch = family.make_batch(tasks)
    singles = [family.make_env(task) for task in tasks]
    batch_obs = batch.reset()
    single_obs = np.stack([env.reset(seed=i)[0] for i, env in enumerate(singles)])
    assert batch_obs.dtype == np.float32 and np.array_equal(batch_obs, single_obs)
    goals = np.array([task["goal"] for task in tasks])
    ever_terminated = np.zeros(8, dtype=bool)
    for _ in range(family.horizon):
        # Half the tasks head for their goal (and reach it), half wander; float32 as a policy would give.
        toward = np.clip(goals - batch_obs, -0.08, 0.08) + rng.normal(0.0, 0.002, size=(8, 2))
        wander = rng.normal(0.0, 0.1, size=(8, 2))
        actions = np.where(np.arange(8)[:, None] < 4, toward, wander).astype(np.float32)
        batch_obs, rewards, terminated, truncated = batch.step(actions)
        expected = [env.step(action) for env, action in zip(singles, actions, strict=True)]
        assert np.array_equal(batch_obs, np.stack([e[0] for e in expected]))
        assert rewards.dtype == np.float64 and np.array_equal(rewards, np.array([e[1] for e in expected]))
        assert terminated.dtype == bool and np.array_equal(terminated, np.array([e[2] for e in expected]))
        assert truncated.dtype == bool and np.array_equal(truncated, np.array([e[3] for e in expected]))
        ever_terminated |= terminated
    assert truncated.all()
    assert ever_terminated[:4].all() and not ever_terminated[4:].any()


def test_batch_checks_its_inputs():
    with pytest.raises(ValueError, match="tasks, 2"):
        PointNavBatch(np.zeros(2))
    batch = PointNavBatch([[0.1, 0.2], [0.3, 0.4]])
    with pytest.raises(RuntimeError, match="reset"):
        batch.step(np.zeros((2, 2)))
    batch.reset()
    with pytest.raises(ValueError, match="shape"):
        batch.step(np.zeros((3, 2)))
    assert batch.num_tasks == 2 and batch.positions.tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_zero_action_baseline_return_is_about_minus_38(family):
    """The figure the benchmark compares against: staying at the origin for 100 steps."""
    tasks = family.sample_tasks(np.random.default_rng(0), 40)
    returns = []
    for task in tasks:
        env = family.make_env(task, seed=0)
        env.reset(seed=0)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(np.zeros(2, dtype=np.float32))
            total += reward
            done = terminated or truncated
        returns.append(total)
    mean = float(np.mean(returns))
    print(f"zero-action return over 40 goals (seed 0): {mean:.2f}")
    assert -45.0 < mean < -30.0
    expected = -100 * np.linalg.norm(np.array([task["goal"] for task in tasks]), axis=1)
    np.testing.assert_allclose(returns, expected, rtol=1e-9)
