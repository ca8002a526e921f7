"""The hyperparameter panel, generated from the config's field metadata.

Every live field (``metadata["live"]``) outside ``OWN_CONTROLS`` gets a row, plus the non-live fields in
``EXTRA_FIELDS``; rows are grouped by config section in declaration order (the meta-RL agent's section
right after the supervised inner loop's). Only the rows that matter for the config's kind of run show
(``applies_to``): a supervised run hides the ``rl`` section, a meta-RL run the model, the inner loop and the
supervised-only evaluation fields; a section with no row left hides too. The metadata decides the editor:

* ``choices``: a ``QComboBox``;
* ``log``: a ``LogSlider`` (an integer ``QSlider`` over log10 positions and a scientific spin box
  showing the real value; superqt 0.9 has no log slider), from ``slider_min`` or ``min`` to ``max``;
* other floats: a superqt ``QLabeledDoubleSlider``;
* ints: a superqt ``QLabeledSlider`` whose track stops at a sensible ``UI_MAX`` while its value box
  accepts any number up to the config's ``max`` (the track grows to fit); ints too large for a Qt int
  (seeds) get a ``QSpinBox``.

User edits are coalesced: every edit restarts a ~200 ms single-shot timer and the panel emits one
``changesRequested({path: value, ...})`` when it fires (or at once when a slider is released).
``set_config`` re-syncs the editors with their signals blocked, so there is no echo.

>>> panel = HyperparameterPanel(ExperimentConfig())          # doctest: +SKIP
>>> panel.changesRequested.connect(controller.update)        # doctest: +SKIP
>>> controller.configChanged.connect(panel.set_config)       # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSlider,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from reptile_engine.config import ExperimentConfig, applies_to, describe_range, iter_fields
from reptile_gui.widgets._util import blocked, change_lines, humanize, name_internals, name_widget

EXTRA_FIELDS: tuple[str, ...] = (
    "model.hidden", "model.depth", "model.activation", "task.support", "task.query", "meta.iterations",
    "meta.optimizer", "evaluation.tasks", "evaluation.steps", "evaluation.lr", "seed",
    "rl.algorithm", "rl.hidden", "rl.depth", "rl.gamma", "rl.init_log_std",
)
"""Non-live fields worth exposing: they change between runs (the rows grey out while one runs)."""

UI_MAX: dict[str, float] = {
    "meta.meta_batch": 256, "inner.steps": 100, "inner.batch_size": 100, "meta.iterations": 1_000_000,
    "task.support": 1000, "task.query": 1000, "model.hidden": 1024, "evaluation.tasks": 1000,
    "evaluation.steps": 200, "evaluation.every": 5000, "rl.updates": 20, "rl.episodes": 100, "rl.hidden": 256,
}
"""Where a slider's track ends when the config allows far more; typed values may go up to the config max."""

DEFAULT_INT_UI_MAX = 1000
"""Track end for ints not in ``UI_MAX`` whose config max is larger."""

QT_INT_MAX = 2**31 - 1
DEBOUNCE_MS = 200
HIGHLIGHT_MS = 1500
CHANGE_LOG_LIMIT = 200
SECTION_TITLES: dict[str, str] = {"": "Experiment", "inner": "Inner loop", "meta": "Meta loop", "rl": "RL agent"}
SECTION_AFTER: dict[str, str] = {"rl": "inner"}
"""Sections shown right after another one rather than in declaration order: each kind's inner loop in one place."""
STOPPED_ONLY = "(stopped only)"

_STYLE = """
QFrame[fieldRow="true"] { border: 1px solid transparent; border-radius: 3px; }
QFrame[fieldRow="true"][applied="true"] { background-color: rgba(255, 193, 7, 90); }
QFrame[fieldRow="true"][error="true"] { border: 1px solid #d32f2f; background-color: rgba(211, 47, 47, 25); }
QLabel[hint="true"] { color: palette(mid); }
QLabel#hyperparameterError { color: #d32f2f; }
"""


def _type_of(f: dataclasses.Field) -> type:
    names = {"int": int, "float": float, "str": str, "bool": bool}
    return names.get(f.type, f.type) if isinstance(f.type, str) else f.type


def config_value(config: ExperimentConfig, path: str) -> Any:
    """The value at a dotted path (``"inner.lr"``, ``"seed"``)."""
    value: Any = config
    for part in path.split("."):
        value = getattr(value, part)
    return value


OWN_CONTROLS: tuple[str, ...] = ("landscape.",)
"""Sections steered from their own panel (the landscape view), not from this one."""


def exposed_fields(config: ExperimentConfig,
                   extra: Iterable[str] = EXTRA_FIELDS) -> list[tuple[str, dataclasses.Field]]:
    """The fields the panel shows: every live field and those named in ``extra``, in declaration order but
    for the sections in ``SECTION_AFTER``."""
    extra = set(extra)
    exposed = [(path, f) for path, _, f in iter_fields(config)
               if (f.metadata.get("live") or path in extra) and not path.startswith(OWN_CONTROLS)]
    first_seen: dict[str, int] = {}
    for index, (path, _) in enumerate(exposed):
        first_seen.setdefault(path.rpartition(".")[0], index)

    def rank(section: str) -> float:
        anchor = SECTION_AFTER.get(section)
        return first_seen[anchor] + 0.5 if anchor in first_seen else first_seen[section]

    return sorted(exposed, key=lambda item: rank(item[0].rpartition(".")[0]))


def snap(value: float, digits: int = 3) -> float:
    """Round to ``digits`` significant digits, so a log slider yields 0.0201, not 0.020092330025650."""
    return float(f"{value:.{digits}g}") if value else 0.0


def value_box_width(widget: QWidget) -> int:
    """One width for every row's number box (``1.23e-05`` with spin arrows), so slider tracks line up."""
    return widget.fontMetrics().horizontalAdvance("1.23e-05") + 34


class _FixedBoxMixin:
    """Keep a superqt labelled slider's value box at a fixed width (it resizes itself to its range)."""

    def fix_box_width(self) -> None:
        box = self.findChild(QLineEdit)
        if box is not None:
            box.setFixedWidth(value_box_width(self))

    def showEvent(self, event: Any) -> None:  # noqa: N802 (children's show events, which resize the box, came first)
        super().showEvent(event)
        self.fix_box_width()


class _LabeledSlider(_FixedBoxMixin, QLabeledSlider):
    pass


class _LabeledDoubleSlider(_FixedBoxMixin, QLabeledDoubleSlider):
    pass


class ScientificSpinBox(QDoubleSpinBox):
    """A double spin box that shows and accepts numbers like ``3e-05`` and steps by 10 per decade."""

    _PARTIAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d*)?([eE][+-]?\d*)?")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setDecimals(12)  # internal precision; the text shows 4 significant digits
        self.setKeyboardTracking(False)
        self.setCorrectionMode(QAbstractSpinBox.CorrectionMode.CorrectToNearestValue)
        self.floor = 1e-6  # where stepping up from zero lands

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            state = (QValidator.State.Intermediate if self._PARTIAL.fullmatch(stripped)
                     else QValidator.State.Invalid)
            return state, text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= value <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        value = self.value()
        from_zero = self.floor if steps > 0 else self.minimum()
        new = snap(value * 10 ** (steps / 10)) if value > 0 else from_zero
        self.setValue(min(max(new, self.minimum()), self.maximum()))


class LogSlider(QWidget):
    """A slider on a log10 scale with a spin box showing (and accepting) the real value.

    The track runs from ``slider_min`` (or ``minimum``, which must then be positive) to ``maximum`` in
    ``steps_per_decade`` positions per decade; the spin box accepts the whole ``[minimum, maximum]``,
    zero included where the config allows it. Values from the track are rounded to 3 significant digits;
    both ends map exactly.
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

    def setValue(self, value: float) -> None:  # noqa: N802
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


# Editors: one small adapter per kind of field, all with value(), set_value() (silent) and connect().


class _Editor:
    widget: QWidget

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def connect(self, edited: Callable[[Any], None], released: Callable[[], None]) -> None:
        raise NotImplementedError

    def set_limit(self, high: float) -> None:
        """Lower (or restore) the largest value allowed, for cross-field limits such as batch <= support."""


class _ChoiceEditor(_Editor):
    def __init__(self, choices: Iterable[str]):
        self.widget = QComboBox()
        self.widget.addItems(list(choices))

    def value(self) -> str:
        return self.widget.currentText()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setCurrentText(str(value))

    def connect(self, edited, released) -> None:
        self.widget.currentTextChanged.connect(edited)


class _BoolEditor(_Editor):
    def __init__(self):
        self.widget = QCheckBox()

    def value(self) -> bool:
        return self.widget.isChecked()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setChecked(bool(value))

    def connect(self, edited, released) -> None:
        self.widget.toggled.connect(edited)


class _TextEditor(_Editor):
    def __init__(self):
        self.widget = QLineEdit()

    def value(self) -> str:
        return self.widget.text()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setText(str(value))

    def connect(self, edited, released) -> None:
        self.widget.editingFinished.connect(lambda: edited(self.widget.text()))


class _LogEditor(_Editor):
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


class _FloatSliderEditor(_Editor):
    def __init__(self, low: float, high: float):
        self.widget = _LabeledDoubleSlider(Qt.Orientation.Horizontal)
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


class _IntSliderEditor(_Editor):
    """A superqt labelled slider whose track ends at ``ui_high`` but whose value box takes up to ``high``."""

    def __init__(self, low: int, high: int, ui_high: int):
        self.widget = _LabeledSlider(Qt.Orientation.Horizontal)
        self._low = low
        self._config_high, self._config_ui_high = high, ui_high
        self._high, self._ui_high = high, ui_high
        self.widget.setRange(low, ui_high)
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
        """End the track at the UI maximum, or further if ``value`` lies beyond it."""
        top = max(self._ui_high, min(value, self._high))
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
        self._ui_high = min(self._config_ui_high, self._high)
        with blocked(self.widget):
            self._track_to(self.value())

    def connect(self, edited, released) -> None:
        self.widget.valueChanged.connect(lambda v: edited(int(v)))
        self.widget.sliderReleased.connect(released)


class _IntSpinEditor(_Editor):
    def __init__(self, low: int, high: int):
        self.widget = QSpinBox()
        self.widget.setRange(int(low), int(min(high, QT_INT_MAX)))
        self.widget.setKeyboardTracking(False)
        self.widget.setGroupSeparatorShown(False)

    def value(self) -> int:
        return self.widget.value()

    def set_value(self, value: Any) -> None:
        with blocked(self.widget):
            self.widget.setValue(int(value))

    def connect(self, edited, released) -> None:
        self.widget.valueChanged.connect(edited)


def make_editor(path: str, f: dataclasses.Field) -> _Editor:
    """The editor the field's metadata asks for."""
    meta = f.metadata
    kind = _type_of(f)
    if meta.get("choices"):
        return _ChoiceEditor(meta["choices"])
    if kind is bool:
        return _BoolEditor()
    low, high = meta.get("min"), meta.get("max")
    if kind is float and low is not None and high is not None:
        if meta.get("log"):
            return _LogEditor(low, high, meta.get("slider_min"))
        return _FloatSliderEditor(meta.get("slider_min", low) or low, high)
    if kind is int and low is not None and high is not None:
        if high > QT_INT_MAX:
            return _IntSpinEditor(low, high)
        ui_high = int(min(high, UI_MAX.get(path, max(DEFAULT_INT_UI_MAX, low + 1))))
        return _IntSliderEditor(int(low), int(high), ui_high)
    return _TextEditor()


class _Row(QFrame):
    """One field: its name, its editor and a hint saying why it is greyed out."""

    def __init__(self, path: str, f: dataclasses.Field, section_title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = path
        self.live = bool(f.metadata.get("live"))
        slug = path.replace(".", "_")
        self.setProperty("fieldRow", True)
        self.setObjectName(f"row_{slug}")
        self.label = QLabel(humanize(path.rpartition(".")[2]), self)
        self.label.setObjectName(f"label_{slug}")
        self.editor = make_editor(path, f)
        widget = self.editor.widget
        widget.setParent(self)
        self.hint = QLabel(STOPPED_ONLY if not self.live else "", self)
        self.hint.setObjectName(f"hint_{slug}")
        self.hint.setProperty("hint", True)
        font = self.hint.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        self.hint.setFont(font)
        policy = self.hint.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.hint.setSizePolicy(policy)
        self.hint.hide()

        doc = f.metadata.get("doc", "")
        when = ("Applies at the next iteration, even while training." if self.live
                else "Can change only while no run is in progress (stopped, or before the first iteration).")
        self.base_tooltip = f"{path}: {doc}\nAllowed: {describe_range(f)}.\n{when}"
        accessible = f"{section_title} {humanize(path.rpartition('.')[2])}"
        name_widget(widget, f"field_{slug}", accessible, self.base_tooltip, doc)
        name_internals(widget, f"field_{slug}", accessible)
        self.label.setToolTip(self.base_tooltip)
        self.label.setBuddy(widget)
        self.setToolTip(self.base_tooltip)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        layout.setSpacing(8)
        layout.addWidget(self.label)
        layout.addWidget(widget, 1)
        layout.addWidget(self.hint)

        self._highlight = QTimer(self)
        self._highlight.setSingleShot(True)
        self._highlight.setInterval(HIGHLIGHT_MS)
        self._highlight.timeout.connect(lambda: self._set_flag("applied", False))
        self.error: str | None = None
        self.editable = True

    def _set_flag(self, name: str, on: bool) -> None:
        if bool(self.property(name)) != on:
            self.setProperty(name, on)
            self.style().unpolish(self)
            self.style().polish(self)
            self.update()

    def _refresh_tooltip(self) -> None:
        text = self.base_tooltip
        if not self.editable:
            why = ("Waiting for the trainer to start." if self.live
                   else "Locked while a run is in progress: stop the run (or reset) to change it.")
            text = f"{why}\n\n{text}"
        if self.error:
            text = f"⚠ {self.error}\n\n{text}"
        for widget in (self, self.label, self.editor.widget, *self.editor.widget.findChildren(QWidget)):
            widget.setToolTip(text)

    def set_editable(self, editable: bool) -> None:
        self.editable = editable
        self.editor.widget.setEnabled(editable)
        self.hint.setVisible(not editable and not self.live)
        self._refresh_tooltip()

    def flash(self) -> None:
        self._set_flag("applied", True)
        self._highlight.start()

    def set_error(self, message: str | None) -> None:
        self.error = message
        self._set_flag("error", message is not None)
        self._refresh_tooltip()


class _WheelGuard(QObject):
    """Let the mouse wheel scroll the panel instead of changing the control under the pointer,
    unless that control has focus (clicked or tabbed into)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()  # ignored and filtered: Qt passes the wheel on to the scroll area
            return True
        return False


class HyperparameterPanel(QWidget):
    """Editors for the live (and a few between-run) hyperparameters, built from the config metadata.

    Signals:
        changesRequested(dict): ``{dotted_path: value}``, one per debounce window of user edits.
    """

    changesRequested = Signal(dict)

    def __init__(self, config: ExperimentConfig | None = None, extra_fields: Iterable[str] = EXTRA_FIELDS,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("hyperparameterPanel")
        self.setAccessibleName("Hyperparameters")
        self.setStyleSheet(_STYLE)
        self._config = config if config is not None else ExperimentConfig()
        self._pending: dict[str, Any] = {}
        self._predicate: Callable[[str], bool] | None = None
        self._rows: dict[str, _Row] = {}
        self._sections: dict[str, QGroupBox] = {}
        self._kind_of_task: tuple[str, str] | None = None  # (task.name, its kind): kind_of reads entry points

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.flush)

        content = QWidget()
        content.setObjectName("hyperparameterSections")
        sections = QVBoxLayout(content)
        sections.setContentsMargins(0, 0, 0, 0)
        sections.setSpacing(6)
        groups: dict[str, QVBoxLayout] = {}
        for path, f in exposed_fields(self._config, extra_fields):
            section = path.rpartition(".")[0]
            if section not in groups:
                groups[section] = self._add_section(sections, section)
            row = _Row(path, f, self._section_title(section))
            row.editor.connect(lambda value, p=path: self._edited(p, value), self.flush)
            groups[section].addWidget(row)
            self._rows[path] = row
        sections.addStretch(1)

        label_width = max(row.label.sizeHint().width() for row in self._rows.values())
        hint_width = max(row.hint.sizeHint().width() for row in self._rows.values())
        guard = _WheelGuard(self)
        for row in self._rows.values():
            row.label.setFixedWidth(label_width)
            row.hint.setFixedWidth(hint_width)
            for control in row.findChildren(QWidget):
                if not isinstance(control, (QAbstractSlider, QAbstractSpinBox, QComboBox)):
                    continue
                control.installEventFilter(guard)
                control.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self._scroll = QScrollArea(self)
        name_widget(self._scroll, "hyperparameterScroll", "Hyperparameter sections")
        self._scroll.setWidgetResizable(True)
        self._scroll.setFrameShape(QFrame.Shape.NoFrame)
        self._scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._scroll.setWidget(content)
        name_widget(self._scroll.verticalScrollBar(), "hyperparameterScrollBar", "Scroll hyperparameters")
        name_widget(self._scroll.horizontalScrollBar(), "hyperparameterScrollBarH",
                    "Scroll hyperparameters sideways")
        scrollbar = self._scroll.verticalScrollBar().sizeHint().width()
        self._scroll.setMinimumWidth(content.minimumSizeHint().width() + scrollbar + 4)

        self._error = QLabel(self)
        self._error.setObjectName("hyperparameterError")
        self._error.setAccessibleName("Hyperparameter error")
        self._error.setWordWrap(True)
        self._error.hide()

        log_box = QGroupBox("Applied changes", self)
        log_box.setObjectName("changeLogGroup")
        self.change_log = QListWidget(log_box)
        name_widget(self.change_log, "changeLog", "Applied changes",
                    f"Changes the trainer applied, newest first (the last {CHANGE_LOG_LIMIT}).")
        self.change_log.setAlternatingRowColors(True)
        self.change_log.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.change_log.setFixedHeight(self.change_log.fontMetrics().height() * 5 + 12)
        name_widget(self.change_log.verticalScrollBar(), "changeLogScrollBar", "Scroll applied changes")
        name_widget(self.change_log.horizontalScrollBar(), "changeLogScrollBarH",
                    "Scroll applied changes sideways")
        log_layout = QVBoxLayout(log_box)
        log_layout.setContentsMargins(6, 4, 6, 6)
        log_layout.addWidget(self.change_log)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._error)
        layout.addWidget(log_box)
        self.set_config(self._config)

    @staticmethod
    def _section_title(section: str) -> str:
        return SECTION_TITLES.get(section, humanize(section).capitalize())

    def _add_section(self, layout: QVBoxLayout, section: str) -> QVBoxLayout:
        box = QGroupBox(self._section_title(section))
        self._sections[section] = box
        box.setObjectName(f"section_{section or 'experiment'}")
        value = config_value(self._config, section) if section else self._config
        box.setToolTip((type(value).__doc__ or "").strip().splitlines()[0])
        inner = QVBoxLayout(box)
        inner.setContentsMargins(4, 6, 4, 4)
        inner.setSpacing(0)
        layout.addWidget(box)
        return inner

    # Public API.

    @property
    def config(self) -> ExperimentConfig:
        """The last config the panel was synced to (the last good one)."""
        return self._config

    def paths(self) -> list[str]:
        """The dotted paths of the rows, in display order."""
        return list(self._rows)

    def editor(self, path: str) -> QWidget:
        """The editor widget of a row (a superqt slider, ``LogSlider``, combo box or spin box)."""
        return self._rows[path].editor.widget

    def row(self, path: str) -> QFrame:
        return self._rows[path]

    def value(self, path: str) -> Any:
        """What the row's editor shows now."""
        return self._rows[path].editor.value()

    def set_config(self, config: ExperimentConfig) -> None:
        """Show ``config`` in every row without emitting anything (rows with an unsent edit keep it), and
        only the rows that matter for its kind of run."""
        self._config = config
        support = getattr(getattr(config, "task", None), "support", None)
        for path, row in self._rows.items():
            if path == "inner.batch_size" and support is not None:
                row.editor.set_limit(support)  # validate() demands inner.batch_size <= task.support
            if path not in self._pending:
                row.editor.set_value(config_value(config, path))
        self._show_kind(self.kind)

    @property
    def kind(self) -> str:
        """The kind of run (``"supervised"`` or ``"rl"``) of the config on show."""
        name = self._config.task.name
        if self._kind_of_task is None or self._kind_of_task[0] != name:
            self._kind_of_task = (name, self._config.kind)
        return self._kind_of_task[1]

    def _show_kind(self, kind: str) -> None:
        for path, row in self._rows.items():
            row.setHidden(not applies_to(path, kind, self._config.rl.algorithm))
        for section, box in self._sections.items():
            rows = [row for path, row in self._rows.items() if path.rpartition(".")[0] == section]
            box.setHidden(all(row.isHidden() for row in rows))

    def shown_paths(self) -> list[str]:
        """The paths of the rows shown for the config's kind of run, in display order."""
        return [path for path, row in self._rows.items() if not row.isHidden()]

    def set_editability(self, predicate: Callable[[str], bool] | None = None) -> None:
        """Enable the rows ``predicate(path)`` allows and grey out the rest with the reason.

        Pass ``controller.editable_now``; call again with no argument (or the same one) after each state change.
        """
        if predicate is not None:
            self._predicate = predicate
        if self._predicate is None:
            return
        for path, row in self._rows.items():
            row.set_editable(bool(self._predicate(path)))

    def show_applied(self, event: Any) -> None:
        """Log a ``ConfigChanged`` event's hyperparameter changes (newest first) and flash the rows it changed.

        Settings of a view with its own controls (``OWN_CONTROLS``, the landscape's) are not hyperparameters
        of the run: they are not logged."""
        hyperparameters = {path: change for path, change in event.changes.items()
                           if not path.startswith(OWN_CONTROLS)}
        for line in change_lines(SimpleNamespace(iteration=event.iteration, changes=hyperparameters)):
            self.change_log.insertItem(0, line)
        while self.change_log.count() > CHANGE_LOG_LIMIT:
            self.change_log.takeItem(self.change_log.count() - 1)
        config = getattr(event, "config", None)
        if isinstance(config, ExperimentConfig):
            self.set_config(config)
        for path in event.changes:
            row = self._rows.get(path)
            if row is not None:
                row.set_error(None)
                row.flash()
        if not any(row.error for row in self._rows.values()):
            self._error.hide()

    def clear_change_log(self) -> None:
        """Forget the logged changes (a reset run starts with none)."""
        self.change_log.clear()

    def show_error(self, field: str, message: str) -> None:
        """Mark the row of a rejected change and return every row to the last good config."""
        self._pending.pop(field, None)
        row = self._rows.get(field)
        if row is not None:
            row.set_error(message)
        self._error.setText(f"{field}: {message}")
        self._error.setToolTip(f"{field}: {message}")
        self._error.show()
        self.set_config(self._config)

    def flush(self) -> None:
        """Emit the pending edits now (the debounce timer calls this; so does releasing a slider)."""
        self._timer.stop()
        changes = {path: value for path, value in self._pending.items()
                   if value != config_value(self._config, path)}
        self._pending.clear()
        if changes:
            self.changesRequested.emit(changes)

    def has_pending(self) -> bool:
        return bool(self._pending)

    # Private.

    def _edited(self, path: str, value: Any) -> None:
        row = self._rows[path]
        if row.error is not None:
            row.set_error(None)
            if not any(r.error for r in self._rows.values()):
                self._error.hide()
        self._pending[path] = value
        self._timer.start()
