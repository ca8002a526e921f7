"""How every plot's pyqtgraph item looks: a title that never widens the plot, a log axis that labels decades
first, the palette's axes and grid."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt

from reptile_gui.plots.palette import PALETTE


class TitleLabel(pg.LabelItem):
    """A plot title that never sets the plot's minimum width (pyqtgraph's title makes its text's width the
    plot's minimum, so a long title pushes the graph's right edge out of a narrow window)."""

    def updateMin(self) -> None:  # noqa: N802 (pyqtgraph's name)
        super().updateMin()
        self.setMinimumWidth(0)
        height = self._sizeHint[Qt.SizeHint.MinimumSize][1]
        self._sizeHint[Qt.SizeHint.MinimumSize] = (0, height)


class DecadeAxis(pg.AxisItem):
    """An axis whose log mode labels decades first and 2..9 only where there is room.

    pyqtgraph puts all of 1, 2, ..., 9 on one tick level when fewer than three decades show, and
    then labels every one of them, a crowded column of digits.
    """

    MAX_DECADES = 6  # beyond this, pyqtgraph's own spacing of decades is better

    def logTickValues(self, minVal, maxVal, size, stdTicks):  # noqa: N802,N803 (pyqtgraph's names)
        if not (np.isfinite(minVal) and np.isfinite(maxVal)) or maxVal - minVal > self.MAX_DECADES:
            return super().logTickValues(minVal, maxVal, size, stdTicks)
        first, last = int(np.floor(minVal)), int(np.ceil(maxVal))
        decades = [float(v) for v in range(first, last + 1) if minVal <= v <= maxVal]
        minor = [v + np.log10(m) for v in range(first, last) for m in range(2, 10)]
        return [(1.0, decades), (None, [v for v in minor if minVal < v < maxVal])]


def use_title_label(plot_item: pg.PlotItem) -> None:
    """Put a :class:`TitleLabel` where pyqtgraph's title goes (``setTitle`` then fills it)."""
    layout = plot_item.layout
    old = plot_item.titleLabel
    layout.removeItem(old)
    plot_item.scene().removeItem(old)
    plot_item.titleLabel = TitleLabel("", size="10pt", parent=plot_item)
    layout.addItem(plot_item.titleLabel, 0, 0, 1, 6)  # centred over the whole plot, colour bar too
    plot_item.setTitle(None)


def style_plot_item(plot_item: pg.PlotItem) -> None:
    """The palette's grid, axes and labels, and the context menu on."""
    plot_item.showGrid(x=True, y=True, alpha=PALETTE.grid_alpha)
    for side in ("left", "bottom"):
        axis = plot_item.getAxis(side)
        axis.setPen(pg.mkPen(PALETTE.foreground))
        axis.setTextPen(pg.mkPen(PALETTE.foreground))
        # Fewer minor labels than pyqtgraph's default, so log axes label decades, not 2, 3, ... 9.
        axis.setStyle(textFillLimits=[(0, 0.8), (2, 0.35), (4, 0.25), (6, 0.15)])
        # A fixed label: the SI-prefix label is re-rendered as HTML on every range change otherwise.
        axis.enableAutoSIPrefix(False)
    plot_item.getViewBox().setBackgroundColor(None)
    plot_item.setMenuEnabled(True)
