"""Names, texts and signal blocking for controls: what every widget and plot control needs.

A control gets an object name (tests, styles, settings) and an accessible name (screen readers); the
unnamed parts inside a compound control are named after their owner. ``blocked`` is the one way to
re-sync a control from outside without its signals echoing back as an edit.

>>> name_control(QSpinBox(), "landscape_steps", "Landscape inner steps", "SGD steps")  # doctest: +SKIP
>>> with blocked(spin_box):                                                             # doctest: +SKIP
...     spin_box.setValue(config.landscape.steps)
"""

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

NAMED_CONTROLS: tuple[type[QWidget], ...] = (QAbstractButton, QAbstractSlider, QComboBox, QAbstractSpinBox,
                                             QLineEdit)
"""The control types that always carry an object name and an accessible name."""


def name_control(widget: QWidget, object_name: str, accessible_name: str, tooltip: str | None = None,
                 description: str | None = None) -> QWidget:
    """Give ``widget`` an object name and an accessible name (and a spin box's text field both, after it)."""
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible_name)
    if tooltip:
        widget.setToolTip(tooltip)
    if description is not None:
        widget.setAccessibleDescription(description)
    if isinstance(widget, QAbstractSpinBox):
        editor = widget.findChild(QLineEdit)
        if editor is not None:
            editor.setObjectName(f"{object_name}_text")
            editor.setAccessibleName(f"{accessible_name} (typed value)")
    return widget


def _role(child: QWidget) -> str:
    if isinstance(child, QScrollBar):
        return "vertical scroll bar" if child.orientation() == Qt.Orientation.Vertical else "scroll bar"
    if isinstance(child, QAbstractSlider):
        return "slider"
    if isinstance(child, QAbstractSpinBox):
        return "value"
    if isinstance(child, QLineEdit):
        return "text" if isinstance(child.parent(), QAbstractSpinBox) else "value"
    return "button"


def name_internals(widget: QWidget, object_name: str, accessible_name: str) -> None:
    """Name the unnamed controls inside a compound widget (a superqt slider's track and value box, a
    spin box's text field, a combo box's popup scroll bars) after their owner, uniquely."""
    used = {object_name}
    for child in widget.findChildren(QWidget):
        if not isinstance(child, NAMED_CONTROLS):
            continue
        role = _role(child)
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


def humanize(name: str) -> str:
    """A field name as words: ``meta_batch`` reads ``meta batch``."""
    return name.replace("_", " ")


def format_value(value: Any) -> str:
    """A config value as a control or a log line shows it: floats short (``0.02``), the rest as ``str``."""
    return f"{value:g}" if isinstance(value, float) else str(value)
