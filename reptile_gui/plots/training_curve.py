"""Query loss before and after adaptation against meta-iteration (or wall time), with smoothing."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from reptile_gui.plots.series import Series, SeriesPlot
from reptile_gui.plots.smoothing import debiased_ema
from reptile_gui.store import RunStore

__all__ = ["TrainingCurvePlot", "debiased_ema"]


class TrainingCurvePlot(SeriesPlot):
    """Mean query MSE before and after the inner loop, per meta-iteration (a supervised run).

    See :class:`SeriesPlot` for the controls. Public items besides the base's: ``curve_before`` and
    ``curve_after`` (the plotted, possibly smoothed series), ``raw_before`` and ``raw_after``.
    """

    plot_name = "training_curve"
    title = "Training curve"
    empty_text = "No iterations yet: start training to see the loss"
    series = (Series("loss_before", "loss before adaptation", "pre_adaptation"),
              Series("loss_after", "loss after adaptation", "post_adaptation"))
    y_label = "query loss (MSE)"
    log_y_tip = "Show the loss on a logarithmic axis"
    default_log_y = True

    def __init__(self, store: RunStore, parent: QWidget | None = None, **settings):
        super().__init__(store, parent, **settings)
        self.curve_before, self.curve_after = self.curves["loss_before"], self.curves["loss_after"]
        self.raw_before, self.raw_after = self.raw_curves["loss_before"], self.raw_curves["loss_after"]
