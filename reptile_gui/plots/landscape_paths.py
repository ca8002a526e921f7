"""What a landscape slice's plane is crossed by: the meta-trajectory, the inner-loop paths, the task points, θ.

The items are made once and reused: :class:`SlicePaths` owns them, and each ``draw_*`` call sets their data.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor

from reptile_gui.plots.base import StorePlot
from reptile_gui.plots.landscape_data import arrow_angle


class SlicePaths:
    """The meta-trajectory fading with age (the oldest part faintest) ending at θ at the origin, each task's
    inner-loop path from θ with an arrow head at its end, and the task plane's adapted parameters φ_a, φ_b.

    Items: ``trajectory_segments`` (``TRAJECTORY_SEGMENTS`` lines, oldest first, opacity rising),
    ``trajectory_scatter``, ``theta_marker`` and ``theta_label``, ``path_curves`` and ``path_arrows``
    (pools: the first ``len(inner_paths)`` are visible; an arrow only on a path longer than
    ``MIN_ARROW_FRACTION`` of the grid's half-width), ``task_scatter`` and ``task_labels``.
    """

    TRAJECTORY_SEGMENTS = 8
    #: Opacity of the oldest and the newest part of the meta-trajectory.
    TRAJECTORY_ALPHA = (0.15, 1.0)
    TRAJECTORY_COLOR = "#ff2d55"
    PATH_COLOR = "#ff9f1c"
    OUTLINE_COLOR = "#111111"
    #: Inner-loop paths shorter than this fraction of the grid's half-width get no arrow head.
    MIN_ARROW_FRACTION = 0.02

    def __init__(self, plot: StorePlot):
        self._plot_item = plot.plot_item
        self._make_curve = plot.make_curve
        legend = plot.legend
        self.trajectory_segments: list[pg.PlotDataItem] = []
        low, high = self.TRAJECTORY_ALPHA
        for k in range(self.TRAJECTORY_SEGMENTS):
            alpha = float(np.interp(k, [0, self.TRAJECTORY_SEGMENTS - 1], [low, high]))
            color = QColor(self.TRAJECTORY_COLOR)
            color.setAlphaF(alpha)
            segment = self._make_curve(None, color, width=2.6, z=10 + k / 100)
            self.trajectory_segments.append(segment)
        legend.addItem(self.trajectory_segments[-1], "meta-trajectory")
        self.trajectory_scatter = pg.ScatterPlotItem(size=6, pen=None, antialias=True)
        self.trajectory_scatter.setZValue(11)
        self._plot_item.addItem(self.trajectory_scatter)

        self.path_curves: list[pg.PlotDataItem] = []
        self.path_arrows: list[pg.ArrowItem] = []
        self._add_paths(2)
        legend.addItem(self.path_curves[0], "inner loop θ → φ")

        self.task_scatter = pg.ScatterPlotItem(size=13, symbol="d", pen=pg.mkPen(self.OUTLINE_COLOR, width=1.2),
                                               brush=pg.mkBrush(self.PATH_COLOR), antialias=True)
        self.task_scatter.setZValue(25)
        self._plot_item.addItem(self.task_scatter)
        self.task_labels: list[pg.TextItem] = []
        for name in ("a", "b"):
            label = self._text_item(f"φ<sub>{name}</sub>", anchor=(-0.15, 1.05))
            label.setVisible(False)
            self.task_labels.append(label)

        self.theta_marker = pg.ScatterPlotItem([0.0], [0.0], size=18, symbol="star",
                                               pen=pg.mkPen(self.OUTLINE_COLOR, width=1.2),
                                               brush=pg.mkBrush("#ffffff"), antialias=True)
        self.theta_marker.setZValue(30)
        self._plot_item.addItem(self.theta_marker)
        legend.addItem(self.theta_marker, "θ (meta-parameters)")
        self.theta_label = self._text_item("θ", anchor=(1.15, 1.05))
        self.theta_label.setPos(0.0, 0.0)
        self.theta_label.setVisible(False)
        self.theta_marker.setVisible(False)

    def show_theta(self, shown: bool) -> None:
        self.theta_marker.setVisible(shown)
        self.theta_label.setVisible(shown)

    def clear(self) -> None:
        """Hide every path and point (no slice on show)."""
        self.draw_trajectory(np.zeros((0, 2)))
        self.draw_paths(np.zeros((0, 1, 2)), 1.0)
        self.draw_task_points(np.zeros((0, 2)))
        self.show_theta(False)

    def _text_item(self, html: str, anchor: tuple[float, float]) -> pg.TextItem:
        item = pg.TextItem(anchor=anchor, fill=pg.mkBrush(255, 255, 255, 200), border=None)
        item.setHtml(f'<span style="color: #111111; font-size: 11pt; font-weight: 600;">{html}</span>')
        item.setZValue(31)
        self._plot_item.addItem(item, ignoreBounds=True)
        return item

    def _add_paths(self, count: int) -> None:
        while len(self.path_curves) < count:
            curve = self._make_curve(None, self.PATH_COLOR, width=2.2, z=20)
            curve.setSymbol("o")
            curve.setSymbolSize(4)
            curve.setSymbolPen(None)
            curve.setSymbolBrush(pg.mkBrush(self.PATH_COLOR))
            arrow = pg.ArrowItem(angle=0, headLen=18, tipAngle=34, tailLen=None,
                                 pen=pg.mkPen(self.OUTLINE_COLOR, width=1), brush=pg.mkBrush(self.PATH_COLOR))
            arrow.setZValue(21)
            arrow.setVisible(False)
            self._plot_item.addItem(arrow)
            self.path_curves.append(curve)
            self.path_arrows.append(arrow)

    def draw_trajectory(self, trajectory: np.ndarray) -> None:
        m = len(trajectory)
        bounds = np.unique(np.round(np.linspace(0, max(m - 1, 0), self.TRAJECTORY_SEGMENTS + 1)).astype(int))
        for k, segment in enumerate(self.trajectory_segments):
            if m >= 2 and k < len(bounds) - 1:
                part = trajectory[bounds[k]:bounds[k + 1] + 1]
                segment.setData(part[:, 0], part[:, 1])
            else:
                segment.setData([], [])
        if m == 0:
            self.trajectory_scatter.setData([], [])
            return
        low, high = self.TRAJECTORY_ALPHA
        alphas = np.interp(np.arange(m), [0, max(m - 1, 1)], [low, high])
        brushes = []
        for alpha in alphas:
            color = QColor(self.TRAJECTORY_COLOR)
            color.setAlphaF(float(alpha))
            brushes.append(pg.mkBrush(color))
        self.trajectory_scatter.setData(pos=trajectory, brush=brushes)

    def draw_paths(self, paths: np.ndarray, half_width: float) -> None:
        """Each path as a line through its steps; an arrow head at its end unless the whole path is
        shorter than ``MIN_ARROW_FRACTION`` of the grid's half-width (an arrow head of fixed size on a
        path that short would only hide θ and point in a direction set by rounding)."""
        if paths.ndim != 3 or paths.size == 0:
            paths = np.zeros((0, 1, 2))
        self._add_paths(len(paths))
        for k, (curve, arrow) in enumerate(zip(self.path_curves, self.path_arrows, strict=True)):
            if k >= len(paths):
                curve.setData([], [])
                curve.setVisible(False)
                arrow.setVisible(False)
                continue
            path = paths[k]
            curve.setData(path[:, 0], path[:, 1])
            curve.setVisible(True)
            angle = arrow_angle(path)
            long_enough = float(np.hypot(*(path[-1] - path[0]))) >= self.MIN_ARROW_FRACTION * half_width
            arrow.setVisible(angle is not None and long_enough)
            if angle is not None:
                arrow.setStyle(angle=angle)
                arrow.setPos(float(path[-1, 0]), float(path[-1, 1]))

    def draw_task_points(self, points: np.ndarray) -> None:
        if len(points):
            self.task_scatter.setData(pos=points)
        else:
            self.task_scatter.setData([], [])
        for k, label in enumerate(self.task_labels):
            label.setVisible(k < len(points))
            if k < len(points):
                label.setPos(float(points[k, 0]), float(points[k, 1]))

