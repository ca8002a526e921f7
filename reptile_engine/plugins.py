"""Plugins by name: the installed entry points of a group, and ``module:attr`` names trusted for this process.

A name from a config, a session or the app resolves only through a registry's built-ins and the installed
entry points. A ``module:attr`` name imports and runs the code it names, so a file someone sent must not be
able to choose it: it resolves only once the user has trusted it, with ``reptile-train --plugin module:attr``
or the ``REPTILE_LAB_PLUGINS`` environment variable (comma-separated names). ``trust`` writes that variable,
so the processes this one spawns (the app's trainer process) trust the same names.

The entry-point scan is cached for the process (``validate()`` asks on every config change); ``refresh()``
rescans after a plugin is installed while the process runs.

>>> is_module_attr("my_pkg.tasks:Waves"), is_module_attr("sine")
(True, False)
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from reptile_engine.errors import ConfigError

ENV_VAR = "REPTILE_LAB_PLUGINS"


@functools.cache
def _entry_points(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def refresh() -> None:
    """Forget the cached entry points, so plugins installed since are found."""
    _entry_points.cache_clear()


def is_module_attr(name: str) -> bool:
    """Whether ``name`` has the ``module:attr`` form (both parts non-empty)."""
    module_name, sep, attr = name.partition(":")
    return bool(sep and module_name and attr)


def _listed() -> list[str]:
    return [name.strip() for name in os.environ.get(ENV_VAR, "").split(",") if name.strip()]


def trusted() -> frozenset[str]:
    """The ``module:attr`` names this process may import: those in ``REPTILE_LAB_PLUGINS``."""
    return frozenset(_listed())


def trust(*names: str) -> None:
    """Let ``names`` (``module:attr``) resolve in this process and in the processes it spawns."""
    for name in names:
        if not is_module_attr(name):
            raise ConfigError("--plugin", name, "must be module:attr, e.g. my_pkg.tasks:Waves")
    os.environ[ENV_VAR] = ",".join(dict.fromkeys([*_listed(), *names]))


def plugin_names(group: str, exclude: Iterable[str] = ()) -> list[str]:
    """Sorted names of the installed entry points of ``group``, less ``exclude``."""
    skip = set(exclude)
    return sorted(name for name in _entry_points(group) if name not in skip)


def load_trusted(name: str, field: str) -> Any:
    """The object behind a trusted ``module:attr`` name; a ``ConfigError`` naming ``field`` otherwise."""
    if name not in trusted():
        raise ConfigError(field, name, f"a module:attr name imports and runs that code, so it loads only when "
                          f"trusted: run reptile-train --plugin {name}, or add it to {ENV_VAR} (comma-separated)")
    module_name, _, attr = name.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(field, name, f"cannot be imported ({exc})") from None


def load_plugin(name: str, *, group: str, field: str, choices: Callable[[], list[str]]) -> Any:
    """The object behind an entry point or trusted ``module:attr`` ``name``; a ``ConfigError`` naming ``field``
    and the ``choices`` otherwise."""
    entry_point = _entry_points(group).get(name)
    if entry_point is not None:
        try:
            return entry_point.load()
        except (ImportError, AttributeError) as exc:
            raise ConfigError(field, name, f"the installed plugin cannot be imported ({exc})") from None
    if is_module_attr(name):
        return load_trusted(name, field)
    raise ConfigError(field, name, "one of " + ", ".join(choices()) + ", or a trusted module:attr")
