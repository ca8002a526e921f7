"""Query loss before and after adaptation against meta-iteration (or wall time), with smoothing."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QWidget
from superqt import QLabeledDoubleSlider

from reptile_gui.plots.base import PALETTE, StorePlot, name_control
from reptile_gui.plots.smoothing import IncrementalEma, debiased_ema
from reptile_gui.store import ChangeMarker, RunStore

__all__ = ["MarkerLine", "TrainingCurvePlot", "debiased_ema"]

X_ITERATION = "iteration"
X_WALL_TIME = "wall time (s)"
_X_AXES = {X_ITERATION: ("iteration", "meta-iteration (iteration)"),
           X_WALL_TIME: ("elapsed", "wall time (s)")}


class MarkerLine(pg.InfiniteLine):
    """A vertical hyperparameter-change marker whose text shows while the mouse is over it."""

    def __init__(self) -> None:
        pen = pg.mkPen(PALETTE.color("marker", 0.75), width=1.2, style=Qt.PenStyle.DashLine)
        hover = pg.mkPen(PALETTE.color("marker"), width=2.5)
        super().__init__(angle=90, movable=False, pen=pen, hoverPen=hover, label="",
                         labelOpts={"position": 0.92, "color": PALETTE.marker,
                                    "fill": pg.mkBrush(255, 255, 255, 235),
                                    "border": pg.mkPen(PALETTE.marker), "anchors": [(0, 0.5), (1, 0.5)]})
        self.setZValue(20)
        self.label.setVisible(False)
        self.text = ""

    def set_marker(self, x: float, text: str) -> None:
        self.setValue(x)
        if text != self.text:
            self.text = text
            self.label.setFormat(text.replace("{", "{{").replace("}", "}}"))
            self.setToolTip(text)

    def hoverEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph's name)
        hovering = not ev.isExit()
        self.setMouseHover(hovering)
        self.label.setVisible(hovering)


class TrainingCurvePlot(StorePlot):
    """Mean query MSE before and after the inner loop, per meta-iteration.

    Controls: a smoothing slider (TensorBoard's debiased EMA, 0 = raw), a log-y check box and an
    x-axis choice (iteration or wall time). With smoothing on, the raw series stay visible as faint
    lines behind the smoothed ones. Vertical dashed lines mark hyperparameter changes; hovering one
    shows what changed.

    Public items (for tests and the main window): ``curve_before``/``curve_after`` (the plotted,
    possibly smoothed series), ``raw_before``/``raw_after`` (the raw series, shown when smoothing),
    ``marker_lines`` (the pool; the first ``len(store.markers)`` are visible).
    """

    versions = ("metrics_version", "markers_version")
    plot_name = "training_curve"
    title = "Training curve"
    empty_text = "No iterations yet: start training to see the loss"

    def __init__(self, store: RunStore, parent: QWidget | None = None, *, smoothing: float = 0.98,
                 log_y: bool = True, x_axis: str = X_ITERATION):
        super().__init__(store, parent)
        self.set_axis_label("left", "query loss (MSE)")
        self.plot_item.setDownsampling(auto=True, mode="peak")
        self.plot_item.setClipToView(True)

        # One-pixel pens without antialiasing: Qt strokes wider or antialiased polylines many times slower
        # (1.5 s a frame at 1e6 points), and this plot redraws at 30 Hz while training runs.
        dense = {"width": 1.0, "antialias": False}
        self.raw_before = self.make_curve(None, PALETTE.color("pre_adaptation", 0.15), z=1, **dense)
        self.raw_after = self.make_curve(None, PALETTE.color("post_adaptation", 0.15), z=2, **dense)
        self.curve_before = self.make_curve("loss before adaptation", PALETTE.pre_adaptation, z=3, **dense)
        self.curve_after = self.make_curve("loss after adaptation", PALETTE.post_adaptation, z=4, **dense)
        self._marker_legend = self.make_curve(None, PALETTE.color("marker", 0.75), width=1.2,
                                              style=Qt.PenStyle.DashLine)
        self._marker_legend_shown = False
        self.marker_lines: list[MarkerLine] = []
        self._following = True
        self._moving_range = False
        self.view_box.sigRangeChangedManually.connect(self._stop_following)
        self._ema_before = IncrementalEma()
        self._ema_after = IncrementalEma()

        label = QLabel("Smoothing", self)
        self.smoothing_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal, self)
        self.smoothing_slider.setRange(0.0, 0.999)
        self.smoothing_slider.setDecimals(3)
        self.smoothing_slider.setSingleStep(0.001)
        self.smoothing_slider.setValue(smoothing)
        name_control(self.smoothing_slider, "training_curve_smoothing", "Smoothing weight",
                     "Exponential moving average weight (0 = raw data), debiased as in TensorBoard")
        for child in self.smoothing_slider.findChildren(QWidget):
            kind = "slider" if "Slider" in type(child).__name__ else "value"
            name_control(child, f"training_curve_smoothing_{kind}", f"Smoothing weight {kind}")
        label.setBuddy(self.smoothing_slider)

        self.log_y_check = QCheckBox("log y", self)
        self.log_y_check.setChecked(log_y)
        name_control(self.log_y_check, "training_curve_log_y", "Logarithmic loss axis",
                     "Show the loss on a logarithmic axis")

        self.x_axis_combo = QComboBox(self)
        self.x_axis_combo.addItems(list(_X_AXES))
        self.x_axis_combo.setCurrentText(x_axis)
        name_control(self.x_axis_combo, "training_curve_x_axis", "Horizontal axis",
                     "Plot against meta-iteration or wall-clock time")

        self.controls.addWidget(label)
        self.controls.addWidget(self.smoothing_slider, 1)
        self.controls.addWidget(self.log_y_check)
        self.controls.addWidget(QLabel("x axis", self))
        self.controls.addWidget(self.x_axis_combo)

        self.smoothing_slider.valueChanged.connect(self._settings_changed)
        self.log_y_check.toggled.connect(self._settings_changed)
        self.plot_item.ctrl.logYCheck.toggled.connect(self.log_y_check.setChecked)
        self.x_axis_combo.currentTextChanged.connect(self._settings_changed)
        self._finish_init()

    # -- settings --------------------------------------------------------------------------------

    @property
    def smoothing(self) -> float:
        return float(self.smoothing_slider.value())

    @property
    def x_column(self) -> str:
        return _X_AXES[self.x_axis_combo.currentText()][0]

    # -- drawing ---------------------------------------------------------------------------------

    def data_size(self) -> int:
        return len(self.store)

    def _smoothed(self) -> tuple[np.ndarray, np.ndarray]:
        before, after = self.store.column("loss_before"), self.store.column("loss_after")
        weight = self.smoothing
        if weight <= 0.0:
            return before, after
        return self._ema_before.update(before, weight), self._ema_after.update(after, weight)

    def _redraw(self) -> None:
        store = self.store
        x = store.column(self.x_column)
        before, after = store.column("loss_before"), store.column("loss_after")
        smooth_before, smooth_after = self._smoothed()
        smoothing = self.smoothing > 0.0
        log_y = self.log_y_check.isChecked()
        if log_y != self.plot_item.ctrl.logYCheck.isChecked():
            self.plot_item.setLogMode(x=False, y=log_y)
        x_label = _X_AXES[self.x_axis_combo.currentText()][1]
        if x_label != self.plot_item.getAxis("bottom").labelText:
            self.set_axis_label("bottom", x_label)

        self.curve_before.setData(x, smooth_before)
        self.curve_after.setData(x, smooth_after)
        self._follow(x)
        for raw, values in ((self.raw_before, before), (self.raw_after, after)):
            raw.setVisible(smoothing)
            if smoothing:
                raw.setData(x, values)
            elif raw.xData is not None and len(raw.xData):
                raw.setData([], [])
        self._draw_markers(store.markers)
        self.show_placeholder(len(x) == 0)

    FOLLOW_HEADROOM = 1.3

    def _follow(self, x: np.ndarray) -> None:
        """Keep the x range ahead of the data in steps rather than every frame.

        Growing the range on every redraw makes pyqtgraph re-render both axes and the grid each frame
        (the bulk of a paint while training runs fast); extending it by ``FOLLOW_HEADROOM`` only when
        the data reaches the edge lets the axes stay cached in between. Pan or zoom by hand stops the
        following; pyqtgraph's auto-range button ("A") resumes it.
        """
        view = self.view_box
        if view.autoRangeEnabled()[0]:
            self._following = True
            view.enableAutoRange(x=False)
        if not self._following or len(x) == 0:
            return
        first, last = float(x[0]), float(x[-1])
        low, high = view.viewRange()[0]
        if last > high or first < low or (last - first) < (high - low) / (2 * self.FOLLOW_HEADROOM):
            self._moving_range = True
            view.setXRange(first, first + max((last - first) * self.FOLLOW_HEADROOM, 1.0), padding=0)
            self._moving_range = False

    def _stop_following(self, *_) -> None:
        if not self._moving_range:
            self._following = False

    def _draw_markers(self, markers: list[ChangeMarker]) -> None:
        while len(self.marker_lines) < len(markers):
            line = MarkerLine()
            self.plot_item.addItem(line, ignoreBounds=True)
            self.marker_lines.append(line)
        by_time = self.x_column == "elapsed"
        for line, marker in zip(self.marker_lines, markers, strict=False):
            x = marker.elapsed if by_time else marker.iteration
            line.set_marker(x, f"iteration {marker.iteration}: {marker.text}")
            line.setVisible(True)
        for line in self.marker_lines[len(markers):]:
            line.setVisible(False)
        if bool(markers) != self._marker_legend_shown:
            self._marker_legend_shown = bool(markers)
            if markers:
                self.legend.addItem(self._marker_legend, "hyperparameter change")
            else:
                self.legend.removeItem(self._marker_legend)

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """``iteration, elapsed, loss_before, loss_after`` raw, plus ``*_smoothed`` when smoothing > 0."""
        store = self.store
        header = ["iteration", "elapsed", "loss_before", "loss_after"]
        columns = [store.column(name) for name in header]
        if self.smoothing > 0.0:
            header += ["loss_before_smoothed", "loss_after_smoothed"]
            columns += [np.array(c) for c in self._smoothed()]
        return header, columns
