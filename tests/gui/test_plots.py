"""The plots draw what the store holds, redraw only on change, and edit the task view by mouse."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from gui_testlib import reference_ema, synthetic_curve, synthetic_metrics, synthetic_task_fit
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractButton, QAbstractSlider, QComboBox, QWidget

from reptile_engine.events import AdaptationCurve
from reptile_gui.plots import PALETTE, AdaptationCurvePlot, TaskViewPlot, TrainingCurvePlot, debiased_ema
from reptile_gui.plots.smoothing import IncrementalEma
from reptile_gui.store import RunStore
from reptile_gui.toolkit import NAMED_CONTROLS

PLOT_CLASSES = (TrainingCurvePlot, AdaptationCurvePlot, TaskViewPlot)


def xy(item):
    """The data handed to the item (``getData()`` would be log-mapped and downsampled for display)."""
    x, y = getattr(item, "getOriginalDataset", item.getData)()
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


# -- debiased EMA ----------------------------------------------------------------------------------

def test_debiased_ema_by_hand():
    # w = 0.5: states 0.5, 1.25, 2.125 over debias 0.5, 0.75, 0.875
    np.testing.assert_allclose(debiased_ema(np.array([1.0, 2.0, 3.0]), 0.5), [1.0, 1.25 / 0.75, 2.125 / 0.875])
    np.testing.assert_array_equal(debiased_ema(np.array([4.0, 5.0]), 0.0), [4.0, 5.0])
    assert debiased_ema(np.empty(0), 0.9).shape == (0,)
    np.testing.assert_allclose(debiased_ema(np.full(10, 7.0), 0.99), 7.0)  # debiasing: no ramp from zero
    with pytest.raises(ValueError):
        debiased_ema(np.ones(3), 1.0)


@pytest.mark.parametrize("weight", [0.001, 0.3, 0.6, 0.9, 0.99, 0.999])
def test_debiased_ema_matches_loop(weight):
    values = np.random.default_rng(1).normal(1.0, 0.5, 20_000)
    values[[5, 700]] = np.nan  # passed through, skipped by the state
    np.testing.assert_allclose(debiased_ema(values, weight), reference_ema(values, weight),
                               rtol=1e-10, atol=1e-12, equal_nan=True)


def test_incremental_ema_equals_full_and_detects_refill():
    values = np.random.default_rng(2).normal(size=5000)
    cache = IncrementalEma()
    for n in (1, 10, 2000, 5000):
        np.testing.assert_allclose(cache.update(values[:n], 0.9), reference_ema(values[:n], 0.9), rtol=1e-10)
    other = values[::-1].copy()  # a cleared and refilled store of the same length
    np.testing.assert_allclose(cache.update(other, 0.9), reference_ema(other, 0.9), rtol=1e-10)
    np.testing.assert_allclose(cache.update(other, 0.5), reference_ema(other, 0.5), rtol=1e-10)


# -- refresh ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", PLOT_CLASSES)
def test_empty_store_draws_nothing(qtbot, make, cls):
    plot = make(cls, RunStore())
    assert plot.refresh() is False  # drawn in the constructor, nothing changed since
    for item in plot.plot_item.listDataItems():
        assert len(xy(item)[0]) == 0
    header, columns = plot.csv_table()
    assert header and all(len(c) == 0 for c in columns)
    assert plot.placeholder.isVisible() and plot.placeholder.toPlainText() == cls.empty_text


def test_refresh_only_when_a_version_changes(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store)
    assert not plot.placeholder.isVisible()
    assert plot.refresh() is False
    filled_store.add_curve(synthetic_curve(999, 0.1))  # not a version this plot reads
    filled_store.set_task_fit(synthetic_task_fit())
    assert plot.refresh() is False
    filled_store.extend_metrics(synthetic_metrics(5, start=301))
    assert plot.refresh() is True
    assert plot.refresh() is False
    filled_store.markers_version += 1
    assert plot.refresh() is True


def test_slow_redraws_of_long_histories_are_spaced_out(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store)
    plot.THROTTLE_MIN_POINTS, plot.SLOW_REDRAW_S, plot.MAX_DUTY = 0, 0.0, 1e-9  # every redraw "slow"
    filled_store.extend_metrics(synthetic_metrics(5, start=301))
    assert plot.refresh(force=True) is True
    filled_store.extend_metrics(synthetic_metrics(5, start=306))
    assert plot.refresh() is False  # paused: the timer's next calls catch up later
    assert len(xy(plot.curve_before)[0]) == 305
    plot.smoothing_slider.setValue(0.5)  # a setting change draws at once
    assert len(xy(plot.curve_before)[0]) == 310


# -- training curve --------------------------------------------------------------------------------

def test_training_curve_holds_store_data(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store, smoothing=0.0)
    x, before = xy(plot.curve_before)
    np.testing.assert_array_equal(x, filled_store.column("iteration"))
    np.testing.assert_array_equal(before, filled_store.column("loss_before"))
    np.testing.assert_array_equal(xy(plot.curve_after)[1], filled_store.column("loss_after"))
    assert not plot.raw_before.isVisible()
    filled_store.extend_metrics(synthetic_metrics(50, seed=3, start=301))
    plot.refresh()
    np.testing.assert_array_equal(xy(plot.curve_after)[1], filled_store.column("loss_after"))


def test_smoothing_plots_the_debiased_ema(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store, smoothing=0.0)
    plot.smoothing_slider.setValue(0.9)
    assert plot.smoothing == pytest.approx(0.9)
    for curve, raw, column in ((plot.curve_before, plot.raw_before, "loss_before"),
                               (plot.curve_after, plot.raw_after, "loss_after")):
        np.testing.assert_allclose(xy(curve)[1], reference_ema(filled_store.column(column), plot.smoothing))
        assert raw.isVisible()
        np.testing.assert_array_equal(xy(raw)[1], filled_store.column(column))
    filled_store.extend_metrics(synthetic_metrics(40, seed=4, start=301))  # the cache extends
    plot.refresh()
    np.testing.assert_allclose(xy(plot.curve_after)[1],
                               reference_ema(filled_store.column("loss_after"), plot.smoothing), rtol=1e-10)
    plot.smoothing_slider.setValue(0.0)
    np.testing.assert_array_equal(xy(plot.curve_after)[1], filled_store.column("loss_after"))


def test_log_y_toggles_the_axis(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store, log_y=False)
    assert not plot.plot_item.getAxis("left").logMode
    plot.log_y_check.setChecked(True)
    assert plot.plot_item.getAxis("left").logMode
    assert plot.curve_before.opts["logMode"][1]
    plot.plot_item.ctrl.logYCheck.setChecked(False)  # pyqtgraph's own menu stays in step
    assert not plot.log_y_check.isChecked()


def test_log_y_survives_non_positive_values(qtbot, make):
    store = RunStore()
    batch = synthetic_metrics(20)
    batch["loss_after"][[3, 7]] = [0.0, -1.0]
    store.extend_metrics(batch)
    plot = make(TrainingCurvePlot, store, log_y=True, smoothing=0.0)
    plot.view_box.autoRange()
    (x0, x1), (y0, y1) = plot.view_box.viewRange()
    assert all(math.isfinite(v) for v in (x0, x1, y0, y1))
    assert np.isnan(plot.curve_after.getData()[1][[3, 7]]).all()  # gaps, no -inf


def test_wall_time_axis(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store, smoothing=0.0)
    plot.x_axis_combo.setCurrentText("wall time (s)")
    np.testing.assert_array_equal(xy(plot.curve_before)[0], filled_store.column("elapsed"))
    assert "(s)" in plot.plot_item.getAxis("bottom").labelText
    assert [line.value() for line in plot.marker_lines] == [1.0, 2.2]


def test_markers_at_change_iterations_with_hover_text(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store)
    visible = [line for line in plot.marker_lines if line.isVisible()]
    assert [line.value() for line in visible] == [100, 220]
    assert "inner.lr: 0.02 → 0.01" in visible[0].text
    assert visible[0].toolTip() == visible[0].text
    assert not visible[0].label.isVisible()
    visible[0].hoverEvent(SimpleNamespace(isExit=lambda: False))
    assert visible[0].label.isVisible()
    assert "inner.lr" in visible[0].label.toPlainText()
    visible[0].hoverEvent(SimpleNamespace(isExit=lambda: True))
    assert not visible[0].label.isVisible()

    pool = list(plot.marker_lines)
    filled_store.markers.pop()
    filled_store.markers_version += 1
    plot.refresh()
    assert plot.marker_lines == pool  # reused, not recreated
    assert [line.isVisible() for line in pool] == [True, False]


def test_large_history_is_downsampled(qtbot, make):
    store = RunStore()
    store.extend_metrics(synthetic_metrics(1_000_000))
    plot = make(TrainingCurvePlot, store)
    # pyqtgraph auto-ranges lazily, then downsamples to the view's pixels: a few thousand vertices
    qtbot.waitUntil(lambda: len(plot.curve_after.curve.getData()[0]) < 20_000)
    np.testing.assert_array_equal(xy(plot.raw_after)[1], store.column("loss_after"))  # all kept


# -- adaptation curve ------------------------------------------------------------------------------

def test_adaptation_curve_newest_and_fading_history(qtbot, make, filled_store):
    plot = make(AdaptationCurvePlot, filled_store)
    newest = filled_store.curves[-1]
    np.testing.assert_array_equal(xy(plot.meta_curve)[0], newest.steps)
    np.testing.assert_array_equal(xy(plot.meta_curve)[1], newest.meta_init)
    np.testing.assert_array_equal(xy(plot.scratch_curve)[1], newest.scratch)
    assert plot.scratch_curve.opts["pen"].style() == Qt.PenStyle.DashLine
    assert plot.legend.getLabel(plot.meta_curve).text == f"meta-init (iteration {newest.iteration})"
    earlier = list(filled_store.curves)[:-1][::-1]
    shown = [item for item in plot.history_curves if item.isVisible()]
    assert len(shown) == len(earlier)
    for item, curve in zip(shown, earlier, strict=True):
        np.testing.assert_array_equal(xy(item)[1], curve.meta_init)
    alphas = [item.opts["pen"].color().alphaF() for item in shown]
    assert alphas == sorted(alphas, reverse=True) and alphas[0] > alphas[-1]

    pool = list(plot.history_curves)
    filled_store.add_curve(synthetic_curve(400, 0.05))
    plot.refresh()
    assert plot.history_curves == pool
    assert plot.legend.getLabel(plot.meta_curve).text == "meta-init (iteration 400)"


def test_adaptation_curve_log_y_by_default(qtbot, make, filled_store):
    plot = make(AdaptationCurvePlot, filled_store)
    assert plot.log_y_check.isChecked() and plot.plot_item.getAxis("left").logMode
    plot.log_y_check.setChecked(False)
    assert not plot.plot_item.getAxis("left").logMode


# -- task view -------------------------------------------------------------------------------------

def test_task_view_draws_the_fit(qtbot, make, filled_store):
    plot = make(TaskViewPlot, filled_store)
    fit = filled_store.task_fit
    np.testing.assert_array_equal(xy(plot.truth_curve)[1], fit.truth)
    assert plot.truth_curve.opts["pen"].color().name() == PALETTE.truth
    for i, k in enumerate(fit.steps):
        np.testing.assert_array_equal(xy(plot.prediction_curves[i])[1], fit.predictions[i])
        label = "after 1 step" if k == 1 else f"after {k} steps"
        assert plot.legend.getLabel(plot.prediction_curves[i]).text == label
    assert plot.prediction_curves[0].opts["pen"].color().name() == PALETTE.pre_adaptation
    assert plot.prediction_curves[-1].opts["pen"].color().name() == PALETTE.post_adaptation
    assert plot.support_points() == (tuple(fit.support_x.tolist()), tuple(fit.support_y.tolist()))

    filled_store.set_task_fit(synthetic_task_fit(steps=(0, 5), n_support=3))
    plot.refresh()
    assert [c.isVisible() for c in plot.prediction_curves] == [True, True, False]
    assert len(plot.support_points()[0]) == 3


def shown_task_view(qtbot, make, store) -> TaskViewPlot:
    """A shown task view whose (lazy) auto-range has taken in the task's whole grid."""
    plot = make(TaskViewPlot, store)
    low, high = float(store.task_fit.grid_x.min()), float(store.task_fit.grid_x.max())
    qtbot.waitUntil(lambda: plot.view_box.viewRange()[0][0] <= low and plot.view_box.viewRange()[0][1] >= high)
    return plot


def viewport_pos(plot, x, y, dx=0, dy=0) -> QPoint:
    scene = plot.view_box.mapViewToScene(QPointF(x, y))
    return plot.plot_widget.mapFromScene(scene) + QPoint(dx, dy)


def one_pixel(plot):
    (x0, x1), (y0, y1) = plot.view_box.viewRange()
    return abs(x1 - x0) / plot.view_box.width(), abs(y1 - y0) / plot.view_box.height()


def test_left_click_adds_a_point_at_view_coordinates(qtbot, make, filled_store):
    plot = shown_task_view(qtbot, make, filled_store)
    viewport = plot.plot_widget.viewport()
    px, py = one_pixel(plot)
    with qtbot.waitSignal(plot.pointAdded) as blocker:
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         viewport_pos(plot, -1.5, 0.75))
    x, y = blocker.args
    assert abs(x - -1.5) <= 2 * px and abs(y - 0.75) <= 2 * py

    with qtbot.assertNotEmitted(plot.pointAdded):  # on the tick labels, below the view box
        below = plot.view_box.sceneBoundingRect().center() + QPointF(0, plot.view_box.height() / 2 + 12)
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                         plot.plot_widget.mapFromScene(below))


def test_scene_click_signal_path(qtbot, make, filled_store):
    plot = shown_task_view(qtbot, make, filled_store)
    scene_pos = plot.view_box.mapViewToScene(QPointF(2.0, -1.0))
    event = SimpleNamespace(button=lambda: Qt.MouseButton.LeftButton, double=lambda: False,
                            isAccepted=lambda: False, scenePos=lambda: scene_pos)
    with qtbot.waitSignal(plot.pointAdded) as blocker:
        plot.plot_widget.scene().sigMouseClicked.emit(event)
    assert blocker.args == pytest.approx([2.0, -1.0], abs=1e-6)


def test_right_click_near_a_support_point_removes_it(qtbot, make, filled_store):
    plot = shown_task_view(qtbot, make, filled_store)
    viewport = plot.plot_widget.viewport()
    xs, ys = plot.support_points()
    with qtbot.waitSignal(plot.pointRemoved) as blocker:
        QTest.mouseClick(viewport, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                         viewport_pos(plot, xs[2], ys[2], dx=4, dy=-3))
    assert blocker.args == [2]
    assert not plot.view_box.menu.isVisible()

    with qtbot.assertNotEmitted(plot.pointRemoved):  # far from every point: the usual menu
        QTest.mouseClick(viewport, Qt.MouseButton.RightButton, Qt.KeyboardModifier.NoModifier,
                         viewport_pos(plot, 1.0, 1.9))
    assert plot.view_box.menu.isVisible()
    plot.view_box.menu.hide()


def test_set_support_points_shows_an_edit_until_the_next_fit(qtbot, make, filled_store):
    plot = make(TaskViewPlot, filled_store)
    plot.set_support_points([0.5, 1.5], [1.0, -1.0])
    assert plot.support_points() == ((0.5, 1.5), (1.0, -1.0))
    assert plot.legend.getLabel(plot.support_scatter).text == "support points (2)"
    filled_store.set_task_fit(synthetic_task_fit(n_support=4))
    plot.refresh()
    assert len(plot.support_points()[0]) == 4


def test_adding_and_removing_a_point_edits_the_support_on_show_and_asks_for_a_fit(qtbot, make, filled_store):
    plot = make(TaskViewPlot, filled_store)
    xs, ys = plot.support_points()
    with qtbot.waitSignal(plot.supportEdited) as edited:
        plot.pointAdded.emit(0.25, -0.5)
    assert edited.args == [xs + (0.25,), ys + (-0.5,)]
    assert plot.support_points() == (xs + (0.25,), ys + (-0.5,)), "shown before the new fit arrives"
    with qtbot.waitSignal(plot.supportEdited) as edited:
        plot.pointRemoved.emit(0)
    assert edited.args == [xs[1:] + (0.25,), ys[1:] + (-0.5,)]
    assert plot.support_points() == (xs[1:] + (0.25,), ys[1:] + (-0.5,))


def test_new_task_button(qtbot, make, filled_store):
    plot = make(TaskViewPlot, filled_store)
    with qtbot.waitSignal(plot.newTaskRequested):
        qtbot.mouseClick(plot.new_task_button, Qt.MouseButton.LeftButton)


# -- accessibility and looks -----------------------------------------------------------------------

@pytest.mark.parametrize("cls", PLOT_CLASSES)
def test_every_control_is_named(qtbot, make, filled_store, cls):
    plot = make(cls, filled_store)
    controls = [w for w in plot.findChildren(QWidget) if isinstance(w, NAMED_CONTROLS)]
    assert any(isinstance(w, QAbstractButton | QAbstractSlider | QComboBox) for w in controls)
    for widget in [plot, plot.plot_widget, *controls]:
        assert widget.objectName(), f"{type(widget).__name__} has no objectName"
        assert widget.accessibleName(), f"{widget.objectName()} has no accessibleName"
    names = [w.objectName() for w in controls]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("cls", PLOT_CLASSES)
def test_axes_carry_units_and_background_is_white(qtbot, make, filled_store, cls):
    plot = make(cls, filled_store)
    for side in ("left", "bottom"):
        label = plot.plot_item.getAxis(side).labelText
        assert label.endswith(")") and "(" in label, label
    assert plot.plot_widget.backgroundBrush().color().name() == "#ffffff"
    assert {a.text() for a in plot.export_actions.values()} == {"Export PNG…", "Export SVG…", "Export CSV…"}
    assert all(a in plot.view_box.menu.actions() for a in plot.export_actions.values())


def test_training_curve_x_range_follows_the_data_in_steps(make):
    store = RunStore()
    plot = make(TrainingCurvePlot, store)
    store.extend_metrics(synthetic_metrics(100))
    plot.refresh()
    low, high = plot.view_box.viewRange()[0]
    assert low <= 1 and high >= 100
    store.extend_metrics(synthetic_metrics(5, start=101))
    plot.refresh()
    assert plot.view_box.viewRange()[0] == [low, high], "no range change while the data fits"
    store.extend_metrics(synthetic_metrics(200, start=106))
    plot.refresh()
    assert plot.view_box.viewRange()[0][1] >= 305, "extended once the data reached the edge"
    plot.view_box.sigRangeChangedManually.emit([True, False])
    plot.view_box.setXRange(10, 20, padding=0)
    store.extend_metrics(synthetic_metrics(400, start=306))
    plot.refresh()
    assert plot.view_box.viewRange()[0] == pytest.approx([10, 20]), "a manual zoom stops the following"


# -- legends ---------------------------------------------------------------------------------------

def covered_points(plot) -> int:
    """How many points along the visible curves (every 2 px) lie under the legend."""
    legend = plot.legend.sceneBoundingRect()
    count = 0
    for item in plot.plot_item.listDataItems():
        x, y = item.getData()
        if not item.isVisible() or x is None or len(x) < 2:
            continue
        dense = np.linspace(0, len(x) - 1, 400 * len(x))
        xs, ys = np.interp(dense, np.arange(len(x)), x), np.interp(dense, np.arange(len(y)), y)
        count += sum(legend.contains(plot.view_box.mapViewToScene(QPointF(a, b))) for a, b in zip(xs, ys, strict=True))
    return count


def test_the_legend_moves_to_a_corner_free_of_data_and_stays_where_dragged(qtbot, make):
    store = RunStore()
    steps = np.arange(9)
    low_then_high = AdaptationCurve(100, steps, np.where(steps < 6, 0.1, 3.0), np.where(steps < 6, 0.12, 2.5))
    store.add_curve(low_then_high)  # along the bottom from the left: the bottom left corner is taken
    plot = make(AdaptationCurvePlot, store, size=(640, 420))
    assert plot.legend_corner == (10, -10), "bottom left is where a falling loss curve leaves room"
    qtbot.waitUntil(lambda: plot.legend.opts["offset"] != (10, -10))
    assert covered_points(plot) == 0
    plot.legend.moved_by_user = True  # what a drag of the legend does
    corner = plot.legend.opts["offset"]
    store.add_curve(AdaptationCurve(200, steps, 3.0 - 0.3 * steps, 3.0 - 0.2 * steps))
    plot.refresh()
    assert plot.legend.opts["offset"] == corner, "a legend the user placed stays put"


def test_a_long_title_shrinks_instead_of_widening_the_plot(qtbot, make, filled_store):
    plot = make(TrainingCurvePlot, filled_store, size=(360, 300))
    plot.set_title("a very long title " * 6)
    qtbot.waitUntil(lambda: plot.plot_item.width() <= plot.plot_widget.width())
    assert plot.plot_item.titleLabel.opts["size"] == f"{plot.TITLE_POINT_SIZES[-1]}pt"
    plot.resize(1400, 300)
    qtbot.waitUntil(lambda: plot.plot_item.titleLabel.opts["size"] == f"{plot.TITLE_POINT_SIZES[0]}pt")


def test_csv_export_holds_every_iteration_of_a_decimated_history(qtbot, make, tmp_path):
    store = RunStore(spill_dir=tmp_path, recent_rows=64, spill_rows=32, older_buckets=16, bucket_rows=4)
    for start in range(1, 2001, 100):
        store.extend_metrics(synthetic_metrics(100, start=start))
    plot = make(TrainingCurvePlot, store)
    assert len(store.column("iteration")) < 2000, "the drawn history is decimated"
    header, columns = plot.csv_table()
    table = dict(zip(header, columns, strict=True))
    np.testing.assert_array_equal(table["iteration"], np.arange(1, 2001))
    np.testing.assert_allclose(table["loss_after_smoothed"],
                               reference_ema(store.history("loss_after"), plot.smoothing), rtol=1e-10)
