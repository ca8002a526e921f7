"""A meta-RL run's views: losses, returns, return curves, rollouts and the surrogate landscape draw what the
store holds, export it, and say what they show."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from gui_testlib import (
    reference_ema,
    store_with_landscape,
    synthetic_curve,
    synthetic_landscape,
    synthetic_rl_metrics,
    synthetic_rollouts,
)
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QAbstractButton, QWidget

from reptile_engine.events import IterationMetrics, RLIterationMetrics
from reptile_gui.plots import PALETTE, AdaptationCurvePlot, LandscapePlot, ReturnsPlot, RLLossPlot, RolloutPlot
from reptile_gui.store import RL_METRIC_COLUMNS, RunStore, metrics_to_columns
from reptile_gui.toolkit import NAMED_CONTROLS

RL_PLOTS = (RLLossPlot, ReturnsPlot, RolloutPlot, AdaptationCurvePlot)
SVG = "{http://www.w3.org/2000/svg}"


def xy(item):
    x, y = getattr(item, "getOriginalDataset", item.getData)()
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def column(rows, index):
    return np.array([float(r[index]) for r in rows if r[index] != ""])


def legend_texts(plot) -> list[str]:
    return [label.text for _, label in plot.legend.items]


# -- the store -------------------------------------------------------------------------------------

def test_store_holds_one_kind_of_run():
    store = RunStore("rl")
    assert store.metric_columns == RL_METRIC_COLUMNS
    events = [RLIterationMetrics(i, -0.1, 2.0, 0.9, 1.2, -30.0, -20.0, 0.1, 0.01, 20, 3, 5000.0, 2.0, i * 0.5)
              for i in range(1, 4)]
    store.extend_metrics(metrics_to_columns(events))
    np.testing.assert_array_equal(store.column("return_after"), [-20.0] * 3)
    assert len(store) == 3 and store.latest("env_steps_per_second") == 5000.0
    assert len(store.column("loss_before")) == 0, "a supervised column of a meta-RL run reads as empty"
    with pytest.raises(KeyError):
        store.column("no_such_column")
    supervised = metrics_to_columns([IterationMetrics(1, 1.0, 0.5, 0.1, 0.02, 5, 5, 10.0, 0.1)])
    with pytest.raises(ValueError, match="rl run"):
        store.extend_metrics(supervised)
    assert metrics_to_columns([]) == {}
    store.extend_metrics({})
    store.set_rollouts(synthetic_rollouts())
    version = store.rollouts_version
    store.set_kind("rl")
    assert len(store) == 3, "the same kind keeps the history"
    store.set_kind("supervised")
    assert len(store) == 0 and store.rollouts is None and store.rollouts_version > version
    store.extend_metrics(supervised)
    assert store.latest("loss_after") == 0.5
    with pytest.raises(ValueError):
        RunStore("bandit")


# -- losses and returns ----------------------------------------------------------------------------

def test_rl_losses_draw_the_three_losses_smoothed(qtbot, make, filled_rl_store):
    plot = make(RLLossPlot, filled_rl_store)
    assert not plot.log_y and not plot.plot_item.getAxis("left").logMode, "signed losses: linear by default"
    assert plot.smoothing == pytest.approx(0.9)
    iterations = filled_rl_store.column("iteration")
    for name, color in (("policy_loss", "policy_loss"), ("critic_loss", "critic_loss"), ("agent_loss", "agent_loss")):
        x, y = xy(plot.curves[name])
        np.testing.assert_array_equal(x, iterations)
        np.testing.assert_allclose(y, reference_ema(filled_rl_store.column(name), plot.smoothing))
        np.testing.assert_array_equal(xy(plot.raw_curves[name])[1], filled_rl_store.column(name))
        assert plot.curves[name].opts["pen"].color().name() == getattr(PALETTE, color)
    latest = [reference_ema(filled_rl_store.column(name), plot.smoothing)[-1]
              for name in ("policy_loss", "critic_loss", "agent_loss")]
    assert legend_texts(plot)[:3] == [f"policy loss: {latest[0]:.3g}", f"critic loss: {latest[1]:.3g}",
                                      f"agent loss: {latest[2]:.3g}"], "the latest value, readable at any scale"
    assert legend_texts(make(RLLossPlot, RunStore("rl")))[:3] == ["policy loss", "critic loss", "agent loss"]
    assert [line.value() for line in plot.marker_lines if line.isVisible()] == [60]
    plot.smoothing_slider.setValue(0.0)
    np.testing.assert_array_equal(xy(plot.curves["policy_loss"])[1], filled_rl_store.column("policy_loss"))
    plot.x_axis_combo.setCurrentText("wall time (s)")
    np.testing.assert_array_equal(xy(plot.curves["critic_loss"])[0], filled_rl_store.column("elapsed"))


def test_rl_losses_on_a_log_axis_say_that_signed_values_leave_gaps(qtbot, make, filled_rl_store):
    plot = make(RLLossPlot, filled_rl_store)
    assert plot.log_note.isHidden()
    plot.log_y_check.setChecked(True)
    assert plot.plot_item.getAxis("left").logMode
    assert not plot.log_note.isHidden(), "the policy loss is negative here: the user is told it leaves gaps"
    assert "≤ 0" in plot.log_y_check.toolTip()
    only_positive = RunStore("rl")
    batch = synthetic_rl_metrics(20)
    for name in ("policy_loss", "agent_loss"):
        batch[name] = np.abs(batch[name]) + 0.1
    only_positive.extend_metrics(batch)
    plot.set_store(only_positive)
    assert plot.log_note.isHidden()


def test_hiding_a_loss_hides_its_raw_values_and_rescales(qtbot, make, filled_rl_store):
    plot = make(RLLossPlot, filled_rl_store)
    for name in ("critic_loss", "agent_loss"):
        plot.curves[name].setVisible(False)  # what a click on its legend sample does
        assert not plot.raw_curves[name].isVisible()
    assert plot.raw_curves["policy_loss"].isVisible()
    policy = filled_rl_store.column("policy_loss")
    plot.view_box.autoRange()
    low, high = plot.view_box.viewRange()[1]
    assert high < filled_rl_store.column("critic_loss").min(), "the y range follows the policy loss alone"
    assert low <= policy.min() and high >= policy.max()
    plot.curves["critic_loss"].setVisible(True)
    assert plot.raw_curves["critic_loss"].isVisible()


def test_returns_before_and_after_adaptation(qtbot, make, filled_rl_store):
    plot = make(ReturnsPlot, filled_rl_store, smoothing=0.0)
    np.testing.assert_array_equal(xy(plot.curves["return_before"])[1], filled_rl_store.column("return_before"))
    np.testing.assert_array_equal(xy(plot.curves["return_after"])[1], filled_rl_store.column("return_after"))
    assert plot.curves["return_before"].opts["pen"].color().name() == PALETTE.pre_adaptation
    assert plot.curves["return_after"].opts["pen"].color().name() == PALETTE.post_adaptation
    assert plot.log_y_check is None and not plot.plot_item.ctrl.logYCheck.isEnabled(), "returns are negative"
    assert "return" in plot.plot_item.getAxis("left").labelText
    assert [line.value() for line in plot.marker_lines if line.isVisible()] == [60]
    plot.smoothing_slider.setValue(0.5)
    np.testing.assert_allclose(xy(plot.curves["return_after"])[1],
                               reference_ema(filled_rl_store.column("return_after"), 0.5))


def test_rl_plots_of_a_supervised_store_stay_empty(qtbot, make, filled_store):
    for cls in (RLLossPlot, ReturnsPlot, RolloutPlot):
        plot = make(cls, filled_store)
        assert plot.placeholder.isVisible()
        assert all(len(xy(item)[0]) == 0 for item in plot.plot_item.listDataItems())


# -- adaptation curve in returns -------------------------------------------------------------------

def test_adaptation_curve_of_returns(qtbot, make, filled_rl_store):
    plot = make(AdaptationCurvePlot, filled_rl_store)
    newest = filled_rl_store.curves[-1]
    np.testing.assert_array_equal(xy(plot.meta_curve)[1], newest.meta_init)
    np.testing.assert_array_equal(xy(plot.scratch_curve)[1], newest.scratch)
    assert plot.plot_item.getAxis("left").labelText.startswith("held-out mean return")
    assert plot.plot_item.getAxis("bottom").labelText.startswith("inner updates")
    assert not plot.log_y_check.isChecked() and not plot.log_y_check.isEnabled()
    assert not plot.plot_item.getAxis("left").logMode
    assert plot.summary_label.text() == (f"Iteration {newest.iteration}, after 3 updates: meta-init return "
                                         f"{newest.meta_init[-1]:.3g}, scratch return {newest.scratch[-1]:.3g}")
    assert "MSE" not in plot.summary_label.text()
    header, _ = plot.csv_table()
    assert header[:3] == ["inner_update", "meta_init_return", "scratch_return"]

    supervised = RunStore()
    supervised.add_curve(synthetic_curve(10, 0.5))
    plot.set_store(supervised)
    assert plot.log_y_check.isEnabled() and plot.log_y_check.isChecked(), "losses get their log axis back"
    assert plot.plot_item.getAxis("left").labelText == "held-out query loss (MSE)"


# -- rollouts --------------------------------------------------------------------------------------

def test_rollouts_draw_paths_to_the_goal(qtbot, make, filled_rl_store):
    plot = make(RolloutPlot, filled_rl_store)
    rollouts = filled_rl_store.rollouts
    assert not plot.placeholder.isVisible()
    shown = [curve for curve in plot.trace_curves if curve.isVisible()]
    assert len(shown) == len(rollouts.updates) * len(rollouts.traces[0])
    for index, curve in enumerate(shown):
        i, e = divmod(index, len(rollouts.traces[0]))
        x, y = xy(curve)
        np.testing.assert_array_equal(x, rollouts.traces[i][e][:, 0])
        np.testing.assert_array_equal(y, rollouts.traces[i][e][:, 1])
    colors = [shown[i * 3].opts["pen"].color().name() for i in range(3)]
    assert colors == [PALETTE.pre_adaptation, PALETTE.intermediate, PALETTE.post_adaptation]
    assert tuple(plot.goal_marker.data["x"]) + tuple(plot.goal_marker.data["y"]) == rollouts.target[1]
    assert len(plot.start_scatter.data) == 1 and not plot.level_line.isVisible()
    assert plot.view_box.state["aspectLocked"], "a path in the plane keeps x and y in the same units"
    bold = [curve for curve in plot.mean_curves if curve.isVisible()]
    assert len(bold) == len(rollouts.updates)
    for curve, trace in zip(bold, rollouts.mean_traces, strict=True):
        np.testing.assert_array_equal(np.column_stack(xy(curve)), trace)
        assert curve.opts["pen"].widthF() > shown[0].opts["pen"].widthF()
    texts = legend_texts(plot)
    means = rollouts.returns.mean(axis=1)
    assert texts[0].endswith(f"mean action {rollouts.mean_returns[0]:.3g}")
    assert texts[0].startswith(f"0 updates (θ): return {means[0]:.3g}")
    assert texts[1].startswith(f"1 update: return {means[1]:.3g}")
    assert texts[2].startswith(f"3 updates: return {means[2]:.3g}")
    assert "start" in texts and any(t.startswith("goal (0.30, -0.20)") for t in texts)
    assert plot.plot_item.getAxis("bottom").labelText == "x"
    assert "goal = (0.30, -0.20)" in plot.plot_item.titleLabel.text

    header, columns = plot.csv_table()
    assert header == ["updates", "episode", "step", "x", "y"]
    assert len(columns[0]) == sum(len(t) for episodes in rollouts.traces for t in episodes) + sum(
        len(t) for t in rollouts.mean_traces)


def test_rollouts_with_a_target_level_and_fewer_episodes(qtbot, make):
    store = RunStore("rl")
    store.set_rollouts(synthetic_rollouts(updates=(0, 5), episodes=2, target="level"))
    plot = make(RolloutPlot, store)
    assert plot.level_line.isVisible() and plot.level_line.value() == pytest.approx(0.45)
    assert len(plot.goal_marker.data) == 0 and len(plot.start_scatter.data) == 0
    assert not plot.view_box.state["aspectLocked"]
    assert "target position = 0.45" in legend_texts(plot)
    assert [c.isVisible() for c in plot.trace_curves] == [True] * 4
    assert plot.trace_curves[-1].opts["pen"].color().name() == PALETTE.post_adaptation
    store.set_rollouts(synthetic_rollouts())
    plot.refresh()
    assert not plot.level_line.isVisible() and len(plot.goal_marker.data) == 1
    assert sum(c.isVisible() for c in plot.trace_curves) == 9


def test_a_trace_over_time_keeps_its_target_in_view(qtbot, make):
    store = RunStore("rl")
    store.set_rollouts(synthetic_rollouts(target="level"))
    plot = make(RolloutPlot, store)
    (x0, x1), (y0, y1) = plot.view_box.viewRange()
    points = np.concatenate([t for episodes in store.rollouts.traces for t in episodes])
    low, high = min(points[:, 1].min(), 0.45), max(points[:, 1].max(), 0.45)
    assert x0 <= points[:, 0].min() and x1 >= points[:, 0].max()
    assert y0 <= low and y1 >= high


@pytest.mark.parametrize("target", ["point", "level"])
def test_the_rollout_legend_covers_no_episode_nor_the_goal(qtbot, make, target):
    store = RunStore("rl")
    store.set_rollouts(synthetic_rollouts(target=target))
    plot = make(RolloutPlot, store, size=(460, 330))
    qtbot.waitUntil(lambda: plot.legend.isVisible() and bool(plot.legend.items))
    legend = plot.legend.sceneBoundingRect()
    assert not legend.intersects(plot.view_box.sceneBoundingRect()), "the legend sits under the graph"
    assert plot.plot_widget.sceneRect().contains(legend), "and inside the plot, not cut off"
    if target == "point":
        def goal_in_view() -> bool:  # the view re-fits its range on the next paint after a resize
            goal = plot.view_box.mapViewToScene(QPointF(*store.rollouts.target[1]))
            return plot.view_box.sceneBoundingRect().contains(goal)

        qtbot.waitUntil(goal_in_view)


def test_angle_traces_are_cut_where_they_wrap_around(qtbot, make):
    angle = np.array([2.8, 3.0, 3.1, -3.1, -3.0, -2.9])
    trace = np.column_stack([np.arange(6.0), angle])
    rollouts = synthetic_rollouts(updates=(0,), episodes=1, target="level")
    store = RunStore("rl")
    store.set_rollouts(type(rollouts)(**{**rollouts.__dict__, "traces": ((trace,),), "returns": np.array([[-9.0]]),
                                         "labels": ("step", "angle (rad, 0 is upright)"), "target": ("level", (0.0,)),
                                         "mean_traces": (trace,), "mean_returns": np.array([-8.0])}))
    plot = make(RolloutPlot, store)
    for curve in (plot.trace_curves[0], plot.mean_curves[0]):
        x, y = xy(curve)
        assert len(y) == 7 and np.isnan(y[3]) and np.isnan(x[3]), "a gap where +π becomes -π"
        np.testing.assert_array_equal(y[~np.isnan(y)], angle)
    np.testing.assert_array_equal(plot.csv_table()[1][4], np.concatenate([angle, angle]),
                                  err_msg="the table keeps the traces as they came")
    assert "target angle = 0" in legend_texts(plot)


def test_rollout_new_task_button(qtbot, make, filled_rl_store):
    plot = make(RolloutPlot, filled_rl_store)
    with qtbot.waitSignal(plot.newTaskRequested, timeout=1000):
        qtbot.mouseClick(plot.new_task_button, Qt.MouseButton.LeftButton)


def test_rollouts_redraw_only_when_they_change(qtbot, make, filled_rl_store):
    plot = make(RolloutPlot, filled_rl_store)
    assert plot.refresh() is False
    filled_rl_store.extend_metrics(synthetic_rl_metrics(3, start=121))
    assert plot.refresh() is False
    filled_rl_store.set_rollouts(synthetic_rollouts(updates=(0, 1)))
    assert plot.refresh() is True


# -- exports ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", RL_PLOTS)
def test_rl_plots_export_png_svg_and_csv(qtbot, make, filled_rl_store, tmp_path, cls):
    plot = make(cls, filled_rl_store)
    png = plot.export_png(tmp_path / "plot.png")
    assert png.stat().st_size > 0 and not QImage(str(png)).isNull()
    root = ET.parse(plot.export_svg(tmp_path / "plot.svg")).getroot()
    assert root.tag == f"{SVG}svg"
    strokes = [el for el in root.iter() if el.tag in (f"{SVG}path", f"{SVG}polyline")]
    assert max(len(el.get("d", "") or el.get("points", "")) for el in strokes) > 100
    header, rows = read_csv(plot.export_csv(tmp_path / "plot.csv"))
    expected_header, expected = plot.csv_table()
    assert header == expected_header
    for i, values in enumerate(expected):
        np.testing.assert_allclose(column(rows, i), np.asarray(values, dtype=np.float64), rtol=1e-15)


def test_loss_and_return_csv_equal_the_store(qtbot, make, filled_rl_store, tmp_path):
    losses = make(RLLossPlot, filled_rl_store, smoothing=0.0)
    header, rows = read_csv(losses.export_csv(tmp_path / "losses.csv"))
    assert header == ["iteration", "elapsed", "policy_loss", "critic_loss", "agent_loss"]
    for i, name in enumerate(header):
        np.testing.assert_array_equal(column(rows, i), filled_rl_store.column(name))
    returns = make(ReturnsPlot, filled_rl_store)
    header, rows = read_csv(returns.export_csv(tmp_path / "returns.csv"))
    assert header == ["iteration", "elapsed", "return_before", "return_after", "return_before_smoothed",
                      "return_after_smoothed"]
    np.testing.assert_array_equal(column(rows, 3), filled_rl_store.column("return_after"))
    np.testing.assert_allclose(column(rows, 5), reference_ema(filled_rl_store.column("return_after"), 0.9))


def test_rollout_csv_equals_the_store(qtbot, make, filled_rl_store, tmp_path):
    plot = make(RolloutPlot, filled_rl_store)
    rollouts = filled_rl_store.rollouts
    _, rows = read_csv(plot.export_csv(tmp_path / "rollouts.csv"))
    offset = 0
    for i, k in enumerate(rollouts.updates):
        for e, trace in enumerate(rollouts.traces[i]):
            block = rows[offset:offset + len(trace)]
            assert {(int(r[0]), int(r[1])) for r in block} == {(k, e)}
            np.testing.assert_array_equal([int(r[2]) for r in block], np.arange(len(trace)))
            np.testing.assert_array_equal([[float(r[3]), float(r[4])] for r in block], trace)
            offset += len(trace)
    for k, trace in zip(rollouts.updates, rollouts.mean_traces, strict=True):
        block = rows[offset:offset + len(trace)]
        assert {(int(r[0]), int(r[1])) for r in block} == {(k, -1)}
        np.testing.assert_array_equal([[float(r[3]), float(r[4])] for r in block], trace)
        offset += len(trace)
    assert offset == len(rows)


# -- the surrogate landscape -----------------------------------------------------------------------

@pytest.fixture
def surrogate():
    return synthetic_landscape(21, 1.0, loss="policy", surface="signed")


def test_signed_surrogate_is_drawn_linearly_and_labelled(qtbot, make, surrogate):
    assert surrogate.values.min() < 0 < surrogate.values.max()
    plot = make(LandscapePlot, store_with_landscape(surrogate))
    np.testing.assert_array_equal(plot.image_item.image, surrogate.values)
    assert not plot.log_scale and not plot.log_check.isEnabled(), "no log scale for negative values"
    assert "negative" in plot.log_check.toolTip()
    assert plot.color_bar.levels() == pytest.approx((surrogate.values.min(), surrogate.values.max()))
    bar_label = plot.color_bar.getAxis("left").labelText
    assert bar_label == "policy loss (surrogate, fixed batch)" and "MSE" not in bar_label
    levels = plot.contour_levels()
    assert len(levels) == plot.CONTOUR_LEVELS
    np.testing.assert_allclose(np.diff(levels), np.diff(levels)[0], err_msg="evenly spaced in the values")
    assert surrogate.values.min() < levels.min() < levels.max() < surrogate.values.max()
    assert "policy loss (surrogate" in plot.plot_item.titleLabel.text
    assert "MSE" not in plot.readout_label.text() and "policy loss" in plot.readout_label.text()
    a, b, value = plot.hover_at(surrogate.alphas[3], surrogate.betas[5])
    assert value == pytest.approx(surrogate.values[5, 3]) and "MSE" not in plot.readout_label.text()


def test_log_scale_returns_with_a_positive_slice(qtbot, make, surrogate):
    store = store_with_landscape(surrogate)
    plot = make(LandscapePlot, store)
    assert not plot.log_check.isEnabled()
    critic = synthetic_landscape(21, 1.0, loss="critic")
    store.set_landscape(critic)
    plot.refresh()
    assert plot.log_check.isEnabled() and plot.log_scale, "the choice of a log scale was kept"
    np.testing.assert_allclose(plot.image_item.image, np.log10(critic.values))
    assert plot.color_bar.getAxis("left").labelText == "log10 critic TD loss (fixed batch)"


# -- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", (RLLossPlot, ReturnsPlot, RolloutPlot))
def test_every_control_is_named(qtbot, make, filled_rl_store, cls):
    plot = make(cls, filled_rl_store)
    controls = [w for w in plot.findChildren(QWidget) if isinstance(w, NAMED_CONTROLS)]
    assert any(isinstance(w, QAbstractButton) for w in controls) or cls is not RolloutPlot
    names = [w.objectName() for w in controls]
    assert all(names) and all(w.accessibleName() for w in controls)
    assert len(names) == len(set(names))
