"""One task up close: the true function, its support points and the fits after 0, 1, ..., K steps.

Editing: a left click in the graph emits ``pointAdded(x, y)`` in data coordinates; a right click
within ``REMOVE_RADIUS_PX`` pixels of a support point emits ``pointRemoved(index)`` (a right click
elsewhere opens the usual context menu); "New task" emits ``newTaskRequested``. An added or removed point
edits the support on show at once and emits ``supportEdited(x values, y values)`` with the whole edited
set, for the main window to ask the engine for a new fit; the next fit from the store replaces the set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtWidgets import QWidget

from reptile_gui.plots.base import StorePlot
from reptile_gui.plots.palette import PALETTE, step_color
from reptile_gui.store import RunStore

__all__ = ["TaskViewPlot"]


def _steps_label(k: int) -> str:
    return f"after {k} step" if k == 1 else f"after {k} steps"


class _EditableViewBox(pg.ViewBox):
    """A ViewBox that offers right clicks to a handler before opening its context menu."""

    def __init__(self, on_right_click: Callable[[QPointF], bool], **kwargs) -> None:
        super().__init__(**kwargs)
        self._on_right_click = on_right_click

    def mouseClickEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph's name)
        if ev.button() == Qt.MouseButton.RightButton and self._on_right_click(ev.scenePos()):
            ev.accept()
            return
        super().mouseClickEvent(ev)


class TaskViewPlot(StorePlot):
    """Draws ``store.task_fit``: truth (thin black), support (red dots), predictions after each step.

    Signals: ``pointAdded(float, float)``, ``pointRemoved(int)``, ``supportEdited(tuple, tuple)``,
    ``newTaskRequested()``.
    Public items: ``truth_curve``, ``support_scatter``, ``prediction_curves`` (a pool; the first
    ``len(fit.steps)`` are visible, in the order of ``fit.steps``), ``new_task_button``.
    """

    versions = ("task_version",)
    plot_name = "task_view"
    title = "Task view"
    empty_text = "No task fit yet: press \u201cNew task\u201d or start training"

    #: A right click this close (in screen pixels) to a support point removes it.
    REMOVE_RADIUS_PX = 10.0

    pointAdded = Signal(float, float)
    pointRemoved = Signal(int)
    supportEdited = Signal(object, object)
    newTaskRequested = Signal()

    def __init__(self, store: RunStore, parent: QWidget | None = None):
        super().__init__(store, parent)
        self.set_axis_label("left", "output y (task units)")
        self.set_axis_label("bottom", "input x (task units)")
        self._support_x = np.empty(0)
        self._support_y = np.empty(0)
        self._legend_steps: tuple[int, ...] = ()

        self.truth_curve = self.make_curve("true function", PALETTE.truth, width=1.0, z=15)  # over the fits
        self.support_scatter = pg.ScatterPlotItem(
            size=9, symbol="o", pen=pg.mkPen("w", width=1.2), brush=pg.mkBrush(PALETTE.support),
            antialias=True, name="support points")
        self.support_scatter.setZValue(20)
        self.plot_item.addItem(self.support_scatter)
        self.prediction_curves: list[pg.PlotDataItem] = []

        self.new_task_button = self.add_hint_and_button(
            "Click to add a support point · right-click a point to remove it", "New task", "New task",
            "Draw another task from the distribution and fit it")
        self.new_task_button.clicked.connect(self.newTaskRequested)
        self.pointAdded.connect(self._add_point)
        self.pointRemoved.connect(self._remove_point)

        self.plot_widget.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self._finish_init()

    def _make_view_box(self) -> pg.ViewBox:
        return _EditableViewBox(self._on_right_click)

    # -- support points --------------------------------------------------------------------------

    def support_points(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The support points on show, as ``(x values, y values)``."""
        return tuple(self._support_x.tolist()), tuple(self._support_y.tolist())

    def set_support_points(self, x: Sequence[float], y: Sequence[float]) -> None:
        """Show an edited support set now; the next task fit from the store replaces it."""
        x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
        self._show_support(x, y)

    def _edited_support(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The support to edit: the one on show (it includes edits not yet re-fitted), else the last fit's."""
        xs, ys = self.support_points()
        fit = self.store.task_fit
        if not xs and fit is not None:
            xs, ys = tuple(fit.support_x.tolist()), tuple(fit.support_y.tolist())
        return xs, ys

    def _add_point(self, x: float, y: float) -> None:
        xs, ys = self._edited_support()
        self._edit_support(xs + (x,), ys + (y,))

    def _remove_point(self, index: int) -> None:
        xs, ys = self._edited_support()
        self._edit_support(xs[:index] + xs[index + 1:], ys[:index] + ys[index + 1:])

    def _edit_support(self, xs: tuple[float, ...], ys: tuple[float, ...]) -> None:
        self.set_support_points(xs, ys)
        self.supportEdited.emit(xs, ys)

    def _show_support(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise ValueError(f"{len(x)} x values for {len(y)} y values")
        self._support_x, self._support_y = x, y
        self.support_scatter.setData(x=x, y=y)
        label = self.legend.getLabel(self.support_scatter)
        if label is not None:
            label.setText(f"support points ({len(x)})")

    def _view_rect_contains(self, scene_pos: QPointF) -> bool:
        return self.view_box.sceneBoundingRect().contains(scene_pos)

    def _nearest_support(self, scene_pos: QPointF) -> int | None:
        xs, ys = self._support_x.tolist(), self._support_y.tolist()
        if not xs:
            return None
        best, best_distance = None, self.REMOVE_RADIUS_PX
        for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
            point = self.view_box.mapViewToScene(QPointF(x, y))
            distance = float(np.hypot(point.x() - scene_pos.x(), point.y() - scene_pos.y()))
            if distance <= best_distance:
                best, best_distance = i, distance
        return best

    def _on_right_click(self, scene_pos: QPointF) -> bool:
        index = self._nearest_support(scene_pos)
        if index is None:
            return False
        self.pointRemoved.emit(index)
        return True

    def _on_scene_clicked(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double() or ev.isAccepted():
            return  # another item (the legend, a scatter point) took it, or not ours
        scene_pos = ev.scenePos()
        if not self._view_rect_contains(scene_pos):
            return
        if self.legend.isVisible() and self.legend.sceneBoundingRect().contains(scene_pos):
            return
        point = self.view_box.mapSceneToView(scene_pos)
        self.pointAdded.emit(float(point.x()), float(point.y()))

    # -- drawing ---------------------------------------------------------------------------------

    def _redraw(self) -> None:
        fit = self.store.task_fit
        if fit is None:
            self.truth_curve.setData([], [])
            self._show_support(np.empty(0), np.empty(0))
            steps: tuple[int, ...] = ()
        else:
            steps = tuple(int(k) for k in fit.steps)
            self.truth_curve.setData(np.asarray(fit.grid_x), np.asarray(fit.truth))
            self._show_support(np.asarray(fit.support_x).ravel(), np.asarray(fit.support_y).ravel())
        while len(self.prediction_curves) < len(steps):
            self.prediction_curves.append(self.make_curve(None, PALETTE.post_adaptation, width=2.0, z=10))
        predictions = np.asarray(fit.predictions) if fit is not None else None
        for i, curve in enumerate(self.prediction_curves):
            if i < len(steps):
                pen = pg.mkPen(step_color(i, steps), width=2.0)
                pen.setCosmetic(True)
                curve.setPen(pen)
                curve.setData(np.asarray(fit.grid_x), predictions[i].ravel())
                curve.setVisible(True)
            else:
                curve.setData([], [])
                curve.setVisible(False)
        self._update_legend(steps)
        self.show_placeholder(fit is None)

    def _update_legend(self, steps: tuple[int, ...]) -> None:
        if steps == self._legend_steps:
            return
        for curve in self.prediction_curves:
            self.legend.removeItem(curve)
        for curve, k in zip(self.prediction_curves, steps, strict=False):
            self.legend.addItem(curve, _steps_label(k))
        self._legend_steps = steps

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """``x, truth, prediction_<k>`` per step on the grid, then ``support_x, support_y``.

        The support columns are shorter than the grid ones: their cells are empty below the last point.
        """
        fit = self.store.task_fit
        header = ["x", "truth"]
        if fit is None:
            return header + ["support_x", "support_y"], [np.empty(0)] * 4
        columns = [np.asarray(fit.grid_x).ravel(), np.asarray(fit.truth).ravel()]
        for k, prediction in zip(fit.steps, np.asarray(fit.predictions), strict=True):
            header.append(f"prediction_{int(k)}")
            columns.append(np.asarray(prediction).ravel())
        header += ["support_x", "support_y"]
        columns += [self._support_x, self._support_y]
        return header, columns
