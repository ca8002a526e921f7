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
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QMetaMethod, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from reptile_gui import export
from reptile_gui.plots.items import DecadeAxis, style_plot_item, use_title_label
from reptile_gui.plots.legend import LegendPlacement
from reptile_gui.plots.palette import PALETTE
from reptile_gui.store import RunStore
from reptile_gui.toolkit.naming import NAMED_CONTROLS, name_control

log = logging.getLogger(__name__)


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
        use_title_label(self.plot_item)
        style_plot_item(self.plot_item)
        self._legend_placement = LegendPlacement(self)
        self.legend = self._legend_placement.legend

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

    @property
    def legend_corner(self) -> tuple[int, int]:
        """The legend's preferred corner now (``legend_offset`` until :meth:`set_legend_corner`)."""
        return self._legend_placement.corner

    def set_legend_corner(self, offset: tuple[int, int]) -> None:
        """Make ``offset`` the legend's preferred corner (it still avoids covering data)."""
        self._legend_placement.set_corner(offset)

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
        for suffix in export.FORMATS:
            action = QAction(f"Export {suffix.upper()}…", menu)
            action.setObjectName(f"{self.plot_name}_export_{suffix}")
            action.triggered.connect(lambda _=False, suffix=suffix: self._export_dialog(suffix))
            menu.addAction(action)
            self.export_actions[suffix] = action

    def _name_internal_controls(self) -> None:
        """Name the sub-controls Qt and pyqtgraph create for us (scroll bars of the graphics view)."""
        for bar, orientation in ((self.plot_widget.horizontalScrollBar(), "horizontal"),
                                 (self.plot_widget.verticalScrollBar(), "vertical")):
            name_control(bar, f"{self.plot_name}_{orientation}_scrollbar",
                         f"{self.title} {orientation} scroll bar")

    def _finish_init(self) -> None:
        """End of a subclass's ``__init__``: name any control still unnamed, then draw."""
        for widget in self.findChildren(QWidget):
            if isinstance(widget, NAMED_CONTROLS) and not (widget.objectName() and widget.accessibleName()):
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
        self._legend_placement.schedule()
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

    def _export_dialog(self, suffix: str) -> None:
        """Ask where to write this plot in ``suffix``'s format and write it there; a failure is reported
        by ``exportFailed`` (or a message box when nothing is connected)."""
        export_format = export.FORMATS[suffix]
        start = os.path.join(StorePlot._last_export_dir or os.getcwd(), f"{self.plot_name}.{suffix}")
        path, _ = QFileDialog.getSaveFileName(self, f"Export {self.title} as {suffix.upper()}", start,
                                              export_format.file_filter)
        if not path:
            return
        if not path.lower().endswith(f".{suffix}"):
            path += f".{suffix}"
        StorePlot._last_export_dir = os.path.dirname(path)
        try:
            export_format.write(self, Path(path))
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
