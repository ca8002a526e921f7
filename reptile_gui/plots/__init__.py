"""The plots: one ``StorePlot`` subclass per view, each redrawn from a ``RunStore`` by ``refresh()``.

>>> from reptile_gui.store import RunStore                                   # doctest: +SKIP
>>> store = RunStore()                                                        # doctest: +SKIP
>>> plots = {"training_curve": TrainingCurvePlot(store),                      # doctest: +SKIP
...          "adaptation_curve": AdaptationCurvePlot(store),
...          "task_view": TaskViewPlot(store),
...          "landscape": LandscapePlot(store)}
>>> timer.timeout.connect(lambda: [p.refresh() for p in plots.values()])     # doctest: +SKIP
"""

from reptile_gui.plots.adaptation_curve import AdaptationCurvePlot
from reptile_gui.plots.base import PALETTE, Palette, StorePlot
from reptile_gui.plots.landscape import LandscapePlot
from reptile_gui.plots.smoothing import debiased_ema
from reptile_gui.plots.task_view import TaskViewPlot
from reptile_gui.plots.training_curve import TrainingCurvePlot

__all__ = ["PALETTE", "AdaptationCurvePlot", "LandscapePlot", "Palette", "StorePlot", "TaskViewPlot",
           "TrainingCurvePlot", "debiased_ema"]
