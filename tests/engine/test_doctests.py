"""The runnable examples in the engine's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import reptile_engine

MODULES = sorted(m.name for m in pkgutil.walk_packages(reptile_engine.__path__, "reptile_engine.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
