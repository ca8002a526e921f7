"""The Qt toolkit the panels are built from: one debouncer, the log slider, the spin boxes, editors, naming."""

from __future__ import annotations

import math

import pytest
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QComboBox, QSpinBox, QWidget

from reptile_gui.toolkit import (
    DEBOUNCE_MS,
    ComboEditor,
    Debouncer,
    LogSlider,
    OddSpinBox,
    ScientificSpinBox,
    SpanSpinBox,
    SpinEditor,
    blocked,
    make_editor,
    name_control,
    name_internals,
)


def assert_quiet(qtbot, signal) -> None:
    """No emission within a debounce window and a margin."""
    with qtbot.waitSignal(signal, timeout=DEBOUNCE_MS + 150, raising=False) as blocker:
        pass
    assert not blocker.signal_triggered, f"unexpected emission {blocker.args}"


# -- the debouncer ---------------------------------------------------------------------------------

def test_the_debouncer_coalesces_a_burst_into_one_emission(qtbot):
    debouncer = Debouncer()
    received: list[dict] = []
    debouncer.flushed.connect(received.append)
    with qtbot.waitSignal(debouncer.flushed, timeout=DEBOUNCE_MS * 10):
        for value in (1, 2, 3):
            debouncer.push("a", value)
        debouncer.push("b", "x")
        assert received == [] and debouncer.has_pending() and "a" in debouncer
    assert received == [{"a": 3, "b": "x"}], "one emission, the last value of each key"
    assert not debouncer.has_pending()
    assert_quiet(qtbot, debouncer.flushed)


def test_the_debouncer_flushes_at_once_and_forgets_discarded_edits(qtbot):
    debouncer = Debouncer()
    received: list[dict] = []
    debouncer.flushed.connect(received.append)
    debouncer.push("a", 1)
    debouncer.push("b", 2)
    debouncer.discard("b")
    debouncer.flush()
    assert received == [{"a": 1}]
    debouncer.flush()
    assert received == [{"a": 1}], "nothing pending: nothing emitted"
    assert_quiet(qtbot, debouncer.flushed)


# -- the log slider --------------------------------------------------------------------------------

def test_the_log_slider_maps_both_ends_and_the_middle(qtbot):
    slider = LogSlider(1e-6, 10.0)
    qtbot.addWidget(slider)
    assert slider.slider.maximum() == 700  # 7 decades, 100 positions each
    assert slider.position_to_value(0) == 1e-6 and slider.position_to_value(700) == 10.0
    assert slider.position_to_value(350) == pytest.approx(math.sqrt(1e-6 * 10.0), rel=1e-2)
    assert slider.value_to_position(1e-6) == 0 and slider.value_to_position(10.0) == 700
    assert slider.value_to_position(1e-3) == 300
    with qtbot.waitSignal(slider.valueChanged) as blocker:
        slider.slider.setValue(400)
    assert blocker.args == [0.01] and slider.spinbox.text() == "0.01"


def test_the_log_slider_takes_typed_values_zero_and_steps_by_decades(qtbot):
    slider = LogSlider(0.0, 10.0, slider_min=1e-4)
    qtbot.addWidget(slider)
    with qtbot.waitSignal(slider.valueChanged) as blocker:
        slider.spinbox.lineEdit().setText("3e-3")
        slider.spinbox.interpretText()
    assert blocker.args == [pytest.approx(0.003)]
    assert slider.slider.value() == slider.value_to_position(0.003)
    slider.setValue(0.0)
    assert slider.value() == 0.0 and slider.slider.value() == 0
    slider.spinbox.stepBy(1)
    assert slider.value() == 1e-4
    slider.spinbox.stepBy(10)
    assert slider.value() == pytest.approx(1e-3)


def test_a_log_slider_needs_a_positive_track():
    with pytest.raises(ValueError, match="0 < low < high"):
        LogSlider(0.0, 1.0)


# -- spin boxes ------------------------------------------------------------------------------------

def test_the_odd_spin_box_stays_odd(qtbot):
    spin = OddSpinBox()
    qtbot.addWidget(spin)
    spin.setRange(11, 101)
    assert spin.singleStep() == 2
    spin.setValue(41)
    spin.stepBy(1)
    assert spin.value() == 43
    assert spin.fixup("40") == "41" and spin.fixup("101") == "101" and spin.fixup("200") == "101"


def test_the_span_spin_box_steps_on_a_ladder_and_takes_typed_values_after_its_prefix(qtbot):
    span = SpanSpinBox()
    qtbot.addWidget(span)
    span.setRange(0.01, 100.0)
    span.setPrefix("±")
    span.setValue(1.0)
    span.stepBy(1)
    assert span.value() == 2.0
    span.stepBy(2)
    assert span.value() == 10.0
    span.setValue(0.3)
    span.stepBy(-1)
    assert span.value() == 0.2
    span.setValue(100.0)
    span.stepBy(1)
    assert span.value() == 100.0
    span.lineEdit().setText("±2.5")
    span.interpretText()
    assert span.value() == 2.5 and span.text() == "±2.5"


def test_the_scientific_spin_box_shows_and_takes_exponents(qtbot):
    box = ScientificSpinBox()
    qtbot.addWidget(box)
    box.setRange(0.0, 10.0)
    box.setValue(3e-5)
    assert box.text() == "3e-05"
    states = {text: box.validate(text, len(text))[0] for text in ("3e-3", "1e-", "20", "inf", "abc")}
    assert states == {"3e-3": QValidator.State.Acceptable, "1e-": QValidator.State.Intermediate,
                      "20": QValidator.State.Intermediate, "inf": QValidator.State.Invalid,
                      "abc": QValidator.State.Invalid}
    box.stepBy(10)
    assert box.value() == pytest.approx(3e-4)


# -- editors and the signal blocker ----------------------------------------------------------------

def test_blocked_resyncs_without_echo_and_restores_the_previous_state(qtbot):
    spin = QSpinBox()
    qtbot.addWidget(spin)
    echoes: list[int] = []
    spin.valueChanged.connect(echoes.append)
    with blocked(spin):
        spin.setValue(7)
    assert spin.value() == 7 and echoes == [], "a re-sync is not an edit"
    assert not spin.signalsBlocked()
    spin.blockSignals(True)
    with blocked(spin):
        pass
    assert spin.signalsBlocked(), "a widget blocked before stays blocked"
    spin.blockSignals(False)
    spin.setValue(8)
    assert echoes == [8]


def test_editors_set_values_silently_and_report_user_edits(qtbot):
    combo = ComboEditor({"random": ("random", "tip"), "pca": ("PCA", "")})
    spin = SpinEditor(QSpinBox())
    edits: list = []
    for editor in (combo, spin):
        qtbot.addWidget(editor.widget)
        editor.connect(edits.append, lambda: None)
    combo.set_value("pca")
    spin.set_value(5)
    assert edits == [] and combo.value() == "pca" and combo.widget.currentText() == "PCA" and spin.value() == 5
    combo.widget.setCurrentIndex(0)
    spin.widget.setValue(6)
    assert edits == ["random", 6]
    combo.set_items({"pca": ("PCA", "")})
    assert combo.value() == "pca" and edits == ["random", 6], "new items keep the value where they can"


def test_make_editor_follows_the_field_metadata(qtbot):
    assert isinstance(make_editor("inner.lr").widget, LogSlider)
    assert isinstance(make_editor("inner.optimizer").widget, QComboBox)
    assert isinstance(make_editor("seed").widget, QSpinBox), "2**63 - 1 does not fit a Qt int slider"
    steps = make_editor("inner.steps", track_max=100)
    assert steps.widget.maximum() == 100
    steps.set_value(150)
    assert steps.widget.maximum() == 150 and steps.value() == 150, "the track grows to fit a larger value"
    qtbot.addWidget(steps.widget)


def test_name_control_names_a_spin_box_and_its_text_field(qtbot):
    spin = name_control(QSpinBox(), "landscape_steps", "Landscape inner steps", "SGD steps")
    qtbot.addWidget(spin)
    assert (spin.objectName(), spin.accessibleName(), spin.toolTip()) == (
        "landscape_steps", "Landscape inner steps", "SGD steps")
    text = spin.lineEdit()
    assert text.objectName() == "landscape_steps_text"
    assert text.accessibleName() == "Landscape inner steps (typed value)"
    combo = QComboBox()
    qtbot.addWidget(combo)
    combo.addItems(["a", "b"])
    combo.setToolTip("choose")
    name_internals(combo, "choice", "Choice")
    inner = [w for w in combo.findChildren(QWidget) if w.objectName().startswith("choice_")]
    names = [w.objectName() for w in inner]
    assert inner and len(names) == len(set(names)), "the pop-up's controls are named after their owner, uniquely"
