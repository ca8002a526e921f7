"""The changes the trainer applied, as lines of text: for the panel's log and the status bar."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from PySide6.QtWidgets import QGroupBox, QListWidget, QSizePolicy, QVBoxLayout, QWidget

from reptile_gui.toolkit import format_value, name_control

CHANGE_LOG_LIMIT = 200
"""How many lines the log keeps, newest first."""


def change_lines(event: Any) -> list[str]:
    """One line per changed field: ``iteration 120: inner.lr 0.02 → 0.01``."""
    return [f"iteration {event.iteration}: {path} {format_value(old)} → {format_value(new)}"
            for path, (old, new) in event.changes.items()]


def change_text(event: Any) -> str:
    """All of an event's changes on one line: ``iteration 120: inner.lr 0.02 → 0.01, inner.steps 5 → 10``."""
    parts = [f"{path} {format_value(old)} → {format_value(new)}" for path, (old, new) in event.changes.items()]
    return f"iteration {event.iteration}: " + ", ".join(parts)


class ChangeLog(QListWidget):
    """A short list of applied changes, newest first, holding the last ``CHANGE_LOG_LIMIT``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        name_control(self, "changeLog", "Applied changes",
                     f"Changes the trainer applied, newest first (the last {CHANGE_LOG_LIMIT}).")
        self.setAlternatingRowColors(True)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(self.fontMetrics().height() * 5 + 12)
        name_control(self.verticalScrollBar(), "changeLogScrollBar", "Scroll applied changes")
        name_control(self.horizontalScrollBar(), "changeLogScrollBarH", "Scroll applied changes sideways")

    def prepend(self, lines: Iterable[str]) -> None:
        """Put ``lines`` on top, each above the one before, dropping the oldest beyond the limit."""
        for line in lines:
            self.insertItem(0, line)
        while self.count() > CHANGE_LOG_LIMIT:
            self.takeItem(self.count() - 1)

    def in_group_box(self, parent: QWidget | None = None) -> QGroupBox:
        """The log framed under its title, as the panel shows it."""
        box = QGroupBox("Applied changes", parent)
        box.setObjectName("changeLogGroup")
        layout = QVBoxLayout(box)
        layout.setContentsMargins(6, 4, 6, 6)
        layout.addWidget(self)
        return box
