"""One held-out meta-RL task up close: the agent's episodes after 0, 1, ..., K inner updates from θ.

Draws ``store.rollouts`` (a ``Rollouts`` event): each episode's trace as the family defines it (the path in the
plane for navigation, a position or an angle over time otherwise), coloured by the number of inner updates like the
task view's fits (orange before adaptation, green in between, blue after the last update): the policy's mean-action
path bold (where the adapted policy heads) over its sampled episodes (what it does with exploration noise) drawn
thin and faint, with what the task asks for: a goal point (a path starts at a black dot and should end at the amber
star) or a target level (a dashed amber line). The legend gives each update count's mean episode return. A trace
over time gets room above it for the legend; an angle trace (its label in radians) is cut where it wraps around ±π
rather than drawn across the plot. "New task" emits ``newTaskRequested``: the main window asks the controller for
another held-out task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QWidget

from reptile_gui.plots.base import StorePlot
from reptile_gui.plots.palette import PALETTE, step_color, translucent
from reptile_gui.store import RunStore

__all__ = ["RolloutPlot"]


def _updates_label(k: int) -> str:
    return f"{k} update" if k == 1 else f"{k} updates"


def _cut_at_wraps(trace: np.ndarray) -> np.ndarray:
    """An angle trace with a row of NaN wherever it jumps by more than π (from +π to -π or back)."""
    jumps = np.flatnonzero(np.abs(np.diff(trace[:, 1])) > np.pi) + 1
    return np.insert(trace, jumps, np.nan, axis=0)


def _format_task(task: Mapping[str, Any]) -> str:
    """``goal = (0.14, -0.23)`` or ``mass = 1.46, length = 0.77``: a task's parameters, briefly."""
    parts = []
    for name, value in task.items():
        try:
            values = np.ravel(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError):  # a plugin family's non-numeric parameter
            text = str(value)
        else:
            text = f"{values[0]:.3g}" if values.size == 1 else "(" + ", ".join(f"{v:.2f}" for v in values) + ")"
        parts.append(f"{name.replace('_', ' ')} = {text}")
    return ", ".join(parts)


class RolloutPlot(StorePlot):
    """Draws ``store.rollouts``: every episode after each number of inner updates, and the task's target.

    Signal: ``newTaskRequested()``. Public items: ``trace_curves`` (a pool: the first ``updates x episodes``
    are visible, update count major, in the order of ``rollouts.updates``), ``mean_curves`` (a pool: one
    mean-action path per update count), ``start_scatter`` and
    ``end_scatter`` (each episode's first and last point), ``goal_marker`` (a ``"point"`` target),
    ``level_line`` (a ``"level"`` target), ``new_task_button``.
    """

    versions = ("rollouts_version",)
    plot_name = "rollouts"
    title = "Rollouts"
    empty_text = "No rollouts yet: start or step the run, or press \u201cNew task\u201d"

    TRACE_WIDTH = 1.0
    TRACE_ALPHA = 0.35
    MEAN_WIDTH = 2.8
    legend_below = True  # episodes and the goal can be anywhere in the graph: no corner is sure to be free

    newTaskRequested = Signal()

    def __init__(self, store: RunStore, parent: QWidget | None = None):
        super().__init__(store, parent)
        self.trace_curves: list[pg.PlotDataItem] = []
        self.mean_curves: list[pg.PlotDataItem] = []
        outline = pg.mkPen("#111111", width=1.0)
        self.start_scatter = pg.ScatterPlotItem(size=9, symbol="o", pen=pg.mkPen("w", width=1.2),
                                                brush=pg.mkBrush("#111111"), antialias=True)
        self.start_scatter.setZValue(40)
        self.end_scatter = pg.ScatterPlotItem(size=6, symbol="o", pen=None, antialias=True)
        self.end_scatter.setZValue(39)
        self.goal_marker = pg.ScatterPlotItem(size=22, symbol="star", pen=outline, brush=pg.mkBrush(PALETTE.goal),
                                              antialias=True)
        self.goal_marker.setZValue(41)
        level_pen = pg.mkPen(PALETTE.goal, width=2.5, style=Qt.PenStyle.DashLine)
        level_pen.setCosmetic(True)
        self.level_line = pg.InfiniteLine(angle=0, movable=False, pen=level_pen)
        self.level_line.setZValue(-1)
        self._level_legend = pg.PlotDataItem(pen=level_pen)  # the line's swatch in the legend
        for item in (self.start_scatter, self.end_scatter, self.goal_marker):
            self.plot_item.addItem(item)
        self.plot_item.addItem(self.level_line, ignoreBounds=True)

        self.new_task_button = self.add_hint_and_button(
            "Episodes of one held-out task after inner updates from θ", "New task", "New held-out task",
            "Draw another held-out task and roll out the adapted agent on it")
        self.new_task_button.clicked.connect(self.newTaskRequested)
        self._finish_init()

    # -- drawing ---------------------------------------------------------------------------------

    def _traces(self) -> list[tuple[int, int, np.ndarray]]:
        """``(update index, episode, trace [S, 2])`` for every episode, update count major."""
        rollouts = self.store.rollouts
        if rollouts is None:
            return []
        return [(i, e, np.asarray(trace, dtype=np.float64).reshape(-1, 2))
                for i, episodes in enumerate(rollouts.traces) for e, trace in enumerate(episodes)]

    def _mean_traces(self) -> list[np.ndarray]:
        """The mean-action path ``[S, 2]`` after each update count (none from sessions that lack them)."""
        rollouts = self.store.rollouts
        if rollouts is None:
            return []
        return [np.asarray(trace, dtype=np.float64).reshape(-1, 2) for trace in rollouts.mean_traces]

    @staticmethod
    def _fill_pool(pool: list[pg.PlotDataItem], count: int, make) -> None:
        """Grow ``pool`` to ``count`` items and hide the ones beyond."""
        while len(pool) < count:
            pool.append(make())
        for curve in pool[count:]:
            curve.setData([], [])
            curve.setVisible(False)

    def _redraw(self) -> None:
        rollouts = self.store.rollouts
        traces = self._traces()
        means = self._mean_traces()
        self.legend.clear()
        self.show_placeholder(rollouts is None)
        self._fill_pool(self.trace_curves, len(traces),
                        lambda: self.make_curve(None, PALETTE.post_adaptation, width=self.TRACE_WIDTH))
        self._fill_pool(self.mean_curves, len(means),
                        lambda: self.make_curve(None, PALETTE.post_adaptation, width=self.MEAN_WIDTH))
        if rollouts is None:
            for item in (self.start_scatter, self.end_scatter, self.goal_marker):
                item.setData([], [])
            self.level_line.setVisible(False)
            self.set_title(self.title)
            return
        updates = tuple(int(k) for k in rollouts.updates)
        returns = np.asarray(rollouts.returns, dtype=np.float64).reshape(len(updates), -1)
        angle = "(rad" in rollouts.labels[1]
        ends, end_brushes = [], []
        for curve, (i, e, trace) in zip(self.trace_curves, traces, strict=False):
            color = step_color(i, updates)
            self._draw_trace(curve, trace, translucent(color, self.TRACE_ALPHA), self.TRACE_WIDTH, 10 + i, angle)
            if not means:
                if len(trace):
                    ends.append(trace[-1])
                    end_brushes.append(pg.mkBrush(color))
                if e == 0:
                    self.legend.addItem(curve, self._legend_text(updates[i], returns[i]))
        mean_returns = np.asarray(rollouts.mean_returns, dtype=np.float64)
        for i, (curve, trace) in enumerate(zip(self.mean_curves, means, strict=False)):
            color = step_color(i, updates)
            self._draw_trace(curve, trace, color, self.MEAN_WIDTH, 30 + i, angle)
            if len(trace):
                ends.append(trace[-1])
                end_brushes.append(pg.mkBrush(color))
            self.legend.addItem(curve, self._legend_text(updates[i], returns[i], float(mean_returns[i])))
        starts = np.array([trace[0] for _, _, trace in traces if len(trace)]).reshape(-1, 2)
        self.end_scatter.setData(pos=np.array(ends).reshape(-1, 2), brush=end_brushes)
        self._draw_target(rollouts.target, rollouts.labels, starts)
        self._frame([trace for _, _, trace in traces] + means, rollouts.target)
        self.set_axis_label("bottom", rollouts.labels[0])
        self.set_axis_label("left", rollouts.labels[1])
        self.set_title(f"{rollouts.family} · {_format_task(rollouts.task)} · iteration {rollouts.iteration}")

    @staticmethod
    def _draw_trace(curve: pg.PlotDataItem, trace: np.ndarray, color, width: float, z: int, angle: bool) -> None:
        """One trace in ``color``; an angle trace is cut where it wraps around."""
        pen = pg.mkPen(color, width=width)
        pen.setCosmetic(True)
        curve.setPen(pen)
        curve.setZValue(z)
        drawn = _cut_at_wraps(trace) if angle else trace
        curve.setData(drawn[:, 0], drawn[:, 1], connect="finite")
        curve.setVisible(True)

    @staticmethod
    def _legend_text(k: int, returns: np.ndarray, mean_action_return: float | None = None) -> str:
        mean, spread = float(np.mean(returns)), float(np.std(returns))
        before = " (θ)" if k == 0 else ""
        text = f"{_updates_label(k)}{before}: return {mean:.3g} ± {spread:.2g}"
        if mean_action_return is not None:
            text += f", mean action {mean_action_return:.3g}"
        return text

    def _draw_target(self, target: tuple[str, tuple[float, ...]] | None, labels: tuple[str, str],
                     starts: np.ndarray) -> None:
        kind, values = target if target is not None else ("", ())
        point = kind == "point"
        self.view_box.setAspectLocked(point)  # a path in the plane: x and y in the same units
        if point:
            self.start_scatter.setData(pos=starts[:1])
            self.legend.addItem(self.start_scatter, "start")
            self.goal_marker.setData([values[0]], [values[1]])
            self.legend.addItem(self.goal_marker, f"goal ({values[0]:.2f}, {values[1]:.2f})")
        else:
            self.start_scatter.setData([], [])
            self.goal_marker.setData([], [])
        level = kind == "level"
        self.level_line.setVisible(level)
        if level:
            self.level_line.setValue(values[0])
            name = labels[1].split(" (")[0]
            self.legend.addItem(self._level_legend, f"target {name} = {values[0]:.3g}")

    def _frame(self, traces: list[np.ndarray], target: tuple[str, tuple[float, ...]] | None) -> None:
        """A path in the plane: pyqtgraph's auto-range. A trace over time: its data and target level in view."""
        if target is not None and target[0] == "point":
            self.view_box.enableAutoRange()
            return
        points = np.concatenate(traces) if traces else np.zeros((0, 2))
        ys = points[:, 1][np.isfinite(points[:, 1])]
        if target is not None and target[0] == "level":
            ys = np.append(ys, target[1][0])
        xs = points[:, 0][np.isfinite(points[:, 0])]
        if not len(xs) or not len(ys):
            return
        low, high = float(ys.min()), float(ys.max())
        self.view_box.setRange(xRange=(float(xs.min()), float(xs.max())), yRange=(low, max(high, low + 1e-9)),
                               padding=0.02)

    # -- export ------------------------------------------------------------------------------------

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """One row per point of every episode: ``updates, episode, step, x, y`` (``x, y``: the trace's two
        coordinates, named in the axis labels), episodes in the order drawn, then the mean-action paths with
        ``episode = -1``."""
        header = ["updates", "episode", "step", "x", "y"]
        traces = self._traces() + [(i, -1, trace) for i, trace in enumerate(self._mean_traces())]
        if not traces:
            return header, [np.empty(0) for _ in header]
        updates = self.store.rollouts.updates
        columns = [np.concatenate([np.full(len(t), int(updates[i])) for i, _, t in traces]),
                   np.concatenate([np.full(len(t), e) for _, e, t in traces]),
                   np.concatenate([np.arange(len(t)) for _, _, t in traces]),
                   np.concatenate([t[:, 0] for _, _, t in traces]),
                   np.concatenate([t[:, 1] for _, _, t in traces])]
        return header, columns
