"""Control widgets: hyperparameter panel, landscape controls, run controls, task/preset picker, status bar.

They know nothing of the controller: they emit requests (``changesRequested``, ``startRequested``, ...)
and are told what to show (``set_config``, ``set_state``, ``update_from``); the main window wires both.
"""

from reptile_gui.widgets.hyperparameters import HyperparameterPanel
from reptile_gui.widgets.landscape_controls import LandscapeControls
from reptile_gui.widgets.run_controls import SHORTCUTS, RunControls
from reptile_gui.widgets.status_bar import RunStatusBar
from reptile_gui.widgets.task_picker import TaskPicker

__all__ = ["SHORTCUTS", "HyperparameterPanel", "LandscapeControls", "RunControls", "RunStatusBar", "TaskPicker"]
