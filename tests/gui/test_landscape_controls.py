"""The landscape's controls steer the ``landscape`` config section and wait, with the plot, for a slice."""

from __future__ import annotations

import pytest
from gui_testlib import store_with_landscape, synthetic_landscape
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from reptile_engine.config import ExperimentConfig, LandscapeConfig
from reptile_gui.plots import LandscapePlot
from reptile_gui.store import RunStore
from reptile_gui.toolkit import DEBOUNCE_MS, NAMED_CONTROLS
from reptile_gui.widgets import LandscapeControls


@pytest.fixture
def controls(qtbot):
    widget = LandscapeControls()
    qtbot.addWidget(widget)
    return widget


@pytest.fixture
def steered(make):
    """A plot with its controls above the graph and the busy cue wired as the main window does."""
    plot = make(LandscapePlot, RunStore())
    controls = LandscapeControls()
    plot.controls.addWidget(controls, 1)
    controls.busyChanged.connect(plot.show_waiting)
    plot.sliceArrived.connect(lambda: controls.set_busy(False))
    return plot, controls


def edits(controls):
    """Every ``changesRequested`` payload, in order."""
    received: list[dict] = []
    controls.changesRequested.connect(received.append)
    return received


def test_edits_are_debounced_into_one_request(qtbot, controls):
    received = edits(controls)
    controls.plane_combo.setCurrentIndex(controls.plane_combo.findData("pca"))
    controls.loss_combo.setCurrentIndex(controls.loss_combo.findData("adapted"))
    controls.resolution_spin.setValue(61)
    controls.span_spin.setValue(2.5)
    controls.every_spin.setValue(0)
    controls.steps_spin.setValue(10)
    controls.freeze_check.setChecked(True)
    controls.plane_combo.setCurrentIndex(controls.plane_combo.findData("task"))  # the last edit of a field wins
    assert received == [] and controls.has_pending()
    qtbot.waitUntil(lambda: len(received) == 1, timeout=DEBOUNCE_MS * 10)
    assert received[0] == {"landscape.plane": "task", "landscape.loss": "adapted", "landscape.resolution": 61,
                           "landscape.span": 2.5, "landscape.every": 0, "landscape.steps": 10,
                           "landscape.freeze": True}
    assert not controls.has_pending()
    with qtbot.assertNotEmitted(controls.changesRequested, wait=DEBOUNCE_MS + 100):
        pass
    assert len(received) == 1


def test_edit_back_to_the_config_value_sends_nothing(controls):
    received = edits(controls)
    controls.span_spin.setValue(5.0)
    controls.span_spin.setValue(1.0)  # the config's value again
    controls.flush()
    assert received == []


def test_set_config_syncs_without_emitting(qtbot, controls):
    config = ExperimentConfig().with_updates({"landscape.plane": "pca", "landscape.loss": "task",
                                              "landscape.resolution": 21, "landscape.span": 0.5,
                                              "landscape.every": 0, "landscape.steps": 3,
                                              "landscape.freeze": True})
    with qtbot.assertNotEmitted(controls.changesRequested, wait=DEBOUNCE_MS + 100):
        controls.set_config(config)
    assert not controls.has_pending()
    assert controls.plane_combo.currentData() == "pca" and controls.loss_combo.currentData() == "task"
    assert controls.resolution_spin.value() == 21 and controls.span_spin.value() == 0.5
    assert controls.every_spin.value() == 0 and controls.every_spin.text() == "on request"
    assert controls.steps_spin.value() == 3
    assert controls.freeze_check.isChecked()
    assert controls.config == config.landscape

    received = edits(controls)
    controls.span_spin.setValue(3.0)  # an edit not sent yet survives a re-sync
    controls.set_config(config.landscape)
    assert controls.span_spin.value() == 3.0
    controls.flush()
    assert received == [{"landscape.span": 3.0}]


def test_the_controls_follow_the_kind_of_run(qtbot):
    controls = LandscapeControls(LandscapeConfig(loss="policy"))
    qtbot.addWidget(controls)
    choices = [controls.loss_combo.itemData(i) for i in range(controls.loss_combo.count())]
    assert choices == ["policy", "critic"]
    texts = [controls.loss_combo.itemText(i) for i in range(controls.loss_combo.count())]
    assert texts == ["policy loss (surrogate, fixed batch)", "critic TD loss (fixed batch)"]
    assert controls.steps_spin.isHidden()
    received = edits(controls)
    controls.loss_combo.setCurrentIndex(1)
    controls.flush()
    assert received == [{"landscape.loss": "critic"}]
    controls.set_config(LandscapeConfig(loss="mean"))
    assert [controls.loss_combo.itemData(i) for i in range(controls.loss_combo.count())] == ["mean", "task", "adapted"]
    assert not controls.steps_spin.isHidden() and controls.loss_combo.currentData() == "mean"


def test_the_ranges_come_from_the_config(controls):
    spin = controls.resolution_spin
    assert (spin.minimum(), spin.maximum(), spin.singleStep()) == (11, 101, 2)
    assert (controls.span_spin.minimum(), controls.span_spin.maximum()) == (0.01, 100.0)
    assert controls.span_spin.prefix() == "±"


def test_recompute_sends_pending_edits_first(qtbot, steered):
    plot, controls = steered
    order: list[str] = []
    controls.changesRequested.connect(lambda changes: order.append(f"changes {sorted(changes)}"))
    controls.recomputeRequested.connect(lambda: order.append("recompute"))
    controls.resolution_spin.setValue(31)
    with qtbot.waitSignal(controls.recomputeRequested):
        qtbot.mouseClick(controls.recompute_button, Qt.MouseButton.LeftButton)
    assert order == ["changes ['landscape.resolution']", "recompute"]
    plot.store.set_landscape(synthetic_landscape(kind="task"))  # the slice arrives: the button works again
    plot.refresh()
    with qtbot.waitSignal(controls.recomputeRequested):
        qtbot.mouseClick(controls.recompute_button, Qt.MouseButton.LeftButton)
    assert order[-1] == "recompute" and len(order) == 3


def test_recompute_shows_a_busy_cue_until_the_slice_arrives(qtbot, steered):
    plot, controls = steered
    requests = []
    controls.recomputeRequested.connect(lambda: requests.append(1))
    qtbot.mouseClick(controls.recompute_button, Qt.MouseButton.LeftButton)
    assert controls.busy and not controls.recompute_button.isEnabled() and controls.busy_bar.isVisible()
    assert controls.recompute_button.text() == LandscapeControls.COMPUTING_TEXT
    assert plot.waiting and plot.placeholder.toPlainText() == plot.WAITING_TEXT
    qtbot.mouseClick(controls.recompute_button, Qt.MouseButton.LeftButton)
    assert requests == [1], "a second press while computing asks for nothing more"
    plot.refresh()
    assert controls.busy, "a redraw with no new slice keeps the cue"
    plot.store.set_landscape(synthetic_landscape(kind="task"))
    plot.refresh()  # what the window's redraw timer does
    assert not controls.busy and controls.recompute_button.isEnabled() and not controls.busy_bar.isVisible()
    assert controls.recompute_button.text() == LandscapeControls.RECOMPUTE_TEXT and not plot.waiting
    controls.set_busy(True)
    controls.set_busy(False)  # the window's way to end it when no slice is coming
    assert controls.recompute_button.isEnabled() and not controls.busy_bar.isVisible() and not plot.waiting


def test_every_control_is_named(qtbot, make):
    plot = make(LandscapePlot, store_with_landscape(synthetic_landscape(kind="task")))
    controls = LandscapeControls()
    plot.controls.addWidget(controls, 1)
    found = [w for w in plot.findChildren(QWidget) if isinstance(w, NAMED_CONTROLS)]
    mine = {controls.plane_combo, controls.loss_combo, controls.resolution_spin, controls.span_spin,
            controls.steps_spin, controls.every_spin, controls.recompute_button, controls.freeze_check}
    assert mine <= set(found)
    for widget in [controls, *found]:
        assert widget.objectName(), f"{type(widget).__name__} has no objectName"
        assert widget.accessibleName(), f"{widget.objectName()} has no accessibleName"
    for widget in mine:
        assert widget.toolTip(), f"{widget.objectName()} has no tool tip"
    names = [w.objectName() for w in found]
    assert len(names) == len(set(names))
