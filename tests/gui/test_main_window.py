"""The assembled window: wiring from sliders, clicks and menus to the trainer and back."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import shiboken6
from PySide6.QtWidgets import QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit

from reptile_engine.presets import preset
from reptile_gui.main_window import MainWindow

TIMEOUT = 60_000


@pytest.fixture
def window(qtbot):
    config = preset("quick").with_updates({"model.hidden": 16, "meta.iterations": 1_000_000, "evaluation.tasks": 8,
                                           "evaluation.steps": 5, "evaluation.every": 20})
    win = MainWindow(config)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.controller.state == "ready", timeout=TIMEOUT)
        yield win
    finally:
        if shiboken6.isValid(win):
            with qtbot.waitSignal(win.destroyed, timeout=TIMEOUT):
                win.close()


def test_slider_change_reaches_the_engine_once_and_is_echoed(qtbot, window):
    window.controller.start()
    qtbot.waitUntil(lambda: len(window.store) > 3, timeout=TIMEOUT)
    requests = []
    window.panel.changesRequested.connect(requests.append)
    editor = window.panel.editor("inner.steps")
    slider = editor if isinstance(editor, QAbstractSlider) else editor.findChild(QAbstractSlider)
    with qtbot.waitSignal(window.controller.changeApplied, timeout=TIMEOUT) as applied:
        for value in (6, 7, 8):
            slider.setValue(value)
    assert requests == [{"inner.steps": 8}], "a drag becomes one debounced update"
    event = applied.args[0]
    assert event.changes == {"inner.steps": (5, 8)}
    assert window.controller.config.inner.steps == 8
    qtbot.waitUntil(lambda: window.store.latest("iteration") >= event.iteration, timeout=TIMEOUT)
    steps = window.store.column("inner_steps")[window.store.column("iteration") >= event.iteration]
    assert np.all(steps == 8), "the engine trained with the new value from the echoed iteration on"


def test_click_in_task_view_adds_a_point_and_refits(qtbot, window):
    qtbot.waitUntil(lambda: window.store.task_fit is not None, timeout=TIMEOUT)
    before = window.store.task_fit
    view = window.plots["task_view"]
    version = window.store.task_version
    view.pointAdded.emit(1.25, 3.0)
    qtbot.waitUntil(lambda: window.store.task_version > version, timeout=TIMEOUT)
    after = window.store.task_fit
    assert len(after.support_x) == len(before.support_x) + 1
    assert after.support_x[-1] == pytest.approx(1.25) and after.support_y[-1] == pytest.approx(3.0)
    assert not np.allclose(after.predictions[-1], before.predictions[-1]), "the fit re-adapted"
    version = window.store.task_version
    view.pointRemoved.emit(0)
    qtbot.waitUntil(lambda: window.store.task_version > version, timeout=TIMEOUT)
    assert len(window.store.task_fit.support_x) == len(before.support_x)


def test_export_all_and_unwritable_export(qtbot, window, tmp_path):
    window.controller.start()
    qtbot.waitUntil(lambda: len(window.store) > 20 and window.store.task_fit is not None, timeout=TIMEOUT)
    window.controller.pause()
    qtbot.waitUntil(lambda: window.controller.state == "paused", timeout=TIMEOUT)
    qtbot.wait(100)
    assert window.export_all(tmp_path / "all")
    names = {p.name for p in (tmp_path / "all").iterdir()}
    for plot in window.plots:
        assert {f"{plot}.png", f"{plot}.svg", f"{plot}.csv"} <= names
    assert {"config.toml", "metrics.csv"} <= names
    lines = (tmp_path / "all" / "metrics.csv").read_text().splitlines()
    assert len(lines) == len(window.store) + 1

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert not window.export_plot(window.plots["training_curve"], blocker / "curve.png")
    assert window.banner.isVisible() and "curve.png" in window.banner.text.text()
    assert not window.export_all(blocker / "all")
    assert window.controller.state == "paused", "a failed export leaves the run alone"


def test_landscape_recompute_arrives_while_training(qtbot, window):
    window.controller.start()
    qtbot.waitUntil(lambda: len(window.store) > 5, timeout=TIMEOUT)
    landscape = window.plots["landscape"]
    version = window.store.landscape_version
    landscape.recompute_button.click()
    qtbot.waitUntil(lambda: window.store.landscape_version > version, timeout=TIMEOUT)
    sliced_at = window.store.landscape.iteration
    assert window.store.landscape.values.shape == (window.controller.config.landscape.resolution,) * 2
    qtbot.waitUntil(lambda: window.store.latest("iteration") > sliced_at + 5, timeout=TIMEOUT)
    assert window.controller.state == "running", "training goes on around the slice"
    with qtbot.waitSignal(window.controller.changeApplied, timeout=TIMEOUT) as applied:
        landscape.plane_combo.setCurrentText("task")
    assert applied.args[0].changes == {"landscape.plane": ("random", "task")}


def test_every_control_has_names(window):
    kinds = (QAbstractButton, QAbstractSlider, QComboBox, QAbstractSpinBox, QLineEdit)
    unnamed = [f"{type(w).__name__} in {type(w.parent()).__name__}" for kind in kinds for w in window.findChildren(kind)
               if not w.objectName() or not w.accessibleName()]
    assert unnamed == []


CLOSE_SCRIPT = textwrap.dedent("""
    import sys, time
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from reptile_engine.presets import preset
    from reptile_gui.main_window import MainWindow

    def main():
        app = QApplication([])
        window = MainWindow(preset("default").with_updates({"meta.meta_batch": int(sys.argv[1])}))
        window.show()
        def poll():
            if window.controller.state == "ready":
                window.controller.start()
            if len(window.store) >= 20:
                window.close()
                app.quit()
        timer = QTimer()
        timer.timeout.connect(poll)
        timer.start(20)
        QTimer.singleShot(90_000, lambda: sys.exit(3))
        return app.exec()

    if __name__ == "__main__":
        sys.exit(main())
""")


def test_closing_mid_training_exits_cleanly_twenty_times(tmp_path):
    script = tmp_path / "close_mid_training.py"
    script.write_text(CLOSE_SCRIPT)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    codes = []
    for run in range(20):
        result = subprocess.run([sys.executable, str(script), str(1 + 10 * (run % 3))], env=env, capture_output=True,
                                text=True, timeout=180, cwd=Path(__file__).parent)
        codes.append(result.returncode)
        assert result.returncode == 0, f"run {run}: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert codes == [0] * 20
