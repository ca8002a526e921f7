"""The main window: composition and wiring only. Behaviour lives in the controller, widgets and plots."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.events import ConfigChanged, Diverged
from reptile_engine.presets import preset
from reptile_gui import task_choice
from reptile_gui.controller import ACTIONS, TrainingController
from reptile_gui.export_files import ExportFiles
from reptile_gui.message_banner import MessageBanner, divergence_message
from reptile_gui.plots.adaptation_curve import AdaptationCurvePlot
from reptile_gui.plots.base import StorePlot
from reptile_gui.plots.landscape import LandscapePlot
from reptile_gui.plots.rl_curves import ReturnsPlot, RLLossPlot
from reptile_gui.plots.rollouts import RolloutPlot
from reptile_gui.plots.task_view import TaskViewPlot
from reptile_gui.plots.training_curve import TrainingCurvePlot
from reptile_gui.session_files import SessionFiles
from reptile_gui.store import RunStore
from reptile_gui.widgets.hyperparameters import HyperparameterPanel
from reptile_gui.widgets.landscape_controls import LandscapeControls
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


class MainWindow(QMainWindow):
    """Reptile Lab's window: controls on the left, the adaptation curve and task view on top, the
    meta-training curve and the loss landscape below.

    A meta-RL config shows the rollouts in place of the task view and the returns over the RL losses in
    place of the training curve (``KIND_PLOTS``); the window follows the config's kind as it changes.
    ``export_actions`` holds the File ▸ Export menu's action of each plot, by ``plots`` key; ``exports`` and
    ``session_files`` carry out the File menu's actions.
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
        self.session_files = SessionFiles(self.controller, self)

        self.controls = RunControls()
        self.picker = TaskPicker()
        self.picker.set_task(config.task.name)
        self.panel = HyperparameterPanel(config)
        self.landscape_controls = LandscapeControls(config)
        self.status = RunStatusBar()
        self.setStatusBar(self.status)
        self.banner = MessageBanner()
        self.exports = ExportFiles(self, self.store, self.controller, self.banner, self.status, self.active_plots)
        self.plots: dict[str, StorePlot] = {
            "adaptation_curve": AdaptationCurvePlot(self.store),
            "task_view": TaskViewPlot(self.store),
            "rollouts": RolloutPlot(self.store),
            "training_curve": TrainingCurvePlot(self.store),
            "returns": ReturnsPlot(self.store),
            "rl_losses": RLLossPlot(self.store),
            "landscape": LandscapePlot(self.store),
        }
        self.export_actions: dict[str, QAction] = {}
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
        side_scroll = self._build_side_panel()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 6, 6, 0)
        right_layout.addWidget(self.banner)
        right_layout.addWidget(self._build_plot_splitters(), 1)

        main = QSplitter(Qt.Orientation.Horizontal)
        main.setObjectName("mainSplitter")
        main.addWidget(side_scroll)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        side_width = side_scroll.widget().sizeHint().width() + side_scroll.verticalScrollBar().sizeHint().width()
        main.setSizes([side_width, 1600 - side_width])
        self.setCentralWidget(main)
        screen = self.screen().availableGeometry()
        self.resize(min(1600, screen.width()), min(1000, screen.height()))

    def _build_side_panel(self) -> QScrollArea:
        """The run controls, the task picker and the hyperparameters, one above the other, scrolling."""
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
        return side_scroll

    def _build_plot_splitters(self) -> QSplitter:
        """The plots of both kinds in splitters, those of the config's kind on show."""
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
        self.plots["landscape"].controls.addWidget(self.landscape_controls, 1)  # above the graph it steers
        bottom.addWidget(self.plots["landscape"])
        self.show_kind(self.panel.kind)  # before any size is set: the hidden plots' widths must not count
        bottom.setSizes([500, 500, 560])
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(top)
        plots.addWidget(bottom)
        plots.setSizes([450, 550])
        return plots

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._add_action(file_menu, "Open session…", QKeySequence.StandardKey.Open, self.session_files.open)
        self._add_action(file_menu, "Save session…", QKeySequence.StandardKey.Save, self.session_files.save)
        file_menu.addSeparator()
        export_menu = file_menu.addMenu("Export")
        for name, plot in self.plots.items():
            self.export_actions[name] = self._add_action(
                export_menu, f"{plot.title}…", None, lambda _=False, p=plot: self.exports.ask_and_export_plot(p))
        self._add_action(file_menu, "Export all…", "Ctrl+E", self.exports.ask_and_export_all)
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
        c.message.connect(lambda text: self.status.showMessage(text, 8000))
        self._connect_plots()

    def _connect_plots(self) -> None:
        c = self.controller
        landscape: LandscapePlot = self.plots["landscape"]
        steering = self.landscape_controls
        steering.changesRequested.connect(self._request_changes)
        steering.recomputeRequested.connect(c.compute_landscape)
        steering.busyChanged.connect(landscape.show_waiting)
        landscape.sliceArrived.connect(lambda: steering.set_busy(False))

        def end_landscape_wait(text: str) -> None:
            if "landscape" in text:  # the controller refused the slice, or the trainer rejected its settings
                steering.set_busy(False)

        c.message.connect(end_landscape_wait)
        c.stateChanged.connect(lambda state: steering.set_busy(False) if state not in LANDSCAPE_STATES else None)
        task_view: TaskViewPlot = self.plots["task_view"]
        task_view.supportEdited.connect(lambda xs, ys: c.fit_task(support=(xs, ys)))
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
        self.landscape_controls.set_config(config)
        self.picker.set_task(config.task.name)
        self.show_kind(self.panel.kind)

    @property
    def kind(self) -> str:
        """The kind of run the window shows: ``"supervised"`` or ``"rl"`` (the config's)."""
        return self._kind

    def active_plots(self) -> dict[str, StorePlot]:
        """The plots of the config's kind of run, the ones on show and exported."""
        return {name: self.plots[name] for name in KIND_PLOTS[self._kind]}

    def show_kind(self, kind: str) -> None:
        """Show the plots of ``kind``'s runs, hide the others, and offer only theirs for export."""
        if kind == self._kind:
            return
        self._kind = kind
        for name, plot in self.plots.items():
            shown = name in KIND_PLOTS[kind]
            plot.setVisible(shown)
            self.export_actions[name].setVisible(shown)
        self._rl_history.setVisible(kind == "rl")

    def _on_change_applied(self, event: ConfigChanged) -> None:
        self.panel.show_applied(event)
        self.status.show_change(event)

    def _on_diverged(self, event: Diverged) -> None:
        self.banner.show_message("warning", *divergence_message(event))
        self._divergence_on_banner = True
        self.panel.change_log.insertItem(0, f"diverged at iteration {event.iteration}: {event.reason}; "
                                            f"rolled back to iteration {event.rolled_back_to}")

    def _on_failed(self, message: str, details: str) -> None:
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

    def _apply_choice(self, choice: task_choice.TaskChoice) -> None:
        """Request a task or preset choice's changes; one that discards the run asks first over unsaved work,
        and the picker goes back to the run's task when the user keeps the run."""
        changes = choice.changes
        if changes and not self.controller.discards_run(changes):
            self._request_changes(changes)
        elif changes and not self.session_files.proceed_over_unsaved_work(
                "switching the task", lambda: self._request_changes(changes)):
            self.picker.set_task(self.controller.config.task.name)
            self.picker.set_preset(None)
            return
        if choice.preset is not None:
            self.picker.set_preset(choice.preset)

    def _choose_preset(self, name: str) -> None:
        self._apply_choice(task_choice.choose_preset(self.controller.config, name))

    def _choose_task(self, name: str) -> None:
        try:
            choice = task_choice.choose_task(self.controller.config, name)
        except ConfigError as exc:
            self._show_config_error(exc)
            return
        self._apply_choice(choice)

    def _reset(self) -> None:
        self.session_files.proceed_over_unsaved_work("resetting", self._reset_now)

    def _reset_now(self) -> None:
        self.banner.hide()
        self.controller.reset()

    def _new_task(self) -> None:
        self._task_seed += 1
        self.controller.fit_task(seed=self._task_seed)

    # Files.

    def open_session(self, path: str | Path) -> None:
        """Replace the run by the session at ``path``, asking first if that would lose unsaved iterations."""
        self.session_files.open_session(path)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        """Leave the screen at once, then end the trainer (the window must not sit frozen while it goes)."""
        self._redraw.stop()
        self.hide()
        QApplication.sync()
        self.controller.shutdown()
        event.accept()
