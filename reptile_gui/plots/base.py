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
from PySide6.QtCore import QMetaMethod, QRectF, Qt, Signal
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
    #: Legend anchor, pyqtgraph style: positive x/y from the left/top edge, negative from the right/bottom.
    legend_offset: ClassVar[tuple[int, int]] = (-10, 10)

    exportFinished = Signal(str)
    exportFailed = Signal(str)

    _last_export_dir: ClassVar[str] = ""

    #: Throttling of slow redraws of long histories, see :meth:`refresh`.
    THROTTLE_MIN_POINTS: ClassVar[int] = 100_000
    SLOW_REDRAW_S: ClassVar[float] = 0.010
    MAX_DUTY: ClassVar[float] = 0.3
    #: Size (pixels) of the graph when exporting a plot that is not on screen.
    EXPORT_SIZE: ClassVar[tuple[int, int]] = (800, 500)

    def __init__(self, store: RunStore, parent: QWidget | None = None):
        super().__init__(parent)
        self._store = store
        self._drawn_key: tuple | None = None
        self._not_before = 0.0
        self._settings_revision = 0
        name_control(self, self.plot_name, self.title)

        self.plot_widget = pg.PlotWidget(self, background=PALETTE.background,
                                         viewBox=self._make_view_box(),
                                         axisItems={"left": DecadeAxis("left")})
        self.plot_widget.setAntialiasing(True)
        name_control(self.plot_widget, f"{self.plot_name}_graph", f"{self.title} graph")
        self.plot_item: pg.PlotItem = self.plot_widget.getPlotItem()
        self.view_box: pg.ViewBox = self.plot_item.getViewBox()
        self._style_plot_item()
        self.legend = self.plot_item.addLegend(
            offset=self.legend_offset, brush=pg.mkBrush(255, 255, 255, 225), pen=pg.mkPen("#c8c8c8"),
            labelTextColor=PALETTE.foreground, labelTextSize="9pt", verSpacing=-4)

        self.placeholder = pg.TextItem(self.empty_text, color="#888888", anchor=(0.5, 0.5))
        self.placeholder.setParentItem(self.view_box)  # in the view box's frame: stays put on pan/zoom
        self.view_box.sigResized.connect(self._center_placeholder)

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
        label = QLabel(hint, self)
        label.setObjectName(f"{self.plot_name}_hint")
        label.setStyleSheet("color: #555;")
        self.controls.addWidget(label, 1)
        self.controls.addWidget(button)
        return button

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
        self.plot_item.setGeometry(QRectF(0, 0, *self.EXPORT_SIZE))
        self.plot_item.layout.activate()
        try:
            yield
        finally:
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
