"""Meta-RL environment families by name: built-ins, the ``reptile_lab.rl_families`` entry-point group, or a
trusted ``module:attr`` (``reptile_engine.plugins``).

A family's module is imported (and its gymnasium id registered) when the family is first made. Families
that need the optional ``mujoco`` extra are listed by ``available()`` only where it imports.

>>> "point-nav-2d" in available()
True
>>> family = make_family("point-nav-2d")
>>> family.env_id, family.horizon
('ReptileLab/PointNav2D-v0', 100)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from reptile_engine.errors import ConfigError
from reptile_engine.plugins import load_plugin, plugin_names
from reptile_engine.rl.families._mujoco import INSTALL_HINT, mujoco_available
from reptile_engine.rl.families.base import Task, TaskFamily, Uniform, register_env

ENTRY_POINT_GROUP = "reptile_lab.rl_families"
FIELD = "task.name"
_BUILTIN: dict[str, str] = {
    "point-nav-2d": "reptile_engine.rl.families.point_nav:PointNavFamily",
    "mountaincar-goal-gravity": "reptile_engine.rl.families.mountaincar:MountainCarFamily",
    "pendulum-physics": "reptile_engine.rl.families.pendulum:PendulumFamily",
    "halfcheetah-vel": "reptile_engine.rl.families.halfcheetah_vel:HalfCheetahVelFamily",
    "walker2d-params": "reptile_engine.rl.families.walker2d_params:Walker2dParamsFamily",
}
_NEEDS_MUJOCO = frozenset({"halfcheetah-vel", "walker2d-params"})

__all__ = ["ENTRY_POINT_GROUP", "Task", "TaskFamily", "Uniform", "available", "make_family", "names",
           "register_env", "resolve"]


def _builtin_available(name: str) -> bool:
    return name not in _NEEDS_MUJOCO or mujoco_available()


def names() -> list[str]:
    """Every built-in family's name, whether or not its optional dependencies are installed."""
    return list(_BUILTIN)


def available() -> list[str]:
    """Names a family picker can offer: built-ins whose dependencies import, then installed plugins."""
    return [name for name in _BUILTIN if _builtin_available(name)] + plugin_names(ENTRY_POINT_GROUP, _BUILTIN)


def _load(target: str) -> Callable[[], TaskFamily]:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def resolve(name: str) -> Callable[[], TaskFamily]:
    """The factory behind ``name``; raises ``ConfigError`` naming ``task.name`` if there is none."""
    if name in _BUILTIN:
        if not _builtin_available(name):
            raise ConfigError(FIELD, name, f"needs the optional dependency mujoco: {INSTALL_HINT}")
        return _load(_BUILTIN[name])
    return load_plugin(name, group=ENTRY_POINT_GROUP, field=FIELD, choices=available)


def make_family(name: str) -> TaskFamily:
    """A fresh instance of the named family (its module imported, its gymnasium id registered)."""
    return resolve(name)()
