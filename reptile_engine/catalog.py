"""Every task a run can train on, by name: supervised task distributions and meta-RL families alike.

``task.name`` picks either kind; the trainer, the CLI and the app ask ``kind_of`` which machinery a name
needs. A name is a meta-RL family when the family registry knows it (built-ins, the
``reptile_lab.rl_families`` entry points) or when its trusted ``module:attr`` is a ``TaskFamily`` subclass
(``reptile_engine.plugins``: an untrusted one is never imported).

>>> kind_of("sine"), kind_of("point-nav-2d")
('supervised', 'rl')
>>> "sine" in available() and "point-nav-2d" in available()
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reptile_engine.errors import ConfigError
from reptile_engine.plugins import is_module_attr, load_trusted, plugin_names, trusted
from reptile_engine.rl import families
from reptile_engine.tasks import registry

FIELD = "task.name"


def available() -> list[str]:
    """Names a picker can offer: supervised tasks, then meta-RL families (plugins included)."""
    return registry.available() + families.available()


def kind_of(name: str) -> str:
    """``"rl"`` for a meta-RL family, ``"supervised"`` for anything else (whether or not it resolves)."""
    if name in families.names() or name in plugin_names(families.ENTRY_POINT_GROUP):
        return "rl"
    if is_module_attr(name) and name in trusted():
        try:
            target = load_trusted(name, FIELD)
        except ConfigError:
            return "supervised"
        return "rl" if isinstance(target, type) and issubclass(target, families.TaskFamily) else "supervised"
    return "supervised"


def resolve(name: str) -> Callable[[], Any]:
    """The factory behind ``name``; a ``ConfigError`` naming ``task.name`` and every choice otherwise."""
    try:
        return families.resolve(name) if kind_of(name) == "rl" else registry.resolve(name)
    except ConfigError as exc:
        if exc.allowed.startswith("one of "):
            raise ConfigError(FIELD, name, "one of " + ", ".join(available()) + ", or a trusted module:attr") from None
        raise ConfigError(FIELD, name, exc.allowed) from None
