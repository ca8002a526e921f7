"""A slider on a log10 scale for learning rates (superqt 0.9 has none)."""

from __future__ import annotations

import math

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QSlider, QWidget

from reptile_gui.toolkit.naming import blocked
from reptile_gui.toolkit.spinboxes import ScientificSpinBox, snap, value_box_width


class LogSlider(QWidget):
    """A slider on a log10 scale with a spin box showing (and accepting) the real value.

    The track runs from ``slider_min`` (or ``minimum``, which must then be positive) to ``maximum`` in
    ``steps_per_decade`` positions per decade; the spin box accepts the whole ``[minimum, maximum]``,
    zero included where the config allows it. Values from the track are rounded to 3 significant digits;
    both ends map exactly.

    >>> slider = LogSlider(0.0, 10.0, slider_min=1e-4)        # doctest: +SKIP
    >>> slider.position_to_value(0), slider.position_to_value(slider.slider.maximum())  # doctest: +SKIP
    (0.0001, 10.0)
    """

    valueChanged = Signal(float)

    def __init__(self, minimum: float, maximum: float, slider_min: float | None = None,
                 steps_per_decade: int = 100, parent: QWidget | None = None):
        super().__init__(parent)
        low = slider_min if slider_min is not None else minimum
        if not 0 < low < maximum:
            raise ValueError(f"a log slider needs 0 < low < high, got {low}, {maximum}")
        self._low, self._high = float(low), float(maximum)
        self._log_low, self._log_high = math.log10(low), math.log10(maximum)
        self._positions = max(1, round((self._log_high - self._log_low) * steps_per_decade))

        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setRange(0, self._positions)
        self.slider.setSingleStep(max(1, steps_per_decade // 20))
        self.slider.setPageStep(steps_per_decade)
        self.spinbox = ScientificSpinBox(self)
        self.spinbox.setRange(minimum, maximum)
        self.spinbox.floor = self._low
        self.spinbox.setFixedWidth(value_box_width(self))
        self.spinbox.setAlignment(Qt.AlignmentFlag.AlignRight)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spinbox)
        self.slider.valueChanged.connect(self._on_slider)
        self.spinbox.valueChanged.connect(self._on_spinbox)

    @property
    def sliderReleased(self):  # noqa: N802 (mirrors QAbstractSlider)
        return self.slider.sliderReleased

    def position_to_value(self, position: int) -> float:
        if position <= 0:
            return self._low
        if position >= self._positions:
            return self._high
        fraction = position / self._positions
        return snap(10 ** (self._log_low + fraction * (self._log_high - self._log_low)))

    def value_to_position(self, value: float) -> int:
        if value <= self._low:
            return 0
        if value >= self._high:
            return self._positions
        fraction = (math.log10(value) - self._log_low) / (self._log_high - self._log_low)
        return round(fraction * self._positions)

    def minimum(self) -> float:
        return self.spinbox.minimum()

    def maximum(self) -> float:
        return self.spinbox.maximum()

    def value(self) -> float:
        return self.spinbox.value()

    def setValue(self, value: float) -> None:  # noqa: N802 (mirrors QAbstractSlider)
        old = self.value()
        with blocked(self.slider, self.spinbox):
            self.spinbox.setValue(value)
            self.slider.setValue(self.value_to_position(self.spinbox.value()))
        if self.value() != old:
            self.valueChanged.emit(self.value())

    def _on_slider(self, position: int) -> None:
        with blocked(self.spinbox):
            self.spinbox.setValue(self.position_to_value(position))
        self.valueChanged.emit(self.value())

    def _on_spinbox(self, value: float) -> None:
        with blocked(self.slider):
            self.slider.setValue(self.value_to_position(value))
        self.valueChanged.emit(value)
