"""Task and preset picker: tasks come from the catalog (supervised task distributions and meta-RL families,
plugins included), presets from ``PRESETS``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QSizePolicy, QWidget

from reptile_engine import catalog
from reptile_engine.presets import PRESETS
from reptile_gui.toolkit import blocked, format_value, name_control, name_internals

LOCKED = "Locked while a run is in progress: stop the run (or reset) to change it."
TASK_TIP = ("The task distribution or meta-RL family to meta-train on (installed plugins appear here too); "
            "a task of the other kind loads that kind's preset with it")
PRESET_TIP = "Load a named starting point: the default config with a few changes"


def _task_tooltip(name: str) -> str:
    what = "Meta-RL family" if catalog.kind_of(name) == "rl" else "Task distribution"
    try:
        factory = catalog.resolve(name)
    except Exception:  # a broken plugin must not break the picker
        return f"{what} {name!r}"
    doc = (getattr(factory, "__doc__", None) or "").strip()
    return f"{what} {name}: {doc.splitlines()[0]}" if doc else f"{what} {name!r}"


def _preset_tooltip(name: str, changes: Mapping[str, Any]) -> str:
    lines = [f"{path} = {format_value(value)}" for path, value in changes.items()]
    return f"Preset {name!r}: the default config with\n" + "\n".join(lines) if lines else f"Preset {name!r}"


class TaskPicker(QWidget):
    """Two combo boxes: the task (a supervised task distribution or a meta-RL family) and a preset.

    Signals: ``taskChosen(str)`` and ``presetChosen(str)``, emitted on user choices only.
    ``tasks`` defaults to ``catalog.available`` (called again by ``refresh()``), ``presets`` to ``PRESETS``.
    """

    taskChosen = Signal(str)
    presetChosen = Signal(str)

    def __init__(self, tasks: Callable[[], Iterable[str]] = catalog.available,
                 presets: Mapping[str, Mapping[str, Any]] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("taskPicker")
        self.setAccessibleName("Task and preset")
        self._tasks_source = tasks
        self._presets = PRESETS if presets is None else presets

        self.task_combo = QComboBox(self)
        name_control(self.task_combo, "taskCombo", "Task distribution", TASK_TIP)
        self.task_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.preset_combo = QComboBox(self)
        name_control(self.preset_combo, "presetCombo", "Preset", PRESET_TIP)
        self.preset_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.preset_combo.setPlaceholderText("choose…")
        for name, changes in self._presets.items():
            self.preset_combo.addItem(name)
            self.preset_combo.setItemData(self.preset_combo.count() - 1, _preset_tooltip(name, changes),
                                          Qt.ItemDataRole.ToolTipRole)
        self.preset_combo.setCurrentIndex(-1)
        self.refresh()
        name_internals(self.task_combo, "taskCombo", "Task distribution")  # the popup's scroll bars
        name_internals(self.preset_combo, "presetCombo", "Preset")

        task_label = QLabel("&Task", self)
        task_label.setObjectName("taskLabel")
        task_label.setBuddy(self.task_combo)
        preset_label = QLabel("&Preset", self)
        preset_label.setObjectName("presetLabel")
        preset_label.setBuddy(self.preset_combo)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(6)
        layout.addWidget(task_label)
        layout.addWidget(self.task_combo)
        layout.addSpacing(10)
        layout.addWidget(preset_label)
        layout.addWidget(self.preset_combo)
        layout.addStretch(1)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)

        self.task_combo.activated.connect(lambda i: self.taskChosen.emit(self.task_combo.itemText(i)))
        self.preset_combo.activated.connect(lambda i: self.presetChosen.emit(self.preset_combo.itemText(i)))

    def tasks(self) -> list[str]:
        return [self.task_combo.itemText(i) for i in range(self.task_combo.count())]

    def presets(self) -> list[str]:
        return [self.preset_combo.itemText(i) for i in range(self.preset_combo.count())]

    def refresh(self) -> None:
        """Re-read the task catalog (e.g. after installing a plugin), keeping the current choice."""
        current = self.task_combo.currentText()
        with blocked(self.task_combo):
            self.task_combo.clear()
            for name in self._tasks_source():
                self._add_task(name)
            if current:
                self.set_task(current)

    def _add_task(self, name: str) -> None:
        self.task_combo.addItem(name)
        self.task_combo.setItemData(self.task_combo.count() - 1, _task_tooltip(name),
                                    Qt.ItemDataRole.ToolTipRole)

    def set_task(self, name: str) -> None:
        """Show ``name`` as the current task without emitting (a ``module:attr`` name is added)."""
        with blocked(self.task_combo):
            if self.task_combo.findText(name) < 0:
                self._add_task(name)
            self.task_combo.setCurrentIndex(self.task_combo.findText(name))

    def set_preset(self, name: str | None) -> None:
        """Show ``name`` as the current preset (``None``: none, e.g. after manual edits) without emitting."""
        with blocked(self.preset_combo):
            self.preset_combo.setCurrentIndex(-1 if name is None else self.preset_combo.findText(name))

    def set_enabled_for_state(self, editable: bool) -> None:
        """Task and preset change the model or non-live fields, so they are editable only between runs."""
        for combo, tip in ((self.task_combo, TASK_TIP), (self.preset_combo, PRESET_TIP)):
            combo.setEnabled(editable)
            combo.setToolTip(tip if editable else f"{tip}\n{LOCKED}")
