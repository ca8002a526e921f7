"""What a choice in the task picker asks of the run: which fields change, and which preset comes along.

A task of the run's kind changes ``task.name`` only. A task of the other kind needs that kind's defaults (a
meta-RL family the meta-RL preset and its surrogate landscape, a task distribution the supervised ones), so it
comes with that kind's preset, which the picker then shows. A preset brings every field it sets. No widgets:
the main window asks the controller for the changes and puts the picker back when the user keeps the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reptile_engine import catalog
from reptile_engine.config import ExperimentConfig, iter_fields
from reptile_engine.presets import preset, preset_for_task


@dataclass(frozen=True)
class TaskChoice:
    """The fields a choice changes (dotted path to new value) and the preset the picker shows once they apply
    (``None``: leave the picker's preset as it is)."""

    changes: dict[str, Any]
    preset: str | None = None


def changed_fields(current: ExperimentConfig, target: ExperimentConfig) -> dict[str, Any]:
    """Every field in which ``target`` differs from ``current``, as one update."""
    values = {path: value for path, value, _ in iter_fields(current)}
    return {path: value for path, value, _ in iter_fields(target) if values[path] != value}


def choose_task(current: ExperimentConfig, name: str) -> TaskChoice:
    """The choice of task ``name`` in a run of ``current``; ``ConfigError`` when that kind's preset cannot
    take the task."""
    if catalog.kind_of(name) == current.kind:
        return TaskChoice({"task.name": name})
    preset_name = preset_for_task(name)
    return TaskChoice(changed_fields(current, preset(preset_name).with_updates({"task.name": name})), preset_name)


def choose_preset(current: ExperimentConfig, name: str) -> TaskChoice:
    """The choice of preset ``name`` in a run of ``current``: every field the preset sets differently."""
    return TaskChoice(changed_fields(current, preset(name)))
