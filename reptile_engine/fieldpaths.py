"""Trees of frozen dataclasses addressed by dotted paths, and the metadata their leaf fields carry.

A leaf field's ``metadata`` may name ``min``, ``max`` and ``choices``; the helpers here read it to type,
parse, check and describe a value, and to build a tree from plain nested data. They know nothing of
Reptile: ``reptile_engine.config`` declares the experiment's fields and calls them.

>>> from dataclasses import dataclass, field
>>> @dataclass(frozen=True)
... class Inner:
...     lr: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
>>> @dataclass(frozen=True)
... class Outer:
...     inner: Inner = field(default_factory=Inner)
>>> [path for path, _, _ in iter_fields(Outer())], get_value(Outer(), "inner.lr")
(['inner.lr'], 0.1)
>>> build(Outer, {"inner": {"lr": 1}}, "").inner.lr
1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from reptile_engine.errors import ConfigError

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def iter_fields(tree: Any, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field]]:
    """Yield ``(dotted_path, value, field)`` for every leaf field of a tree."""
    for f in fields(tree):
        value = getattr(tree, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from iter_fields(value, path + ".")
        else:
            yield path, value, f


def get_value(tree: Any, path: str) -> Any:
    """The value at a dotted path (``"inner.lr"``, ``"seed"``); a ``ConfigError`` for an unknown one."""
    node = tree
    for name in path.split("."):
        if not dataclasses.is_dataclass(node) or name not in {f.name for f in fields(node)}:
            raise ConfigError(path, None, "unknown field")
        node = getattr(node, name)
    return node


def python_type(f: dataclasses.Field) -> type:
    """The Python type of a leaf field, whether its annotation is a type or (postponed) a string."""
    return f.type if isinstance(f.type, type) else _TYPES[f.type]


def describe_range(f: dataclasses.Field) -> str:
    """What a leaf field allows, in words: ``must be an integer in [1, 4096]``, ``one of sgd, adam``."""
    meta = f.metadata
    expected = python_type(f)
    if expected is bool:
        return "must be true or false"
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    if expected is str:
        return "must be a string"
    lo, hi = meta.get("min"), meta.get("max")
    kind = "an integer" if expected is int else "a finite number"
    if lo is not None and hi is not None:
        return f"must be {kind} in [{lo:g}, {hi:g}]"
    return f"must be {kind}"


def check_value(path: str, value: Any, f: dataclasses.Field) -> None:
    """Raise ``ConfigError`` if a value of the field's type is outside its choices or range (NaN and inf are)."""
    meta = f.metadata
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise ConfigError(path, value, describe_range(f))
        return
    if isinstance(value, str):
        if not value:
            raise ConfigError(path, value, "must not be empty")
        return
    if isinstance(value, bool):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(path, value, describe_range(f))
    lo, hi = meta.get("min"), meta.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError(path, value, describe_range(f))


def coerce(path: str, value: Any, f: dataclasses.Field) -> Any:
    """Plain data (TOML, JSON, a widget's value) as the field's type: an int for a float field and an integral
    float for an int field convert; a bool stands only for a bool; anything else is a ``ConfigError``."""
    expected = python_type(f)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, value, describe_range(f))
        return value
    if isinstance(value, bool):
        raise ConfigError(path, value, describe_range(f))
    if expected is float and isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(path, value, describe_range(f)) from None
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, expected):
        raise ConfigError(path, value, describe_range(f))
    return value


def parse_text(path: str, text: str, f: dataclasses.Field) -> Any:
    """A value typed as text (a command-line flag) as the field's type, checked against its range.

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class View:
    ...     freeze: bool = False
    >>> flag = fields(View)[0]
    >>> parse_text("freeze", "Yes", flag), parse_text("freeze", "off", flag)
    (True, False)
    """
    expected = python_type(f)
    try:
        if expected is bool:
            if text.lower() not in _TRUE + _FALSE:
                raise ValueError(text)
            value: Any = text.lower() in _TRUE
        else:
            value = expected(text)
    except ValueError:
        raise ConfigError(path, text, describe_range(f)) from None
    check_value(path, value, f)
    return value


def nest(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted-path changes as nested plain data: ``{"inner.lr": 0.1}`` becomes ``{"inner": {"lr": 0.1}}``."""
    nested: dict[str, Any] = {}
    for path, value in changes.items():
        *sections, name = path.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    return nested


def build(cls: type, data: Mapping[str, Any], prefix: str, base: Any = None) -> Any:
    """An instance of ``cls`` (or ``base`` with the given fields replaced) from plain nested ``data``, every
    leaf coerced to its type; unknown keys and wrong types raise ``ConfigError`` naming the dotted path.

    Ranges are the caller's to check, once, over the whole tree (``check_value`` on ``iter_fields``)."""
    known = {f.name: f for f in fields(cls)}
    for key in data:
        if key not in known:
            raise ConfigError(f"{prefix}{key}", data[key], "unknown key")
    kwargs: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            continue
        value = data[name]
        path = f"{prefix}{name}"
        default = getattr(base, name) if base is not None else _default(f)
        if dataclasses.is_dataclass(default):
            if not isinstance(value, Mapping):
                raise ConfigError(path, value, "must be a table")
            kwargs[name] = build(type(default), value, path + ".", default)
        else:
            kwargs[name] = coerce(path, value, f)
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
