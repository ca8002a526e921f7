"""One editor per kind of config field, chosen from the field's type and metadata.

* ``choices``: a ``QComboBox``;
* a bool: a ``QCheckBox``;
* a float with ``log``: a :class:`LogSlider` from ``slider_min`` (or ``min``) to ``max``;
* another float with a range: a superqt labelled double slider;
* an int with a range: a superqt labelled slider whose track stops at ``track_max`` while its value box
  accepts any number up to the config's ``max`` (the track grows to fit); ints too large for a Qt int
  (seeds) get a ``QSpinBox``;
* anything else: a ``QLineEdit``.

Every editor has ``widget``, ``value()``, ``set_value()`` (silent: no signal) and ``connect(edited,
released)``. ``ComboEditor``, ``CheckEditor`` and ``SpinEditor`` also wrap a control built elsewhere, so
that every panel reads, re-syncs and listens to its controls the same way.

>>> editor = make_editor("inner.lr")                        # doctest: +SKIP
>>> editor.connect(lambda value: print(value), lambda: None)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

from reptile_engine.config import field_info, field_type
from reptile_gui.toolkit.log_slider import LogSlider
from reptile_gui.toolkit.naming import blocked
from reptile_gui.toolkit.spinboxes import FixedBoxDoubleSlider, FixedBoxSlider

QT_INT_MAX = 2**31 - 1
DEFAULT_TRACK_MAX = 1000
"""Where an int slider's track ends when the caller names no end and the config's max is larger."""


class Editor:
    """The editor of one field: a widget plus the four verbs the panels use."""

    widget: QWidget

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        """Show ``value`` without emitting anything."""
        raise NotImplementedError

    def connect(self, edited: Callable[[Any], None], released: Callable[[], None]) -> None:
        """Call ``edited(value)`` on each user edit and ``released()`` when a slider is let go."""
        raise NotImplementedError

    def set_limit(self, high: float) -> None:
        """Lower (or restore) the largest value allowed, for cross-field limits such as batch <= support."""


class ComboEditor(Editor):
    """A combo box whose items carry the values: ``{value: (text, tool tip)}``."""

    def __init__(self, items: Mapping[Any, tuple[str, str]], widget: QComboBox | None = None):
        self.widget = widget if widget is not None else QComboBox()
        self.set_items(items)

    def set_items(self, items: Mapping[Any, tuple[str, str]]) -> None:
        """Offer ``items`` instead, silently (the current value stays if it is among them)."""
        current = self.value()
        with blocked(self.widget):
            self.widget.clear()
            for key, (text, tip) in items.items():
                self.widget.addItem(text, key)
                if tip:
                    self.widget.setItemData(self.widget.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
            self.set_value(current)

    def value(self) -> Any:
        return self.widget.currentData()

    def set_value(self, value: Any) -> None:
        index = self.widget.findData(value)
        if index >= 0:
            with blocked(self.widget):
                self.widget.setCurrentIndex(index)

    def connect(self, edited, released) -> None:
        self.widget.currentIndexChanged.connect(lambda _: edited(self.value()))


class CheckEditor(Editor):
    def __init__(self, widget: QCheckBox | None = None):
        self.widget = widget if widget is not None else QCheckBox()

    def value(self) -> bool:
        return self.widget.isChecked()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setChecked(bool(value))

    def connect(self, edited, released) -> None:
        self.widget.toggled.connect(edited)


class SpinEditor(Editor):
    """Any ``QSpinBox`` or ``QDoubleSpinBox``, its value an int or a float to match."""

    def __init__(self, widget: QSpinBox | QDoubleSpinBox):
        self.widget = widget
        self._type = int if isinstance(widget, QSpinBox) else float

    def value(self) -> int | float:
        return self._type(self.widget.value())

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setValue(self._type(value))

    def connect(self, edited, released) -> None:
        self.widget.valueChanged.connect(lambda v: edited(self._type(v)))


class _TextEditor(Editor):
    def __init__(self):
        self.widget = QLineEdit()

    def value(self) -> str:
        return self.widget.text()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setText(str(value))

    def connect(self, edited, released) -> None:
        self.widget.editingFinished.connect(lambda: edited(self.widget.text()))


class _LogEditor(Editor):
    def __init__(self, low: float, high: float, slider_min: float | None):
        self.widget = LogSlider(low, high, slider_min)

    def value(self) -> float:
        return self.widget.value()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setValue(float(value))

    def connect(self, edited, released) -> None:
        self.widget.valueChanged.connect(edited)
        self.widget.sliderReleased.connect(released)


class _FloatSliderEditor(Editor):
    def __init__(self, low: float, high: float):
        self.widget = FixedBoxDoubleSlider(Qt.Orientation.Horizontal)
        self.widget.setRange(low, high)
        self._decimals = 3 if high - low <= 1 else 2
        self.widget.setDecimals(self._decimals)
        self.widget.fix_box_width()

    def value(self) -> float:
        return round(float(self.widget.value()), self._decimals)

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setValue(float(value))

    def connect(self, edited, released) -> None:
        self.widget.valueChanged.connect(lambda v: edited(round(float(v), self._decimals)))
        self.widget.sliderReleased.connect(released)


class _IntSliderEditor(Editor):
    """A superqt labelled slider whose track ends at ``track_max`` but whose value box takes up to ``high``."""

    def __init__(self, low: int, high: int, track_max: int):
        self.widget = FixedBoxSlider(Qt.Orientation.Horizontal)
        self._low = low
        self._config_high, self._config_track_max = high, track_max
        self._high, self._track_max = high, track_max
        self.widget.setRange(low, track_max)
        self._box = self.widget.findChild(QLineEdit)  # superqt's value box
        if self._box is not None and hasattr(self._box, "valueEdited"):
            self._box.valueEdited.connect(self._typed)
        self._widen_box()
        self.widget.fix_box_width()

    def _widen_box(self) -> None:
        # superqt clamps typed values to the track; let the box accept the config range instead.
        if self._box is not None and hasattr(self._box, "setRange"):
            self._box.setRange(self._low, self._high)

    def _track_to(self, value: int) -> None:
        """End the track at ``track_max``, or further if ``value`` lies beyond it."""
        top = max(self._track_max, min(value, self._high))
        if top != self.widget.maximum():
            self.widget.setMaximum(top)
            self.widget.fix_box_width()
        self._widen_box()

    def _typed(self, value: float) -> None:
        value = min(max(round(value), self._low), self._high)
        if value > self.widget.maximum():
            self._track_to(value)
        self.widget.setValue(value)

    def value(self) -> int:
        return int(self.widget.value())

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self._track_to(int(value))
            self.widget.setValue(int(value))

    def set_limit(self, high: float) -> None:
        self._high = max(self._low, min(self._config_high, int(high)))
        self._track_max = min(self._config_track_max, self._high)
        with blocked(self.widget):
            self._track_to(self.value())

    def connect(self, edited, released) -> None:
        self.widget.valueChanged.connect(lambda v: edited(int(v)))
        self.widget.sliderReleased.connect(released)


def _int_spin_box(low: int, high: int) -> QSpinBox:
    box = QSpinBox()
    box.setRange(int(low), int(min(high, QT_INT_MAX)))
    box.setKeyboardTracking(False)
    box.setGroupSeparatorShown(False)
    return box


def make_editor(path: str, track_max: int | None = None) -> Editor:
    """The editor the field at ``path`` asks for; ``track_max`` ends an int slider's track early."""
    meta = field_info(path).metadata
    kind = field_type(path)
    if meta.get("choices"):
        return ComboEditor({choice: (str(choice), "") for choice in meta["choices"]})
    if kind is bool:
        return CheckEditor()
    low, high = meta.get("min"), meta.get("max")
    if kind is float and low is not None and high is not None:
        if meta.get("log"):
            return _LogEditor(low, high, meta.get("slider_min"))
        return _FloatSliderEditor(meta.get("slider_min", low) or low, high)
    if kind is int and low is not None and high is not None:
        if high > QT_INT_MAX:
            return SpinEditor(_int_spin_box(low, high))
        track = track_max if track_max is not None else max(DEFAULT_TRACK_MAX, low + 1)
        return _IntSliderEditor(int(low), int(high), int(min(high, track)))
    return _TextEditor()
