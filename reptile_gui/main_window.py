"""The main window: composition and wiring only. Behaviour lives in the controller, widgets and plots."""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
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
        side = QWidget()
        side.setObjectName("sidePanel")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(6, 6, 6, 6)
        side_layout.addWidget(self.controls)
        side_layout.addWidget(self.picker)
        side_layout.addWidget(self.panel, 1)
        side.setMinimumWidth(420)

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
        bottom.setSizes([600, 600, 500])
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
        main.addWidget(side)
        main.addWidget(right)
        main.setStretchFactor(1, 1)
        main.setSizes([430, 1170])
        self.setCentralWidget(main)
        self.resize(1700, 1100)

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
        c.failed.connect(lambda message, details: self.banner.show_message("error", message, details))
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
        self.status.update_from(self.store, self.controller.state, self.controller.config.device)

    def _on_state(self, state: str) -> None:
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

    def _request_changes(self, changes: dict) -> None:
        try:
            self.controller.update(changes)
        except ConfigError as exc:
            self._show_config_error(exc)

    def _show_config_error(self, exc: ConfigError) -> None:
        self.panel.show_error(exc.field, str(exc))
        self.status.showMessage(str(exc), 8000)

    def _change_to(self, target: ExperimentConfig) -> None:
        """Request every field in which ``target`` differs from the current config, as one update."""
        current = dict((p, v) for p, v, _ in iter_fields(self.controller.config))
        changes = {p: v for p, v, _ in iter_fields(target) if current[p] != v}
        if changes:
            self._request_changes(changes)

    def _choose_preset(self, name: str) -> None:
        self._change_to(preset(name))

    def _choose_task(self, name: str) -> None:
        """Switch the task; a task of the other kind comes with that kind's preset (a meta-RL family needs
        the meta-RL defaults and surrogate landscape, a task distribution the supervised ones)."""
        if catalog.kind_of(name) == self._kind:
            self._request_changes({"task.name": name})
            return
        preset_name = preset_for_task(name)
        try:
            target = preset(preset_name).with_updates({"task.name": name})
        except ConfigError as exc:
            self._show_config_error(exc)
            return
        self._change_to(target)
        self.picker.set_preset(preset_name)

    def _reset(self) -> None:
        self.banner.hide()
        self.controller.reset()

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

    def _save_session(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save session", "run" + session.SUFFIX,
                                              f"Reptile Lab sessions (*{session.SUFFIX})")
        if path:
            self.controller.save_session(path)

    def _open_session(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open session", "", f"Reptile Lab sessions (*{session.SUFFIX})")
        if path:
            self.controller.load_session(path)

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
        try:
            export.export_all(folder, self.active_plots())
            self.controller.config.save(folder / "config.toml")
            with open(folder / "metrics.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(columns)
                writer.writerows(zip(*(self.store.column(name).tolist() for name in columns), strict=True))
        except (export.ExportError, OSError) as exc:
            self.banner.show_message("error", f"Export to {folder} failed: {exc}")
            return False
        self.status.showMessage(f"Exported everything to {folder}", 8000)
        return True

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        self._redraw.stop()
        self.controller.shutdown()
        event.accept()
