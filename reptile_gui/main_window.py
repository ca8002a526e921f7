"""The main window: composition and wiring only. Behaviour lives in the controller, widgets and plots."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from reptile_engine import catalog
from reptile_engine.config import ConfigError, ExperimentConfig, iter_fields
from reptile_engine.events import ConfigChanged, Diverged
from reptile_engine.presets import preset, preset_for_task
from reptile_gui import export, session
from reptile_gui.controller import ACTIONS, TrainingController
from reptile_gui.plots.adaptation_curve import AdaptationCurvePlot
from reptile_gui.plots.base import StorePlot
from reptile_gui.plots.landscape import LandscapePlot
from reptile_gui.plots.rl_curves import ReturnsPlot, RLLossPlot
from reptile_gui.plots.rollouts import RolloutPlot
from reptile_gui.plots.task_view import TaskViewPlot
from reptile_gui.plots.training_curve import TrainingCurvePlot
from reptile_gui.store import RunStore
from reptile_gui.widgets.hyperparameters import HyperparameterPanel
from reptile_gui.widgets.run_controls import RunControls
from reptile_gui.widgets.status_bar import RunStatusBar
from reptile_gui.widgets.task_picker import TaskPicker

REDRAW_MS = 33

KIND_PLOTS: dict[str, tuple[str, ...]] = {
    "supervised": ("adaptation_curve", "task_view", "training_curve", "landscape"),
    "rl": ("adaptation_curve", "rollouts", "returns", "rl_losses", "landscape"),
}
"""The plots each kind of run shows (and exports), by ``MainWindow.plots`` key."""

LANDSCAPE_STATES = frozenset({"ready", "running", "paused"})
"""The run states in which a requested landscape slice is computed (in the others none is coming)."""


class MessageBanner(QFrame):
    """A dismissible strip above the plots for divergence and engine errors, with details on demand."""

    STYLES = {"error": "#fdecea", "warning": "#fff4e5"}

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.setAccessibleName("Run messages")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setObjectName("messageBannerText")
        self.text.setAccessibleName("Run message text")
        self.details_button = QPushButton("Details…")
        self.details_button.setObjectName("messageBannerDetails")
        self.details_button.setAccessibleName("Show message details")
        self.close_button = QPushButton("Dismiss")
        self.close_button.setObjectName("messageBannerDismiss")
        self.close_button.setAccessibleName("Dismiss message")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.details_button)
        layout.addWidget(self.close_button)
        self._details = ""
        self.details_button.clicked.connect(self._show_details)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def show_message(self, kind: str, text: str, details: str = "") -> None:
        self.setStyleSheet(f"MessageBanner {{ background: {self.STYLES[kind]}; border-radius: 4px; }}")
        self.text.setText(text)
        self._details = details
        self.details_button.setVisible(bool(details))
        self.show()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Details", self.text.text(), parent=self)
        box.setDetailedText(self._details)
        box.open()


class MainWindow(QMainWindow):
    """Reptile Lab's window: controls on the left, the adaptation curve and task view on top, the
    meta-training curve and the loss landscape below.

    A meta-RL config shows the rollouts in place of the task view and the returns over the RL losses in
    place of the training curve (``KIND_PLOTS``); the window follows the config's kind as it changes.
    """

    def __init__(self, config: ExperimentConfig | None = None):
        super().__init__()
        config = config if config is not None else preset("default")
        self.setWindowTitle("Reptile Lab")
        self.setObjectName("mainWindow")
        # Qt deletes the window and its plots while the application still runs; left to interpreter
        # shutdown, pyqtgraph's items can be torn down out of order and crash the exit.
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.store = RunStore()
        self.controller = TrainingController(config, self.store, parent=self)

        self.controls = RunControls()
        self.picker = TaskPicker()
        self.picker.set_task(config.task.name)
        self.panel = HyperparameterPanel(config)
        self.status = RunStatusBar()
        self.setStatusBar(self.status)
        self.banner = MessageBanner()
        self.plots: dict[str, StorePlot] = {
            "adaptation_curve": AdaptationCurvePlot(self.store),
            "task_view": TaskViewPlot(self.store),
            "rollouts": RolloutPlot(self.store),
            "training_curve": TrainingCurvePlot(self.store),
            "returns": ReturnsPlot(self.store),
            "rl_losses": RLLossPlot(self.store),
            "landscape": LandscapePlot(self.store, config=config),
        }
        self._export_actions: dict[str, QAction] = {}
        self._after_save: Callable[[], None] | None = None
        self._divergence_on_banner = False
        self._kind = ""
        self._task_seed = 0
        self._next_plot = 0
        self._build_menus()
        self._build_layout()
        self._connect()

        self._redraw = QTimer(self)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._refresh)
        self._redraw.start()
        self._on_state(self.controller.state)
        self.controller.open()

    # Composition.

    def _build_layout(self) -> None:
        """Controls on the left in a scroll area, the plots in splitters on the right.

        Everything must stay reachable in a 1280×720 window: the run controls and the landscape's controls
        wrap onto more lines, long read-outs shorten with "…", the side panel scrolls, and the splitters
        can be dragged (a plot or the side panel collapses when dragged to the edge).
        """
        side = QWidget()
        side.setObjectName("sidePanel")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 6, 6, 6)
        side_layout.addWidget(self.controls)
        side_layout.addWidget(self.picker)
        side_layout.addWidget(self.panel, 1)
        side_scroll = QScrollArea()
        side_scroll.setObjectName("sidePanelScroll")
        side_scroll.setAccessibleName("Run controls and hyperparameters")
        side_scroll.setWidgetResizable(True)
        side_scroll.setFrameShape(QFrame.Shape.NoFrame)
        side_scroll.setWidget(side)
        for bar, orientation in ((side_scroll.verticalScrollBar(), "vertical"),
                                 (side_scroll.horizontalScrollBar(), "horizontal")):
            bar.setObjectName(f"sidePanelScroll_{orientation}")
            bar.setAccessibleName(f"Scroll the side panel ({orientation})")

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.plots["adaptation_curve"])
        top.addWidget(self.plots["task_view"])
        top.addWidget(self.plots["rollouts"])
        self._rl_history = QSplitter(Qt.Orientation.Vertical)
        self._rl_history.addWidget(self.plots["returns"])
        self._rl_history.addWidget(self.plots["rl_losses"])
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.plots["training_curve"])
        bottom.addWidget(self._rl_history)
        bottom.addWidget(self.plots["landscape"])
        self._show_kind(self.panel.kind)  # before any size is set: the hidden plots' widths must not count
        bottom.setSizes([500, 500, 560])
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(top)
        plots.addWidget(bottom)
        plots.setSizes([450, 550])
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 6, 6, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(plots, 1)

        main = QSplitter(Qt.Orientation.Horizontal)
        main.setObjectName("mainSplitter")
        main.addWidget(side_scroll)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        side_width = side.sizeHint().width() + side_scroll.verticalScrollBar().sizeHint().width()
        main.setSizes([side_width, 1600 - side_width])
        self.setCentralWidget(main)
        screen = self.screen().availableGeometry()
        self.resize(min(1600, screen.width()), min(1000, screen.height()))

        landscape: LandscapePlot = self.plots["landscape"]

        def end_landscape_wait(text: str) -> None:
            if "landscape" in text:  # the controller refused the slice, or the trainer rejected its settings
                landscape.set_busy(False)

        self.controller.message.connect(end_landscape_wait)
        self.controller.stateChanged.connect(
            lambda state: landscape.set_busy(False) if state not in LANDSCAPE_STATES else None)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._add_action(file_menu, "Open session…", QKeySequence.StandardKey.Open, self._open_session)
        self._add_action(file_menu, "Save session…", QKeySequence.StandardKey.Save, self._save_session)
        file_menu.addSeparator()
        export_menu = file_menu.addMenu("Export")
        for name, plot in self.plots.items():
            self._export_actions[name] = self._add_action(
                export_menu, f"{plot.title}…", None, lambda _=False, p=plot: self._export_plot(p))
        self._add_action(file_menu, "Export all…", "Ctrl+E", self._export_all)
        file_menu.addSeparator()
        self._add_action(file_menu, "Quit", QKeySequence.StandardKey.Quit, self.close)
        run_menu = self.menuBar().addMenu("&Run")
        for action in self.controls.actions():
            run_menu.addAction(action)
            self.addAction(action)
        for overflow in self.menuBar().findChildren(QToolButton):
            overflow.setObjectName("menuBarOverflow")
            overflow.setAccessibleName("More menus")

    def _add_action(self, menu, text: str, shortcut, slot) -> QAction:
        action = QAction(text, self)
        action.setObjectName("action" + "".join(w.capitalize() for w in text.strip("…").split()))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)
        menu.addAction(action)
        return action

    def _connect(self) -> None:
        c = self.controller
        self.controls.startRequested.connect(c.start)
        self.controls.pauseRequested.connect(c.pause)
        self.controls.resumeRequested.connect(c.resume)
        self.controls.toggleRequested.connect(c.toggle)
        self.controls.stepRequested.connect(c.step)
        self.controls.stopRequested.connect(c.stop)
        self.controls.resetRequested.connect(self._reset)
        self.panel.changesRequested.connect(self._request_changes)
        self.picker.taskChosen.connect(self._choose_task)
        self.picker.presetChosen.connect(self._choose_preset)
        c.stateChanged.connect(self._on_state)
        c.configChanged.connect(self._on_config)
        c.changeApplied.connect(self._on_change_applied)
        c.changeRejected.connect(self.panel.show_error)
        c.diverged.connect(self._on_diverged)
        c.failed.connect(self._on_failed)
        c.sessionSaved.connect(self._on_session_saved)
        c.message.connect(lambda text: self.status.showMessage(text, 8000))
        landscape: LandscapePlot = self.plots["landscape"]
        landscape.changesRequested.connect(self._request_changes)
        landscape.recomputeRequested.connect(c.compute_landscape)
        task_view: TaskViewPlot = self.plots["task_view"]
        task_view.pointAdded.connect(self._add_support_point)
        task_view.pointRemoved.connect(self._remove_support_point)
        task_view.newTaskRequested.connect(self._new_task)
        rollouts: RolloutPlot = self.plots["rollouts"]
        rollouts.newTaskRequested.connect(self._new_task)
        for plot in self.plots.values():
            plot.exportFailed.connect(lambda message: self.banner.show_message("error", message))
            plot.exportFinished.connect(lambda path: self.status.showMessage(f"Exported {path}", 8000))

    # Reactions.

    def _refresh(self) -> None:
        """Redraw at most one plot per tick, round-robin among those with news.

        When an adaptation curve, a task fit and a landscape slice land together, drawing all of them
        in one tick would block the event loop for the sum of their paints; spread over consecutive
        ticks each costs one paint, and the display lags by at most a few ticks.
        """
        plots = [plot for plot in self.plots.values() if plot.isVisible()]
        for offset in range(len(plots)):
            index = (self._next_plot + offset) % len(plots)
            if plots[index].refresh():
                self._next_plot = index + 1
                break
        self.status.update_from(self.store, self.controller.state, self.controller.config.device,
                                self.controller.progress)

    def _on_state(self, state: str) -> None:
        if state == "running" and self._divergence_on_banner:
            self.banner.hide()
            self._divergence_on_banner = False
        self.controls.set_state(state, ACTIONS[state])
        self.panel.set_editability(self.controller.editable_now)
        self.picker.set_enabled_for_state(self.controller.editable_now("task.name"))

    def _on_config(self, config: ExperimentConfig) -> None:
        self.panel.set_config(config)
        self.plots["landscape"].set_config(config)
        self.picker.set_task(config.task.name)
        self._show_kind(self.panel.kind)

    @property
    def kind(self) -> str:
        """The kind of run the window shows: ``"supervised"`` or ``"rl"`` (the config's)."""
        return self._kind

    def active_plots(self) -> dict[str, StorePlot]:
        """The plots of the config's kind of run, the ones on show and exported."""
        return {name: self.plots[name] for name in KIND_PLOTS[self._kind]}

    def _show_kind(self, kind: str) -> None:
        """Show the plots of ``kind``'s runs, hide the others, and offer only theirs for export."""
        if kind == self._kind:
            return
        self._kind = kind
        for name, plot in self.plots.items():
            shown = name in KIND_PLOTS[kind]
            plot.setVisible(shown)
            self._export_actions[name].setVisible(shown)
        self._rl_history.setVisible(kind == "rl")

    def _on_change_applied(self, event: ConfigChanged) -> None:
        self.panel.show_applied(event)
        self.status.show_change(event)

    def _on_diverged(self, event: Diverged) -> None:
        hyper = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                          for k, v in event.hyperparameters.items())
        self.banner.show_message(
            "warning",
            f"Diverged at iteration {event.iteration}: {event.reason}. The meta-parameters were rolled back to "
            f"iteration {event.rolled_back_to} and training paused; change the culprit (often inner.lr or "
            f"meta.lr) and training continues.", f"Hyperparameters in force:\n{hyper}")
        self._divergence_on_banner = True
        self.panel.change_log.insertItem(0, f"diverged at iteration {event.iteration}: {event.reason}; "
                                            f"rolled back to iteration {event.rolled_back_to}")

    def _on_failed(self, message: str, details: str) -> None:
        self._after_save = None  # a failed save must not go on to replace the run it was meant to keep
        self._divergence_on_banner = False
        self.banner.show_message("error", message, details)

    def _request_changes(self, changes: dict) -> None:
        try:
            self.controller.update(changes)
        except ConfigError as exc:
            self._show_config_error(exc)

    def _show_config_error(self, exc: ConfigError) -> None:
        self.panel.show_error(exc.field, str(exc))
        self.status.showMessage(str(exc), 8000)

    def _change_to(self, target: ExperimentConfig) -> bool:
        """Request every field in which ``target`` differs from the current config, as one update.

        Returns False when the user kept the run instead (the change would have discarded unsaved work).
        """
        current = dict((p, v) for p, v, _ in iter_fields(self.controller.config))
        changes = {p: v for p, v, _ in iter_fields(target) if current[p] != v}
        return not changes or self._request_run_changes(changes)

    def _request_run_changes(self, changes: dict) -> bool:
        """Request ``changes`` of task or preset; one that discards the run asks first over unsaved work."""
        if not self.controller.discards_run(changes):
            self._request_changes(changes)
            return True
        if self._proceed_over_unsaved_work("switching the task", lambda: self._request_changes(changes)):
            return True
        self.picker.set_task(self.controller.config.task.name)
        self.picker.set_preset(None)
        return False

    def _choose_preset(self, name: str) -> None:
        self._change_to(preset(name))

    def _choose_task(self, name: str) -> None:
        """Switch the task; a task of the other kind comes with that kind's preset (a meta-RL family needs
        the meta-RL defaults and surrogate landscape, a task distribution the supervised ones)."""
        if catalog.kind_of(name) == self._kind:
            self._request_run_changes({"task.name": name})
            return
        preset_name = preset_for_task(name)
        try:
            target = preset(preset_name).with_updates({"task.name": name})
        except ConfigError as exc:
            self._show_config_error(exc)
            return
        if self._change_to(target):
            self.picker.set_preset(preset_name)

    def _reset(self) -> None:
        self._proceed_over_unsaved_work("resetting", self._reset_now)

    def _reset_now(self) -> None:
        self.banner.hide()
        self.controller.reset()

    # Unsaved work.

    def _confirm_discard(self, action: str) -> QMessageBox.StandardButton:
        """Ask whether to save the run's unsaved iterations before ``action`` replaces it."""
        return QMessageBox.question(
            self, "Unsaved run",
            f"The run has trained {self.controller.iteration:,} iterations that are not saved in a session. "
            f"Save them before {action}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save)

    def _proceed_over_unsaved_work(self, action: str, proceed: Callable[[], None]) -> bool:
        """Call ``proceed`` now, or after saving the session if the user asks to, unless that would lose
        unsaved iterations and the user cancels. Returns False when cancelled."""
        if not self.controller.unsaved:
            proceed()
            return True
        choice = self._confirm_discard(action)
        if choice == QMessageBox.StandardButton.Discard:
            proceed()
            return True
        if choice == QMessageBox.StandardButton.Save:
            path = self._ask_session_path()
            if path:
                self._after_save = proceed  # the save may wait for the trainer's checkpoint
                self.controller.save_session(path)
                return True
        return False

    def _on_session_saved(self, _path: str) -> None:
        proceed, self._after_save = self._after_save, None
        if proceed is not None:
            proceed()

    def _support(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The support shown now: the view's (it includes edits not yet re-fitted), else the last fit's."""
        xs, ys = self.plots["task_view"].support_points()
        fit = self.store.task_fit
        if not xs and fit is not None:
            xs, ys = tuple(fit.support_x.tolist()), tuple(fit.support_y.tolist())
        return tuple(xs), tuple(ys)

    def _refit(self, xs: tuple[float, ...], ys: tuple[float, ...]) -> None:
        self.plots["task_view"].set_support_points(xs, ys)
        self.controller.fit_task(support=(xs, ys))

    def _add_support_point(self, x: float, y: float) -> None:
        xs, ys = self._support()
        self._refit(xs + (x,), ys + (y,))

    def _remove_support_point(self, index: int) -> None:
        xs, ys = self._support()
        self._refit(xs[:index] + xs[index + 1:], ys[:index] + ys[index + 1:])

    def _new_task(self) -> None:
        self._task_seed += 1
        self.controller.fit_task(seed=self._task_seed)

    # Files.

    def _ask_session_path(self) -> str:
        """The file to save the session to, from a dialog (empty if cancelled)."""
        path, _ = QFileDialog.getSaveFileName(self, "Save session", "run" + session.SUFFIX,
                                              f"Reptile Lab sessions (*{session.SUFFIX})")
        return path

    def _save_session(self) -> None:
        path = self._ask_session_path()
        if path:
            self.controller.save_session(path)

    def _open_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", f"Reptile Lab sessions (*{session.SUFFIX})")
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Replace the run by the session at ``path``, asking first if that would lose unsaved iterations."""
        self._proceed_over_unsaved_work("opening another session", lambda: self.controller.load_session(path))

    def _export_plot(self, plot: StorePlot) -> None:
        path, _ = QFileDialog.getSaveFileName(self, f"Export {plot.title}", f"{plot.plot_name}.png",
                                              "PNG image (*.png);;SVG image (*.svg);;CSV data (*.csv)")
        if path:
            self.export_plot(plot, path)

    def export_plot(self, plot: StorePlot, path: str | Path) -> bool:
        """Write ``plot`` as PNG, SVG or CSV by the suffix of ``path``; report failure in the banner."""
        writers = {".png": plot.export_png, ".svg": plot.export_svg, ".csv": plot.export_csv}
        writer = writers.get(Path(path).suffix.lower(), plot.export_png)
        try:
            written = writer(path)
        except export.ExportError as exc:
            self.banner.show_message("error", str(exc))
            return False
        self.status.showMessage(f"Exported {written}", 8000)
        return True

    def _export_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export all into folder")
        if folder:
            self.export_all(folder)

    def export_all(self, folder: str | Path) -> bool:
        """The plots on show as PNG, SVG and CSV, plus ``config.toml`` and ``metrics.csv`` (the run's metric
        columns), into ``folder``."""
        folder = Path(folder)
        columns = self.store.metric_columns

        def write_metrics(path: Path) -> None:
            with open(path, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(self.store.history_rows())

        try:  # all files or none: a failure leaves no partial set
            export.export_all(folder, self.active_plots(),
                              files={"config.toml": self.controller.config.save, "metrics.csv": write_metrics})
        except (export.ExportError, OSError) as exc:
            self.banner.show_message("error", str(exc))
            return False
        self.status.showMessage(f"Exported everything to {folder}", 8000)
        return True

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        """Leave the screen at once, then end the trainer (the window must not sit frozen while it goes)."""
        self._redraw.stop()
        self.hide()
        QApplication.sync()
        self.controller.shutdown()
        event.accept()
