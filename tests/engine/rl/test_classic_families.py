"""Mountain car and pendulum: the task reaches the attributes the stock step() reads."""

from __future__ import annotations

import gymnasium
import numpy as np

from reptile_engine.rl.families import make_family
from reptile_engine.rl.families.mountaincar import GoalGravityMountainCarEnv


def test_mountaincar_task_is_on_the_unwrapped_env_after_make_env_and_set_task():
    family = make_family("mountaincar-goal-gravity")
    first, second = family.sample_tasks(np.random.default_rng(4), 2)
    env = family.make_env(first)
    assert isinstance(env.unwrapped, GoalGravityMountainCarEnv)
    assert env.unwrapped.gravity == first["gravity"]
    assert env.unwrapped.goal_position == first["goal_position"]
    family.set_task(env, second)
    assert env.unwrapped.gravity == second["gravity"]
    assert env.unwrapped.goal_position == second["goal_position"]


def test_mountaincar_at_the_stock_values_reproduces_mountaincarcontinuous(rollout, probe_actions):
    family = make_family("mountaincar-goal-gravity")
    actions = probe_actions(family.name)
    ours = rollout(family.make_env({"goal_position": 0.45, "gravity": 0.0025}), 0, actions)
    stock = rollout(gymnasium.make("MountainCarContinuous-v0"), 0, actions)
    assert ours.terminated[-1] and ours.rewards[-1] > 99  # the pump reaches the stock goal
    assert ours.same_as(stock)


def test_mountaincar_gravity_enters_the_velocity_update():
    family = make_family("mountaincar-goal-gravity")
    env = family.make_env({"goal_position": 0.5, "gravity": 0.005})
    env.reset(seed=0)
    position = float(env.unwrapped.state[0])
    obs, *_ = env.step(np.zeros(1, dtype=np.float32))
    assert obs[1] == np.float32(-0.005 * np.cos(3 * position))


def test_pendulum_task_is_on_the_unwrapped_env():
    family = make_family("pendulum-physics")
    env = family.make_env({"mass": 1.5, "length": 0.75, "gravity": 11.0})
    assert (env.unwrapped.m, env.unwrapped.l, env.unwrapped.g) == (1.5, 0.75, 11.0)
    family.set_task(env, {"mass": 0.5, "length": 1.25, "gravity": 8.5})
    assert (env.unwrapped.m, env.unwrapped.l, env.unwrapped.g) == (0.5, 1.25, 8.5)
    assert family.get_task(env) == {"mass": 0.5, "length": 1.25, "gravity": 8.5}


def test_pendulum_at_the_stock_values_reproduces_pendulum_v1(rollout, probe_actions):
    family = make_family("pendulum-physics")
    actions = probe_actions(family.name)
    ours = rollout(family.make_env({"mass": 1.0, "length": 1.0, "gravity": 10.0}), 0, actions)
    stock = rollout(gymnasium.make("Pendulum-v1"), 0, actions)
    assert ours.same_as(stock)
