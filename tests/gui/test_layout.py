"""The window's composition: it fits a 1280×720 screen with every control reachable, for either kind of
run, and the plots' cues follow the run."""

from __future__ import annotations

import contextlib

import pytest
import shiboken6
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QWidget

from reptile_engine.presets import preset
from reptile_gui.main_window import MainWindow

TIMEOUT = 60_000
SMALL_SCREEN = (1280, 720)


@contextlib.contextmanager
def shown_window(qtbot, config):
    win = MainWindow(config)
    win.show()
    try:
        yield win
    finally:
        if shiboken6.isValid(win):
            with qtbot.waitSignal(win.destroyed, timeout=TIMEOUT):
                win.close()


def rect_in_window(window: MainWindow, widget: QWidget) -> QRect:
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def scene_rect_in_window(window: MainWindow, plot, item) -> QRect:
    """Where a pyqtgraph item of ``plot`` is drawn, in the window's coordinates."""
    view = plot.plot_widget
    polygon = view.mapFromScene(item.sceneBoundingRect())
    return QRect(view.viewport().mapTo(window, polygon.boundingRect().topLeft()), polygon.boundingRect().size())


@pytest.mark.parametrize("preset_name", ["default", "meta-rl"])
def test_the_window_fits_a_1280_by_720_screen_with_everything_reachable(qtbot, preset_name):
    with shown_window(qtbot, preset(preset_name)) as window:
        assert window.kind == ("rl" if preset_name == "meta-rl" else "supervised")
        for size in (window.minimumSizeHint(), window.minimumSize()):
            assert size.width() <= SMALL_SCREEN[0] and size.height() <= SMALL_SCREEN[1], size
        window.resize(*SMALL_SCREEN)
        qtbot.waitUntil(lambda: window.size().toTuple() == SMALL_SCREEN)
        landscape = window.plots["landscape"]
        task_plot = window.plots["task_view" if window.kind == "supervised" else "rollouts"]
        reachable = {"New task": task_plot.new_task_button, "Recompute now": window.landscape_controls.recompute_button,
                     "Freeze plane": window.landscape_controls.freeze_check, "status bar": window.status,
                     **{f"{name} button": button for name, button in window.controls.buttons.items()}}

        def all_inside() -> bool:
            return all(widget.isVisible() and window.rect().contains(rect_in_window(window, widget))
                       for widget in reachable.values())

        qtbot.waitUntil(all_inside, timeout=5000)
        colour_bar = scene_rect_in_window(window, landscape, landscape.color_bar)
        graph = rect_in_window(window, landscape.plot_widget)
        assert graph.contains(colour_bar), f"the colour bar {colour_bar} is cut off the landscape {graph}"
        assert window.rect().contains(graph)


def test_switching_kind_keeps_the_window_small(qtbot):
    with shown_window(qtbot, preset("default")) as window:
        window.show_kind("rl")
        assert window.minimumSizeHint().width() <= SMALL_SCREEN[0]
        window.show_kind("supervised")
        assert window.minimumSizeHint().width() <= SMALL_SCREEN[0]


def test_a_recompute_the_run_cannot_answer_ends_the_busy_cue(qtbot):
    with shown_window(qtbot, preset("quick")) as window:
        landscape = window.landscape_controls
        window.controller.stateChanged.emit("stopped")  # as after Stop: no trainer to compute a slice
        landscape.set_busy(True)
        window.controller.stateChanged.emit("stopped")
        assert not landscape.busy, "a run that ended computes nothing more"
        landscape.set_busy(True)
        window.controller.message.emit("Start or step the run to compute a landscape slice")
        assert not landscape.busy and landscape.recompute_button.isEnabled()
        landscape.set_busy(True)
        window.controller.message.emit("Session saved to /tmp/x.reptile")
        assert landscape.busy, "other messages leave the cue alone"
