"""The assembled window: wiring from sliders, clicks and menus to the trainer and back."""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from gui_testlib import TINY_RL_CHANGES, opened_window
from PySide6.QtWidgets import QAbstractButton, QAbstractSlider, QAbstractSpinBox, QComboBox, QLineEdit

from reptile_engine.presets import preset
from reptile_gui.main_window import KIND_PLOTS
from reptile_gui.store import RL_METRIC_COLUMNS

TIMEOUT = 60_000


@pytest.fixture
def window(qtbot):
    config = preset("quick").with_updates({"model.hidden": 16, "meta.iterations": 1_000_000, "evaluation.tasks": 8,
                                           "evaluation.steps": 5, "evaluation.every": 20})
    with opened_window(qtbot, config) as win:
        yield win


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
    assert window.exports.export_all(tmp_path / "all")
    names = {p.name for p in (tmp_path / "all").iterdir()}
    assert set(window.active_plots()) == {"adaptation_curve", "task_view", "training_curve", "landscape"}
    for plot in window.active_plots():
        assert {f"{plot}.png", f"{plot}.svg", f"{plot}.csv"} <= names
    assert not {"rollouts.png", "returns.png", "rl_losses.png"} & names, "only the plots of the run's kind"
    assert {"config.toml", "metrics.csv"} <= names
    lines = (tmp_path / "all" / "metrics.csv").read_text().splitlines()
    assert len(lines) == len(window.store) + 1

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert not window.exports.export_plot(window.plots["training_curve"], blocker / "curve.png")
    assert window.banner.isVisible() and "curve.png" in window.banner.text.text()
    assert not window.exports.export_all(blocker / "all")
    assert window.controller.state == "paused", "a failed export leaves the run alone"


def test_landscape_recompute_arrives_while_training(qtbot, window):
    window.controller.start()
    qtbot.waitUntil(lambda: len(window.store) > 5, timeout=TIMEOUT)
    landscape = window.landscape_controls
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

    def main():
        # Imported here, not at the top: the spawned trainer process re-imports this script and needs none of it.
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from reptile_engine.presets import preset
        from reptile_gui.main_window import MainWindow

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


@pytest.mark.timeout(600)
def test_closing_mid_training_exits_cleanly_ten_times(tmp_path):
    script = tmp_path / "close_mid_training.py"
    script.write_text(CLOSE_SCRIPT)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    codes = []
    for run in range(10):
        result = subprocess.run([sys.executable, str(script), str(1 + 10 * (run % 3))], env=env, capture_output=True,
                                text=True, timeout=180, cwd=Path(__file__).parent)
        codes.append(result.returncode)
        assert result.returncode == 0, f"run {run}: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert codes == [0] * 10


def catches_sigterm_with_a_trainer_up(pid: int) -> bool:
    """Whether process ``pid`` has installed its SIGTERM handler and started its trainer process (Linux's /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    spawned = []
    for task in Path(f"/proc/{pid}/task").iterdir():  # a child belongs to the thread that started it
        with contextlib.suppress(OSError):  # a thread or child that ended meanwhile
            for child in (task / "children").read_text().split():
                spawned.append("spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"))
    return bool(caught >> (signal.SIGTERM - 1) & 1) and any(spawned)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process's state from /proc")
def test_sigterm_closes_the_app_like_its_close_button(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    app = subprocess.Popen([sys.executable, "-m", "reptile_gui", "--preset", "quick"], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT / 1000
        while not catches_sigterm_with_a_trainer_up(app.pid):
            assert app.poll() is None, f"the app exited with {app.returncode}: {app.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "the app never got ready for SIGTERM"
            time.sleep(0.05)
        app.send_signal(signal.SIGTERM)
        _, stderr = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
            app.communicate()
    assert app.returncode == 0, stderr[-2000:]
    assert "leaked" not in stderr, stderr[-2000:]


# -- meta-RL ---------------------------------------------------------------------------------------

def shown_plots(window) -> set[str]:
    return {name for name, plot in window.plots.items() if plot.isVisibleTo(window)}


def export_menu_titles(window) -> set[str]:
    return {action.text().rstrip("…") for action in window.export_actions.values() if action.isVisible()}


@pytest.fixture
def rl_window(qtbot):
    with opened_window(qtbot, preset("meta-rl").with_updates(TINY_RL_CHANGES)) as win:
        yield win


def test_picking_a_meta_rl_family_shows_the_rl_panels_and_back(qtbot, window):
    assert shown_plots(window) == set(KIND_PLOTS["supervised"])
    assert export_menu_titles(window) == {"Adaptation curve", "Task view", "Training curve", "Loss landscape"}
    assert not any(window.panel.row(p).isVisibleTo(window) for p in window.panel.paths() if p.startswith("rl."))
    combo = window.picker.task_combo
    combo.activated.emit(combo.findText("point-nav-2d"))
    config = window.controller.config
    assert config.kind == "rl" and config.task.name == "point-nav-2d"
    meta_rl = preset("meta-rl")
    assert (config.meta.meta_batch, config.landscape.loss) == (meta_rl.meta.meta_batch, "policy"), \
        "the meta-RL preset came with the family"
    assert window.picker.preset_combo.currentText() == "meta-rl"
    assert window.kind == "rl" and shown_plots(window) == set(KIND_PLOTS["rl"])
    assert export_menu_titles(window) == {"Adaptation curve", "Rollouts", "Returns", "RL losses", "Loss landscape"}
    assert window.panel.row("rl.updates").isVisibleTo(window) and not window.panel.row("inner.lr").isVisibleTo(window)
    landscape = window.landscape_controls
    assert [landscape.loss_combo.itemData(i) for i in range(landscape.loss_combo.count())] == ["policy", "critic"]
    qtbot.waitUntil(lambda: window.controller.state == "ready" and window.store.kind == "rl", timeout=TIMEOUT)

    combo.activated.emit(combo.findText("sine"))
    assert window.controller.config.kind == "supervised" and window.controller.config.landscape.loss == "mean"
    assert shown_plots(window) == set(KIND_PLOTS["supervised"])
    assert window.panel.row("inner.lr").isVisibleTo(window)
    qtbot.waitUntil(lambda: window.controller.state == "ready" and window.store.kind == "supervised", timeout=TIMEOUT)


def test_meta_rl_window_trains_and_draws(qtbot, rl_window):
    window = rl_window
    assert shown_plots(window) == set(KIND_PLOTS["rl"])
    window.controller.start()
    qtbot.waitUntil(lambda: len(window.store) >= 5 and window.store.rollouts is not None
                    and window.store.landscape is not None, timeout=TIMEOUT)
    window.controller.pause()
    qtbot.waitUntil(lambda: window.controller.state == "paused", timeout=TIMEOUT)
    for plot in window.active_plots().values():
        plot.refresh(force=True)
    returns = window.plots["returns"]
    np.testing.assert_array_equal(returns.curves["return_after"].getOriginalDataset()[0],
                                  window.store.column("iteration"))
    losses = window.plots["rl_losses"]
    assert len(losses.curves["critic_loss"].getOriginalDataset()[1]) == len(window.store)
    rollouts = window.plots["rollouts"]
    assert sum(curve.isVisible() for curve in rollouts.trace_curves) == sum(
        len(episodes) for episodes in window.store.rollouts.traces)
    landscape = window.plots["landscape"]
    assert "MSE" not in landscape.color_bar.getAxis("left").labelText
    assert window.landscape_controls.steps_spin.isHidden()
    status = window.status.text_of("env_rate")
    assert status.endswith("env steps/s") and not window.status.fields["env_rate"].isHidden()

    version = window.store.rollouts_version
    task = window.store.rollouts.task
    rollouts.new_task_button.click()
    qtbot.waitUntil(lambda: window.store.rollouts_version > version, timeout=TIMEOUT)
    assert window.store.rollouts.task != task


def test_meta_rl_export_all(qtbot, rl_window, tmp_path):
    window = rl_window
    window.controller.start()
    qtbot.waitUntil(lambda: len(window.store) >= 5 and window.store.rollouts is not None
                    and window.store.latest_curve is not None, timeout=TIMEOUT)
    window.controller.pause()
    qtbot.waitUntil(lambda: window.controller.state == "paused", timeout=TIMEOUT)
    assert window.exports.export_all(tmp_path / "rl")
    names = {p.name for p in (tmp_path / "rl").iterdir()}
    for plot in KIND_PLOTS["rl"]:
        for suffix in ("png", "svg", "csv"):
            assert f"{plot}.{suffix}" in names
            assert (tmp_path / "rl" / f"{plot}.{suffix}").stat().st_size > 0
        ET.parse(tmp_path / "rl" / f"{plot}.svg")
    assert not {"training_curve.png", "task_view.png"} & names
    with open(tmp_path / "rl" / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == RL_METRIC_COLUMNS
    assert len(rows) == len(window.store) + 1
    np.testing.assert_array_equal([float(r[rows[0].index("return_after")]) for r in rows[1:]],
                                  window.store.column("return_after"))
    with open(tmp_path / "rl" / "returns.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header[:4] == ["iteration", "elapsed", "return_before", "return_after"]
