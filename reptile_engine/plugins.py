"""Plugins by name: an entry point of a group, or ``module:attr``; the registries' shared lookup."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import entry_points
from typing import Any

from reptile_engine.config import ConfigError


def plugin_names(group: str, exclude: Iterable[str] = ()) -> list[str]:
    """Sorted names of the installed entry points of ``group``, less ``exclude``."""
    skip = set(exclude)
    return sorted(ep.name for ep in entry_points(group=group) if ep.name not in skip)


def load_plugin(name: str, *, group: str, field: str, choices: Callable[[], list[str]]) -> Any:
    """The object behind ``name``; a ``ConfigError`` naming ``field`` and the ``choices`` otherwise."""
    for ep in entry_points(group=group):
        if ep.name == name:
            return ep.load()
    module_name, sep, attr = name.partition(":")
    if sep and module_name and attr:
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise ConfigError(field, name, f"cannot be imported ({exc})") from None
    raise ConfigError(field, name, "one of " + ", ".join(choices()) + ", or module:attr")
