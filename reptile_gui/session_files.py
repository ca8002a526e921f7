"""Opening and saving sessions from the window, and the question asked before unsaved iterations are lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from reptile_gui import session
from reptile_gui.controller import TrainingController

SESSION_FILTER = f"Reptile Lab sessions (*{session.SUFFIX})"


class SessionFiles(QObject):
    """The File menu's session actions on ``controller``'s run, with their dialogs over ``window``.

    An action that would replace a run with unsaved iterations asks first (:meth:`confirm_discard`): save them
    (the action then waits for the save, which may wait for the trainer's checkpoint), discard them, or
    cancel. A save that fails cancels the action it was meant to precede.
    """

    def __init__(self, controller: TrainingController, window: QWidget):
        super().__init__(window)
        self._controller = controller
        self._window = window
        self._after_save: Callable[[], None] | None = None
        controller.sessionSaved.connect(self._on_session_saved)
        controller.failed.connect(self._forget_pending_action)

    def confirm_discard(self, action: str) -> QMessageBox.StandardButton:
        """Ask whether to save the run's unsaved iterations before ``action`` replaces it."""
        return QMessageBox.question(
            self._window, "Unsaved run",
            f"The run has trained {self._controller.iteration:,} iterations that are not saved in a session. "
            f"Save them before {action}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def ask_session_path(self) -> str:
        """The file to save the session to, from a dialog (empty if cancelled)."""
        path, _ = QFileDialog.getSaveFileName(self._window, "Save session", "run" + session.SUFFIX, SESSION_FILTER)
        return path

    def proceed_over_unsaved_work(self, action: str, proceed: Callable[[], None]) -> bool:
        """Call ``proceed`` now, or after saving the session if the user asks to, unless that would lose
        unsaved iterations and the user cancels. Returns False when cancelled."""
        if not self._controller.unsaved:
            proceed()
            return True
        choice = self.confirm_discard(action)
        if choice == QMessageBox.StandardButton.Discard:
            proceed()
            return True
        if choice == QMessageBox.StandardButton.Save:
            path = self.ask_session_path()
            if path:
                self._after_save = proceed
                self._controller.save_session(path)
                return True
        return False

    def save(self) -> None:
        """Save the session where a dialog says."""
        path = self.ask_session_path()
        if path:
            self._controller.save_session(path)

    def open(self) -> None:
        """Open the session a dialog names."""
        path, _ = QFileDialog.getOpenFileName(self._window, "Open session", "", SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Replace the run by the session at ``path``, asking first if that would lose unsaved iterations."""
        self.proceed_over_unsaved_work("opening another session", lambda: self._controller.load_session(path))

    def _on_session_saved(self, _path: str) -> None:
        proceed, self._after_save = self._after_save, None
        if proceed is not None:
            proceed()

    def _forget_pending_action(self, *_) -> None:
        self._after_save = None  # a failed save must not go on to replace the run it was meant to keep
