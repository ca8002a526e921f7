"""A plot's legend, kept where it hides the least: in the corner of the graph that covers the fewest data
points (or under the graph, in as many columns as fit), and wherever the user drags it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QTimer

from reptile_gui.plots.palette import PALETTE

if TYPE_CHECKING:
    from reptile_gui.plots.base import StorePlot

#: How long after a redraw, resize or change of range the legend finds its corner (and so how often at most).
LEGEND_DELAY_MS = 60

#: The four corners a legend inside the graph can take, as pyqtgraph offsets.
LEGEND_CORNERS: tuple[tuple[int, int], ...] = ((-10, 10), (10, 10), (-10, -10), (10, -10))

class PlotLegend(pg.LegendItem):
    """A legend that remembers when the user dragged it (it then stays where it was put)."""

    moved_by_user = False

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph's name)
        super().mouseDragEvent(ev)
        if ev.isAccepted():
            self.moved_by_user = True


def polyline_pixels(x: np.ndarray, y: np.ndarray, joined: bool, step: float = 6.0,
                    limit: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Points along a curve in pixels: its vertices (at most ``limit``) and, for a line, points every
    ``step`` pixels along each segment, so that a line crossing a corner counts even without a vertex there."""
    keep = np.isfinite(x) & np.isfinite(y)
    if len(x) > limit:
        index = np.linspace(0, len(x) - 1, limit).astype(int)
        x, y, keep = x[index], y[index], keep[index]
    if not joined or len(x) < 2:
        return x[keep], y[keep]
    dx, dy = np.diff(x), np.diff(y)
    usable = keep[:-1] & keep[1:]
    counts = np.where(usable, np.ceil(np.hypot(np.where(usable, dx, 0), np.where(usable, dy, 0)) / step), 0)
    counts = counts.clip(0, 400).astype(int)
    segment = np.repeat(np.arange(len(dx)), counts)
    fraction = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)) / np.repeat(
        np.maximum(counts, 1), counts)
    return (np.concatenate([x[keep], x[segment] + fraction * dx[segment]]),
            np.concatenate([y[keep], y[segment] + fraction * dy[segment]]))


class LegendPlacement:
    """Makes ``plot``'s legend and keeps it placed: in a corner of the graph (``plot.legend_offset`` first) or,
    for ``plot.legend_below``, under the bottom axis. Placing waits ``LEGEND_DELAY_MS`` after a redraw, a
    resize or a change of range, so a live plot does not re-place its legend on every frame."""

    def __init__(self, plot: StorePlot) -> None:
        self.plot = plot
        self.corner = plot.legend_offset
        style = {"brush": pg.mkBrush(255, 255, 255, 185), "pen": pg.mkPen("#c8c8c8"),
                 "labelTextColor": PALETTE.foreground, "labelTextSize": "9pt", "verSpacing": -4}
        if plot.legend_below:
            self.legend = PlotLegend(offset=None, **style)
            plot.plot_item.layout.addItem(self.legend, 4, 1)  # under the bottom axis
            plot.plot_item.geometryChanged.connect(self.fit_columns)
        else:
            self.legend = PlotLegend(offset=plot.legend_offset, **style)
            self.legend.setParentItem(plot.view_box)
        plot.plot_item.legend = self.legend  # named items added later join it
        self._timer = QTimer(plot)
        self._timer.setSingleShot(True)
        self._timer.setInterval(LEGEND_DELAY_MS)
        self._timer.timeout.connect(self.place)
        plot.view_box.sigResized.connect(self.schedule)
        plot.view_box.sigRangeChanged.connect(self.schedule)

    def schedule(self, *_) -> None:
        """Place the legend ``LEGEND_DELAY_MS`` from now, at most that often (a live plot redraws faster)."""
        if not self._timer.isActive():
            self._timer.start()

    def set_corner(self, offset: tuple[int, int]) -> None:
        self.corner = offset
        self.place()

    def place(self) -> None:
        """Put the legend in the corner of the graph that covers the fewest data points, preferring its
        preferred corner and then the one it is in (so it does not jump about as data comes)."""
        legend = self.legend
        if self.plot.legend_below:
            self.fit_columns()
            return
        if legend.moved_by_user or not legend.items:
            return
        box = self.plot.view_box.boundingRect()
        if box.width() < 1 or box.height() < 1:
            return
        xs, ys = self._data_pixels(box)
        width, height = legend.width() + 12, legend.height() + 12  # the corner margin and half a symbol

        def covered(offset: tuple[int, int]) -> int:
            left = xs < width if offset[0] > 0 else xs > box.width() - width
            top = ys < height if offset[1] > 0 else ys > box.height() - height
            return int(np.count_nonzero(left & top))

        placed = legend.opts["offset"]
        current = (int(placed[0]), int(placed[1])) if placed is not None else self.corner
        order = [self.corner, current, *LEGEND_CORNERS]
        best = min(order, key=lambda corner: (covered(corner), order.index(corner)))
        if best != current:
            legend.setOffset(best)

    def fit_columns(self) -> None:
        """Lay a legend under the graph out in as many columns as fit the graph's width (rows fill first)."""
        plot = self.plot
        entries = [sample.width() + label.itemRect().width() + 12 for sample, label in self.legend.items]
        if not entries:
            return
        room = plot.available_width() - (plot.plot_item.width() - plot.view_box.width()) - 16  # axes, colour bar
        columns = next((n for n in range(len(entries), 1, -1)
                        if sum(max(entries[c::n]) for c in range(n)) <= room), 1)
        if self.legend.columnCount != columns:
            self.legend.setColumnCount(columns)
            plot.fit_to_view()

    def _data_pixels(self, box: QRectF) -> tuple[np.ndarray, np.ndarray]:
        """Where the visible data items' points are in the view box, in pixels from its top left."""
        view = self.plot.view_box.viewRect()
        if view.width() <= 0 or view.height() <= 0:
            return np.empty(0), np.empty(0)
        xs, ys = [], []
        for item in self.plot.plot_item.listDataItems():
            if not item.isVisible():
                continue
            x, y = item.getData()
            if x is None or y is None or len(x) == 0:
                continue
            px = (np.asarray(x, dtype=np.float64) - view.left()) / view.width() * box.width()
            py = (view.bottom() - np.asarray(y, dtype=np.float64)) / view.height() * box.height()
            joined = isinstance(item, pg.PlotDataItem) and item.opts.get("pen") is not None
            px, py = polyline_pixels(px, py, joined)
            xs.append(px)
            ys.append(py)
        if not xs:
            return np.empty(0), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)
