"""The landscape view draws a slice where it belongs, reads it out under the mouse and exports it."""

from __future__ import annotations

import csv
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from gui_testlib import store_with_landscape, synthetic_landscape
from PySide6.QtCore import QPoint, QPointF
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QWidget

from reptile_gui.plots import LandscapePlot
from reptile_gui.plots.landscape_data import log_values
from reptile_gui.store import RunStore
from reptile_gui.toolkit import NAMED_CONTROLS

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def bowl():
    return synthetic_landscape(41, 1.0, kind="task")


def xy(item):
    x, y = getattr(item, "getOriginalDataset", item.getData)()
    return (np.empty(0), np.empty(0)) if x is None else (np.asarray(x), np.asarray(y))


# -- the picture -----------------------------------------------------------------------------------

def test_empty_store_shows_the_placeholder(qtbot, make):
    plot = make(LandscapePlot, RunStore())
    assert plot.refresh() is False
    assert plot.placeholder.isVisible() and "Recompute now" in plot.placeholder.toPlainText()
    assert not plot.image_item.isVisible() and not plot.color_bar.isVisible()
    assert not plot.paths.theta_marker.isVisible() and not any(a.isVisible() for a in plot.paths.path_arrows)
    header, columns = plot.csv_table()
    assert header[:3] == ["alpha", "beta", "loss"] and all(len(c) == 0 for c in columns)
    assert plot.hover_at(0.0, 0.0) is None


def test_image_holds_log_values_where_the_grid_points_are(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    assert not plot.placeholder.isVisible()
    image = plot.image_item.image
    assert image.shape == bowl.values.shape
    i, j = 7, 31  # off-centre, and i != j: a transposed image would fail
    assert bowl.values[i, j] == pytest.approx(1 + bowl.alphas[j] ** 2 + 3 * bowl.betas[i] ** 2)
    assert image[i, j] == pytest.approx(math.log10(bowl.values[i, j]), rel=1e-12)
    np.testing.assert_allclose(image, np.log10(bowl.values), rtol=1e-12)
    centre = plot.image_item.mapToView(QPointF(j + 0.5, i + 0.5))  # the pixel's centre, in (α, β)
    assert (centre.x(), centre.y()) == pytest.approx((bowl.alphas[j], bowl.betas[i]), abs=1e-9)

    def same_scene_point():  # the view box applies its new range lazily, before the next paint
        scene = plot.image_item.mapToScene(QPointF(j + 0.5, i + 0.5))
        via_view = plot.view_box.mapViewToScene(QPointF(bowl.alphas[j], bowl.betas[i]))
        return (scene.x(), scene.y()) == pytest.approx((via_view.x(), via_view.y()), abs=1e-6)

    qtbot.waitUntil(same_scene_point)
    corner = plot.image_item.mapToView(QPointF(0, 0))
    da = bowl.alphas[1] - bowl.alphas[0]
    assert (corner.x(), corner.y()) == pytest.approx((-1 - da / 2, -1 - da / 2), abs=1e-9)
    levels = (math.log10(bowl.values.min()), math.log10(bowl.values.max()))
    assert tuple(plot.image_item.getLevels()) == pytest.approx(levels)
    assert plot.color_bar.levels() == pytest.approx(levels)
    assert plot.color_bar.getAxis("left").labelText == "log10 loss (MSE)"
    # β grows upwards on screen: the row of the largest β is drawn above the row of the smallest
    top, bottom = (plot.image_item.mapToScene(QPointF(j + 0.5, r + 0.5)).y() for r in (len(bowl.betas) - 1, 0))
    assert top < bottom


def test_linear_scale_shows_raw_values_and_relabels_the_bar(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    plot.log_check.setChecked(False)
    np.testing.assert_array_equal(plot.image_item.image, bowl.values)
    assert plot.color_bar.getAxis("left").labelText == "loss (MSE)"
    assert plot.color_bar.levels() == pytest.approx((bowl.values.min(), bowl.values.max()))
    plot.log_check.setChecked(True)
    assert plot.color_bar.getAxis("left").labelText == "log10 loss (MSE)"
    assert plot.image_item.image[0, 0] == pytest.approx(math.log10(bowl.values[0, 0]))


def test_non_finite_and_zero_losses_are_drawable(qtbot, make):
    values = np.array(synthetic_landscape(11).values)
    values[0, 0], values[1, 1], values[2, 2] = 0.0, np.inf, np.nan
    landscape = synthetic_landscape(11)
    landscape = type(landscape)(**{**landscape.__dict__, "values": values})
    plot = make(LandscapePlot, store_with_landscape(landscape))
    image = plot.image_item.image
    finite = values[np.isfinite(values) & (values > 0)]
    assert image[0, 0] == pytest.approx(np.log10(finite.min()))  # a zero: the smallest loss's colour
    assert image[1, 1] == pytest.approx(np.log10(finite.max()))  # diverged: the largest
    assert np.isnan(image[2, 2])  # transparent
    assert all(math.isfinite(v) for v in plot.color_bar.levels())
    assert plot.hover_at(landscape.alphas[2], landscape.betas[2])[2] != plot.hover_at(0, 0)[2]
    np.testing.assert_array_equal(np.isnan(log_values(values)), np.isnan(values))


def test_contours_are_reused_and_lie_within_the_data(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    contours = list(plot.contours)
    assert len(contours) == plot.CONTOUR_LEVELS >= 3
    logs = np.log10(bowl.values)
    levels = plot.contour_levels()
    assert len(levels) == len(contours)
    assert np.all((levels > logs.min()) & (levels < logs.max()))
    np.testing.assert_allclose(np.diff(levels), np.diff(levels)[0])  # evenly spaced in log10
    assert all(c.parentItem() is plot.image_item for c in contours)  # share the image's transform
    assert not contours[0].boundingRect().isEmpty()
    plot.log_check.setChecked(False)  # the same curves: levels become losses
    np.testing.assert_allclose(plot.contour_levels(), 10 ** levels)
    plot.store.set_landscape(synthetic_landscape(21, 2.0))
    plot.refresh()
    assert plot.contours == contours


def test_trajectory_and_inner_paths_hold_the_slice_coordinates(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    paths = plot.paths
    np.testing.assert_array_equal(paths.trajectory_scatter.getData()[0], bowl.trajectory[:, 0])
    np.testing.assert_array_equal(paths.trajectory_scatter.getData()[1], bowl.trajectory[:, 1])
    parts = [np.column_stack(xy(s)) for s in paths.trajectory_segments if len(xy(s)[0])]
    assert len(parts) == paths.TRAJECTORY_SEGMENTS
    joined = np.concatenate([parts[0]] + [p[1:] for p in parts[1:]])  # consecutive parts share an end
    np.testing.assert_array_equal(joined, bowl.trajectory)
    assert tuple(joined[-1]) == pytest.approx((0.0, 0.0))
    alphas = [s.opts["pen"].color().alphaF() for s in paths.trajectory_segments]
    assert alphas == sorted(alphas) and alphas[0] < 0.3 and alphas[-1] == 1.0  # older: fainter
    brushes = [p.brush().color().alphaF() for p in paths.trajectory_scatter.points()]
    assert brushes[0] < brushes[-1]
    assert paths.theta_marker.isVisible() and paths.theta_label.isVisible()
    assert paths.theta_label.textItem.toPlainText() == "θ"
    assert tuple(paths.theta_marker.getData()[0]) == (0.0,) and tuple(paths.theta_marker.getData()[1]) == (0.0,)

    for k, path in enumerate(bowl.inner_paths):
        x, y = xy(paths.path_curves[k])
        np.testing.assert_array_equal(np.column_stack([x, y]), path)
        arrow = paths.path_arrows[k]
        assert arrow.isVisible()
        assert (arrow.pos().x(), arrow.pos().y()) == pytest.approx(tuple(path[-1]))
        # the head points along the last step, on screen (y down): (-cos, -sin) of the angle
        direction = path[-1] - path[-2]
        angle = math.radians(arrow.opts["angle"])
        on_screen = np.array([direction[0], -direction[1]]) / np.hypot(*direction)
        np.testing.assert_allclose([-math.cos(angle), -math.sin(angle)], on_screen, atol=1e-9)
    np.testing.assert_array_equal(np.column_stack(paths.task_scatter.getData()), bowl.task_points)
    assert [label.isVisible() for label in paths.task_labels] == [True, True]
    assert [label.textItem.toPlainText() for label in paths.task_labels] == ["φa", "φb"]
    assert (paths.task_labels[1].pos().x(), paths.task_labels[1].pos().y()) == pytest.approx(tuple(bowl.task_points[1]))

    curves, arrows = list(paths.path_curves), list(paths.path_arrows)
    one_path = synthetic_landscape(41, kind="random")
    one_path = type(one_path)(**{**one_path.__dict__, "inner_paths": one_path.inner_paths[:1]})
    plot.store.set_landscape(one_path)
    plot.refresh()
    assert paths.path_curves == curves and paths.path_arrows == arrows  # reused
    assert [a.isVisible() for a in arrows] == [True, False]
    assert [label.isVisible() for label in paths.task_labels] == [False, False]
    assert len(paths.task_scatter.getData()[0]) == 0

    tiny = type(one_path)(**{**one_path.__dict__, "inner_paths": one_path.inner_paths * 1e-3})
    plot.store.set_landscape(tiny)  # a path far shorter than the grid (a random plane's usual view)
    plot.refresh()
    assert paths.path_curves[0].isVisible() and not arrows[0].isVisible()


def test_titles_name_the_plane_loss_and_iteration(qtbot, make):
    plot = make(LandscapePlot, store_with_landscape(synthetic_landscape(kind="pca", iteration=1234)))
    title = plot.plot_item.titleLabel.text
    assert "PCA plane" in title and "82.0%" in title and "11.0%" in title and "iteration 1234" in title
    assert "mean held-out query loss" in title
    plot.store.set_landscape(synthetic_landscape(kind="random", loss="adapted"))
    plot.refresh()
    assert "random plane (filter-normalized)" in plot.plot_item.titleLabel.text
    assert "after 5 inner steps" in plot.plot_item.titleLabel.text
    assert plot.plot_item.getAxis("bottom").labelText == "α (direction 1)"
    assert plot.plot_item.getAxis("left").labelText == "β (direction 2)"


def test_refresh_only_when_the_landscape_changes(qtbot, make, bowl):
    store = store_with_landscape(bowl)
    plot = make(LandscapePlot, store)
    assert plot.refresh() is False
    store.metrics_version += 1
    store.task_version += 1
    assert plot.refresh() is False
    store.set_landscape(synthetic_landscape(21))
    assert plot.refresh() is True
    assert plot.image_item.image.shape == (21, 21)
    store.clear()
    assert plot.refresh() is True and plot.placeholder.isVisible()


# -- hover -----------------------------------------------------------------------------------------

def test_hover_reads_the_nearest_cell(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    da = bowl.alphas[1] - bowl.alphas[0]
    i, j = 9, 28
    point = plot.view_box.mapViewToScene(QPointF(bowl.alphas[j] + 0.3 * da, bowl.betas[i] - 0.4 * da))
    plot.plot_widget.scene().sigMouseMoved.emit(point)
    assert plot.hovered == pytest.approx((bowl.alphas[j], bowl.betas[i], bowl.values[i, j]))
    text = plot.readout_label.text()
    assert f"{bowl.alphas[j]:.4g}" in text and f"{bowl.values[i, j]:.4g}" in text and "MSE" in text
    assert plot.plot_widget.toolTip() == text
    outside = plot.view_box.mapViewToScene(QPointF(1.0 + da, 0.0))  # beyond the last column's edge
    plot.plot_widget.scene().sigMouseMoved.emit(outside)
    assert plot.hovered is None and "hover" in plot.readout_label.text() and plot.plot_widget.toolTip() == ""


def test_real_mouse_moves_update_the_readout(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    viewport = plot.plot_widget.viewport()
    jitter = iter(range(10**6))

    def move_to(a, b):
        """Move the mouse over (a, b) (recomputed each try: the view settles its range lazily)."""
        pos = plot.plot_widget.mapFromScene(plot.view_box.mapViewToScene(QPointF(a, b)))
        QTest.mouseMove(viewport, pos + QPoint(0, next(jitter) % 2))  # Qt drops a move to the same pixel
        return plot.hovered

    for a, b in ((0.5, -0.25), (-0.75, 0.5)):
        qtbot.waitUntil(lambda a=a, b=b: (move_to(a, b) or (np.inf,))[:2] == pytest.approx((a, b), abs=0.03))
    (x0, x1), _ = plot.view_box.viewRange()
    assert x1 > 1.1  # the locked aspect ratio leaves room beside the square grid
    qtbot.waitUntil(lambda: move_to(min(1.1 + 0.5 * (x1 - 1.1), 1.3), 0.0) is None)  # beside the grid: cleared
    plot.hover_at(0.0, 0.0)
    assert plot.hovered is not None

    def off_the_map():  # the top left corner: the title row, off the view box
        QTest.mouseMove(viewport, QPoint(3, 3 + next(jitter) % 2))
        return plot.hovered is None

    qtbot.waitUntil(off_the_map)


# -- waiting for a slice --------------------------------------------------------------------------

def test_waiting_shows_until_a_newer_slice_is_drawn(qtbot, make, bowl):
    plot = make(LandscapePlot, RunStore())
    plot.show_waiting(True)
    assert plot.waiting and plot.placeholder.toPlainText() == plot.WAITING_TEXT
    with qtbot.assertNotEmitted(plot.sliceArrived):
        plot.refresh()
    assert plot.waiting, "a redraw with no new slice keeps the cue"
    plot.store.set_landscape(bowl)
    with qtbot.waitSignal(plot.sliceArrived):
        plot.refresh()  # what the window's redraw timer does
    assert not plot.waiting
    plot.show_waiting(True)
    plot.show_waiting(False)  # the window's way to end it when no slice is coming
    assert not plot.waiting and "Recompute now" in plot.placeholder.toPlainText()


def test_every_control_is_named(qtbot, make, bowl):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    controls = [w for w in plot.findChildren(QWidget) if isinstance(w, NAMED_CONTROLS)]
    assert plot.log_check in controls and plot.log_check.toolTip()
    for widget in [plot, plot.plot_widget, *controls]:
        assert widget.objectName(), f"{type(widget).__name__} has no objectName"
        assert widget.accessibleName(), f"{widget.objectName()} has no accessibleName"
    names = [w.objectName() for w in controls]
    assert len(names) == len(set(names))


# -- exports ---------------------------------------------------------------------------------------

def test_png_and_svg_exports(qtbot, make, bowl, tmp_path):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    image = QImage(str(plot.export_png(tmp_path / "landscape.png", width=700)))
    assert not image.isNull() and image.width() == 700
    aspect = plot.plot_item.sceneBoundingRect().height() / plot.plot_item.sceneBoundingRect().width()
    assert image.height() == pytest.approx(700 * aspect, abs=2)
    root = ET.parse(plot.export_svg(tmp_path / "landscape.svg")).getroot()
    assert root.tag == f"{SVG}svg"
    assert any(el.tag == f"{SVG}image" for el in root.iter())  # the heat map
    hidden = make(LandscapePlot, store_with_landscape(bowl), show=False)
    image = QImage(str(hidden.export_png(tmp_path / "hidden.png")))
    assert (image.width(), image.height()) == hidden.EXPORT_SIZE


def test_csv_holds_the_grid_and_the_paths(qtbot, make, bowl, tmp_path):
    plot = make(LandscapePlot, store_with_landscape(bowl))
    plot.log_check.setChecked(False)
    with open(plot.export_csv(tmp_path / "landscape.csv"), newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert header == ["alpha", "beta", "loss", "traj_alpha", "traj_beta", "path0_alpha", "path0_beta",
                      "path1_alpha", "path1_beta", "task_alpha", "task_beta"]
    r = len(bowl.alphas)
    assert len(body) == r * r

    def column(name):
        k = header.index(name)
        return np.array([float(row[k]) for row in body if row[k] != ""])

    grid = column("loss").reshape(r, r)
    np.testing.assert_array_equal(grid, bowl.values)  # round-trips exactly: rows follow β
    np.testing.assert_array_equal(column("alpha").reshape(r, r)[0], bowl.alphas)
    np.testing.assert_array_equal(column("beta").reshape(r, r)[:, 0], bowl.betas)
    np.testing.assert_array_equal(np.column_stack([column("traj_alpha"), column("traj_beta")]), bowl.trajectory)
    np.testing.assert_array_equal(np.column_stack([column("path1_alpha"), column("path1_beta")]),
                                  bowl.inner_paths[1])
    np.testing.assert_array_equal(np.column_stack([column("task_alpha"), column("task_beta")]), bowl.task_points)
    assert body[len(bowl.trajectory)][header.index("traj_alpha")] == ""  # shorter columns end early


# -- framing and legend ----------------------------------------------------------------------------

def test_the_view_takes_in_a_trajectory_and_task_points_off_the_grid(qtbot, make):
    from dataclasses import replace

    landscape = synthetic_landscape(kind="task")
    wide = replace(landscape, trajectory=np.vstack([[[3.0, -2.5]], landscape.trajectory]),
                   task_points=np.array([[1.8, 0.2], [-0.3, 2.2]]))
    plot = make(LandscapePlot, store_with_landscape(wide), size=(640, 520))
    points = np.vstack([wide.trajectory, wide.task_points])

    def framed() -> bool:
        view = plot.view_box.viewRect()
        return all(view.contains(QPointF(float(x), float(y))) for x, y in points)

    qtbot.waitUntil(framed)


def test_the_legend_sits_under_the_map_and_the_colour_bar_stays_in_a_narrow_plot(qtbot, make):
    plot = make(LandscapePlot, store_with_landscape(synthetic_landscape(kind="pca")), size=(396, 330))
    qtbot.waitUntil(lambda: plot.legend.isVisible() and plot.plot_item.width() <= plot.plot_widget.width())
    assert not plot.legend.sceneBoundingRect().intersects(plot.view_box.sceneBoundingRect())
    view = plot.plot_widget.sceneRect()
    for item in (plot.legend, plot.color_bar, plot.view_box):
        assert view.contains(item.sceneBoundingRect()), f"{type(item).__name__} is cut off"
