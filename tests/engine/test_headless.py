"""The engine runs without Qt: importing it, or training a step, loads no GUI toolkit.

The import contracts that keep it so are checked in ``tests/test_structure.py``.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FORBIDDEN = ("PySide6", "pyqtgraph", "superqt", "shiboken6", "reptile_gui")

# Every engine module, found on disk so that new ones are covered too (``__main__`` would run the CLI).
ENGINE_MODULES = ["reptile_engine"] + sorted(
    info.name
    for info in pkgutil.walk_packages([str(REPO / "reptile_engine")], prefix="reptile_engine.")
    if not info.name.endswith("__main__")
)
KEY_MODULES = {"reptile_engine.trainer", "reptile_engine.checkpoint", "reptile_engine.config"}

PROBE = """
import importlib, json, sys
for name in {modules!r}:
    importlib.import_module(name)
# Exercise the engine a little too: a trainer step must not pull a toolkit in lazily.
from reptile_engine.config import ExperimentConfig
from reptile_engine.trainer import Trainer
small = {{"model.hidden": 4, "evaluation.tasks": 2, "evaluation.steps": 1}}
t = Trainer(ExperimentConfig().with_updates(small))
t.step()
t.evaluate()
print(json.dumps(sorted(sys.modules)))
"""


def test_importing_the_engine_loads_no_gui_toolkit():
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(modules=ENGINE_MODULES)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert KEY_MODULES <= set(ENGINE_MODULES) <= set(loaded)
    assert "torch" in loaded
    offending = [name for name in loaded if name.split(".")[0].startswith(FORBIDDEN)]
    assert offending == []

