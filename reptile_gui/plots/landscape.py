"""The loss landscape: a 2D slice through parameter space as a heat map, with the paths that cross it.

Draws ``store.landscape`` (a :class:`reptile_engine.landscape.LandscapeSlice`):

* the loss over the plane as an image whose pixel ``(i, j)`` is centred on ``(alphas[j], betas[i])``,
  coloured by log10 of the loss by default (a check box switches to the raw loss), with a colour bar
  and a few contour lines evenly spaced in log10 of the loss (the same curves in either scale). A slice
  with negative values (a meta-RL policy surrogate) has no log scale: it is coloured linearly, with linearly
  spaced contours, and the check box is disabled until a slice without negative values comes
  (:mod:`reptile_gui.plots.landscape_data`);
* the meta-trajectory as a polyline fading with age (the oldest eighth faintest) that ends at the
  current meta-parameters ``θ`` at the origin;
* each task's inner-loop path from ``θ`` as a polyline through its steps with an arrow head at the
  adapted parameters, and on the task plane the two tasks' adapted parameters ``φ_a``, ``φ_b``;
* under the mouse, the nearest grid cell's ``(α, β, loss)`` in a read-out above the graph.

For a meta-RL run (``landscape.loss`` is ``"policy"`` or ``"critic"``) the surface is a surrogate on a fixed
batch of transitions, not the return, and every label says so.

The plot only draws: the ``landscape`` config section is edited by
:class:`reptile_gui.widgets.landscape_controls.LandscapeControls`, which the window puts in the plot's
``controls`` row. While a slice is awaited (:meth:`LandscapePlot.show_waiting`) the empty graph reads
"Computing…"; ``sliceArrived`` says when a new one is drawn. The legend sits under the map, the view takes
in the paths and task points that leave the grid.

>>> plot = LandscapePlot(store)                                        # doctest: +SKIP
>>> controls.busyChanged.connect(plot.show_waiting)                    # doctest: +SKIP
>>> plot.sliceArrived.connect(lambda: controls.set_busy(False))        # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QWidget

from reptile_gui.plots.base import ElidedLabel, StorePlot
from reptile_gui.plots.landscape_data import (
    frame_rect,
    grid_rect,
    has_log_scale,
    linear_values,
    log_values,
    slice_table,
    slice_title,
    value_levels,
    value_name,
    value_text,
)
from reptile_gui.plots.landscape_paths import SlicePaths
from reptile_gui.store import RunStore
from reptile_gui.toolkit import blocked, name_control

__all__ = ["LandscapePlot"]


class LandscapePlot(StorePlot):
    """Draws ``store.landscape``: heat map, contours, meta-trajectory, inner-loop paths, hover read-out.

    ``LandscapePlot(store, parent=None, *, log_scale=True)``.

    Signals:
        sliceArrived(): a slice newer than the one on show when :meth:`show_waiting` began was drawn.

    Public items: ``image_item`` (row-major: ``image[i, j]`` is the cell at ``alphas[j], betas[i]``),
    ``color_bar``, ``contours`` (``CONTOUR_LEVELS`` isocurves, children of the image), ``paths`` (the
    :class:`~reptile_gui.plots.landscape_paths.SlicePaths` over the map);
    ``hovered``: ``(alpha, beta, loss)`` of the cell under the mouse, or ``None``.
    """

    versions = ("landscape_version",)
    plot_name = "landscape"
    title = "Loss landscape"
    empty_text = "No landscape yet: press \u201cRecompute now\u201d"
    legend_below = True  # the heat map fills the graph: no corner is free

    sliceArrived = Signal()

    COLOR_MAP = "viridis"
    CONTOUR_LEVELS = 6
    CONTOUR_COLOR = (255, 255, 255, 120)
    WAITING_TEXT = "Computing…"
    LOG_TIP = "Colour by log10 of the loss (contours stay evenly spaced in log10)"
    NO_LOG_TIP = "This slice has negative values (a signed surrogate): it is coloured linearly"

    def __init__(self, store: RunStore, parent: QWidget | None = None, *, log_scale: bool = True):
        self._grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # alphas, betas, values drawn
        self._drawn_rect: QRectF | None = None
        self._log_preference = log_scale
        self._waiting_for: tuple[int, int] | None = None  # (store id, landscape_version) when a slice was asked
        self.hovered: tuple[float, float, float] | None = None
        super().__init__(store, parent)
        self.set_axis_label("bottom", "α (direction 1)")
        self.set_axis_label("left", "β (direction 2)")
        self.plot_item.showGrid(x=False, y=False)  # the contours are the grid of a heat map
        self.view_box.setAspectLocked(True)  # α and β are in the same units; arrows keep their angles
        self._build_items()
        self._build_readout(log_scale)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._finish_init()

    # -- construction ----------------------------------------------------------------------------

    def _build_items(self) -> None:
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.image_item.setZValue(-100)
        self.plot_item.addItem(self.image_item)
        self.color_bar = pg.ColorBarItem(colorMap=pg.colormap.get(self.COLOR_MAP), interactive=False,
                                         width=16, label="log10 loss (MSE)")
        self.color_bar.setImageItem(self.image_item, insert_in=self.plot_item)
        for side in ("left", "right", "top", "bottom"):
            axis = self.color_bar.getAxis(side)
            axis.setPen(pg.mkPen("#222222"))
            axis.setTextPen(pg.mkPen("#222222"))

        contour_pen = pg.mkPen(self.CONTOUR_COLOR, width=1)
        contour_pen.setCosmetic(True)
        self.contours: list[pg.IsocurveItem] = []
        for _ in range(self.CONTOUR_LEVELS):
            contour = pg.IsocurveItem(pen=contour_pen, axisOrder="row-major")
            contour.setParentItem(self.image_item)  # inherits the image's pixel-to-(α, β) transform
            self.contours.append(contour)
        self.paths = SlicePaths(self)
        self.legend.setVisible(False)

    def _build_readout(self, log_scale: bool) -> None:
        """The read-out of the cell under the mouse, and the colour scale's check box, above the graph."""
        info = QHBoxLayout()
        info.setContentsMargins(6, 0, 6, 0)
        self.readout_label = ElidedLabel(self)
        self.readout_label.setObjectName("landscape_readout")
        self.readout_label.setAccessibleName("Landscape read-out")
        self.readout_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log_check = QCheckBox("log colour scale", self)
        self.log_check.setChecked(log_scale)
        name_control(self.log_check, "landscape_log_scale", "Logarithmic colour scale", self.LOG_TIP)
        info.addWidget(self.readout_label, 1)
        info.addWidget(self.log_check)
        self.layout().insertLayout(1, info)
        self.log_check.toggled.connect(self._log_toggled)

    # -- waiting for a slice -----------------------------------------------------------------------

    @property
    def waiting(self) -> bool:
        """Whether a slice was asked for and none newer than the one on show then has been drawn."""
        return self._waiting_for is not None

    def show_waiting(self, waiting: bool) -> None:
        """Show (or end) the wait for a slice: the empty graph reads "Computing…", the cursor is busy.
        Drawing a newer slice ends it and emits ``sliceArrived``."""
        self._waiting_for = (id(self.store), self.store.landscape_version) if waiting else None
        self.placeholder.setText(self.WAITING_TEXT if waiting else self.empty_text)
        if waiting:
            self.plot_widget.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.plot_widget.unsetCursor()

    # -- drawing -----------------------------------------------------------------------------------

    def data_size(self) -> int:
        landscape = self.store.landscape
        return 0 if landscape is None else int(np.size(landscape.values))

    @property
    def log_scale(self) -> bool:
        """Whether the slice on show is coloured by log10 (asked for, and possible for its values)."""
        return self.log_check.isChecked()

    def _log_toggled(self, checked: bool) -> None:
        if self.log_check.isEnabled():
            self._log_preference = checked
        self._settings_changed()

    def _offer_log_scale(self, possible: bool) -> None:
        """Enable the log check box for a slice that can have a log scale; otherwise clear and disable it,
        keeping the choice for the next slice that can."""
        with blocked(self.log_check):
            self.log_check.setEnabled(possible)
            self.log_check.setChecked(possible and self._log_preference)
        self.log_check.setToolTip(self.LOG_TIP if possible else self.NO_LOG_TIP)

    def _redraw(self) -> None:
        if self._waiting_for is not None and self._waiting_for != (id(self.store), self.store.landscape_version):
            self.show_waiting(False)
            self.sliceArrived.emit()
        landscape = self.store.landscape
        self.show_placeholder(landscape is None)
        self.legend.setVisible(landscape is not None)
        self.color_bar.setVisible(landscape is not None)
        if landscape is None:
            self._clear()
            return
        alphas = np.asarray(landscape.alphas, dtype=np.float64)
        betas = np.asarray(landscape.betas, dtype=np.float64)
        values = np.asarray(landscape.values, dtype=np.float64)
        self._grid = (alphas, betas, values)

        log_possible = has_log_scale(values)
        self._offer_log_scale(log_possible)
        shown = log_values(values) if self.log_scale else linear_values(values)
        levels = value_levels(shown)
        rect = grid_rect(alphas, betas)
        self.image_item.setImage(shown, autoLevels=False, levels=levels, rect=rect)
        self.image_item.setVisible(True)
        self.color_bar.setLevels(levels)
        name = value_name(landscape.loss)
        self.color_bar.getAxis("left").setLabel(f"log10 {name}" if self.log_scale else name, color="#222222")
        self._draw_contours(values, shown, log_possible)
        self.paths.draw_trajectory(np.asarray(landscape.trajectory, dtype=np.float64).reshape(-1, 2))
        half_width = max(float(np.ptp(alphas)), float(np.ptp(betas))) / 2
        self.paths.draw_paths(np.asarray(landscape.inner_paths, dtype=np.float64), half_width)
        self.paths.draw_task_points(np.asarray(landscape.task_points, dtype=np.float64).reshape(-1, 2))
        self.paths.show_theta(True)
        self.set_title(slice_title(landscape))
        frame = frame_rect(rect, landscape)
        if self._drawn_rect is None or self._drawn_rect != frame:
            self._drawn_rect = frame
            self.view_box.setRange(frame, padding=0.02)
        self._show_readout()

    def _clear(self) -> None:
        self._grid = None
        self._drawn_rect = None
        self.image_item.clear()
        self.image_item.setVisible(False)
        for contour in self.contours:
            contour.setData(None)
            contour.setVisible(False)
        self.paths.clear()
        self.set_title(self.title)
        self.hovered = None
        self._show_readout()

    def contour_levels(self) -> np.ndarray:
        """The visible contours' levels in the colour scale shown (log10 of the loss, or the loss).

        They are ``CONTOUR_LEVELS`` values evenly spaced in log10 of the loss strictly between its
        smallest and largest value, so toggling the scale redraws the same curves; for a slice without a
        log scale (negative values) they are evenly spaced in the values themselves."""
        return np.array([float(c.level) for c in self.contours if c.isVisible()])

    def _draw_contours(self, values: np.ndarray, shown: np.ndarray, log_possible: bool) -> None:
        spacing = log_values(values) if log_possible else shown
        low, high = value_levels(spacing)
        finite = np.isfinite(spacing)
        if not finite.any() or high - low < 1e-9:
            for contour in self.contours:
                contour.setVisible(False)
            return
        levels = np.linspace(low, high, self.CONTOUR_LEVELS + 2)[1:-1]
        if log_possible and not self.log_scale:
            levels = 10.0 ** levels
        data = shown.copy()
        data[~np.isfinite(data)] = np.nanmax(np.where(np.isfinite(shown), shown, -np.inf))
        for contour, level in zip(self.contours, levels, strict=True):
            contour.setData(data, float(level))
            contour.setVisible(True)

    # -- hover -------------------------------------------------------------------------------------

    def cell_at(self, alpha: float, beta: float) -> tuple[int, int] | None:
        """``(i, j)`` of the grid cell containing the plane point ``(alpha, beta)``, ``None`` outside."""
        if self._grid is None:
            return None
        alphas, betas, _ = self._grid
        rect = grid_rect(alphas, betas)
        if not (rect.left() <= alpha <= rect.right() and rect.top() <= beta <= rect.bottom()):
            return None
        j = int(np.argmin(np.abs(alphas - alpha)))
        i = int(np.argmin(np.abs(betas - beta)))
        return i, j

    def hover_at(self, alpha: float, beta: float) -> tuple[float, float, float] | None:
        """Show the read-out for the plane point ``(alpha, beta)`` (as the mouse does); returns
        ``(α, β, loss)`` of the nearest grid cell, or ``None`` (read-out cleared) outside the grid."""
        cell = self.cell_at(alpha, beta)
        if cell is None:
            self.hovered = None
        else:
            alphas, betas, values = self._grid
            i, j = cell
            self.hovered = (float(alphas[j]), float(betas[i]), float(values[i, j]))
        self._show_readout()
        return self.hovered

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._grid is None:
            return
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            if self.hovered is not None:
                self.hovered = None
                self._show_readout()
            return
        point = self.view_box.mapSceneToView(scene_pos)
        self.hover_at(point.x(), point.y())

    def _show_readout(self) -> None:
        landscape = self.store.landscape if self._grid is not None else None
        if landscape is None:
            text = "Hover over the map to read the loss"
        elif self.hovered is not None:
            a, b, value = self.hovered
            text = f"α = {a:.4g}, β = {b:.4g}: {value_text(landscape.loss, value)}"
        else:
            text = f"at θ: {value_text(landscape.loss, landscape.center_loss)} · hover over the map to read the loss"
        self.readout_label.setText(text)
        self.plot_widget.setToolTip(text if self.hovered is not None else "")

    # -- export ------------------------------------------------------------------------------------

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """The slice in long format (see :func:`~reptile_gui.plots.landscape_data.slice_table`)."""
        return slice_table(self.store.landscape)
