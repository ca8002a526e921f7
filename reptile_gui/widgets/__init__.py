"""Control widgets: hyperparameter panel, run controls, task/preset picker, status bar.

They know nothing of the controller: they emit requests (``changesRequested``, ``startRequested``, ...)
and are told what to show (``set_config``, ``set_state``, ``update_from``); the main window wires both.
"""

from reptile_gui.widgets.hyperparameters import HyperparameterPanel, LogSlider
from reptile_gui.widgets.run_controls import SHORTCUTS, RunControls
from reptile_gui.widgets.status_bar import RunStatusBar
from reptile_gui.widgets.task_picker import TaskPicker

__all__ = ["SHORTCUTS", "HyperparameterPanel", "LogSlider", "RunControls", "RunStatusBar", "TaskPicker"]
