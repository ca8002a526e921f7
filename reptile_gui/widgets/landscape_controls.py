"""The loss landscape's controls: the ``landscape`` config section, edited beside the plot that draws it.

Plane, loss, grid resolution, span, inner steps, auto-refresh interval, "Freeze plane" and "Recompute
now", in a row that wraps onto more lines in a narrow window. Edits are coalesced by the toolkit's
:class:`~reptile_gui.toolkit.Debouncer` into one ``changesRequested({dotted path: value})``;
"Recompute now" first sends any pending edits, then emits ``recomputeRequested`` and shows that it waits
(the button disabled and reading "Computing…", a busy bar beside it) until :meth:`set_busy` ends it: when
the slice arrives or the window learns that none is coming. ``busyChanged`` tells the plot.

For a meta-RL run (``landscape.loss`` is ``"policy"`` or ``"critic"``) the loss choice offers only the
surrogates and the inner-steps control is hidden (the inner loop is ``rl.updates``).
:meth:`set_config` re-syncs the controls with their signals blocked, so a ``ConfigChanged`` echo does not
come back as an edit.

>>> controls = LandscapeControls(controller.config)                        # doctest: +SKIP
>>> controls.changesRequested.connect(controller.update)                   # doctest: +SKIP
>>> controls.recomputeRequested.connect(controller.compute_landscape)      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QFlowLayout

from reptile_engine.config import RL_LANDSCAPE_LOSSES, SUPERVISED_LANDSCAPE_LOSSES, LandscapeConfig, field_info
from reptile_gui.toolkit import (
    LOSSES,
    PLANES,
    CheckEditor,
    ComboEditor,
    Debouncer,
    Editor,
    OddSpinBox,
    SpanSpinBox,
    SpinEditor,
    name_control,
    name_internals,
)

LOSS_TIPS: dict[str, str] = {
    "supervised": "The loss on the plane (query MSE): the mean over held-out tasks, one held-out task, or the "
                  "mean after adapting from each grid point (the surface Reptile descends)",
    "rl": "A surrogate on one fixed batch of transitions collected by θ on held-out tasks (the expected return "
          "has no closed form): the actor's policy loss or the critic's TD loss",
}
"""The loss combo box's tool tip for each kind of run."""


def landscape_section(config: Any) -> LandscapeConfig:
    """The ``LandscapeConfig`` of an ``ExperimentConfig``, itself, or the defaults for ``None``."""
    if config is None:
        return LandscapeConfig()
    return getattr(config, "landscape", config)


def _spin_range(box: QSpinBox | QDoubleSpinBox, name: str) -> None:
    """The config's range for a landscape field's box."""
    meta = field_info(f"landscape.{name}").metadata
    kind = type(box.value())
    box.setRange(kind(meta["min"]), kind(meta["max"]))


class LandscapeControls(QWidget):
    """Controls for the ``landscape`` config section.

    ``LandscapeControls(config=None, parent=None)``; ``config`` is an ``ExperimentConfig`` or its
    ``LandscapeConfig`` (default: the defaults).

    Signals:
        changesRequested(dict): ``{"landscape.<field>": value}``, one per debounce window of edits.
        recomputeRequested(): "Recompute now" was pressed (pending edits were sent just before).
        busyChanged(bool): a slice was asked for (``True``) or the wait ended (``False``).
    """

    changesRequested = Signal(dict)
    recomputeRequested = Signal()
    busyChanged = Signal(bool)

    RECOMPUTE_TEXT = "Recompute now"
    COMPUTING_TEXT = "Computing…"
    RECOMPUTE_TIP = "Compute a slice with these settings at the next iteration boundary"
    COMPUTING_TIP = "A slice is being computed; a fine grid can take several seconds"

    def __init__(self, config: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        name_control(self, "landscape_controls", "Landscape controls")
        self._config = landscape_section(config)
        self._kind = ""
        self._busy = False
        self._edits = Debouncer(parent=self)
        self._edits.flushed.connect(self._send)
        # The controls wrap onto more lines in a narrow window instead of widening it; a caption stays
        # on the line of its control.
        self._row = QFlowLayout(self)
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.setHorizontalSpacing(8)
        self._row.setVerticalSpacing(2)
        self._groups: dict[QWidget, QWidget] = {}
        self._editors: dict[str, Editor] = {}
        self._build_choices()
        self._build_grid()
        self._build_refresh()
        self._build_recompute()
        for name, editor in self._editors.items():
            editor.connect(lambda value, path=f"landscape.{name}": self._edits.push(path, value), self.flush)
        self.set_config(self._config)

    # -- construction ----------------------------------------------------------------------------

    def _caption(self, text: str, buddy: QWidget) -> None:
        group = QWidget(self)
        layout = QHBoxLayout(group)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        label = QLabel(text, group)
        label.setBuddy(buddy)
        layout.addWidget(label)
        layout.addWidget(buddy)
        self._row.addWidget(group)
        self._groups[buddy] = group

    def _build_choices(self) -> None:
        plane = ComboEditor(PLANES)
        self.plane_combo = plane.widget
        name_control(self.plane_combo, "landscape_plane", "Landscape plane",
                     "The plane of the slice: filter-normalized random directions (Li et al. 2018), the top two "
                     "principal directions of the meta-trajectory, or the plane through θ and two tasks' "
                     "adapted parameters φ_a, φ_b")
        self._caption("&Plane", self.plane_combo)
        loss = ComboEditor({})
        self.loss_combo = loss.widget
        self.loss_combo.setSizeAdjustPolicy(self.loss_combo.SizeAdjustPolicy.AdjustToContents)
        name_control(self.loss_combo, "landscape_loss", "Landscape loss", LOSS_TIPS["supervised"])
        self._caption("&Loss", self.loss_combo)
        for combo in (self.plane_combo, self.loss_combo):  # their pop-ups' scroll bars, uniquely
            name_internals(combo, combo.objectName(), combo.accessibleName())
        self._editors.update(plane=plane, loss=loss)

    def _build_grid(self) -> None:
        self.resolution_spin = OddSpinBox(self)
        _spin_range(self.resolution_spin, "resolution")
        name_control(self.resolution_spin, "landscape_resolution", "Landscape grid resolution",
                     "Grid points per axis (odd, so that θ itself is a grid point); the cost grows with its square")
        self._caption("&Grid", self.resolution_spin)
        self.span_spin = SpanSpinBox(self)
        _spin_range(self.span_spin, "span")
        self.span_spin.setPrefix("±")
        name_control(self.span_spin, "landscape_span", "Landscape span",
                     "Half-width of the grid in units of the directions (random plane: 1 = as far again as "
                     "the weights; PCA and task planes: Euclidean distance in parameter space)")
        self._caption("&Span", self.span_spin)
        self.steps_spin = QSpinBox(self)
        _spin_range(self.steps_spin, "steps")
        self.steps_spin.setKeyboardTracking(False)
        name_control(self.steps_spin, "landscape_steps", "Landscape inner steps",
                     "Full-batch SGD steps on each task's support set: for the adapted loss, the task plane's "
                     "φ_a, φ_b and the inner-loop paths")
        self._caption("S&teps", self.steps_spin)
        self._editors.update(resolution=SpinEditor(self.resolution_spin), span=SpinEditor(self.span_spin),
                             steps=SpinEditor(self.steps_spin))

    def _build_refresh(self) -> None:
        self.every_spin = QSpinBox(self)
        _spin_range(self.every_spin, "every")
        self.every_spin.setSingleStep(100)
        self.every_spin.setKeyboardTracking(False)
        self.every_spin.setSpecialValueText("on request")
        self.every_spin.setSuffix(" it")
        name_control(self.every_spin, "landscape_every", "Landscape auto-refresh interval",
                     "Meta-iterations between automatic slices; 0 = only when you press Recompute now")
        self._caption("&Every", self.every_spin)
        self.freeze_check = QCheckBox("Freeze plane", self)
        name_control(self.freeze_check, "landscape_freeze", "Freeze landscape plane",
                     "Keep the plane's directions across refreshes (re-centred on the current θ), "
                     "so that successive slices are comparable")
        self._row.addWidget(self.freeze_check)
        self._editors.update(every=SpinEditor(self.every_spin), freeze=CheckEditor(self.freeze_check))

    def _build_recompute(self) -> None:
        recompute = QWidget(self)
        layout = QHBoxLayout(recompute)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
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
        name_control(self.busy_bar, "landscape_busy", "Computing a landscape slice")
        self.busy_bar.setVisible(False)
        layout.addWidget(self.recompute_button)
        layout.addWidget(self.busy_bar)
        self._row.addWidget(recompute)
        self.recompute_button.clicked.connect(self._recompute)

    # -- config ------------------------------------------------------------------------------------

    @property
    def config(self) -> LandscapeConfig:
        """The landscape section last given to :meth:`set_config`."""
        return self._config

    def set_config(self, config: Any) -> None:
        """Show ``config`` (an ``ExperimentConfig`` or its ``LandscapeConfig``) in the controls without
        emitting anything; a control with an edit not yet sent keeps the edit.

        The loss decides the kind of run (``validate`` keeps them in step): its choices and the steps control.
        """
        self._config = landscape_section(config)
        self._show_kind("rl" if self._config.loss in RL_LANDSCAPE_LOSSES else "supervised")
        for name, editor in self._editors.items():
            if f"landscape.{name}" not in self._edits:
                editor.set_value(getattr(self._config, name))

    def _show_kind(self, kind: str) -> None:
        """Offer the loss choices of ``kind``'s runs; hide the inner-steps control for meta-RL."""
        if kind == self._kind:
            return
        self._kind = kind
        choices = RL_LANDSCAPE_LOSSES if kind == "rl" else SUPERVISED_LANDSCAPE_LOSSES
        self._editors["loss"].set_items({key: item for key, item in LOSSES.items() if key in choices})
        self.loss_combo.setToolTip(LOSS_TIPS[kind])
        for widget in (self.steps_spin, self._groups[self.steps_spin]):
            widget.setVisible(kind != "rl")

    def has_pending(self) -> bool:
        """Whether edits wait for the debouncer."""
        return self._edits.has_pending()

    def flush(self) -> None:
        """Emit the pending edits now (the debouncer does when the edits pause; so does "Recompute now").

        Values equal to the current config are dropped; nothing is emitted when none is left.
        """
        self._edits.flush()

    def _send(self, pending: dict[str, Any]) -> None:
        changes = {path: value for path, value in pending.items()
                   if value != getattr(self._config, path.partition(".")[2], object())}
        if changes:
            self.changesRequested.emit(changes)

    # -- recompute ---------------------------------------------------------------------------------

    def _recompute(self) -> None:
        self.flush()
        self.set_busy(True)
        self.recomputeRequested.emit()

    @property
    def busy(self) -> bool:
        """Whether a slice was asked for and has not arrived yet."""
        return self._busy

    def set_busy(self, busy: bool) -> None:
        """Show (or end) the wait for a slice: the button is disabled and reads "Computing…" and a busy bar
        runs beside it. The slice's arrival ends it; so does a caller that learns none is coming."""
        self._busy = busy
        self.recompute_button.setEnabled(not busy)
        self.recompute_button.setText(self.COMPUTING_TEXT if busy else self.RECOMPUTE_TEXT)
        self.recompute_button.setToolTip(self.COMPUTING_TIP if busy else self.RECOMPUTE_TIP)
        self.busy_bar.setVisible(busy)
        self.busyChanged.emit(busy)
