"""The loss landscape: a 2D slice through parameter space as a heat map, with the paths that cross it.

Draws ``store.landscape`` (a :class:`reptile_engine.landscape.LandscapeSlice`):

* the loss over the plane as an image whose pixel ``(i, j)`` is centred on ``(alphas[j], betas[i])``,
  coloured by log10 of the loss by default (a check box switches to the raw loss), with a colour bar
  and a few contour lines evenly spaced in log10 of the loss (the same curves in either scale). A slice
  with negative values (a meta-RL policy surrogate) has no log scale: it is coloured linearly, with linearly
  spaced contours, and the check box is disabled until a slice without negative values comes;
* the meta-trajectory as a polyline fading with age (the oldest eighth faintest) that ends at the
  current meta-parameters ``θ`` at the origin;
* each task's inner-loop path from ``θ`` as a polyline through its steps with an arrow head at the
  adapted parameters, and on the task plane the two tasks' adapted parameters ``φ_a``, ``φ_b``;
* under the mouse, the nearest grid cell's ``(α, β, loss)`` in a read-out above the graph.

For a meta-RL run (``landscape.loss`` is ``"policy"`` or ``"critic"``) the surface is a surrogate on a fixed
batch of transitions, not the return, and every label says so; the loss choice offers only the surrogates
and the inner-steps control is hidden (the inner loop is ``rl.updates``).

The row of controls above the graph edits the ``landscape`` config section. Edits are coalesced: each
one restarts a ~200 ms single-shot timer and the plot emits one ``changesRequested({dotted path:
value})`` when it fires; "Recompute now" first sends any pending edits, then emits
``recomputeRequested`` and shows that it waits (the button disabled and reading "Computing…", a busy bar
beside it) until the slice arrives or the window learns that none is coming (:meth:`LandscapePlot.set_busy`).
The controls wrap onto more lines in a narrow window; the legend sits under the map, the view takes in
the paths and task points that leave the grid. :meth:`LandscapePlot.set_config` re-syncs the controls with their signals
blocked, so a ``ConfigChanged`` echo does not come back as an edit.

>>> plot = LandscapePlot(store, config=controller.config)              # doctest: +SKIP
>>> plot.changesRequested.connect(controller.update)                   # doctest: +SKIP
>>> plot.recomputeRequested.connect(controller.request_landscape)      # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QFlowLayout

from reptile_engine.config import RL_LANDSCAPE_LOSSES, SUPERVISED_LANDSCAPE_LOSSES, LandscapeConfig
from reptile_gui.plots.base import ElidedLabel, StorePlot, name_control
from reptile_gui.store import RunStore
from reptile_gui.widgets._util import blocked, name_internals

__all__ = ["LandscapePlot"]

PLANES: dict[str, tuple[str, str]] = {
    "random": ("random", "Two filter-normalized random directions (Li et al. 2018)"),
    "pca": ("PCA", "The top two principal directions of the meta-trajectory"),
    "task": ("task", "The plane through θ and two tasks' adapted parameters φ_a, φ_b"),
}
"""Plane kinds (``landscape.plane``): the combo box's text and the item's tool tip."""

LOSSES: dict[str, tuple[str, str]] = {
    "mean": ("mean", "Mean query MSE over the held-out tasks"),
    "task": ("one task", "Query MSE of one held-out task"),
    "adapted": ("adapted", "Mean query MSE after adapting from each grid point (the surface Reptile descends)"),
    "policy": ("policy loss (surrogate, fixed batch)",
               "The actor's policy loss (PPO's clipped surrogate, A2C's -A log π, TD3's -Q) on one fixed batch of "
               "θ's transitions on held-out tasks; its slope at θ is the inner loop's first step. Not the return"),
    "critic": ("critic TD loss (fixed batch)",
               "The critic's squared TD error against the fixed batch's targets (θ's own returns or target "
               "networks). Not the return"),
}
"""Loss kinds (``landscape.loss``): the combo box's text and the item's tool tip."""

LOSS_TIPS: dict[str, str] = {
    "supervised": "The loss on the plane (query MSE): the mean over held-out tasks, one held-out task, or the "
                  "mean after adapting from each grid point (the surface Reptile descends)",
    "rl": "A surrogate on one fixed batch of transitions collected by θ on held-out tasks (the expected return "
          "has no closed form): the actor's policy loss or the critic's TD loss",
}
"""The loss combo box's tool tip for each kind of run."""

VALUE_NAMES: dict[str, str] = {loss: LOSSES[loss][0] for loss in RL_LANDSCAPE_LOSSES}
"""What the colour bar and the read-out call a surrogate's value; the supervised losses' is ``loss (MSE)``."""


def value_name(loss: str) -> str:
    """The name of a slice's values, with its unit or its caveat: ``loss (MSE)`` or a surrogate's name."""
    return VALUE_NAMES.get(loss, "loss (MSE)")


def has_log_scale(values: np.ndarray) -> bool:
    """Whether a slice can be coloured by log10: no finite value below zero (an exact zero is the scale's
    bottom, see ``log_values``)."""
    values = np.asarray(values, dtype=np.float64)
    return not bool(np.any(values[np.isfinite(values)] < 0))

SPAN_LADDER: tuple[float, ...] = tuple(m * 10.0 ** e for e in range(-2, 3) for m in (1, 2, 5)
                                       if m * 10.0 ** e <= 100)
"""Where the span's arrows step: 0.01, 0.02, 0.05, 0.1, ..., 50, 100 (any value can be typed)."""

DEBOUNCE_MS = 200


class OddSpinBox(QSpinBox):
    """A spin box for a grid resolution: steps by 2 and turns a typed even number into the next odd one,
    so that the grid keeps a point exactly at the origin (``θ`` itself)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSingleStep(2)
        self.setKeyboardTracking(False)

    def validate(self, text: str, pos: int) -> object:
        state, text, pos = super().validate(text, pos)
        if state == QValidator.State.Acceptable and int(text or 0) % 2 == 0:
            state = QValidator.State.Intermediate  # fixup() makes it odd on Enter or focus out
        return state, text, pos

    def fixup(self, text: str) -> str:
        try:
            value = int(text)
        except ValueError:
            return super().fixup(text)
        value = min(max(value, self.minimum()), self.maximum())
        if value % 2 == 0:
            value = value + 1 if value + 1 <= self.maximum() else value - 1
        return str(value)


class SpanSpinBox(QDoubleSpinBox):
    """A spin box whose arrows walk the 1-2-5 ladder ``SPAN_LADDER`` (typed values stay as typed)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(4)
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt override)
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        try:
            value = float(text.strip())
        except ValueError:
            return QValidator.State.Intermediate, text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        ladder = [v for v in SPAN_LADDER if self.minimum() <= v <= self.maximum()]
        value = self.value()
        for _ in range(abs(steps)):
            if steps > 0:
                value = next((v for v in ladder if v > value * (1 + 1e-9)), value)
            else:
                value = next((v for v in reversed(ladder) if v < value * (1 - 1e-9)), value)
        self.setValue(value)


def _grid_rect(alphas: np.ndarray, betas: np.ndarray) -> QRectF:
    """The rectangle the image covers: each grid point is the centre of its pixel."""
    da = (alphas[-1] - alphas[0]) / (len(alphas) - 1) if len(alphas) > 1 else 1.0
    db = (betas[-1] - betas[0]) / (len(betas) - 1) if len(betas) > 1 else 1.0
    return QRectF(float(alphas[0] - da / 2), float(betas[0] - db / 2), float(da * len(alphas)),
                  float(db * len(betas)))


def log_values(values: np.ndarray) -> np.ndarray:
    """log10 of a loss grid, made safe to draw: non-positive losses (an exact zero) take the smallest
    positive loss's log, ``+inf`` (a diverged point) the largest finite log; NaN stays NaN (a transparent
    pixel). With no positive finite loss at all, every finite cell is ``-12``."""
    values = np.asarray(values, dtype=np.float64)
    positive = np.isfinite(values) & (values > 0)
    out = np.full(values.shape, np.nan)
    out[positive] = np.log10(values[positive])
    low = float(out[positive].min()) if positive.any() else -12.0
    high = float(out[positive].max()) if positive.any() else -12.0
    out[np.isfinite(values) & (values <= 0)] = low
    out[values == -np.inf] = low
    out[values == np.inf] = high
    return out


def linear_values(values: np.ndarray) -> np.ndarray:
    """A loss grid made safe to draw: ``+inf`` becomes the largest finite loss, NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    finite = np.isfinite(values)
    high = float(values[finite].max()) if finite.any() else 0.0
    low = float(values[finite].min()) if finite.any() else 0.0
    out[values == np.inf] = high
    out[values == -np.inf] = low
    return out


def value_levels(shown: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` over the finite cells, widened when they are equal so a colour map can stretch."""
    finite = shown[np.isfinite(shown)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        pad = max(abs(low) * 1e-3, 1e-6)
        low, high = low - pad, high + pad
    return low, high


class LandscapePlot(StorePlot):
    """Draws ``store.landscape``: heat map, contours, meta-trajectory, inner-loop paths, hover read-out.

    ``LandscapePlot(store, parent=None, *, config=None, log_scale=True)``; ``config`` is an
    ``ExperimentConfig`` or its ``LandscapeConfig`` (default: the defaults) shown in the controls.

    Signals:
        changesRequested(dict): ``{"landscape.<field>": value}``, one per debounce window of edits.
        recomputeRequested(): "Recompute now" was pressed (pending edits were sent just before).

    Public items: ``image_item`` (row-major: ``image[i, j]`` is the cell at ``alphas[j], betas[i]``),
    ``color_bar``, ``contours`` (``CONTOUR_LEVELS`` isocurves, children of the image),
    ``trajectory_segments`` (``TRAJECTORY_SEGMENTS`` lines, oldest first, opacity rising),
    ``trajectory_scatter``, ``theta_marker`` and ``theta_label``, ``path_curves`` and ``path_arrows``
    (pools: the first ``len(inner_paths)`` are visible; an arrow only on a path longer than
    ``MIN_ARROW_FRACTION`` of the grid's half-width), ``task_scatter`` and ``task_labels``;
    ``hovered``: ``(alpha, beta, loss)`` of the cell under the mouse, or ``None``.
    """

    versions = ("landscape_version",)
    plot_name = "landscape"
    title = "Loss landscape"
    empty_text = "No landscape yet: press \u201cRecompute now\u201d"
    legend_below = True  # the heat map fills the graph: no corner is free

    changesRequested = Signal(dict)
    recomputeRequested = Signal()

    COLOR_MAP = "viridis"
    CONTOUR_LEVELS = 6
    TRAJECTORY_SEGMENTS = 8
    #: Opacity of the oldest and the newest part of the meta-trajectory.
    TRAJECTORY_ALPHA = (0.15, 1.0)
    TRAJECTORY_COLOR = "#ff2d55"
    PATH_COLOR = "#ff9f1c"
    OUTLINE_COLOR = "#111111"
    CONTOUR_COLOR = (255, 255, 255, 120)
    #: Inner-loop paths shorter than this fraction of the grid's half-width get no arrow head.
    MIN_ARROW_FRACTION = 0.02
    RECOMPUTE_TEXT = "Recompute now"
    COMPUTING_TEXT = "Computing…"
    RECOMPUTE_TIP = "Compute a slice with these settings at the next iteration boundary"
    COMPUTING_TIP = "A slice is being computed; a fine grid can take several seconds"

    def __init__(self, store: RunStore, parent: QWidget | None = None, *,
                 config: Any = None, log_scale: bool = True):
        self._config = self._landscape_section(config)
        self._pending: dict[str, Any] = {}
        self._grid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # alphas, betas, values drawn
        self._drawn_rect: QRectF | None = None
        self._kind = ""
        self._log_preference = log_scale
        self._busy_key: tuple[int, int] | None = None  # (store id, landscape_version) when a slice was asked
        self.hovered: tuple[float, float, float] | None = None
        super().__init__(store, parent)
        self.set_axis_label("bottom", "α (direction 1)")
        self.set_axis_label("left", "β (direction 2)")
        self.plot_item.showGrid(x=False, y=False)  # the contours are the grid of a heat map
        self.view_box.setAspectLocked(True)  # α and β are in the same units; arrows keep their angles
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)
        self._build_items()
        self._build_controls(log_scale)
        self.set_config(self._config)
        self.plot_widget.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self._finish_init()

    # -- construction ----------------------------------------------------------------------------

    @staticmethod
    def _landscape_section(config: Any) -> LandscapeConfig:
        if config is None:
            return LandscapeConfig()
        return getattr(config, "landscape", config)

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

        self.trajectory_segments: list[pg.PlotDataItem] = []
        low, high = self.TRAJECTORY_ALPHA
        for k in range(self.TRAJECTORY_SEGMENTS):
            alpha = float(np.interp(k, [0, self.TRAJECTORY_SEGMENTS - 1], [low, high]))
            color = QColor(self.TRAJECTORY_COLOR)
            color.setAlphaF(alpha)
            segment = self.make_curve(None, color, width=2.6, z=10 + k / 100)
            self.trajectory_segments.append(segment)
        self.legend.addItem(self.trajectory_segments[-1], "meta-trajectory")
        self.trajectory_scatter = pg.ScatterPlotItem(size=6, pen=None, antialias=True)
        self.trajectory_scatter.setZValue(11)
        self.plot_item.addItem(self.trajectory_scatter)

        self.path_curves: list[pg.PlotDataItem] = []
        self.path_arrows: list[pg.ArrowItem] = []
        self._add_paths(2)
        self.legend.addItem(self.path_curves[0], "inner loop θ → φ")

        self.task_scatter = pg.ScatterPlotItem(size=13, symbol="d", pen=pg.mkPen(self.OUTLINE_COLOR, width=1.2),
                                               brush=pg.mkBrush(self.PATH_COLOR), antialias=True)
        self.task_scatter.setZValue(25)
        self.plot_item.addItem(self.task_scatter)
        self.task_labels: list[pg.TextItem] = []
        for name in ("a", "b"):
            label = self._text_item(f"φ<sub>{name}</sub>", anchor=(-0.15, 1.05))
            label.setVisible(False)
            self.task_labels.append(label)

        self.theta_marker = pg.ScatterPlotItem([0.0], [0.0], size=18, symbol="star",
                                               pen=pg.mkPen(self.OUTLINE_COLOR, width=1.2),
                                               brush=pg.mkBrush("#ffffff"), antialias=True)
        self.theta_marker.setZValue(30)
        self.plot_item.addItem(self.theta_marker)
        self.legend.addItem(self.theta_marker, "θ (meta-parameters)")
        self.theta_label = self._text_item("θ", anchor=(1.15, 1.05))
        self.theta_label.setPos(0.0, 0.0)
        self.theta_label.setVisible(False)
        self.theta_marker.setVisible(False)
        self.legend.setVisible(False)

    def _text_item(self, html: str, anchor: tuple[float, float]) -> pg.TextItem:
        item = pg.TextItem(anchor=anchor, fill=pg.mkBrush(255, 255, 255, 200), border=None)
        item.setHtml(f'<span style="color: #111111; font-size: 11pt; font-weight: 600;">{html}</span>')
        item.setZValue(31)
        self.plot_item.addItem(item, ignoreBounds=True)
        return item

    def _add_paths(self, count: int) -> None:
        while len(self.path_curves) < count:
            curve = self.make_curve(None, self.PATH_COLOR, width=2.2, z=20)
            curve.setSymbol("o")
            curve.setSymbolSize(4)
            curve.setSymbolPen(None)
            curve.setSymbolBrush(pg.mkBrush(self.PATH_COLOR))
            arrow = pg.ArrowItem(angle=0, headLen=18, tipAngle=34, tailLen=None,
                                 pen=pg.mkPen(self.OUTLINE_COLOR, width=1), brush=pg.mkBrush(self.PATH_COLOR))
            arrow.setZValue(21)
            arrow.setVisible(False)
            self.plot_item.addItem(arrow)
            self.path_curves.append(curve)
            self.path_arrows.append(arrow)

    def _build_controls(self, log_scale: bool) -> None:
        # The controls wrap onto more lines in a narrow window instead of widening it; a caption stays
        # on the line of its control.
        row = QFlowLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.setHorizontalSpacing(8)
        row.setVerticalSpacing(2)
        self.controls.addLayout(row, 1)

        self._groups: dict[QWidget, QWidget] = {}

        def caption(text: str, buddy: QWidget) -> None:
            group = QWidget(self)
            layout = QHBoxLayout(group)
            layout.setContentsMargins(0, 0, 0, 0)
            layout.setSpacing(4)
            label = QLabel(text, group)
            label.setBuddy(buddy)
            layout.addWidget(label)
            layout.addWidget(buddy)
            row.addWidget(group)
            self._groups[buddy] = group

        self.plane_combo = QComboBox(self)
        for key, (text, tip) in PLANES.items():
            self.plane_combo.addItem(text, key)
            self.plane_combo.setItemData(self.plane_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        name_control(self.plane_combo, "landscape_plane", "Landscape plane",
                     "The plane of the slice: filter-normalized random directions (Li et al. 2018), the top two "
                     "principal directions of the meta-trajectory, or the plane through θ and two tasks' "
                     "adapted parameters φ_a, φ_b")
        caption("&Plane", self.plane_combo)

        self.loss_combo = QComboBox(self)
        self.loss_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        name_control(self.loss_combo, "landscape_loss", "Landscape loss", LOSS_TIPS["supervised"])
        caption("&Loss", self.loss_combo)

        meta = {f.name: f.metadata for f in LandscapeConfig.__dataclass_fields__.values()}
        self.resolution_spin = OddSpinBox(self)
        self.resolution_spin.setRange(int(meta["resolution"]["min"]), int(meta["resolution"]["max"]))
        name_control(self.resolution_spin, "landscape_resolution", "Landscape grid resolution",
                     "Grid points per axis (odd, so that θ itself is a grid point); the cost grows with its square")
        caption("&Grid", self.resolution_spin)

        self.span_spin = SpanSpinBox(self)
        self.span_spin.setRange(float(meta["span"]["min"]), float(meta["span"]["max"]))
        self.span_spin.setPrefix("±")
        name_control(self.span_spin, "landscape_span", "Landscape span",
                     "Half-width of the grid in units of the directions (random plane: 1 = as far again as "
                     "the weights; PCA and task planes: Euclidean distance in parameter space)")
        caption("&Span", self.span_spin)

        self.steps_spin = QSpinBox(self)
        self.steps_spin.setRange(int(meta["steps"]["min"]), int(meta["steps"]["max"]))
        self.steps_spin.setKeyboardTracking(False)
        name_control(self.steps_spin, "landscape_steps", "Landscape inner steps",
                     "Full-batch SGD steps on each task's support set: for the adapted loss, the task plane's "
                     "φ_a, φ_b and the inner-loop paths")
        caption("S&teps", self.steps_spin)

        self.every_spin = QSpinBox(self)
        self.every_spin.setRange(int(meta["every"]["min"]), int(meta["every"]["max"]))
        self.every_spin.setSingleStep(100)
        self.every_spin.setKeyboardTracking(False)
        self.every_spin.setSpecialValueText("on request")
        self.every_spin.setSuffix(" it")
        name_control(self.every_spin, "landscape_every", "Landscape auto-refresh interval",
                     "Meta-iterations between automatic slices; 0 = only when you press Recompute now")
        caption("&Every", self.every_spin)

        self.freeze_check = QCheckBox("Freeze plane", self)
        name_control(self.freeze_check, "landscape_freeze", "Freeze landscape plane",
                     "Keep the plane's directions across refreshes (re-centred on the current θ), "
                     "so that successive slices are comparable")
        row.addWidget(self.freeze_check)

        recompute = QWidget(self)
        recompute_layout = QHBoxLayout(recompute)
        recompute_layout.setContentsMargins(0, 0, 0, 0)
        recompute_layout.setSpacing(4)
        self.recompute_button = QPushButton(self.RECOMPUTE_TEXT, self)
        name_control(self.recompute_button, "landscape_recompute", "Recompute landscape now", self.RECOMPUTE_TIP)
        self.recompute_button.setMinimumWidth(max(
            self.recompute_button.sizeHint().width(),
            self.recompute_button.fontMetrics().horizontalAdvance(self.COMPUTING_TEXT) + 24))
        self.busy_bar = QProgressBar(self)
        self.busy_bar.setRange(0, 0)  # no known end: an animated "busy" bar
        self.busy_bar.setTextVisible(False)
        self.busy_bar.setFixedWidth(60)
        self.busy_bar.setMaximumHeight(self.recompute_button.sizeHint().height() // 2)
        self.busy_bar.setObjectName("landscape_busy")
        self.busy_bar.setAccessibleName("Computing a landscape slice")
        self.busy_bar.setVisible(False)
        recompute_layout.addWidget(self.recompute_button)
        recompute_layout.addWidget(self.busy_bar)
        row.addWidget(recompute)

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

        self.plane_combo.currentIndexChanged.connect(
            lambda _: self._edited("landscape.plane", self.plane_combo.currentData()))
        self.loss_combo.currentIndexChanged.connect(
            lambda _: self._edited("landscape.loss", self.loss_combo.currentData()))
        self.resolution_spin.valueChanged.connect(lambda v: self._edited("landscape.resolution", int(v)))
        self.span_spin.valueChanged.connect(lambda v: self._edited("landscape.span", float(v)))
        self.steps_spin.valueChanged.connect(lambda v: self._edited("landscape.steps", int(v)))
        self.every_spin.valueChanged.connect(lambda v: self._edited("landscape.every", int(v)))
        self.freeze_check.toggled.connect(lambda v: self._edited("landscape.freeze", bool(v)))
        self.recompute_button.clicked.connect(self._recompute)
        for combo in (self.plane_combo, self.loss_combo):  # their pop-ups' scroll bars, uniquely
            name_internals(combo, combo.objectName(), combo.accessibleName())
        self.log_check.toggled.connect(self._log_toggled)

    # -- config ------------------------------------------------------------------------------------

    def _controls(self) -> dict[str, tuple[QWidget, Any]]:
        """Each config field with its control and a setter that does not emit."""
        def combo_setter(combo: QComboBox):
            def set_value(value: Any) -> None:
                index = combo.findData(value)
                if index >= 0:
                    combo.setCurrentIndex(index)
            return set_value

        return {
            "plane": (self.plane_combo, combo_setter(self.plane_combo)),
            "loss": (self.loss_combo, combo_setter(self.loss_combo)),
            "resolution": (self.resolution_spin, lambda v: self.resolution_spin.setValue(int(v))),
            "span": (self.span_spin, lambda v: self.span_spin.setValue(float(v))),
            "steps": (self.steps_spin, lambda v: self.steps_spin.setValue(int(v))),
            "every": (self.every_spin, lambda v: self.every_spin.setValue(int(v))),
            "freeze": (self.freeze_check, lambda v: self.freeze_check.setChecked(bool(v))),
        }

    @property
    def config(self) -> LandscapeConfig:
        """The landscape section last given to :meth:`set_config`."""
        return self._config

    def set_config(self, config: Any) -> None:
        """Show ``config`` (an ``ExperimentConfig`` or its ``LandscapeConfig``) in the controls without
        emitting anything; a control with an edit not yet sent keeps the edit.

        The loss decides the kind of run (``validate`` keeps them in step): its choices and the steps control.
        """
        self._config = self._landscape_section(config)
        self._show_kind("rl" if self._config.loss in RL_LANDSCAPE_LOSSES else "supervised")
        for name, (widget, set_value) in self._controls().items():
            if f"landscape.{name}" in self._pending:
                continue
            previous = widget.blockSignals(True)
            try:
                set_value(getattr(self._config, name))
            finally:
                widget.blockSignals(previous)

    def _show_kind(self, kind: str) -> None:
        """Offer the loss choices of ``kind``'s runs; hide the inner-steps control for meta-RL."""
        if kind == self._kind:
            return
        self._kind = kind
        choices = RL_LANDSCAPE_LOSSES if kind == "rl" else SUPERVISED_LANDSCAPE_LOSSES
        with blocked(self.loss_combo):
            self.loss_combo.clear()
            for key, (text, tip) in LOSSES.items():
                if key in choices:
                    self.loss_combo.addItem(text, key)
                    self.loss_combo.setItemData(self.loss_combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.loss_combo.setToolTip(LOSS_TIPS[kind])
        for widget in (self.steps_spin, self._groups[self.steps_spin]):
            widget.setVisible(kind != "rl")

    def has_pending(self) -> bool:
        """Whether edits wait for the debounce timer."""
        return bool(self._pending)

    def flush(self) -> None:
        """Emit the pending edits now (the debounce timer calls this; so does "Recompute now").

        Values equal to the current config are dropped; nothing is emitted when none is left.
        """
        self._timer.stop()
        changes = {path: value for path, value in self._pending.items()
                   if value != getattr(self._config, path.partition(".")[2], object())}
        self._pending.clear()
        if changes:
            self.changesRequested.emit(changes)

    def _edited(self, path: str, value: Any) -> None:
        self._pending[path] = value
        self._timer.start()

    def _recompute(self) -> None:
        self.flush()
        self.set_busy(True)
        self.recomputeRequested.emit()

    @property
    def busy(self) -> bool:
        """Whether a slice was asked for and has not arrived yet."""
        return self._busy_key is not None

    def set_busy(self, busy: bool) -> None:
        """Show (or end) the wait for a slice: the button is disabled and reads "Computing…" and a busy bar
        runs beside it. A new slice in the store ends it; so does a caller that learns none is coming."""
        self._busy_key = (id(self.store), self.store.landscape_version) if busy else None
        self.recompute_button.setEnabled(not busy)
        self.recompute_button.setText(self.COMPUTING_TEXT if busy else self.RECOMPUTE_TEXT)
        self.recompute_button.setToolTip(self.COMPUTING_TIP if busy else self.RECOMPUTE_TIP)
        self.busy_bar.setVisible(busy)
        self.placeholder.setText(self.COMPUTING_TEXT if busy else self.empty_text)
        if busy:
            self.plot_widget.setCursor(Qt.CursorShape.BusyCursor)
        else:
            self.plot_widget.unsetCursor()

    # -- drawing -----------------------------------------------------------------------------------

    def data_size(self) -> int:
        landscape = self.store.landscape
        return 0 if landscape is None else int(np.size(landscape.values))

    LOG_TIP = "Colour by log10 of the loss (contours stay evenly spaced in log10)"
    NO_LOG_TIP = "This slice has negative values (a signed surrogate): it is coloured linearly"

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
        if self._busy_key is not None and self._busy_key != (id(self.store), self.store.landscape_version):
            self.set_busy(False)
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
        rect = _grid_rect(alphas, betas)
        self.image_item.setImage(shown, autoLevels=False, levels=levels, rect=rect)
        self.image_item.setVisible(True)
        self.color_bar.setLevels(levels)
        name = value_name(landscape.loss)
        self.color_bar.getAxis("left").setLabel(f"log10 {name}" if self.log_scale else name, color="#222222")
        self._draw_contours(values, shown, log_possible)
        self._draw_trajectory(np.asarray(landscape.trajectory, dtype=np.float64).reshape(-1, 2))
        half_width = max(float(np.ptp(alphas)), float(np.ptp(betas))) / 2
        self._draw_paths(np.asarray(landscape.inner_paths, dtype=np.float64), half_width)
        self._draw_task_points(np.asarray(landscape.task_points, dtype=np.float64).reshape(-1, 2))
        self.theta_marker.setVisible(True)
        self.theta_label.setVisible(True)
        self.set_title(self._title(landscape))
        frame = self._frame(rect, landscape)
        if self._drawn_rect is None or self._drawn_rect != frame:
            self._drawn_rect = frame
            self.view_box.setRange(frame, padding=0.02)
        self._show_readout()

    @staticmethod
    def _frame(rect: QRectF, landscape: Any) -> QRectF:
        """The part of the plane to show: the grid, widened to take in the meta-trajectory, the inner-loop
        paths and the task points where they leave it (a long PCA trajectory often does)."""
        points = [np.asarray(landscape.trajectory, dtype=np.float64).reshape(-1, 2),
                  np.asarray(landscape.inner_paths, dtype=np.float64).reshape(-1, 2),
                  np.asarray(landscape.task_points, dtype=np.float64).reshape(-1, 2)]
        points = np.concatenate(points)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points) == 0:
            return rect
        left, bottom = np.minimum(points.min(axis=0), (rect.left(), rect.top()))
        right, top = np.maximum(points.max(axis=0), (rect.right(), rect.bottom()))
        return QRectF(float(left), float(bottom), float(right - left), float(top - bottom))

    def _clear(self) -> None:
        self._grid = None
        self._drawn_rect = None
        self.image_item.clear()
        self.image_item.setVisible(False)
        for contour in self.contours:
            contour.setData(None)
            contour.setVisible(False)
        for segment in self.trajectory_segments:
            segment.setData([], [])
        self.trajectory_scatter.setData([], [])
        for curve, arrow in zip(self.path_curves, self.path_arrows, strict=True):
            curve.setData([], [])
            curve.setVisible(False)
            arrow.setVisible(False)
        self.task_scatter.setData([], [])
        for label in self.task_labels:
            label.setVisible(False)
        self.theta_marker.setVisible(False)
        self.theta_label.setVisible(False)
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

    def _draw_trajectory(self, trajectory: np.ndarray) -> None:
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

    @staticmethod
    def _arrow_angle(path: np.ndarray) -> float | None:
        """The ``ArrowItem`` angle (degrees, screen frame, 0 = pointing left) of a path's last move."""
        end = path[-1]
        for start in path[-2::-1]:
            dx, dy = end - start
            if math.hypot(dx, dy) > 0:
                # the arrow's rest direction (-1, 0) rotated by the angle (clockwise on screen, where y
                # points down) must equal the move (dx, -dy) on screen; the aspect ratio is locked
                return math.degrees(math.atan2(dy, -dx))
        return None

    def _draw_paths(self, paths: np.ndarray, half_width: float) -> None:
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
            angle = self._arrow_angle(path)
            long_enough = float(np.hypot(*(path[-1] - path[0]))) >= self.MIN_ARROW_FRACTION * half_width
            arrow.setVisible(angle is not None and long_enough)
            if angle is not None:
                arrow.setStyle(angle=angle)
                arrow.setPos(float(path[-1, 0]), float(path[-1, 1]))

    def _draw_task_points(self, points: np.ndarray) -> None:
        if len(points):
            self.task_scatter.setData(pos=points)
        else:
            self.task_scatter.setData([], [])
        for k, label in enumerate(self.task_labels):
            label.setVisible(k < len(points))
            if k < len(points):
                label.setPos(float(points[k, 0]), float(points[k, 1]))

    @staticmethod
    def _title(landscape: Any) -> str:
        kind = landscape.kind
        if kind == "random":
            plane = "random plane (filter-normalized)"
        elif kind == "pca":
            explained = tuple(landscape.explained_variance)[:2]
            shares = " + ".join(f"{100 * v:.1f}%" for v in explained)
            plane = f"PCA plane ({shares} of the trajectory's variance)" if explained else "PCA plane"
        elif kind == "task":
            plane = "task plane through θ, φ<sub>a</sub>, φ<sub>b</sub>"
        else:
            plane = f"{kind} plane"
        loss = landscape.loss
        if loss == "mean":
            what = "mean held-out query loss"
        elif loss == "task":
            what = "one held-out task's query loss"
        elif loss == "adapted":
            paths = np.asarray(landscape.inner_paths)
            steps = paths.shape[1] - 1 if paths.ndim == 3 and paths.shape[1] > 0 else None
            what = f"query loss after {steps} inner steps" if steps else "query loss after adapting"
        elif loss in VALUE_NAMES:
            what = VALUE_NAMES[loss]
        else:
            what = f"{loss} loss"
        return f"{plane} · {what} · iteration {landscape.iteration}"

    # -- hover -------------------------------------------------------------------------------------

    def cell_at(self, alpha: float, beta: float) -> tuple[int, int] | None:
        """``(i, j)`` of the grid cell containing the plane point ``(alpha, beta)``, ``None`` outside."""
        if self._grid is None:
            return None
        alphas, betas, _ = self._grid
        rect = _grid_rect(alphas, betas)
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
        if self.hovered is not None:
            a, b, loss = self.hovered
            text = f"α = {a:.4g}, β = {b:.4g}: {self._value_text(loss)}"
        elif landscape is not None:
            text = f"at θ: {self._value_text(landscape.center_loss)} · hover over the map to read the loss"
        else:
            text = "Hover over the map to read the loss"
        self.readout_label.setText(text)
        self.plot_widget.setToolTip(text if self.hovered is not None else "")

    def _value_text(self, value: float) -> str:
        """``loss 0.123 (MSE)`` or ``critic TD loss (fixed batch) 0.123``."""
        loss = self.store.landscape.loss if self.store.landscape is not None else self._config.loss
        return f"{VALUE_NAMES[loss]} {value:.4g}" if loss in VALUE_NAMES else f"loss {value:.4g} (MSE)"

    # -- export ------------------------------------------------------------------------------------

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """The slice in long format, one row per grid cell, and its paths in shorter columns beside it.

        * ``alpha, beta, loss``: one row per cell, ``beta`` the slow index and ``alpha`` the fast one
          (``values`` flattened row by row: row ``i * R + j`` is the cell at ``alphas[j], betas[i]``);
          the raw loss, whatever the colour scale;
        * ``traj_alpha, traj_beta``: the meta-trajectory, oldest first (ending at θ, the origin);
        * ``path<k>_alpha, path<k>_beta`` per inner-loop path: ``θ`` and the position after each step;
        * ``task_alpha, task_beta`` (task plane only): ``φ_a`` then ``φ_b``.

        The shorter columns leave their cells empty below their end. The plane kind, loss kind and
        iteration are in the PNG/SVG title, not in the table.
        """
        header = ["alpha", "beta", "loss", "traj_alpha", "traj_beta"]
        landscape = self.store.landscape
        if landscape is None:
            return header, [np.empty(0) for _ in header]
        alphas, betas = np.asarray(landscape.alphas), np.asarray(landscape.betas)
        values = np.asarray(landscape.values)
        trajectory = np.asarray(landscape.trajectory, dtype=np.float64).reshape(-1, 2)
        columns = [np.tile(alphas, len(betas)), np.repeat(betas, len(alphas)), values.ravel(),
                   trajectory[:, 0], trajectory[:, 1]]
        paths = np.asarray(landscape.inner_paths, dtype=np.float64)
        for k, path in enumerate(paths if paths.ndim == 3 else ()):
            header += [f"path{k}_alpha", f"path{k}_beta"]
            columns += [path[:, 0], path[:, 1]]
        points = np.asarray(landscape.task_points, dtype=np.float64).reshape(-1, 2)
        if len(points):
            header += ["task_alpha", "task_beta"]
            columns += [points[:, 0], points[:, 1]]
        return header, columns
