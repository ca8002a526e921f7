"""The control widgets: generated hyperparameter rows, debounced edits, run controls, picker, status bar."""

from __future__ import annotations

import math
import os
from functools import partial
from types import SimpleNamespace

import pytest
from gui_testlib import synthetic_rl_metrics
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QScrollArea,
    QScrollBar,
    QSlider,
    QSpinBox,
    QWidget,
)
from superqt import QLabeledDoubleSlider, QLabeledSlider

from reptile_engine import catalog
from reptile_engine.config import ConfigError, ExperimentConfig, applies_to, field_info, get_value, live_fields
from reptile_engine.events import ConfigChanged, IterationMetrics
from reptile_engine.presets import PRESETS, preset
from reptile_gui.controller import ACTIONS, TrainingController
from reptile_gui.store import RunStore, metrics_to_columns
from reptile_gui.toolkit import DEBOUNCE_MS, NAMED_CONTROLS, LogSlider
from reptile_gui.widgets import HyperparameterPanel, RunControls, RunStatusBar, TaskPicker, field_rows
from reptile_gui.widgets.change_log import CHANGE_LOG_LIMIT
from reptile_gui.widgets.run_controls import RUN_ACTIONS

QUIET_MS = DEBOUNCE_MS + 150  # long enough for a second, unwanted emission to show up


@pytest.fixture
def panel(qtbot):
    widget = HyperparameterPanel(ExperimentConfig())
    qtbot.addWidget(widget)
    return widget


def drag(slider: QSlider, positions) -> None:
    """What a mouse drag does to a QSlider: slider down, then one position per mouse move."""
    slider.setSliderDown(True)
    for position in positions:
        slider.setSliderPosition(position)


def assert_quiet(qtbot, signal) -> None:
    """No emission within a debounce window and a margin."""
    with qtbot.waitSignal(signal, timeout=QUIET_MS, raising=False) as blocker:
        pass
    assert not blocker.signal_triggered, f"unexpected emission {blocker.args}"


def editable_in(state: str, iteration: int = 5):
    """The controller's own editability rule, for a controller in ``state``."""
    return partial(TrainingController.editable_now, SimpleNamespace(state=state, iteration=iteration))


# -- hyperparameter panel --------------------------------------------------------------------------

def test_rows_are_generated_from_the_metadata(panel):
    live = [path for path, _, _ in live_fields(ExperimentConfig()) if not path.startswith(field_rows.OWN_CONTROLS)]
    assert set(live) <= set(panel.paths())
    assert set(field_rows.EXTRA_FIELDS) <= set(panel.paths())
    assert set(panel.paths()) == set(live) | set(field_rows.EXTRA_FIELDS)
    for path in panel.paths():
        meta = field_info(path).metadata
        editor = panel.editor(path)
        if meta["choices"]:
            assert isinstance(editor, QComboBox)
            assert [editor.itemText(i) for i in range(editor.count())] == list(meta["choices"])
        elif meta["log"]:
            assert isinstance(editor, LogSlider)
        elif path == "seed":
            assert isinstance(editor, QSpinBox)  # 2**63 - 1 does not fit a Qt int slider
        else:
            assert isinstance(editor, QLabeledSlider)
        assert meta["doc"] in editor.toolTip()
        assert panel.value(path) == get_value(panel.config, path)
    sections = {box.title() for box in panel.findChildren(QWidget) if box.objectName().startswith("section_")}
    assert {"Inner loop", "Meta loop", "Meta schedule", "Inner schedule", "Evaluation", "Model", "Task",
            "Experiment", "RL agent"} == sections


def section_box(panel, section):
    return panel.findChild(QWidget, f"section_{section}")


def test_rows_show_only_for_their_kind_of_run(qtbot, panel):
    rl_rows = [path for path in panel.paths() if path.startswith("rl.")]
    assert {"rl.updates", "rl.episodes", "rl.lr", "rl.actor_lr", "rl.critic_lr", "rl.entropy_coef", "rl.algorithm",
            "rl.hidden", "rl.depth", "rl.gamma", "rl.init_log_std"} <= set(rl_rows)
    assert panel.kind == "supervised"
    assert all(panel.row(path).isHidden() for path in rl_rows)
    assert section_box(panel, "rl").isHidden() and not section_box(panel, "inner").isHidden()
    assert set(panel.shown_paths()) == {p for p in panel.paths() if applies_to(p, "supervised")}

    panel.set_config(preset("meta-rl"))
    assert panel.kind == "rl"
    td3_rows = {"rl.actor_lr", "rl.critic_lr"}
    assert not any(panel.row(path).isHidden() for path in set(rl_rows) - td3_rows)
    assert all(panel.row(path).isHidden() for path in td3_rows), "PPO shows no TD3 settings"
    for hidden in ("inner.lr", "inner.steps", "model.hidden", "task.support", "evaluation.lr"):
        assert panel.row(hidden).isHidden(), hidden
    for shared in ("meta.meta_batch", "meta.lr", "meta.iterations", "evaluation.tasks", "evaluation.steps", "seed"):
        assert not panel.row(shared).isHidden(), shared
    assert section_box(panel, "inner").isHidden() and section_box(panel, "model").isHidden()
    assert section_box(panel, "task").isHidden() and not section_box(panel, "rl").isHidden()
    assert set(panel.shown_paths()) == {p for p in panel.paths() if applies_to(p, "rl", "ppo")}
    assert panel.value("rl.updates") == preset("meta-rl").rl.updates
    order = [path.rpartition(".")[0] for path in panel.paths()]
    assert order.index("rl") == max(i for i, section in enumerate(order) if section == "inner") + 1, \
        "the agent's section takes the inner loop's place"
    assert panel.editor("rl.updates").maximum() == field_rows.UI_MAX["rl.updates"]
    assert panel.editor("rl.episodes").maximum() == field_rows.UI_MAX["rl.episodes"]

    panel.set_config(ExperimentConfig())
    assert all(panel.row(path).isHidden() for path in rl_rows) and not panel.row("inner.lr").isHidden()



def test_rows_follow_the_inner_loop_algorithm(qtbot, panel):
    panel.set_config(preset("meta-rl").with_updates({"rl.algorithm": "td3"}))
    assert not panel.row("rl.actor_lr").isHidden() and not panel.row("rl.critic_lr").isHidden()
    for on_policy in ("rl.lr", "rl.entropy_coef", "rl.init_log_std"):
        assert panel.row(on_policy).isHidden(), on_policy
    assert set(panel.shown_paths()) == {p for p in panel.paths() if applies_to(p, "rl", "td3")}

def test_more_fields_come_from_metadata_alone(qtbot):
    panel = HyperparameterPanel(ExperimentConfig(), extra_fields=("meta_schedule.final_fraction", "device"))
    qtbot.addWidget(panel)
    fraction = panel.editor("meta_schedule.final_fraction")
    assert isinstance(fraction, QLabeledDoubleSlider)
    assert (fraction.minimum(), fraction.maximum()) == (0.0, 1.0)
    assert isinstance(panel.editor("device"), QComboBox)
    with qtbot.waitSignal(panel.changesRequested, timeout=2000) as blocker:
        fraction.setValue(0.25)
    assert blocker.args == [{"meta_schedule.final_fraction": 0.25}]


def test_ui_maxima_cap_absurd_ranges(panel):
    assert panel.editor("meta.meta_batch").maximum() == 256
    assert panel.editor("inner.steps").maximum() == 100
    assert panel.editor("meta.iterations").maximum() == 1_000_000
    assert panel.editor("inner.batch_size").maximum() == 10  # at most task.support
    panel.set_config(panel.config.with_updates({"task.support": 500}))
    assert panel.editor("inner.batch_size").maximum() == 100


def test_a_drag_becomes_one_debounced_change(qtbot, panel):
    emitted = []
    panel.changesRequested.connect(emitted.append)
    slider = panel.editor("meta.meta_batch").findChild(QSlider)
    with qtbot.waitSignal(panel.changesRequested, timeout=2000) as blocker:
        drag(slider, [6, 7, 9, 12, 16])
        assert emitted == []  # nothing until the user pauses
    assert blocker.args == [{"meta.meta_batch": 16}]
    assert_quiet(qtbot, panel.changesRequested)
    assert emitted == [{"meta.meta_batch": 16}]


def test_edits_to_several_fields_coalesce(qtbot, panel):
    with qtbot.waitSignal(panel.changesRequested, timeout=2000) as blocker:
        drag(panel.editor("inner.steps").findChild(QSlider), [6, 8])
        panel.editor("inner.optimizer").setCurrentText("adam")
        panel.editor("inner.lr").setValue(0.005)
    assert blocker.args == [{"inner.steps": 8, "inner.optimizer": "adam", "inner.lr": 0.005}]
    assert_quiet(qtbot, panel.changesRequested)


def test_releasing_the_slider_sends_at_once_and_a_round_trip_sends_nothing(qtbot, panel):
    slider = panel.editor("inner.steps").findChild(QSlider)
    with qtbot.waitSignal(panel.changesRequested, timeout=DEBOUNCE_MS // 2) as blocker:
        drag(slider, [7, 9])
        slider.setSliderDown(False)  # released: no need to wait out the debounce
    assert blocker.args == [{"inner.steps": 9}]
    drag(slider, [12, 5])  # back where the config is: nothing to ask for
    assert_quiet(qtbot, panel.changesRequested)


def test_set_config_resyncs_without_emitting(qtbot, panel):
    new = panel.config.with_updates({"inner.lr": 0.003, "inner.steps": 17, "meta.meta_batch": 40,
                                     "inner.optimizer": "adam", "model.hidden": 128, "seed": 7,
                                     "meta.lr": 0.25})
    panel.set_config(new)
    assert_quiet(qtbot, panel.changesRequested)
    assert not panel.has_pending()
    for path in ("inner.lr", "inner.steps", "meta.meta_batch", "inner.optimizer", "model.hidden", "seed",
                 "meta.lr"):
        assert panel.value(path) == get_value(new, path), path
    assert panel.editor("inner.lr").slider.value() == panel.editor("inner.lr").value_to_position(0.003)


def test_log_slider_maps_both_ends(qtbot, panel):
    inner = panel.editor("inner.lr")
    assert inner.position_to_value(inner.slider.minimum()) == 1e-6
    assert inner.position_to_value(inner.slider.maximum()) == 10.0
    assert inner.slider.maximum() == 700  # 7 decades, 100 positions each
    assert inner.position_to_value(350) == pytest.approx(math.sqrt(1e-6 * 10.0), rel=1e-2)
    meta = panel.editor("meta.lr")  # min 0 in the config: the track starts at slider_min
    assert meta.position_to_value(0) == 1e-4 and meta.minimum() == 0.0
    assert meta.position_to_value(meta.slider.maximum()) == 10.0
    with qtbot.waitSignal(panel.changesRequested, timeout=2000) as blocker:
        drag(inner.slider, [inner.slider.maximum()])
        drag(meta.slider, [0])
    assert blocker.args == [{"inner.lr": 10.0, "meta.lr": 1e-4}]
    assert inner.spinbox.text() == "10" and meta.spinbox.text() == "0.0001"


def test_typed_value_beyond_the_track_is_allowed_up_to_the_config_max(qtbot, panel):
    editor = panel.editor("meta.iterations")
    box = editor.findChild(QLineEdit)
    with qtbot.waitSignal(panel.changesRequested, timeout=2000) as blocker:
        box.setText("5000000")
        box.editingFinished.emit()  # what Return or leaving the box does
    assert blocker.args == [{"meta.iterations": 5_000_000}]
    assert editor.maximum() == 5_000_000 and editor.value() == 5_000_000
    panel.set_config(panel.config)  # a config beyond the track widens it too, and back
    assert editor.maximum() == 1_000_000


@pytest.mark.parametrize("state", ["starting", "ready", "running", "paused", "stopped"])
def test_rows_follow_the_controllers_editability(panel, state):
    predicate = editable_in(state, iteration=0 if state == "ready" else 5)
    panel.set_editability(predicate)
    for path in panel.paths():
        row, editor = panel.row(path), panel.editor(path)
        assert editor.isEnabled() == predicate(path), path
        live = field_info(path).metadata["live"]
        assert row.hint.isVisibleTo(row) == (not live and not predicate(path)), path
        if not predicate(path):
            assert ("Locked" in editor.toolTip()) if not live else ("Waiting" in editor.toolTip())


def test_non_live_rows_disable_while_running(panel):
    panel.set_editability(editable_in("running"))
    assert not panel.editor("model.hidden").isEnabled()
    assert panel.row("model.hidden").hint.text() == field_rows.STOPPED_ONLY
    assert panel.editor("inner.lr").isEnabled()
    panel.set_editability(editable_in("stopped"))
    assert all(panel.editor(path).isEnabled() for path in panel.paths())


def test_rejected_change_marks_the_row_and_resyncs(qtbot, panel):
    def apply(changes):  # what the main window does with controller.update
        try:
            panel.set_config(panel.config.with_updates(changes))
        except ConfigError as exc:
            panel.show_error(exc.field, exc.allowed)

    panel.changesRequested.connect(apply)
    with qtbot.waitSignal(panel.changesRequested, timeout=2000):
        drag(panel.editor("task.support").findChild(QSlider), [5])  # below inner.batch_size = 10
    row = panel.row("inner.batch_size")
    assert row.property("error") is True
    assert "task.support" in panel.editor("inner.batch_size").toolTip()
    error_label = panel.findChild(QLabel, "hyperparameterError")
    assert error_label.isVisibleTo(panel) and "inner.batch_size" in error_label.text()
    assert panel.value("task.support") == 10 == panel.config.task.support  # back to the last good config
    drag(panel.editor("inner.batch_size").findChild(QSlider), [4])  # the user fixes it
    assert row.property("error") is False and not error_label.isVisibleTo(panel)


def test_applied_changes_are_logged_newest_first_and_flash(qtbot, monkeypatch):
    monkeypatch.setattr(field_rows, "HIGHLIGHT_MS", 30)
    panel = HyperparameterPanel(ExperimentConfig())
    qtbot.addWidget(panel)
    config = panel.config.with_updates({"inner.lr": 0.01})
    panel.show_applied(ConfigChanged(iteration=120, changes={"inner.lr": (0.02, 0.01)}, config=config))
    assert panel.change_log.item(0).text() == "iteration 120: inner.lr 0.02 → 0.01"
    assert panel.value("inner.lr") == 0.01
    row = panel.row("inner.lr")
    assert row.property("applied") is True
    qtbot.waitUntil(lambda: not row.property("applied"), timeout=2000)
    for i in range(CHANGE_LOG_LIMIT + 5):
        panel.show_applied(SimpleNamespace(iteration=200 + i, changes={"inner.steps": (i, i + 1)}))
    assert panel.change_log.count() == CHANGE_LOG_LIMIT
    assert panel.change_log.item(0).text().startswith(f"iteration {200 + CHANGE_LOG_LIMIT + 4}:")


def test_the_change_log_leaves_out_view_settings_and_clears(qtbot):
    panel = HyperparameterPanel(ExperimentConfig())
    qtbot.addWidget(panel)
    panel.show_applied(SimpleNamespace(iteration=50, changes={"landscape.span": (1.0, 2.0)}))
    assert panel.change_log.count() == 0, "a landscape view setting is not a hyperparameter change"
    panel.show_applied(SimpleNamespace(iteration=60, changes={"landscape.resolution": (41, 81),
                                                              "meta.lr": (0.1, 0.2)}))
    assert [panel.change_log.item(i).text() for i in range(panel.change_log.count())] == [
        "iteration 60: meta.lr 0.1 → 0.2"]
    panel.clear_change_log()
    assert panel.change_log.count() == 0


@pytest.mark.parametrize("width", [520, 260, 150])
def test_run_control_buttons_never_overlap_when_paused(qtbot, width):
    controls = RunControls()
    qtbot.addWidget(controls)
    controls.show()
    controls.set_state("running", ACTIONS["running"])
    controls.set_state("paused", ACTIONS["paused"])
    assert controls.buttons["pause_resume"].text() == "Resume"
    controls.resize(width, controls.heightForWidth(width))
    qtbot.waitUntil(lambda: controls.buttons["reset"].geometry().bottom() < controls.height())
    rects = [b.geometry() for b in controls.buttons.values()] + [controls.state_label.geometry()]
    for i, rect in enumerate(rects):
        assert controls.rect().contains(rect), f"item {i} sticks out of a {width} px wide row"
        assert rect.width() >= min(w.sizeHint().width() for w in controls.buttons.values()) - 1
        for other in rects[i + 1:]:
            assert not rect.intersects(other), f"{rect} overlaps {other} at {width} px"
    button = controls.buttons["pause_resume"]
    assert button.actions() == [button.defaultAction()], "one action per button: no menu arrow"


def test_wheel_over_an_unfocused_slider_does_not_change_it(qtbot, panel):
    panel.resize(420, 500)
    panel.show()
    qtbot.waitExposed(panel)
    slider = panel.editor("inner.steps").findChild(QSlider)
    before = slider.value()
    center = QPointF(slider.rect().center())
    event = QWheelEvent(center, QPointF(slider.mapToGlobal(center.toPoint())), QPoint(0, 0), QPoint(0, 120),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
                        False)
    QApplication.sendEvent(slider, event)
    assert slider.value() == before


# -- run controls ----------------------------------------------------------------------------------

@pytest.fixture
def controls(qtbot):
    widget = RunControls()
    qtbot.addWidget(widget)
    return widget


@pytest.mark.parametrize("state", sorted(ACTIONS))
def test_run_controls_enable_exactly_the_allowed_actions(controls, state):
    controls.set_state(state, ACTIONS[state])
    enabled = {name for name in RUN_ACTIONS if controls.action(name).isEnabled()}
    assert enabled == ACTIONS[state]
    assert controls.action("toggle").isEnabled() == bool({"start", "pause", "resume"} & ACTIONS[state])
    for name in ("start", "step", "stop", "reset"):
        assert controls.buttons[name].isEnabled() == (name in ACTIONS[state])
    pause_resume = controls.buttons["pause_resume"]
    expected = "resume" if state == "paused" else "pause"
    assert pause_resume.defaultAction() is controls.action(expected)
    assert pause_resume.isEnabled() == (expected in ACTIONS[state])
    assert state in controls.state_label.text().lower()


def test_actions_emit_their_signals(qtbot, controls):
    controls.set_state("paused", ACTIONS["paused"])
    for name in ("resume", "step", "stop", "reset"):
        with qtbot.waitSignal(getattr(controls, f"{name}Requested"), timeout=1000):
            controls.action(name).trigger()
    with qtbot.waitSignal(controls.resumeRequested, timeout=1000):
        qtbot.mouseClick(controls.buttons["pause_resume"], Qt.MouseButton.LeftButton)
    assert [a.objectName() for a in controls.actions()] == [f"{n}Action" for n in ("toggle", *RUN_ACTIONS)]


def show_active(qtbot, widget):
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    qtbot.waitUntil(widget.isActiveWindow, timeout=2000)


def test_space_toggles_and_s_steps(qtbot, controls):
    show_active(qtbot, controls)
    controls.set_state("ready", ACTIONS["ready"])
    with qtbot.waitSignal(controls.toggleRequested, timeout=1000):
        qtbot.keyClick(controls, Qt.Key.Key_Space)
    controls.set_state("paused", ACTIONS["paused"])
    with qtbot.waitSignal(controls.stepRequested, timeout=1000):
        qtbot.keyClick(controls, Qt.Key.Key_S)
    controls.set_state("running", ACTIONS["running"])
    with qtbot.waitSignal(controls.stopRequested, timeout=1000):
        qtbot.keyClick(controls, Qt.Key.Key_Period, Qt.KeyboardModifier.ControlModifier)
    with qtbot.assertNotEmitted(controls.stepRequested):  # not allowed while running
        qtbot.keyClick(controls, Qt.Key.Key_S)


def test_shortcuts_work_window_wide(qtbot):
    window = QWidget()
    qtbot.addWidget(window)
    controls = RunControls(window)
    other = QLineEdit(window)
    other.move(0, 60)
    show_active(qtbot, window)
    controls.set_state("running", ACTIONS["running"])
    with qtbot.waitSignal(controls.toggleRequested, timeout=1000):
        qtbot.keyClick(window, Qt.Key.Key_Space)
    other.setFocus()
    qtbot.waitUntil(other.hasFocus, timeout=1000)
    with qtbot.assertNotEmitted(controls.toggleRequested):  # a text field keeps its space bar
        qtbot.keyClick(other, Qt.Key.Key_Space)
    assert other.text() == " "


# -- task picker -----------------------------------------------------------------------------------

def test_task_picker_lists_supervised_tasks_rl_families_and_presets(qtbot):
    picker = TaskPicker()
    qtbot.addWidget(picker)
    assert picker.tasks() == catalog.available()
    assert "sine" in picker.tasks() and "point-nav-2d" in picker.tasks()
    tips = {name: picker.task_combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i, name in enumerate(picker.tasks())}
    assert tips["sine"].startswith("Task distribution") and tips["point-nav-2d"].startswith("Meta-RL family")
    assert picker.presets() == list(PRESETS) and "meta-rl" in picker.presets()
    with qtbot.waitSignal(picker.taskChosen, timeout=1000) as blocker:
        picker.task_combo.activated.emit(picker.task_combo.findText("sine"))
    assert blocker.args == ["sine"]
    with qtbot.waitSignal(picker.presetChosen, timeout=1000) as blocker:
        picker.preset_combo.activated.emit(picker.preset_combo.findText("paper"))
    assert blocker.args == ["paper"]
    assert "meta.meta_batch = 1" in picker.preset_combo.itemData(1, Qt.ItemDataRole.ToolTipRole)


def test_task_picker_plugins_set_task_and_state(qtbot):
    picker = TaskPicker(tasks=lambda: ["sine", "omniglot"])
    qtbot.addWidget(picker)
    assert picker.tasks() == ["sine", "omniglot"]
    with qtbot.assertNotEmitted(picker.taskChosen):
        picker.set_task("omniglot")
        picker.set_task("my_pkg.tasks:Waves")  # a module:attr task joins the list
    assert picker.task_combo.currentText() == "my_pkg.tasks:Waves"
    picker.set_enabled_for_state(False)
    assert not picker.task_combo.isEnabled() and not picker.preset_combo.isEnabled()
    assert "Locked" in picker.task_combo.toolTip()
    picker.set_enabled_for_state(True)
    assert picker.task_combo.isEnabled() and picker.preset_combo.isEnabled()


# -- status bar ------------------------------------------------------------------------------------

def filled_store(n: int = 300) -> RunStore:
    store = RunStore()
    metrics = [IterationMetrics(iteration=i, loss_before=1.0, loss_after=0.5, meta_lr=0.1, inner_lr=0.02,
                                meta_batch=5, inner_steps=5, iterations_per_second=40.0 + i / 10,
                                elapsed=3600 + 62.5 + i / 100) for i in range(1, n + 1)]
    store.extend_metrics(metrics_to_columns(metrics))
    return store


def test_status_bar_shows_iteration_rate_and_elapsed(qtbot):
    bar = RunStatusBar()
    qtbot.addWidget(bar)
    assert bar.text_of("iteration") == "Iteration: –"
    bar.update_from(filled_store(1234), "running", "cuda:0")
    assert bar.text_of("state") == "State: running"
    assert bar.text_of("iteration") == "Iteration: 1,234"
    assert bar.text_of("rate") == "163 it/s"
    assert bar.text_of("elapsed") == "Elapsed: 1:01:14"
    assert bar.text_of("device") == "Device: cuda:0"
    bar.update_from(filled_store(10), "running", "cpu")
    assert bar.text_of("rate") == "41.0 it/s"
    bar.show_change(ConfigChanged(iteration=120, changes={"inner.lr": (0.02, 0.01)}, config=ExperimentConfig()))
    assert bar.text_of("change") == "iteration 120: inner.lr 0.02 → 0.01"
    assert bar.fields["env_rate"].isHidden(), "a supervised run steps no environment"


def test_status_bar_shows_environment_steps_of_a_meta_rl_run(qtbot):
    bar = RunStatusBar()
    qtbot.addWidget(bar)
    store = RunStore("rl")
    store.extend_metrics(synthetic_rl_metrics(5))
    bar.update_from(store, "running", "cpu")
    assert not bar.fields["env_rate"].isHidden()
    assert bar.text_of("env_rate") == f"{store.latest('env_steps_per_second'):,.0f} env steps/s"
    assert bar.text_of("iteration") == "Iteration: 5"


# -- names and looks -------------------------------------------------------------------------------

def make_all(qtbot) -> dict[str, QWidget]:
    widgets = {"hyperparameters": HyperparameterPanel(ExperimentConfig()), "run_controls": RunControls(),
               "task_picker": TaskPicker(), "status_bar": RunStatusBar()}
    for widget in widgets.values():
        qtbot.addWidget(widget)
    return widgets


def test_every_control_has_an_object_and_accessible_name(qtbot):
    for key, widget in make_all(qtbot).items():
        controls = [w for w in widget.findChildren(QWidget) if isinstance(w, NAMED_CONTROLS)]
        if key != "status_bar":
            assert controls, key
        for control in controls:
            label = f"{key}: {type(control).__name__} {control.objectName()!r}"
            assert control.objectName(), label
            assert control.accessibleName(), label
            if not isinstance(control, QScrollBar):  # a scroll bar needs no tooltip
                assert control.toolTip(), label
        names = [c.objectName() for c in controls]
        assert len(names) == len(set(names)), f"{key}: duplicate object names"
        for label in widget.findChildren(QLabel):
            assert label.objectName(), f"{key}: unnamed label {label.text()!r}"


def test_widgets_render(qtbot, tmp_path):
    """Render each widget offscreen (set REPTILE_SCREENSHOTS=dir to keep the PNGs for a look)."""
    out = os.environ.get("REPTILE_SCREENSHOTS") or str(tmp_path)
    widgets = make_all(qtbot)
    panel = widgets["hyperparameters"]
    panel.set_editability(editable_in("running"))
    panel.show_applied(ConfigChanged(iteration=1200, changes={"inner.lr": (0.02, 0.01)},
                                     config=panel.config.with_updates({"inner.lr": 0.01})))
    panel.show_error("meta.meta_batch", "must be an integer in [1, 4096]")
    widgets["run_controls"].set_state("running", ACTIONS["running"])
    widgets["status_bar"].update_from(filled_store(), "running", "cpu")
    widgets["status_bar"].show_change(ConfigChanged(iteration=1200, changes={"inner.lr": (0.02, 0.01)},
                                                    config=panel.config))
    sizes = {"hyperparameters": (400, 980), "status_bar": (1100, 28)}
    for key, widget in widgets.items():
        if key in sizes:
            widget.resize(*sizes[key])
        widget.show()
        qtbot.waitExposed(widget)
        if key == "hyperparameters":  # the scroll area settles its scroll bar in a later layout pass
            scroll = widget.findChild(QScrollArea)
            qtbot.waitUntil(lambda s=scroll: s.widget().width() == s.viewport().width(), timeout=2000)
        image = widget.grab()
        assert not image.isNull() and image.width() >= widget.minimumSizeHint().width()
        assert image.save(os.path.join(out, f"widget_{key}.png"))
