"""Held-out query MSE against inner step: the meta-learned initialisation against training from scratch."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLabel, QWidget

from reptile_gui.plots.base import PALETTE, StorePlot, name_control
from reptile_gui.store import RunStore

__all__ = ["AdaptationCurvePlot"]


class AdaptationCurvePlot(StorePlot):
    """Query MSE after 0..K inner steps for the newest adaptation curve, and earlier ones fading.

    The newest curve's meta-initialisation is a solid strong blue line, its from-scratch baseline a
    dashed grey one; earlier curves (``store.curves``, oldest first) are drawn in the same blue with
    opacity falling with age. Log-y by default, with a check box.

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

    def __init__(self, store: RunStore, parent: QWidget | None = None, *, log_y: bool = True):
        super().__init__(store, parent)
        self.set_axis_label("left", "held-out query loss (MSE)")
        self.set_axis_label("bottom", "inner steps (SGD steps)")

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
        name_control(self.log_y_check, "adaptation_curve_log_y", "Logarithmic loss axis",
                     "Show the loss on a logarithmic axis")
        self.summary_label = QLabel("No adaptation curve yet", self)
        self.summary_label.setObjectName("adaptation_curve_summary")
        self.summary_label.setAccessibleName("Adaptation summary")
        self.controls.addWidget(self.summary_label, 1)
        self.controls.addWidget(self.log_y_check)
        self.log_y_check.toggled.connect(self._settings_changed)
        self.plot_item.ctrl.logYCheck.toggled.connect(self.log_y_check.setChecked)
        self._finish_init()

    def _redraw(self) -> None:
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
        return (f"Iteration {curve.iteration}, after {k} step{'s' if k != 1 else ''}: "
                f"meta-init {meta:.3g} MSE, scratch {scratch:.3g} MSE")

    def csv_table(self) -> tuple[list[str], list[np.ndarray]]:
        """``inner_step, meta_init, scratch`` for the newest curve, then ``meta_init_iteration_<N>``
        per earlier curve (oldest first). Rows are the union of all curves' steps; a curve without a
        step (its K was different) has ``nan`` there.
        """
        curves = list(self.store.curves)
        if not curves:
            return ["inner_step", "meta_init", "scratch"], [np.empty(0), np.empty(0), np.empty(0)]
        steps = np.unique(np.concatenate([np.asarray(c.steps, dtype=np.float64) for c in curves]))

        def aligned(curve, values) -> np.ndarray:
            out = np.full(len(steps), np.nan)
            out[np.searchsorted(steps, np.asarray(curve.steps, dtype=np.float64))] = values
            return out

        newest = curves[-1]
        header = ["inner_step", "meta_init", "scratch"]
        columns = [steps, aligned(newest, newest.meta_init), aligned(newest, newest.scratch)]
        for curve in curves[:-1]:
            header.append(f"meta_init_iteration_{curve.iteration}")
            columns.append(aligned(curve, curve.meta_init))
        return header, columns
