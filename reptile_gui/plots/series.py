"""Metric histories against meta-iteration (or wall time): the common base of the training-curve plots.

A :class:`SeriesPlot` draws a few store columns (its ``series``), each smoothed with TensorBoard's debiased
EMA in front of its raw values drawn faintly, with vertical markers where hyperparameters changed. The
supervised training curve and the meta-RL loss and return plots are subclasses that only name their
columns, colours and axis label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSlider, QCheckBox, QComboBox, QLabel, QWidget
from superqt import QLabeledDoubleSlider

from reptile_gui.plots.base import StorePlot, name_control
from reptile_gui.plots.palette import PALETTE
from reptile_gui.plots.smoothing import IncrementalEma, debiased_ema
from reptile_gui.store import ChangeMarker, RunStore

__all__ = ["X_ITERATION", "X_WALL_TIME", "MarkerLine", "Series", "SeriesPlot"]

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


@dataclass(frozen=True)
class Series:
    """One plotted store column: its legend text and its ``Palette`` colour's name."""

    column: str
    label: str
    color: str


class SeriesPlot(StorePlot):
    """Store columns per meta-iteration, smoothed, with change markers.

    Subclasses set ``series``, ``y_label`` and whether a log axis makes sense (``log_y_allowed``).
    Controls: a smoothing slider (TensorBoard's debiased EMA, 0 = raw), a log-y check box (where allowed)
    and an x-axis choice (iteration or wall time). With smoothing on, the raw series stay visible as faint
    lines behind the smoothed ones. On a log axis values <= 0 cannot be drawn: they leave gaps, and a note
    beside the check box says so. Each legend entry ends in its series' latest plotted value, readable even
    where a series of a larger scale flattens it; clicking an entry's line sample hides that series, raw
    values included, and the y range follows the series left. Vertical dashed lines mark hyperparameter
    changes; hovering one shows what changed.

    Public items: ``curves[column]`` (the plotted, possibly smoothed series), ``raw_curves[column]`` (the
    raw series, shown when smoothing), ``marker_lines`` (a pool; the first ``len(store.markers)`` are
    visible), ``log_y_check`` (``None`` where a log axis is not offered) and ``log_note``.
    """

    versions = ("metrics_version", "markers_version")
    series: ClassVar[tuple[Series, ...]] = ()
    y_label: ClassVar[str] = ""
    log_y_allowed: ClassVar[bool] = True
    log_y_tip: ClassVar[str] = "Show the values on a logarithmic axis"
    #: The smoothing weight and the log axis a new plot starts with.
    default_smoothing: ClassVar[float] = 0.98
    default_log_y: ClassVar[bool] = False

    def __init__(self, store: RunStore, parent: QWidget | None = None, *, smoothing: float | None = None,
                 log_y: bool | None = None, x_axis: str = X_ITERATION):
        super().__init__(store, parent)
        smoothing = self.default_smoothing if smoothing is None else smoothing
        log_y = self.default_log_y if log_y is None else log_y
        self.set_axis_label("left", self.y_label)
        self.plot_item.setDownsampling(auto=True, mode="peak")
        self.plot_item.setClipToView(True)

        # One-pixel pens without antialiasing: Qt strokes wider or antialiased polylines many times slower
        # (1.5 s a frame at 1e6 points), and these plots redraw at 30 Hz while training runs.
        dense = {"width": 1.0, "antialias": False}
        count = len(self.series)
        self.raw_curves = {s.column: self.make_curve(None, PALETTE.color(s.color, 0.15), z=1 + i, **dense)
                           for i, s in enumerate(self.series)}
        self.curves = {s.column: self.make_curve(s.label, getattr(PALETTE, s.color), z=1 + count + i, **dense)
                       for i, s in enumerate(self.series)}
        self._emas = {s.column: IncrementalEma() for s in self.series}
        for curve in self.curves.values():
            curve.visibleChanged.connect(self._settings_changed)
        self.legend.setToolTip("Click a line sample to hide or show its series")
        self._marker_legend = self.make_curve(None, PALETTE.color("marker", 0.75), width=1.2,
                                              style=Qt.PenStyle.DashLine)
        self._marker_legend_shown = False
        self.marker_lines: list[MarkerLine] = []
        self._following = True
        self._moving_range = False
        self.view_box.sigRangeChangedManually.connect(self._stop_following)
        self._build_controls(smoothing, log_y, x_axis)
        self._finish_init()

    def _build_controls(self, smoothing: float, log_y: bool, x_axis: str) -> None:
        name = self.plot_name
        label = QLabel("Smoothing", self)
        self.smoothing_slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal, self)
        self.smoothing_slider.setRange(0.0, 0.999)
        self.smoothing_slider.setDecimals(3)
        self.smoothing_slider.setSingleStep(0.001)
        self.smoothing_slider.setValue(smoothing)
        name_control(self.smoothing_slider, f"{name}_smoothing", f"{self.title} smoothing weight",
                     "Exponential moving average weight (0 = raw data), debiased as in TensorBoard")
        for child in self.smoothing_slider.findChildren(QWidget):
            kind = "slider" if isinstance(child, QAbstractSlider) else "value"
            name_control(child, f"{name}_smoothing_{kind}", f"{self.title} smoothing weight {kind}")
        label.setBuddy(self.smoothing_slider)
        self.controls.addWidget(label)
        self.controls.addWidget(self.smoothing_slider, 1)

        self.log_note = QLabel("values ≤ 0: gaps", self)
        self.log_note.setObjectName(f"{name}_log_note")
        self.log_note.setStyleSheet("color: #a05a00;")
        self.log_note.setToolTip("A logarithmic axis cannot show values at or below zero: they leave gaps")
        self.log_note.hide()
        self.log_y_check: QCheckBox | None = None
        if self.log_y_allowed:
            self.log_y_check = QCheckBox("log y", self)
            self.log_y_check.setChecked(log_y)
            name_control(self.log_y_check, f"{name}_log_y", f"{self.title} logarithmic axis", self.log_y_tip)
            self.controls.addWidget(self.log_note)
            self.controls.addWidget(self.log_y_check)
            self.log_y_check.toggled.connect(self._settings_changed)
            self.plot_item.ctrl.logYCheck.toggled.connect(self.log_y_check.setChecked)
        else:
            self.plot_item.ctrl.logYCheck.setEnabled(False)  # pyqtgraph's context menu offers it too

        self.x_axis_combo = QComboBox(self)
        self.x_axis_combo.addItems(list(_X_AXES))
        self.x_axis_combo.setCurrentText(x_axis)
        name_control(self.x_axis_combo, f"{name}_x_axis", f"{self.title} horizontal axis",
                     "Plot against meta-iteration or wall-clock time")
        self.controls.addWidget(QLabel("x axis", self))
        self.controls.addWidget(self.x_axis_combo)

        self.smoothing_slider.valueChanged.connect(self._settings_changed)
        self.x_axis_combo.currentTextChanged.connect(self._settings_changed)

    # -- settings --------------------------------------------------------------------------------

    @property
    def smoothing(self) -> float:
        return float(self.smoothing_slider.value())

    @property
    def log_y(self) -> bool:
        return self.log_y_check is not None and self.log_y_check.isChecked()

    @property
    def x_column(self) -> str:
        return _X_AXES[self.x_axis_combo.currentText()][0]

    # -- drawing ---------------------------------------------------------------------------------

    def data_size(self) -> int:
        return len(self.store)

    def _holds_series(self) -> bool:
        """Whether the store's kind of run has these columns (a meta-RL run has no query loss, and back)."""
        return all(s.column in self.store.metric_columns for s in self.series)

    def smoothed(self, column: str) -> np.ndarray:
        """The column as plotted: its debiased EMA, or the raw values with smoothing at 0."""
        values = self.store.column(column)
        weight = self.smoothing
        return values if weight <= 0.0 else self._emas[column].update(values, weight)

    def _redraw(self) -> None:
        store = self.store
        x = store.column(self.x_column) if self._holds_series() else np.empty(0)
        smoothing = self.smoothing > 0.0
        log_y = self.log_y
        if log_y != self.plot_item.ctrl.logYCheck.isChecked():
            self.plot_item.setLogMode(x=False, y=log_y)
        x_label = _X_AXES[self.x_axis_combo.currentText()][1]
        if x_label != self.plot_item.getAxis("bottom").labelText:
            self.set_axis_label("bottom", x_label)

        gaps = False
        for s in self.series:
            values = store.column(s.column)
            curve = self.curves[s.column]
            plotted = self.smoothed(s.column)
            curve.setData(x, plotted)
            self._label_latest(s, curve, plotted)
            raw = self.raw_curves[s.column]
            raw_shown = smoothing and curve.isVisible()
            raw.setVisible(raw_shown)
            if raw_shown:
                raw.setData(x, values)
            elif raw.xData is not None and len(raw.xData):
                raw.setData([], [])
            gaps = gaps or (log_y and curve.isVisible() and bool(np.any(values <= 0)))
        self.log_note.setVisible(gaps)
        self._follow(x)
        self._draw_markers(store.markers)
        self.show_placeholder(len(x) == 0)

    def _label_latest(self, series: Series, curve: pg.PlotDataItem, plotted: np.ndarray) -> None:
        latest = float(plotted[-1]) if len(plotted) else math.nan
        text = f"{series.label}: {latest:.3g}" if math.isfinite(latest) else series.label
        label = self.legend.getLabel(curve)
        if label.text != text:
            label.setText(text)

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
        """``iteration, elapsed`` and the series' columns raw, plus ``<column>_smoothed`` when smoothing > 0.

        Every iteration of the run, not the decimated older history the plot draws.
        """
        store = self.store
        names = [s.column for s in self.series]
        header = ["iteration", "elapsed", *names]
        if not self._holds_series():
            return header, [np.empty(0) for _ in header]
        columns = [store.history(name) for name in header]
        if self.smoothing > 0.0:
            header += [f"{name}_smoothed" for name in names]
            columns += [debiased_ema(store.history(name), self.smoothing) for name in names]
        return header, columns
