"""Scrolling a long panel with the mouse wheel must not change the control that passes under the pointer."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractSlider, QAbstractSpinBox, QComboBox, QWidget

WHEEL_CONTROLS = (QAbstractSlider, QAbstractSpinBox, QComboBox)
"""The controls a mouse wheel would otherwise change."""


class WheelGuard(QObject):
    """Let the mouse wheel scroll the panel instead of changing the control under the pointer,
    unless that control has focus (clicked or tabbed into).

    >>> WheelGuard(panel).guard(panel)        # doctest: +SKIP
    """

    def guard(self, container: QWidget) -> None:
        """Guard every wheel-sensitive control inside ``container``; they take focus by click or tab only."""
        for control in container.findChildren(QWidget):
            if isinstance(control, WHEEL_CONTROLS):
                control.installEventFilter(self)
                control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()  # ignored and filtered: Qt passes the wheel on to the scroll area
            return True
        return False
