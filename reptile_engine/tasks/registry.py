"""Task distributions by name: built-ins, the ``reptile_lab.tasks`` entry-point group, or ``module:attr``."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points

from reptile_engine.config import ConfigError
from reptile_engine.tasks.base import TaskDistribution
from reptile_engine.tasks.sine import SineTasks

ENTRY_POINT_GROUP = "reptile_lab.tasks"
_BUILTIN: dict[str, Callable[[], TaskDistribution]] = {"sine": SineTasks}


def available() -> list[str]:
    """Names a task picker can offer: built-ins first, then installed plugins."""
    names = list(_BUILTIN)
    names += sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in _BUILTIN)
    return names


def resolve(name: str) -> Callable[[], TaskDistribution]:
    """The factory behind ``name``; raises ``ConfigError`` naming ``task.name`` if there is none."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return ep.load()
    module_name, sep, attr = name.partition(":")
    if sep and module_name and attr:
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError("task.name", name, f"cannot be imported ({exc})") from None
    raise ConfigError("task.name", name, "one of " + ", ".join(available()) + ", or module:attr")


def make(name: str) -> TaskDistribution:
    """A fresh instance of the named distribution."""
    return resolve(name)()
