"""The meta-RL family registry and gymnasium registration."""

from __future__ import annotations

import importlib
import sys
import warnings

import gymnasium
import pytest

import reptile_engine.rl.families as families
from reptile_engine.config import ConfigError
from reptile_engine.rl.families import TaskFamily, available, make_family, register_env
from reptile_engine.rl.families._mujoco import mujoco_available

CORE = ["point-nav-2d", "mountaincar-goal-gravity", "pendulum-physics"]
MUJOCO = ["halfcheetah-vel", "walker2d-params"]


def test_core_families_are_listed_first_and_mujoco_ones_only_when_importable():
    names = available()
    assert names[:3] == CORE
    for name in MUJOCO:
        assert (name in names) == mujoco_available()


def test_mujoco_families_are_hidden_and_refused_without_mujoco(monkeypatch):
    monkeypatch.setattr(families, "mujoco_available", lambda: False)
    assert not set(MUJOCO) & set(available())
    with pytest.raises(ConfigError, match="mujoco") as info:
        make_family("halfcheetah-vel")
    assert info.value.field == "task.name"


@pytest.mark.parametrize("name", available())
def test_every_available_family_is_made_and_registered(name):
    family = make_family(name)
    assert isinstance(family, TaskFamily)
    assert family.name == name
    spec = gymnasium.spec(family.env_id)
    assert family.env_id.startswith("ReptileLab/")
    assert spec.max_episode_steps == family.horizon
    env = gymnasium.make(family.env_id)
    assert env.observation_space.shape == (family.observation_dim,)
    assert env.action_space.shape == (family.action_dim,)
    env.close()


def test_unknown_names_raise_config_error(monkeypatch):
    with pytest.raises(ConfigError, match="point-nav-2d") as info:
        make_family("no-such-family")
    assert info.value.field == "task.name"
    monkeypatch.setenv("REPTILE_LAB_PLUGINS", "reptile_engine.rl.families.point_nav:NoSuchFamily")
    with pytest.raises(ConfigError, match="cannot be imported"):
        make_family("reptile_engine.rl.families.point_nav:NoSuchFamily")


def test_trusted_module_attr_names_resolve(monkeypatch):
    monkeypatch.setenv("REPTILE_LAB_PLUGINS", "reptile_engine.rl.families.point_nav:PointNavFamily")
    assert make_family("reptile_engine.rl.families.point_nav:PointNavFamily").name == "point-nav-2d"


def test_registration_happens_once(monkeypatch):
    name = "reptile_engine.rl.families.point_nav"
    module = importlib.import_module(name)
    spec = gymnasium.spec(module.ENV_ID)
    # Run the module body a second time (as a reload would) without replacing the module other tests use.
    monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(families, "point_nav", module)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is overridden
        second = importlib.import_module(name)
        register_env(module.ENV_ID, f"{name}:PointNavEnv", max_episode_steps=100)
    assert second is not module
    assert gymnasium.registry[module.ENV_ID] is spec
    with pytest.raises(RuntimeError, match="already registered"):
        register_env(module.ENV_ID, "somewhere.else:Env", max_episode_steps=100)
