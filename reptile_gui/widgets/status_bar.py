"""The status bar: run state, iteration, speed (and a meta-RL run's environment steps per second), the
progress inside a long meta-iteration, elapsed time, device and the last applied change."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QLabel, QStatusBar, QWidget

from reptile_gui.toolkit import name_control
from reptile_gui.widgets.change_log import change_text

EMPTY = "–"
NO_CHANGE = "No changes applied yet"
LAST_CHANGE_WIDTH = 340


def format_elapsed(seconds: float | None) -> str:
    """``h:mm:ss`` (``–`` when unknown)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return EMPTY
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def format_rate(rate: float | None) -> str:
    if rate is None or not math.isfinite(rate):
        return EMPTY
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def format_iteration_rate(rate: float | None) -> str:
    """``12.5 it/s``, or seconds per iteration below one a second (a slow run must not read ``0.0 it/s``)."""
    if rate is not None and math.isfinite(rate) and 0 < rate < 1:
        return f"{format_rate(1 / rate)} s/it"
    return f"{format_rate(rate)} it/s"


def format_progress(progress: Any) -> str:
    """An ``IterationProgress``: ``iteration 12: task 3/20, update 2/3, 4,100 env steps/s``."""
    return (f"iteration {progress.iteration:,}: task {progress.tasks_done}/{progress.tasks_total}, "
            f"update {progress.updates_done}/{progress.updates_total}, "
            f"{format_rate(progress.env_steps_per_second)} env steps/s")


class RunStatusBar(QStatusBar):
    """Permanent fields on the right; ``showMessage`` still works on the left for transient messages.

    ``update_from(store, state, device, progress)`` reads the store's latest ``iteration``,
    ``iterations_per_second`` (only while running: a paused run says so instead of a stale rate),
    ``env_steps_per_second`` (shown only for a meta-RL run) and ``elapsed``, and shows the
    ``IterationProgress`` of the iteration under way, if any; ``show_change(event)`` shows a ``ConfigChanged``.
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runStatusBar")
        self.setAccessibleName("Run status")
        self.fields: dict[str, QLabel] = {}
        self._separators: dict[str, QFrame] = {}
        specs = (
            ("state", "State", "The run state", "paused"),
            ("iteration", "Iteration", "Meta-iterations done", "1,000,000"),
            ("rate", "it/s", "Meta-iterations per second (recent average)", "10,000 it/s"),
            ("env_rate", "env steps/s", "Environment steps per second in the last meta-iteration", "1,000,000"),
            ("progress", "Progress", "How far the meta-iteration under way has come", ""),
            ("elapsed", "Elapsed", "Training time (h:mm:ss)", "100:00:00"),
            ("device", "Device", "Where the trainer runs", "cuda:0"),
            ("change", "Last change", "The last hyperparameter change the trainer applied", ""),
        )
        self._captions = {key: caption for key, caption, _, _ in specs}
        for index, (key, caption, tip, widest) in enumerate(specs):
            if index:
                separator = QFrame(self)
                separator.setObjectName(f"status_separator_{index}")
                separator.setFrameShape(QFrame.Shape.VLine)
                separator.setFrameShadow(QFrame.Shadow.Sunken)
                self.addPermanentWidget(separator)
                self._separators[key] = separator
            label = QLabel(self)
            name_control(label, f"status_{key}", caption, tip)
            label.setTextFormat(Qt.TextFormat.PlainText)
            label.setFrameShape(QFrame.Shape.NoFrame)
            if widest:
                label.setMinimumWidth(label.fontMetrics().horizontalAdvance(self._text(key, widest)) + 4)
            self.fields[key] = label
            self.addPermanentWidget(label)
        self.fields["change"].setMaximumWidth(LAST_CHANGE_WIDTH)
        self._full_change = ""
        self.update_from(None, "starting", "cpu")
        self._set("change", NO_CHANGE)

    def _text(self, key: str, value: str) -> str:
        caption = self._captions[key]
        if key in ("change", "progress", "rate"):
            return value
        return f"{value} {caption}" if key == "env_rate" else f"{caption}: {value}"

    def _set(self, key: str, value: str) -> None:
        label = self.fields[key]
        text = self._text(key, value)
        if key == "change":
            self._full_change = text
            text = label.fontMetrics().elidedText(text, Qt.TextElideMode.ElideRight, LAST_CHANGE_WIDTH - 4)
            label.setToolTip(self._full_change)
        if label.text() != text:
            label.setText(text)
        label.setAccessibleDescription(self._text(key, value))

    def text_of(self, key: str) -> str:
        """The full text of a field (``state``, ``iteration``, ``rate``, ``env_rate``, ``progress``, ``elapsed``,
        ``device``, ``change``)."""
        return self._full_change if key == "change" else self.fields[key].text()

    def update_from(self, store: Any, state: str, device: str, progress: Any = None) -> None:
        """Refresh from a ``RunStore`` (or ``None`` before any data), the controller's state and the
        ``IterationProgress`` of the iteration under way (``None`` between iterations)."""
        latest = store.latest if store is not None else (lambda _name: None)
        iteration = latest("iteration")
        self._set("state", state)
        self._set("iteration", EMPTY if iteration is None else f"{int(iteration):,}")
        if state == "paused":
            self._set("rate", "paused")
        else:
            self._set("rate", format_iteration_rate(latest("iterations_per_second") if state == "running" else None))
        env_rate = latest("env_steps_per_second")
        self._show_field("env_rate", env_rate is not None)
        self._set("env_rate", format_rate(env_rate))
        self._show_field("progress", progress is not None)
        self._set("progress", "" if progress is None else format_progress(progress))
        self._set("elapsed", format_elapsed(latest("elapsed")))
        self._set("device", str(device))

    def _show_field(self, key: str, shown: bool) -> None:
        for widget in (self.fields[key], self._separators[key]):
            if widget.isHidden() == shown:
                widget.setHidden(not shown)

    def show_change(self, event: Any) -> None:
        """Show a ``ConfigChanged``: ``iteration 120: inner.lr 0.02 → 0.01``."""
        self._set("change", change_text(event))
