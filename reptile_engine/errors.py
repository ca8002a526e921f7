"""The one error a bad configuration value raises, shared by the config, the registries and the plugins.

It lives apart from ``reptile_engine.config`` so that the modules the config consults (the task catalog,
the registries, the plugin loader) can raise it without importing the config back.

>>> str(ConfigError("inner.lr", -1.0, "must be a finite number in [1e-06, 10]"))
'inner.lr = -1.0: must be a finite number in [1e-06, 10]'
"""

from __future__ import annotations

import reprlib
from typing import Any

_value_repr = reprlib.Repr()
_value_repr.maxlevel, _value_repr.maxstring, _value_repr.maxother = 3, 120, 120


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or out of its allowed range."""

    def __init__(self, field_name: str, value: Any, allowed: str):
        self.field = field_name
        self.value = value
        self.allowed = allowed
        # Bounded: a value may be nested thousands of levels deep or megabytes long.
        super().__init__(f"{field_name} = {_value_repr.repr(value)}: {allowed}")
