"""Properties every available meta-RL family must have: checked envs, task sampling, physics that change."""

from __future__ import annotations

import json

import gymnasium
import numpy as np
import pytest

from reptile_engine.rl.families import TaskFamily, Uniform, available, make_family

FAMILIES = available()


def _middle_task(family: TaskFamily) -> dict:
    """The middle of every documented range (the stock gravity for the mountain car, so the pump reaches)."""
    task = {}
    for key, spec in family.parameters.items():
        middle = (spec.low + spec.high) / 2
        task[key] = middle if spec.size is None else [middle] * spec.size
    if family.name == "mountaincar-goal-gravity":
        task.update(goal_position=0.45, gravity=0.0025)
    return task


def _moved(family: TaskFamily, task: dict, key: str) -> dict:
    """``task`` with only ``key`` moved to another value inside its documented range."""
    spec = family.parameters[key]
    def shift(value: float) -> float:
        return spec.low + 0.9 * (spec.high - spec.low) if value < (spec.low + spec.high) / 2 \
            else spec.low + 0.1 * (spec.high - spec.low)
    value = task[key]
    if family.name == "mountaincar-goal-gravity" and key == "goal_position":
        return {**task, key: 0.55}
    return {**task, key: shift(value) if spec.size is None else [shift(v) for v in value]}


@pytest.mark.parametrize("name", FAMILIES)
def test_check_env_passes_on_the_unwrapped_env_of_a_sampled_task(name, check_env_strict):
    family = make_family(name)
    task = family.sample_tasks(np.random.default_rng(0), 1)[0]
    env = family.make_env(task, seed=0)
    assert isinstance(env, gymnasium.wrappers.TimeLimit)
    check_env_strict(name, env)
    env.close()


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_tasks_is_reproducible_in_range_and_json_serialisable(name):
    family = make_family(name)
    a = family.sample_tasks(np.random.default_rng(7), 200)
    b = family.sample_tasks(np.random.default_rng(7), 200)
    c = family.sample_tasks(np.random.default_rng(8), 200)
    assert a == b
    assert a != c
    assert family.sample_tasks(np.random.default_rng(7), 5) == a[:5]
    assert family.sample_tasks(np.random.default_rng(7), 0) == []
    assert json.loads(json.dumps(a)) == a
    for key, spec in family.parameters.items():
        values = np.array([task[key] for task in a], dtype=np.float64)
        assert values.shape == ((200,) if spec.size is None else (200, spec.size))
        assert values.min() >= spec.low and values.max() <= spec.high
        assert values.max() - values.min() > 0.9 * (spec.high - spec.low)  # the whole range is used
    for task in a:
        assert set(task) == set(family.parameters)
        for value in task.values():
            assert type(value) is float or (type(value) is list and all(type(v) is float for v in value))


def test_sample_tasks_only_uses_the_generator_it_is_given():
    family = make_family("point-nav-2d")
    np.random.seed(0)
    a = family.sample_tasks(np.random.default_rng(3), 4)
    np.random.seed(1)
    assert family.sample_tasks(np.random.default_rng(3), 4) == a
    for bad in (3, np.random.RandomState(3)):
        with pytest.raises(TypeError, match="Generator"):
            family.sample_tasks(bad, 4)
    with pytest.raises(ValueError, match="non-negative"):
        family.sample_tasks(np.random.default_rng(3), -1)


@pytest.mark.parametrize("name", FAMILIES)
def test_same_task_twice_gives_identical_trajectories_and_different_tasks_differ(name, rollout, probe_actions):
    family = make_family(name)
    actions = probe_actions(name)
    first, second = family.sample_tasks(np.random.default_rng(1), 2)
    a = rollout(family.make_env(first), 0, actions)
    b = rollout(family.make_env(first), 0, actions)
    c = rollout(family.make_env(second), 0, actions)
    assert len(a.rewards) > 1
    assert a.same_as(b)
    assert not a.same_as(c)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_parameter_alone_changes_the_trajectory(name, rollout, probe_actions):
    family = make_family(name)
    actions = probe_actions(name)
    base = _middle_task(family)
    reference = rollout(family.make_env(base), 0, actions)
    for key in family.parameters:
        moved = rollout(family.make_env(_moved(family, base, key)), 0, actions)
        assert not reference.same_as(moved), f"{name}: changing {key} alone changed nothing"


@pytest.mark.parametrize("name", FAMILIES)
def test_set_task_in_place_equals_a_fresh_env_and_lives_on_unwrapped(name, rollout, probe_actions):
    family = make_family(name)
    actions = probe_actions(name)
    first, second = family.sample_tasks(np.random.default_rng(2), 2)
    env = family.make_env(first, seed=5)
    assert family.get_task(env) == first
    rollout(env, 0, actions)  # run the first task, then switch mid-life
    family.set_task(env, second)
    assert family.get_task(env) == second
    assert rollout(env, 0, actions).same_as(rollout(family.make_env(second), 0, actions))
    # Nothing of the task sits on a wrapper, where the dynamics would never see it.
    layer = env
    while isinstance(layer, gymnasium.Wrapper):
        for key, spec in family.parameters.items():
            assert (spec.attribute or key) not in vars(layer)
        layer = layer.env
    assert layer is env.unwrapped


@pytest.mark.parametrize("name", FAMILIES)
def test_tasks_are_validated(name):
    family = make_family(name)
    task = family.sample_tasks(np.random.default_rng(0), 1)[0]
    env = family.make_env(task)
    key = next(iter(family.parameters))
    with pytest.raises(ValueError, match="missing"):
        family.set_task(env, {k: v for k, v in task.items() if k != key})
    with pytest.raises(ValueError, match="unknown"):
        family.set_task(env, {**task, "bogus": 1.0})
    with pytest.raises(ValueError, match="not finite"):
        family.set_task(env, {**task, key: float("nan") if family.parameters[key].size is None else [float("inf")] * 2})
    with pytest.raises(ValueError, match="shape"):
        family.set_task(env, {**task, key: [1.0, 2.0, 3.0]})
    assert family.get_task(env) == task  # a refused task changes nothing


def test_a_parameter_the_env_does_not_have_is_refused():
    class Broken(TaskFamily):
        name = "broken"
        env_id = "ReptileLab/MountainCarGoalGravity-v0"
        parameters = {"no_such_attribute": Uniform(0.0, 1.0)}

    make_family("mountaincar-goal-gravity")  # registers the id
    with pytest.raises(AttributeError, match="no_such_attribute"):
        Broken().make_env({"no_such_attribute": 0.5})


def test_make_env_seed_makes_the_following_resets_reproducible():
    family = make_family("pendulum-physics")
    task = family.sample_tasks(np.random.default_rng(0), 1)[0]
    a, b = family.make_env(task, seed=3), family.make_env(task, seed=3)
    assert np.array_equal(a.reset()[0], b.reset()[0])
    assert np.array_equal(a.action_space.sample(), b.action_space.sample())


TRACE_EXPECTATIONS = {
    "point-nav-2d": (lambda obs: obs[:, :2], lambda task: ("point", tuple(task["goal"]))),
    "mountaincar-goal-gravity": (lambda obs: obs[:, 0], lambda task: ("level", (task["goal_position"],))),
    "pendulum-physics": (lambda obs: np.arctan2(obs[:, 1], obs[:, 0]), lambda task: ("level", (0.0,))),
    "halfcheetah-vel": (lambda obs: obs[:, 8], lambda task: ("level", (task["target_velocity"],))),
    "walker2d-params": (lambda obs: obs[:, 8], lambda task: ("level", (task["target_velocity"],))),
}


@pytest.mark.parametrize("name", FAMILIES)
def test_the_rollout_trace_shows_what_the_task_is_about(name):
    family = make_family(name)
    task = family.sample_tasks(np.random.default_rng(4), 1)[0]
    env = family.make_env(task, seed=0)
    observations = [env.reset(seed=0)[0]]
    for _ in range(5):
        observations.append(env.step(env.action_space.sample())[0])
    env.close()
    observations = np.array(observations, dtype=np.float64)
    trace = family.trace(observations)
    expected, target = TRACE_EXPECTATIONS[name]
    assert trace.shape == (6, 2) and len(family.trace_labels) == 2
    if name == "point-nav-2d":
        np.testing.assert_array_equal(trace, expected(observations))
    else:
        np.testing.assert_array_equal(trace[:, 0], np.arange(6))
        np.testing.assert_allclose(trace[:, 1], expected(observations))
    assert family.trace_target(task) == target(task)
