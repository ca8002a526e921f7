"""Small helpers shared by the widgets: naming for accessibility, signal blocking, change text."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QLineEdit,
    QScrollBar,
    QWidget,
)

#: The control types every widget in this package names (object name and accessible name).
NAMED_CONTROLS: tuple[type[QWidget], ...] = (QAbstractButton, QAbstractSlider, QComboBox, QAbstractSpinBox,
                                             QLineEdit)


def name_widget(widget: QWidget, object_name: str, accessible_name: str, tooltip: str | None = None,
                description: str | None = None) -> QWidget:
    """Give ``widget`` an object name (for tests, styles, settings) and an accessible name (screen readers)."""
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible_name)
    if tooltip is not None:
        widget.setToolTip(tooltip)
    if description is not None:
        widget.setAccessibleDescription(description)
    return widget


def name_internals(widget: QWidget, object_name: str, accessible_name: str) -> None:
    """Name the unnamed controls inside a compound widget (a superqt slider's track and value box, a
    spin box's text field, a combo box's popup scroll bars) after their owner, uniquely."""
    used = {object_name}
    for child in widget.findChildren(QWidget):
        if not isinstance(child, NAMED_CONTROLS):
            continue
        if isinstance(child, QScrollBar):
            role = "vertical scroll bar" if child.orientation() == Qt.Orientation.Vertical else "scroll bar"
        elif isinstance(child, QAbstractSlider):
            role = "slider"
        elif isinstance(child, QAbstractSpinBox):
            role = "value"
        elif isinstance(child, QLineEdit):
            role = "text" if isinstance(child.parent(), QAbstractSpinBox) else "value"
        else:
            role = "button"
        if not child.objectName() or child.objectName().startswith("qt_") or child.objectName() in used:
            base = f"{object_name}_{role.replace(' ', '_')}"
            name, n = base, 2
            while name in used:
                name, n = f"{base}_{n}", n + 1
            child.setObjectName(name)
        used.add(child.objectName())
        if not child.accessibleName():
            child.setAccessibleName(f"{accessible_name} {role}")
        if not child.toolTip() and widget.toolTip() and not isinstance(child, QScrollBar):
            child.setToolTip(widget.toolTip())


@contextmanager
def blocked(*objects: QObject) -> Iterator[None]:
    """Block the signals of ``objects`` for the duration, restoring each one's previous state."""
    previous = [obj.blockSignals(True) for obj in objects]
    try:
        yield
    finally:
        for obj, was in zip(objects, previous, strict=True):
            obj.blockSignals(was)


def format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def change_lines(event: Any) -> list[str]:
    """One line per changed field: ``iteration 120: inner.lr 0.02 → 0.01``."""
    return [f"iteration {event.iteration}: {path} {format_value(old)} → {format_value(new)}"
            for path, (old, new) in event.changes.items()]


def change_text(event: Any) -> str:
    """All of an event's changes on one line: ``iteration 120: inner.lr 0.02 → 0.01, inner.steps 5 → 10``."""
    parts = [f"{path} {format_value(old)} → {format_value(new)}" for path, (old, new) in event.changes.items()]
    return f"iteration {event.iteration}: " + ", ".join(parts)


def humanize(name: str) -> str:
    return name.replace("_", " ")
