"""The common base of every plot: one ``pg.PlotWidget`` redrawn from a ``RunStore`` on demand.

The main window owns one ~30 Hz ``QTimer`` and calls :meth:`StorePlot.refresh` on each plot; a plot
compares the store's version counters it depends on (plus its own settings revision) with what it
drew last and returns at once when nothing changed. Items are created once and updated with
``setData``; nothing calls ``plot.clear()``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QMetaMethod, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from reptile_gui import export
from reptile_gui.store import RunStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Palette:
    """The colours every plot uses, so a concept looks the same everywhere."""

    meta_init: str = "#1550b0"        # strong blue: the meta-learned initialisation
    scratch: str = "#8c8c8c"          # grey: a randomly initialised network
    pre_adaptation: str = "#e8710a"   # orange: before the inner loop (0 steps)
    post_adaptation: str = "#1f77b4"  # blue: after the inner loop (K steps)
    intermediate: str = "#2ca02c"     # green: steps between 0 and K
    marker: str = "#7b3fa0"           # purple: hyperparameter changes
    truth: str = "#000000"            # black: the true function
    support: str = "#d62728"          # red: the support points
    policy_loss: str = "#d62728"      # red: the actor's loss (meta-RL)
    critic_loss: str = "#17becf"      # teal: the critic's loss (meta-RL)
    agent_loss: str = "#333333"       # near black: their weighted sum (meta-RL)
    goal: str = "#ffbf00"             # amber: what a meta-RL task's agent should reach
    background: str = "#ffffff"
    foreground: str = "#222222"       # axes, ticks, labels
    grid_alpha: float = 0.15

    def color(self, name: str, alpha: float = 1.0) -> QColor:
        """A ``QColor`` for a palette entry with opacity ``alpha`` (0..1)."""
        return translucent(getattr(self, name), alpha)


def translucent(color: str, alpha: float) -> QColor:
    """``color`` (a name or ``#rrggbb``) with opacity ``alpha`` (0..1)."""
    result = QColor(color)
    result.setAlphaF(float(np.clip(alpha, 0.0, 1.0)))
    return result


PALETTE = Palette()

BETWEEN_COLORS: tuple[str, ...] = (PALETTE.intermediate, "#17becf", PALETTE.marker, "#bcbd22")
"""Colours of the adaptation steps between 0 and K, in order."""


def step_color(index: int, steps: tuple[int, ...]) -> str:
    """The colour of adaptation step ``steps[index]``: orange before adaptation (0 steps), blue after the
    last step, green and then other colours in between (the task view and the rollout view agree)."""
    if steps[index] == 0:
        return PALETTE.pre_adaptation
    if index == len(steps) - 1:
        return PALETTE.post_adaptation
    return BETWEEN_COLORS[(index - 1) % len(BETWEEN_COLORS)]

#: Controls the accessibility test checks for an objectName and an accessibleName.
CONTROL_TYPES = (QAbstractButton, QAbstractSlider, QComboBox, QAbstractSpinBox)


def name_control(widget: QWidget, object_name: str, accessible_name: str, tooltip: str | None = None) -> None:
    """Give a control its object name (for tests and styles) and accessible name (for screen readers)."""
    widget.setObjectName(object_name)
    widget.setAccessibleName(accessible_name)
    if tooltip:
        widget.setToolTip(tooltip)
    if isinstance(widget, QAbstractSpinBox):
        editor = widget.findChild(QLineEdit)
        if editor is not None:
            editor.setObjectName(f"{object_name}_text")
            editor.setAccessibleName(f"{accessible_name} (typed value)")


class ElidedLabel(QElidingLabel):
    """A one-line label that shortens its text with "…" instead of widening the window, and shows the
    whole text as its tool tip while shortened (a long read-out must not set the window's minimum width)."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._update_tooltip()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._update_tooltip()

    def _update_tooltip(self) -> None:
        shortened = QLabel.text(self) != self.full_text()  # QLabel holds the shortened text
        self.setToolTip(self.full_text() if shortened else "")


class TitleLabel(pg.LabelItem):
    """A plot title that never sets the plot's minimum width (pyqtgraph's title makes its text's width the
    plot's minimum, so a long title pushes the graph's right edge out of a narrow window)."""

    def updateMin(self) -> None:  # noqa: N802 (pyqtgraph's name)
        super().updateMin()
        self.setMinimumWidth(0)
        height = self._sizeHint[Qt.SizeHint.MinimumSize][1]
        self._sizeHint[Qt.SizeHint.MinimumSize] = (0, height)


class PlotLegend(pg.LegendItem):
    """A legend that remembers when the user dragged it (it then stays where it was put)."""

    moved_by_user = False

    def mouseDragEvent(self, ev) -> None:  # noqa: N802 (pyqtgraph's name)
        super().mouseDragEvent(ev)
        if ev.isAccepted():
            self.moved_by_user = True


#: How long after a redraw, resize or change of range the legend finds its corner (and so how often at most).
LEGEND_DELAY_MS = 60

#: The four corners a legend inside the graph can take, as pyqtgraph offsets.
LEGEND_CORNERS: tuple[tuple[int, int], ...] = ((-10, 10), (10, 10), (-10, -10), (10, -10))


def _polyline_pixels(x: np.ndarray, y: np.ndarray, joined: bool, step: float = 6.0,
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


class StorePlot(QWidget):
    """A plot of part of a :class:`RunStore`, with exports and a small row of controls.

    Subclasses set ``versions`` (the store counters they read), build their items in ``__init__``
    and implement :meth:`_redraw` and :meth:`csv_table`. Changing a display setting calls
    :meth:`_settings_changed`, which redraws at once.

    Signals: ``exportFinished(str)`` with the path written from the context menu and
    ``exportFailed(str)`` with the error message (shown in a message box when nothing is connected).
    """

    #: Store version counters this plot depends on.
    versions: ClassVar[tuple[str, ...]] = ("metrics_version",)
    #: Stem for file names and object names, e.g. ``training_curve``.
    plot_name: ClassVar[str] = "plot"
    #: Human-readable title, used in the accessible name and the export dialogs.
    title: ClassVar[str] = "Plot"
    #: Shown in the middle of the graph while there is nothing to draw.
    empty_text: ClassVar[str] = "No data yet"
    #: The legend's preferred corner, pyqtgraph style: positive x/y from the left/top edge, negative from the
    #: right/bottom. The legend moves to another corner when that one covers fewer data points, and stays
    #: wherever the user drags it.
    legend_offset: ClassVar[tuple[int, int]] = (-10, 10)
    #: Whether the legend sits below the graph instead of in a corner of it (for a plot whose data fills
    #: the whole graph, such as a heat map).
    legend_below: ClassVar[bool] = False

    exportFinished = Signal(str)
    exportFailed = Signal(str)

    _last_export_dir: ClassVar[str] = ""

    #: Throttling of slow redraws of long histories, see :meth:`refresh`.
    THROTTLE_MIN_POINTS: ClassVar[int] = 100_000
    SLOW_REDRAW_S: ClassVar[float] = 0.010
    MAX_DUTY: ClassVar[float] = 0.3
    #: Size (pixels) of the graph when exporting a plot that is not on screen.
    EXPORT_SIZE: ClassVar[tuple[int, int]] = (800, 500)
    #: Font sizes a title may take, largest first: the largest that fits the plot's width is used.
    TITLE_POINT_SIZES: ClassVar[tuple[int, ...]] = (10, 9, 8, 7)

    def __init__(self, store: RunStore, parent: QWidget | None = None):
        super().__init__(parent)
        self._store = store
        self._drawn_key: tuple | None = None
        self._not_before = 0.0
        self._settings_revision = 0
        self._export_rect: QRectF | None = None  # the graph's geometry while a hidden plot is exported
        self._title_text: str | None = None
        self._fitting_title = False
        name_control(self, self.plot_name, self.title)

        self.plot_widget = pg.PlotWidget(self, background=PALETTE.background,
                                         viewBox=self._make_view_box(),
                                         axisItems={"left": DecadeAxis("left")})
        self.plot_widget.setAntialiasing(True)
        name_control(self.plot_widget, f"{self.plot_name}_graph", f"{self.title} graph")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.view_box: pg.ViewBox = self.plot_item.getViewBox()
        self._use_title_label()
        self._style_plot_item()
        self._make_legend()

        self.placeholder = pg.TextItem(self.empty_text, color="#888888", anchor=(0.5, 0.5))
        self.placeholder.setParentItem(self.view_box)  # in the view box's frame: stays put on pan/zoom
        self.view_box.sigResized.connect(self._center_placeholder)
        self.plot_item.geometryChanged.connect(self._fit_title)

        self.controls = QHBoxLayout()
        self.controls.setContentsMargins(6, 0, 6, 0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(self.controls)
        layout.addWidget(self.plot_widget, 1)

        self.export_actions: dict[str, QAction] = {}
        self._add_export_actions()
        self._name_internal_controls()

    # -- construction helpers --------------------------------------------------------------------

    def _make_view_box(self) -> pg.ViewBox | None:
        """A custom ``ViewBox`` for the plot item, or ``None`` for pyqtgraph's."""
        return None

    def _use_title_label(self) -> None:
        """Put a :class:`TitleLabel` where pyqtgraph's title goes (``setTitle`` then fills it)."""
        layout = self.plot_item.layout
        old = self.plot_item.titleLabel
        layout.removeItem(old)
        self.plot_item.scene().removeItem(old)
        self.plot_item.titleLabel = TitleLabel("", size="10pt", parent=self.plot_item)
        layout.addItem(self.plot_item.titleLabel, 0, 0, 1, 6)  # centred over the whole plot, colour bar too
        self.plot_item.setTitle(None)

    def _make_legend(self) -> None:
        style = {"brush": pg.mkBrush(255, 255, 255, 185), "pen": pg.mkPen("#c8c8c8"),
                 "labelTextColor": PALETTE.foreground, "labelTextSize": "9pt", "verSpacing": -4}
        self.legend_corner = self.legend_offset
        if self.legend_below:
            self.legend = PlotLegend(offset=None, **style)
            self.plot_item.layout.addItem(self.legend, 4, 1)  # under the bottom axis
            self.plot_item.geometryChanged.connect(self._fit_legend_columns)
        else:
            self.legend = PlotLegend(offset=self.legend_offset, **style)
            self.legend.setParentItem(self.view_box)
        self.plot_item.legend = self.legend  # named items added later join it
        # Re-place the legend once things settle after a redraw, a resize or a change of the range.
        self._legend_timer = QTimer(self)
        self._legend_timer.setSingleShot(True)
        self._legend_timer.setInterval(LEGEND_DELAY_MS)
        self._legend_timer.timeout.connect(self._place_legend)
        self.view_box.sigResized.connect(self._schedule_legend)
        self.view_box.sigRangeChanged.connect(self._schedule_legend)

    def _schedule_legend(self, *_) -> None:
        """Place the legend ``LEGEND_DELAY_MS`` from now, at most that often (a live plot redraws faster)."""
        if not self._legend_timer.isActive():
            self._legend_timer.start()

    def set_legend_corner(self, offset: tuple[int, int]) -> None:
        """Make ``offset`` the legend's preferred corner (it still avoids covering data)."""
        self.legend_corner = offset
        self._place_legend()

    def _place_legend(self) -> None:
        """Put the legend in the corner of the graph that covers the fewest data points, preferring its
        preferred corner and then the one it is in (so it does not jump about as data comes)."""
        legend = self.legend
        if self.legend_below:
            self._fit_legend_columns()
            return
        if legend.moved_by_user or not legend.items:
            return
        box = self.view_box.boundingRect()
        if box.width() < 1 or box.height() < 1:
            return
        xs, ys = self._data_pixels(box)
        width, height = legend.width() + 12, legend.height() + 12  # the corner margin and half a symbol

        def covered(offset: tuple[int, int]) -> int:
            left = xs < width if offset[0] > 0 else xs > box.width() - width
            top = ys < height if offset[1] > 0 else ys > box.height() - height
            return int(np.count_nonzero(left & top))

        placed = legend.opts["offset"]
        current = (int(placed[0]), int(placed[1])) if placed is not None else self.legend_corner
        order = [self.legend_corner, current, *LEGEND_CORNERS]
        best = min(order, key=lambda corner: (covered(corner), order.index(corner)))
        if best != current:
            legend.setOffset(best)

    def _fit_legend_columns(self) -> None:
        """Lay a legend under the graph out in as many columns as fit the graph's width (rows fill first)."""
        entries = [sample.width() + label.itemRect().width() + 12 for sample, label in self.legend.items]
        if not entries:
            return
        room = self.available_width() - (self.plot_item.width() - self.view_box.width()) - 16  # axes, colour bar
        columns = next((n for n in range(len(entries), 1, -1)
                        if sum(max(entries[c::n]) for c in range(n)) <= room), 1)
        if self.legend.columnCount != columns:
            self.legend.setColumnCount(columns)
            self.fit_to_view()

    def _data_pixels(self, box: QRectF) -> tuple[np.ndarray, np.ndarray]:
        """Where the visible data items' points are in the view box, in pixels from its top left."""
        view = self.view_box.viewRect()
        if view.width() <= 0 or view.height() <= 0:
            return np.empty(0), np.empty(0)
        xs, ys = [], []
        for item in self.plot_item.listDataItems():
            if not item.isVisible():
                continue
            x, y = item.getData()
            if x is None or y is None or len(x) == 0:
                continue
            px = (np.asarray(x, dtype=np.float64) - view.left()) / view.width() * box.width()
            py = (view.bottom() - np.asarray(y, dtype=np.float64)) / view.height() * box.height()
            joined = isinstance(item, pg.PlotDataItem) and item.opts.get("pen") is not None
            px, py = _polyline_pixels(px, py, joined)
            xs.append(px)
            ys.append(py)
        if not xs:
            return np.empty(0), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)

    def _style_plot_item(self) -> None:
        item = self.plot_item
        item.showGrid(x=True, y=True, alpha=PALETTE.grid_alpha)
        for side in ("left", "bottom"):
            axis = item.getAxis(side)
            axis.setPen(pg.mkPen(PALETTE.foreground))
            axis.setTextPen(pg.mkPen(PALETTE.foreground))
            # Fewer minor labels than pyqtgraph's default, so log axes label decades, not 2, 3, ... 9.
            axis.setStyle(textFillLimits=[(0, 0.8), (2, 0.35), (4, 0.25), (6, 0.15)])
            # A fixed label: the SI-prefix label is re-rendered as HTML on every range change otherwise.
            axis.enableAutoSIPrefix(False)
        item.getViewBox().setBackgroundColor(None)
        item.setMenuEnabled(True)

    def _center_placeholder(self, *_) -> None:
        self.placeholder.setPos(self.view_box.boundingRect().center())

    def show_placeholder(self, empty: bool) -> None:
        """Show ``empty_text`` over the graph while ``empty``."""
        if self.placeholder.isVisible() != empty:
            self.placeholder.setVisible(empty)
        if empty:
            self._center_placeholder()

    def add_hint_and_button(self, hint: str, text: str, accessible_name: str, tooltip: str) -> QPushButton:
        """A grey hint across the control row and a button at its end, named ``<plot_name>_<text, snake
        case>``; the caller connects the button."""
        button = QPushButton(text, self)
        name_control(button, f"{self.plot_name}_{text.lower().replace(' ', '_')}", accessible_name, tooltip)
        label = ElidedLabel(hint, self)
        label.setObjectName(f"{self.plot_name}_hint")
        label.setStyleSheet("color: #555;")
        self.controls.addWidget(label, 1)
        self.controls.addWidget(button)
        return button

    def set_title(self, text: str) -> None:
        """Show ``text`` above the graph, in the largest of ``TITLE_POINT_SIZES`` that fits its width.

        pyqtgraph makes a title's width the plot's minimum width; a long title would push the graph's
        right edge (and a colour bar) out of a narrow window, so the title shrinks instead.
        """
        self._title_text = text
        self._fit_title()

    def _fit_title(self) -> None:
        text = self._title_text
        if text is None or self._fitting_title:
            return
        self._fitting_title = True  # setting a title resizes the graph, which calls this again
        try:
            room = self.available_width() - 16
            for size in self.TITLE_POINT_SIZES:
                self.plot_item.setTitle(text, color=PALETTE.foreground, size=f"{size}pt")
                if self.plot_item.titleLabel.itemRect().width() <= room:
                    break
            self.fit_to_view()
        finally:
            self._fitting_title = False

    def available_width(self) -> float:
        """The width the graph has: the view's on screen, the export size while a hidden plot is exported."""
        return self._export_rect.width() if self._export_rect is not None else self.plot_widget.range.width()

    def fit_to_view(self) -> None:
        """Give the graph the view's size again after an item inside it (a long title, a wide legend)
        stretched it past the view's edge: pyqtgraph only fits it to the view when the view resizes."""
        rect = self._export_rect if self._export_rect is not None else self.plot_widget.range
        minimum = self.plot_item.effectiveSizeHint(Qt.SizeHint.MinimumSize)
        if self.plot_item.geometry().width() > max(rect.width(), minimum.width()) + 0.5:
            self.plot_item.setGeometry(rect)

    def set_axis_label(self, side: str, text: str) -> None:
        """Label an axis; ``text`` carries its unit in brackets, e.g. ``"query loss (MSE)"``."""
        self.plot_item.setLabel(side, text, color=PALETTE.foreground, **{"font-size": "10pt"})

    def make_curve(self, name: str | None, color: str | QColor, *, width: float = 1.6,
                   style: Qt.PenStyle = Qt.PenStyle.SolidLine, z: float = 0.0,
                   antialias: bool = True) -> pg.PlotDataItem:
        """A reused line item added to the plot (and to the legend when ``name`` is set)."""
        pen = pg.mkPen(QColor(color), width=width, style=style)
        pen.setCosmetic(True)
        curve = pg.PlotDataItem(pen=pen, antialias=antialias, name=name)
        curve.setZValue(z)
        self.plot_item.addItem(curve)
        return curve

    def _add_export_actions(self) -> None:
        menu = self.view_box.menu
        menu.addSeparator()
        for kind, label, slot in (("png", "Export PNG…", self._export_png_dialog),
                                  ("svg", "Export SVG…", self._export_svg_dialog),
                                  ("csv", "Export CSV…", self._export_csv_dialog)):
            action = QAction(label, menu)
            action.setObjectName(f"{self.plot_name}_export_{kind}")
            action.triggered.connect(slot)
            menu.addAction(action)
            self.export_actions[kind] = action

    def _name_internal_controls(self) -> None:
        """Name the sub-controls Qt and pyqtgraph create for us (scroll bars of the graphics view)."""
        for bar, orientation in ((self.plot_widget.horizontalScrollBar(), "horizontal"),
                                 (self.plot_widget.verticalScrollBar(), "vertical")):
            name_control(bar, f"{self.plot_name}_{orientation}_scrollbar",
                         f"{self.title} {orientation} scroll bar")

    def _finish_init(self) -> None:
        """End of a subclass's ``__init__``: name any control still unnamed, then draw."""
        for widget in self.findChildren(QWidget):
            if isinstance(widget, CONTROL_TYPES) and not (widget.objectName() and widget.accessibleName()):
                owner = widget.parentWidget()
                while owner is not None and owner is not self and not owner.objectName():
                    owner = owner.parentWidget()
                owner = owner or self
                kind = type(widget).__name__.lstrip("Q").lower()
                siblings = owner.findChildren(type(widget))
                suffix = f"_{siblings.index(widget)}" if len(siblings) > 1 else ""
                name_control(widget, widget.objectName() or f"{owner.objectName()}_{kind}{suffix}",
                             widget.accessibleName() or f"{owner.accessibleName() or owner.objectName()} {kind}")
        self.refresh(force=True)

    # -- store and redraw ------------------------------------------------------------------------

    @property
    def store(self) -> RunStore:
        return self._store

    def set_store(self, store: RunStore) -> None:
        """Draw another store (e.g. after loading a session); redraws now."""
        self._store = store
        self._settings_changed()

    def _state_key(self) -> tuple:
        return (id(self._store), self._settings_revision,
                *(getattr(self._store, name) for name in self.versions))

    def refresh(self, force: bool = False) -> bool:
        """Redraw when the store (or a setting) changed since the last draw; ``True`` if it redrew.

        Cheap when nothing changed: a tuple of integers compared, no array touched. The main window's
        redraw timer calls this on every plot. A plot of a very long history (at least
        ``THROTTLE_MIN_POINTS``) whose redraw took longer than ``SLOW_REDRAW_S`` skips timer calls for a
        while, so that it spends at most ``MAX_DUTY`` of the GUI thread's time redrawing; ``force``
        (used for setting changes and exports) ignores that pause.
        """
        key = self._state_key()
        if key == self._drawn_key:
            return False
        start = time.perf_counter()
        if not force and start < self._not_before:
            return False
        self._drawn_key = key
        self._redraw()
        self._schedule_legend()
        cost = time.perf_counter() - start
        slow = cost > self.SLOW_REDRAW_S and self.data_size() >= self.THROTTLE_MIN_POINTS
        self._not_before = start + cost / self.MAX_DUTY if slow else 0.0
        return True

    def data_size(self) -> int:
        """How many points a redraw handles (only long histories are throttled)."""
        return 0

    def _settings_changed(self) -> None:
        """A display setting changed: redraw now."""
        self._settings_revision += 1
        self.refresh(force=True)

    def _redraw(self) -> None:
        raise NotImplementedError

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """The header and columns :meth:`export_csv` writes: the data as currently plotted."""
        raise NotImplementedError

    # -- exports ---------------------------------------------------------------------------------

    @contextmanager
    def _laid_out(self) -> Iterator[None]:
        """Give a plot that was never shown (a hidden tab) a real layout while it is exported."""
        rect = self.plot_item.geometry()
        if self.plot_widget.isVisible() and rect.width() >= 100 and rect.height() >= 80:
            yield
            return
        self._export_rect = QRectF(0, 0, *self.EXPORT_SIZE)
        self.plot_item.setGeometry(self._export_rect)
        self.plot_item.layout.activate()
        try:
            yield
        finally:
            self._export_rect = None
            self.plot_item.setGeometry(rect)

    def export_png(self, path: str | os.PathLike[str], width: int | None = None) -> Path:
        """Save the graph (not the controls) as PNG, ``width`` pixels wide (default: as on screen,
        or ``EXPORT_SIZE`` for a plot not on screen); the height keeps the on-screen aspect ratio."""
        self.refresh(force=True)
        with self._laid_out():
            return export.export_png(self.plot_item, path, width)

    def export_svg(self, path: str | os.PathLike[str]) -> Path:
        """Save the graph as SVG."""
        self.refresh(force=True)
        with self._laid_out():
            return export.export_svg(self.plot_item, path)

    def export_csv(self, path: str | os.PathLike[str]) -> Path:
        """Save the plotted data as CSV (see :meth:`csv_table` for the columns)."""
        self.refresh(force=True)
        header, columns = self.csv_table()
        return export.write_csv(path, header, columns)

    def _export_dialog(self, kind: str, file_filter: str) -> None:
        start = os.path.join(StorePlot._last_export_dir or os.getcwd(), f"{self.plot_name}.{kind}")
        path, _ = QFileDialog.getSaveFileName(self, f"Export {self.title} as {kind.upper()}", start,
                                              file_filter)
        if not path:
            return
        if not path.lower().endswith(f".{kind}"):
            path += f".{kind}"
        StorePlot._last_export_dir = os.path.dirname(path)
        try:
            if kind == "png":
                self.export_png(path)
            elif kind == "svg":
                self.export_svg(path)
            else:
                self.export_csv(path)
        except export.ExportError as exc:
            log.warning("%s", exc)
            self.exportFailed.emit(str(exc))
            if not self.isSignalConnected(QMetaMethod.fromSignal(self.exportFailed)):
                box = QMessageBox(QMessageBox.Icon.Warning, "Export failed", str(exc),
                                  QMessageBox.StandardButton.Ok, self)
                box.setObjectName(f"{self.plot_name}_export_error")
                box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
                box.open()
            return
        self.exportFinished.emit(path)

    def _export_png_dialog(self) -> None:
        self._export_dialog("png", "PNG images (*.png)")

    def _export_svg_dialog(self) -> None:
        self._export_dialog("svg", "SVG drawings (*.svg)")

    def _export_csv_dialog(self) -> None:
        self._export_dialog("csv", "CSV tables (*.csv)")
