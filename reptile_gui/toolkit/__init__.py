"""The small Qt layer every widget and plot control is built from.

Editors chosen from a config field's metadata, the spin boxes, the log slider, one debouncer, the wheel
guard, the naming and signal-blocking helpers, and the words for the landscape's choices. It knows Qt,
superqt and the engine's config only: never the widgets, plots, store or controller that use it.
"""

from reptile_gui.toolkit.debounce import DEBOUNCE_MS, Debouncer
from reptile_gui.toolkit.editors import CheckEditor, ComboEditor, Editor, SpinEditor, make_editor
from reptile_gui.toolkit.landscape_terms import LOSSES, PLANES, VALUE_NAMES
from reptile_gui.toolkit.log_slider import LogSlider
from reptile_gui.toolkit.naming import NAMED_CONTROLS, blocked, format_value, humanize, name_control, name_internals
from reptile_gui.toolkit.spinboxes import (
    SPAN_LADDER,
    FixedBoxDoubleSlider,
    FixedBoxSlider,
    FloatSpinBox,
    OddSpinBox,
    ScientificSpinBox,
    SpanSpinBox,
    snap,
    value_box_width,
)
from reptile_gui.toolkit.wheel_guard import WheelGuard

__all__ = ["DEBOUNCE_MS", "LOSSES", "NAMED_CONTROLS", "PLANES", "SPAN_LADDER", "VALUE_NAMES", "CheckEditor",
           "ComboEditor", "Debouncer", "Editor", "FixedBoxDoubleSlider", "FixedBoxSlider", "FloatSpinBox", "LogSlider",
           "OddSpinBox", "ScientificSpinBox", "SpanSpinBox", "SpinEditor", "WheelGuard", "blocked", "format_value",
           "humanize", "make_editor", "name_control", "name_internals", "snap", "value_box_width"]
