"""Run controls: start, pause/resume, step, stop, reset, as buttons backed by window-wide QActions.

Shortcuts (``SHORTCUTS``):

========================  ==================  ==================================================
action                    shortcut            why
========================  ==================  ==================================================
start / pause / resume    Space               the media-player convention; the toggle action
start                     Ctrl+R              "run", as in IDEs
step (one iteration)      S, Ctrl+Right       S for step; Ctrl+Right leaves plain arrows to sliders
stop                      Ctrl+.              the macOS "stop" convention (Ctrl+Period)
reset                     Ctrl+Shift+R        destructive (clears the history), so two modifiers
========================  ==================  ==================================================

Pause and resume have no key of their own: Space does whichever the state allows. Text fields keep
Space and S while they have focus (Qt lets a focused line edit override single-key shortcuts).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QStyle, QToolButton, QWidget
from superqt import QFlowLayout

from reptile_gui.toolkit import name_control

SHORTCUTS: dict[str, tuple[str, ...]] = {
    "toggle": ("Space",),
    "start": ("Ctrl+R",),
    "pause": (),
    "resume": (),
    "step": ("S", "Ctrl+Right"),
    "stop": ("Ctrl+.",),
    "reset": ("Ctrl+Shift+R",),
}

_TEXT = {"toggle": "Start / Pause / Resume", "start": "Start", "pause": "Pause", "resume": "Resume",
         "step": "Step", "stop": "Stop", "reset": "Reset"}
_TIPS = {
    "toggle": "Start, pause or resume the run, whichever the state allows",
    "start": "Start training, or continue a stopped run at the same iteration with its history",
    "pause": "Pause after the current meta-iteration",
    "resume": "Resume training",
    "step": "Run exactly one meta-iteration while paused",
    "stop": "Stop the run and keep it (history, last state; Save session and Export all still work); "
            "Start continues it",
    "reset": "Discard the history and start from new meta-parameters with the same settings",
}
_ICONS = {"toggle": QStyle.StandardPixmap.SP_MediaPlay, "start": QStyle.StandardPixmap.SP_MediaPlay,
          "pause": QStyle.StandardPixmap.SP_MediaPause, "resume": QStyle.StandardPixmap.SP_MediaPlay,
          "step": QStyle.StandardPixmap.SP_MediaSkipForward, "stop": QStyle.StandardPixmap.SP_MediaStop,
          "reset": QStyle.StandardPixmap.SP_BrowserReload}
_STATE_COLORS = {"starting": "#9e9e9e", "ready": "#1976d2", "running": "#2e7d32", "paused": "#f9a825",
                 "stopped": "#616161", "finished": "#6a1b9a", "failed": "#c62828"}

RUN_ACTIONS: tuple[str, ...] = ("start", "pause", "resume", "step", "stop", "reset")
"""The actions ``TrainingController.ACTIONS`` names."""


class RunControls(QWidget):
    """Buttons for the run, each backed by a ``QAction`` with a window-wide shortcut.

    Signals: ``startRequested``, ``pauseRequested``, ``resumeRequested``, ``toggleRequested``,
    ``stepRequested``, ``stopRequested``, ``resetRequested`` (no arguments).

    ``set_state(state, allowed)`` enables exactly the actions in ``allowed`` (the toggle when any of
    start, pause, resume is); ``actions()`` returns the QActions for a menu or toolbar.
    """

    startRequested = Signal()
    pauseRequested = Signal()
    resumeRequested = Signal()
    toggleRequested = Signal()
    stepRequested = Signal()
    stopRequested = Signal()
    resetRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("runControls")
        self.setAccessibleName("Run controls")
        self._actions: dict[str, QAction] = {}
        for name in ("toggle", *RUN_ACTIONS):
            action = QAction(self.style().standardIcon(_ICONS[name]), _TEXT[name], self)
            action.setObjectName(f"{name}Action")
            keys = [QKeySequence(k) for k in SHORTCUTS[name]]
            action.setShortcuts(keys)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            shown = " or ".join(k.toString(QKeySequence.SequenceFormat.NativeText) for k in keys)
            tip = f"{_TIPS[name]} ({shown})" if shown else _TIPS[name]
            action.setToolTip(tip)
            action.setStatusTip(_TIPS[name])
            action.triggered.connect(getattr(self, f"{name}Requested").emit)
            self.addAction(action)  # shortcuts work anywhere in this widget's window
            self._actions[name] = action

        self.buttons: dict[str, QToolButton] = {}
        # The row wraps onto a second line in a narrow window instead of squeezing buttons over each other.
        layout = QFlowLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setHorizontalSpacing(4)
        layout.setVerticalSpacing(4)
        for name in ("start", "pause_resume", "step", "stop", "reset"):
            button = QToolButton(self)
            button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setAutoRaise(False)
            button.setDefaultAction(self._actions["pause" if name == "pause_resume" else name])
            object_name = "pauseResumeButton" if name == "pause_resume" else f"{name}Button"
            name_control(button, object_name, button.text())
            layout.addWidget(button)
            self.buttons[name] = button
        # Wide enough for either label, so the row does not jump when Pause becomes Resume.
        metrics = self.buttons["pause_resume"].fontMetrics()
        extra = self.buttons["pause_resume"].sizeHint().width() - metrics.horizontalAdvance("Pause")
        self.buttons["pause_resume"].setMinimumWidth(
            extra + max(metrics.horizontalAdvance(t) for t in ("Pause", "Resume")))
        self.state_label = QLabel(self)
        name_control(self.state_label, "runStateLabel", "Run state", "The state of the run")
        self.state_label.setTextFormat(Qt.TextFormat.RichText)
        self.state_label.setContentsMargins(8, 0, 0, 0)
        metrics = self.state_label.fontMetrics()  # wide enough for any state, so the row does not reflow
        self.state_label.setMinimumWidth(8 + metrics.horizontalAdvance("● ") + max(
            metrics.horizontalAdvance(state.capitalize()) for state in _STATE_COLORS))
        layout.addWidget(self.state_label)
        self.state = ""
        self.set_state("starting", frozenset())

    def actions(self) -> list[QAction]:  # noqa: D102 (the QWidget method, listing ours in a useful order)
        return [self._actions[name] for name in ("toggle", *RUN_ACTIONS)]

    def action(self, name: str) -> QAction:
        """The QAction for ``toggle``, ``start``, ``pause``, ``resume``, ``step``, ``stop`` or ``reset``."""
        return self._actions[name]

    def set_state(self, state: str, allowed: frozenset[str] | set[str]) -> None:
        """Show ``state`` and enable exactly the actions in ``allowed`` (``controller.ACTIONS[state]``)."""
        self.state = state
        for name in RUN_ACTIONS:
            self._actions[name].setEnabled(name in allowed)
        self._actions["toggle"].setEnabled(bool({"start", "pause", "resume"} & set(allowed)))
        button = self.buttons["pause_resume"]
        current = "resume" if "resume" in allowed or state == "paused" else "pause"
        if button.defaultAction() is not self._actions[current]:
            button.removeAction(button.defaultAction())  # a button with two actions grows a menu arrow
            button.setDefaultAction(self._actions[current])
        button.setAccessibleName(button.text())
        color = _STATE_COLORS.get(state, "#616161")
        self.state_label.setText(f'<span style="color:{color}">●</span> {state.capitalize()}')
        self.state_label.setAccessibleDescription(f"Run state: {state}")
