"""The spin boxes of the app: decimal numbers as typed, learning rates by decades, odd grid sizes,
spans on a 1-2-5 ladder, and labelled sliders whose value boxes all share one width.

>>> box = ScientificSpinBox(); box.setRange(0.0, 10.0); box.setValue(3e-5)     # doctest: +SKIP
>>> box.text()                                                                   # doctest: +SKIP
'3e-05'
"""

from __future__ import annotations

import math
import re
from typing import Any

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QAbstractSpinBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget
from superqt import QLabeledDoubleSlider, QLabeledSlider

SPAN_LADDER: tuple[float, ...] = tuple(m * 10.0 ** e for e in range(-2, 3) for m in (1, 2, 5)
                                       if m * 10.0 ** e <= 100)
"""Where a span's arrows step: 0.01, 0.02, 0.05, 0.1, ..., 50, 100 (any value can be typed)."""


def snap(value: float, digits: int = 3) -> float:
    """Round to ``digits`` significant digits, so a log slider yields 0.0201, not 0.020092330025650."""
    return float(f"{value:.{digits}g}") if value else 0.0


def value_box_width(widget: QWidget) -> int:
    """One width for every number box (``1.23e-05`` with spin arrows), so slider tracks line up."""
    return widget.fontMetrics().horizontalAdvance("1.23e-05") + 34


class FloatSpinBox(QDoubleSpinBox):
    """A double spin box that shows 4 significant digits and takes any finite number as typed
    (``3e-05``, ``0.5``), between its prefix and suffix."""

    _PARTIAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d*)?([eE][+-]?\d*)?")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)  # internal precision; the text shows 4 significant digits
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)

    def _number(self, text: str) -> str:
        return text.strip().removeprefix(self.prefix()).removesuffix(self.suffix()).strip()

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt override)
        try:
            return float(self._number(text))
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        number = self._number(text)
        try:
            value = float(number)
        except ValueError:
            partial = self._PARTIAL.fullmatch(number)
            return (QValidator.State.Intermediate if partial else QValidator.State.Invalid), text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos


class ScientificSpinBox(FloatSpinBox):
    """A learning rate's box: its arrows step by a tenth of a decade; from zero, up to ``floor``."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.floor = 1e-6

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        value = self.value()
        from_zero = self.floor if steps > 0 else self.minimum()
        new = snap(value * 10 ** (steps / 10)) if value > 0 else from_zero
        self.setValue(min(max(new, self.minimum()), self.maximum()))


class SpanSpinBox(FloatSpinBox):
    """A box whose arrows walk the 1-2-5 ladder ``SPAN_LADDER`` (typed values stay as typed)."""

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        ladder = [v for v in SPAN_LADDER if self.minimum() <= v <= self.maximum()]
        value = self.value()
        for _ in range(abs(steps)):
            if steps > 0:
                value = next((v for v in ladder if v > value * (1 + 1e-9)), value)
            else:
                value = next((v for v in reversed(ladder) if v < value * (1 - 1e-9)), value)
        self.setValue(value)


class OddSpinBox(QSpinBox):
    """A box for a grid resolution: steps by 2 and turns a typed even number into the next odd one,
    so that the grid keeps a point exactly at its centre."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setSingleStep(2)
        self.setKeyboardTracking(False)

    def validate(self, text: str, pos: int) -> object:
        state, text, pos = super().validate(text, pos)
        if state == QValidator.State.Acceptable and int(text or 0) % 2 == 0:
            state = QValidator.State.Intermediate  # fixup() makes it odd on Enter or focus out
        return state, text, pos

    def fixup(self, text: str) -> str:
        try:
            value = int(text)
        except ValueError:
            return super().fixup(text)
        value = min(max(value, self.minimum()), self.maximum())
        if value % 2 == 0:
            value = value + 1 if value + 1 <= self.maximum() else value - 1
        return str(value)


class _FixedBoxMixin:
    """Keep a superqt labelled slider's value box at ``value_box_width`` (it resizes itself to its range)."""

    def fix_box_width(self) -> None:
        box = self.findChild(QLineEdit)
        if box is not None:
            box.setFixedWidth(value_box_width(self))

    def showEvent(self, event: Any) -> None:  # noqa: N802 (children's show events, which resize the box, came first)
        super().showEvent(event)
        self.fix_box_width()


class FixedBoxSlider(_FixedBoxMixin, QLabeledSlider):
    """superqt's labelled int slider with a value box of the shared width."""


class FixedBoxDoubleSlider(_FixedBoxMixin, QLabeledDoubleSlider):
    """superqt's labelled float slider with a value box of the shared width."""
