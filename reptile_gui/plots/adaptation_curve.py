"""Held-out adaptation against inner step: the meta-learned initialisation against training from scratch.

For a supervised run the curve is the query MSE after 0..K inner steps (lower is better, log axis by
default); for a meta-RL run the mean episode return after 0..K inner updates (higher is better, usually
negative, so the log axis is off and unavailable).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QWidget

from reptile_gui.plots.base import ElidedLabel, StorePlot, name_control
from reptile_gui.plots.palette import PALETTE
from reptile_gui.store import RunStore
from reptile_gui.toolkit import blocked

__all__ = ["AdaptationCurvePlot"]


class AdaptationCurvePlot(StorePlot):
    """The held-out quantity after 0..K inner steps for the newest adaptation curve, and earlier ones fading.

    The newest curve's meta-initialisation is a solid strong blue line, its from-scratch baseline a
    dashed grey one; earlier curves (``store.curves``, oldest first) are drawn in the same blue with
    opacity falling with age. Losses get a log-y axis by default, with a check box; returns a linear one,
    the check box disabled (the choice for losses is kept for the next loss curve).

    Public items: ``meta_curve`` and ``scratch_curve`` (newest), ``history_curves`` (a pool of
    ``RunStore.CURVES_KEPT - 1`` items; ``history_curves[0]`` is the curve just before the newest).
    """

    versions = ("curves_version",)
    plot_name = "adaptation_curve"
    title = "Adaptation curve"
    empty_text = "No adaptation curve yet: one comes with the first evaluation"
    legend_offset = (10, -10)  # bottom left: the curves start high on the left and fall to the right

    #: Opacity of the curve just before the newest and of the oldest one kept.
    HISTORY_ALPHA = (0.55, 0.12)
    #: Per ``AdaptationCurve.quantity``: the y label, the x label, and the legend's anchor (where the curves
    #: are not: losses fall to the right, returns rise).
    QUANTITIES = {
        "loss": ("held-out query loss (MSE)", "inner steps (SGD steps)", (10, -10)),
        "return": ("held-out mean return (sum of rewards)", "inner updates (each on fresh episodes)", (10, 10)),
    }
    LOG_Y_TIP = "Show the loss on a logarithmic axis"
    RETURN_LOG_Y_TIP = "Returns are usually negative: the axis stays linear"

    def __init__(self, store: RunStore, parent: QWidget | None = None, *, log_y: bool = True):
        super().__init__(store, parent)
        self._quantity = ""
        self._log_y_preference = log_y

        self.history_curves = []
        kept = max(1, store.CURVES_KEPT - 1)
        for age in range(kept):
            alpha = float(np.interp(age, [0, max(1, kept - 1)], self.HISTORY_ALPHA))
            curve = self.make_curve(None, PALETTE.color("meta_init", alpha), width=1.0, z=-age)
            self.history_curves.append(curve)
        self._history_legend_shown = False
        self.scratch_curve = self.make_curve("scratch", PALETTE.scratch, width=2.0,
                                             style=Qt.PenStyle.DashLine, z=10)
        self.meta_curve = self.make_curve("meta-init", PALETTE.meta_init, width=2.4, z=11)
        for curve in (self.meta_curve, self.scratch_curve):
            curve.setSymbol("o")
            curve.setSymbolSize(5)
            curve.setSymbolPen(None)
            curve.setSymbolBrush(curve.opts["pen"].color())

        self.log_y_check = QCheckBox("log y", self)
        self.log_y_check.setChecked(log_y)
        name_control(self.log_y_check, "adaptation_curve_log_y", "Logarithmic loss axis", self.LOG_Y_TIP)
        self.summary_label = ElidedLabel("No adaptation curve yet", self)
        self.summary_label.setObjectName("adaptation_curve_summary")
        self.summary_label.setAccessibleName("Adaptation summary")
        self.controls.addWidget(self.summary_label, 1)
        self.controls.addWidget(self.log_y_check)
        self.log_y_check.toggled.connect(self._log_y_toggled)
        self.plot_item.ctrl.logYCheck.toggled.connect(self.log_y_check.setChecked)
        self._finish_init()

    @property
    def quantity(self) -> str:
        """What the newest curve holds: ``"loss"`` or ``"return"``."""
        curves = self.store.curves
        return curves[-1].quantity if curves else "loss"

    def _log_y_toggled(self, checked: bool) -> None:
        if self.log_y_check.isEnabled():
            self._log_y_preference = checked
        self._settings_changed()

    def _show_quantity(self, quantity: str) -> None:
        """Label the axes for ``quantity``; a return curve turns the log axis off until a loss curve comes."""
        if quantity == self._quantity:
            return
        self._quantity = quantity
        y_label, x_label, legend_offset = self.QUANTITIES[quantity]
        self.set_axis_label("left", y_label)
        self.set_axis_label("bottom", x_label)
        self.set_legend_corner(legend_offset)
        returns = quantity == "return"
        with blocked(self.log_y_check):
            self.log_y_check.setEnabled(not returns)
            self.log_y_check.setChecked(False if returns else self._log_y_preference)
        self.log_y_check.setToolTip(self.RETURN_LOG_Y_TIP if returns else self.LOG_Y_TIP)
        self.plot_item.ctrl.logYCheck.setEnabled(not returns)

    def _redraw(self) -> None:
        self._show_quantity(self.quantity)
        self.plot_item.setLogMode(x=False, y=self.log_y_check.isChecked())
        curves = list(self.store.curves)
        newest = curves[-1] if curves else None
        if newest is None:
            self.meta_curve.setData([], [])
            self.scratch_curve.setData([], [])
            self.legend.getLabel(self.meta_curve).setText("meta-init")
            self.summary_label.setText("No adaptation curve yet")
        else:
            self.meta_curve.setData(np.asarray(newest.steps), np.asarray(newest.meta_init))
            self.scratch_curve.setData(np.asarray(newest.steps), np.asarray(newest.scratch))
            self.legend.getLabel(self.meta_curve).setText(f"meta-init (iteration {newest.iteration})")
            self.summary_label.setText(self._summary(newest))
        self.show_placeholder(newest is None)
        earlier = curves[:-1][::-1]  # newest first
        for i, item in enumerate(self.history_curves):
            if i < len(earlier):
                item.setData(np.asarray(earlier[i].steps), np.asarray(earlier[i].meta_init))
                item.setVisible(True)
            else:
                item.setData([], [])
                item.setVisible(False)
        if bool(earlier) != self._history_legend_shown:
            self._history_legend_shown = bool(earlier)
            if earlier:
                self.legend.addItem(self.history_curves[0], "earlier meta-inits (fading with age)")
            else:
                self.legend.removeItem(self.history_curves[0])

    @staticmethod
    def _summary(curve) -> str:
        if len(curve.steps) == 0:
            return f"Iteration {curve.iteration}: empty curve"
        k = int(np.asarray(curve.steps)[-1])
        meta, scratch = float(np.asarray(curve.meta_init)[-1]), float(np.asarray(curve.scratch)[-1])
        if curve.quantity == "return":
            return (f"Iteration {curve.iteration}, after {k} update{'s' if k != 1 else ''}: "
                    f"meta-init return {meta:.3g}, scratch return {scratch:.3g}")
        return (f"Iteration {curve.iteration}, after {k} step{'s' if k != 1 else ''}: "
                f"meta-init {meta:.3g} MSE, scratch {scratch:.3g} MSE")

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """``inner_step, meta_init, scratch`` for the newest curve, then ``meta_init_iteration_<N>``
        per earlier curve (oldest first). Rows are the union of all curves' steps; a curve without a
        step (its K was different) has ``nan`` there. Return curves (meta-RL) name their columns
        ``inner_update, meta_init_return, scratch_return, meta_init_return_iteration_<N>``.
        """
        curves = list(self.store.curves)
        returns = self.quantity == "return"
        step, suffix = ("inner_update", "_return") if returns else ("inner_step", "")
        header = [step, f"meta_init{suffix}", f"scratch{suffix}"]
        if not curves:
            return header, [np.empty(0), np.empty(0), np.empty(0)]
        steps = np.unique(np.concatenate([np.asarray(c.steps, dtype=np.float64) for c in curves]))

        def aligned(curve, values) -> np.ndarray:
            out = np.full(len(steps), np.nan)
            out[np.searchsorted(steps, np.asarray(curve.steps, dtype=np.float64))] = values
            return out

        newest = curves[-1]
        columns = [steps, aligned(newest, newest.meta_init), aligned(newest, newest.scratch)]
        for curve in curves[:-1]:
            header.append(f"meta_init{suffix}_iteration_{curve.iteration}")
            columns.append(aligned(curve, curve.meta_init))
        return header, columns
