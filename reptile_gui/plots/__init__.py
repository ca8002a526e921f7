"""The plots: one ``StorePlot`` subclass per view, each redrawn from a ``RunStore`` by ``refresh()``.

Supervised runs show the training curve and the task view, meta-RL runs the RL losses, the returns and the
rollouts; the adaptation curve and the loss landscape serve both.

>>> from reptile_gui.store import RunStore                                   # doctest: +SKIP
>>> store = RunStore()                                                        # doctest: +SKIP
>>> plots = {"training_curve": TrainingCurvePlot(store),                      # doctest: +SKIP
...          "adaptation_curve": AdaptationCurvePlot(store),
...          "task_view": TaskViewPlot(store),
...          "landscape": LandscapePlot(store)}
>>> timer.timeout.connect(lambda: [p.refresh() for p in plots.values()])     # doctest: +SKIP
"""

from reptile_gui.plots.adaptation_curve import AdaptationCurvePlot
from reptile_gui.plots.base import StorePlot
from reptile_gui.plots.landscape import LandscapePlot
from reptile_gui.plots.palette import PALETTE, Palette
from reptile_gui.plots.rl_curves import ReturnsPlot, RLLossPlot
from reptile_gui.plots.rollouts import RolloutPlot
from reptile_gui.plots.series import SeriesPlot
from reptile_gui.plots.smoothing import debiased_ema
from reptile_gui.plots.task_view import TaskViewPlot
from reptile_gui.plots.training_curve import TrainingCurvePlot

__all__ = ["PALETTE", "AdaptationCurvePlot", "LandscapePlot", "Palette", "RLLossPlot", "ReturnsPlot", "RolloutPlot",
           "SeriesPlot", "StorePlot", "TaskViewPlot", "TrainingCurvePlot", "debiased_ema"]
