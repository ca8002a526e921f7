"""Task distributions by name: built-ins, the ``reptile_lab.tasks`` entry-point group, or a trusted ``module:attr``
(``reptile_engine.plugins``)."""

from __future__ import annotations

from collections.abc import Callable

from reptile_engine.plugins import load_plugin, plugin_names
from reptile_engine.tasks.base import TaskDistribution
from reptile_engine.tasks.sine import SineTasks

ENTRY_POINT_GROUP = "reptile_lab.tasks"
_BUILTIN: dict[str, Callable[[], TaskDistribution]] = {"sine": SineTasks}


def available() -> list[str]:
    """Names a task picker can offer: built-ins first, then installed plugins."""
    return list(_BUILTIN) + plugin_names(ENTRY_POINT_GROUP, exclude=_BUILTIN)


def resolve(name: str) -> Callable[[], TaskDistribution]:
    """The factory behind ``name``; raises ``ConfigError`` naming ``task.name`` if there is none."""
    if name in _BUILTIN:
        return _BUILTIN[name]
    return load_plugin(name, group=ENTRY_POINT_GROUP, field="task.name", choices=available)


def make(name: str) -> TaskDistribution:
    """A fresh instance of the named distribution."""
    return resolve(name)()
