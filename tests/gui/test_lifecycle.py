"""A run's life in the app: stop keeps it, finished runs save, unsaved work is asked about, the status tells."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gui_testlib import opened_controller, opened_window, synthetic_metrics
from PySide6.QtWidgets import QMessageBox

from reptile_engine.config import ExperimentConfig
from reptile_engine.events import CheckpointSaved, Finished, IterationProgress, StateChanged
from reptile_engine.presets import preset
from reptile_gui import session
from reptile_gui.store import RunStore
from reptile_gui.widgets.status_bar import RunStatusBar
from reptile_gui.worker import TrainingWorker

TIMEOUT = 60_000
Choice = QMessageBox.StandardButton


def small_config(**changes) -> ExperimentConfig:
    return preset("quick").with_updates({"model.hidden": 16, "meta.iterations": 1_000_000, "evaluation.tasks": 4,
                                         "evaluation.steps": 2, "evaluation.every": 25, "meta.meta_batch": 2,
                                         **changes})


def wait_state(qtbot, ctrl, state):
    qtbot.waitUntil(lambda: ctrl.state == state, timeout=TIMEOUT)


def wait_iterations(qtbot, ctrl, at_least):
    qtbot.waitUntil(lambda: len(ctrl.store) >= at_least, timeout=TIMEOUT)


def train_and_stop(qtbot, ctrl, iterations):
    ctrl.start()
    wait_iterations(qtbot, ctrl, iterations)
    ctrl.stop()
    wait_state(qtbot, ctrl, "stopped")


def answer(window, monkeypatch, choice):
    """Answer the unsaved-work question with ``choice``; returns the list of questions asked."""
    asked = []
    monkeypatch.setattr(window.session_files, "confirm_discard", lambda action: asked.append(action) or choice)
    return asked


# -- stop keeps the run ----------------------------------------------------------------------------

class ScriptedRemote:
    """Hands out one prepared batch per ``events()`` call, as a child whose last batch comes after ``Finished``."""

    def __init__(self, batches):
        self._batches = list(batches)
        self.finished = self.ended = False

    def start(self):
        pass

    def events(self, timeout):
        batch = self._batches.pop(0) if self._batches else []
        self.finished = self.finished or any(isinstance(event, Finished) for event in batch)
        self.ended = not self._batches
        return batch


def test_the_worker_relays_every_event_up_to_the_end_of_the_stream():
    late = CheckpointSaved(5, "run.safetensors")
    worker = TrainingWorker(ScriptedRemote([[StateChanged(0, "running")], [Finished(5, "stopped")], [], [late]]), 1)
    relayed = []
    worker.batchReady.connect(lambda batch: relayed.extend(batch.events))
    worker.run()
    assert relayed == [StateChanged(0, "running"), Finished(5, "stopped"), late]


def test_stop_then_start_continues_at_the_same_iteration_with_its_history(qtbot):
    with opened_controller(qtbot, small_config()) as ctrl:
        train_and_stop(qtbot, ctrl, 20)
        stopped_at = ctrl.iteration
        history = ctrl.store.column("loss_after").copy()
        assert len(history) == stopped_at
        ctrl.start()
        wait_state(qtbot, ctrl, "running")
        wait_iterations(qtbot, ctrl, stopped_at + 5)
        iterations = ctrl.store.column("iteration")
        np.testing.assert_array_equal(iterations, np.arange(1, len(iterations) + 1))
        np.testing.assert_array_equal(ctrl.store.column("loss_after")[:stopped_at], history)


def test_a_finished_run_can_be_saved_as_a_session(qtbot, tmp_path):
    with opened_controller(qtbot, small_config(**{"meta.iterations": 30})) as ctrl:
        ctrl.start()
        wait_state(qtbot, ctrl, "finished")
        path = tmp_path / "finished.reptile"
        with qtbot.waitSignal(ctrl.sessionSaved, timeout=TIMEOUT):
            ctrl.save_session(path)
        loaded = session.load(path, tmp_path / "checkpoint.safetensors")
        assert len(loaded.history["iteration"]) == 30 and not ctrl.unsaved


# -- unsaved work is asked about -------------------------------------------------------------------

@pytest.fixture
def window(qtbot):
    with opened_window(qtbot, small_config()) as win:
        yield win


@pytest.fixture
def other_session(qtbot, tmp_path):
    """A session of 7 iterations, saved by a second controller."""
    path = tmp_path / "other.reptile"
    with opened_controller(qtbot, small_config()) as ctrl:
        ctrl.step()
        for _ in range(6):
            wait_iterations(qtbot, ctrl, len(ctrl.store) + 1)
            ctrl.step()
        wait_iterations(qtbot, ctrl, 7)
        with qtbot.waitSignal(ctrl.sessionSaved, timeout=TIMEOUT):
            ctrl.save_session(path)
    return path


def test_opening_a_session_over_unsaved_work_asks_first(qtbot, window, other_session, monkeypatch, tmp_path):
    ctrl = window.controller
    ctrl.start()
    wait_iterations(qtbot, ctrl, 20)
    asked = answer(window, monkeypatch, Choice.Cancel)
    window.open_session(other_session)
    assert asked == ["opening another session"]
    assert ctrl.state == "running" and len(ctrl.store) >= 20, "cancel keeps the run"

    saved = tmp_path / "mine.reptile"
    answer(window, monkeypatch, Choice.Save)
    monkeypatch.setattr(window.session_files, "ask_session_path", lambda: str(saved))
    window.open_session(other_session)
    qtbot.waitUntil(lambda: ctrl.state == "paused" and len(ctrl.store) == 7, timeout=TIMEOUT)
    assert len(session.load(saved, tmp_path / "mine.safetensors").history["iteration"]) >= 20, "saved first"

    ctrl.step()
    wait_iterations(qtbot, ctrl, 8)
    asked = answer(window, monkeypatch, Choice.Discard)
    window.open_session(other_session)
    assert asked == ["opening another session"]
    qtbot.waitUntil(lambda: ctrl.state == "paused" and len(ctrl.store) == 7, timeout=TIMEOUT)
    assert not ctrl.unsaved
    monkeypatch.setattr(window.session_files, "confirm_discard",
                        lambda action: pytest.fail("nothing unsaved: no question"))
    window.open_session(other_session)


def test_reset_and_switching_task_over_unsaved_work_ask_first(qtbot, window, monkeypatch):
    ctrl = window.controller
    train_and_stop(qtbot, ctrl, 10)
    asked = answer(window, monkeypatch, Choice.Cancel)
    window.controls.action("reset").trigger()
    assert asked == ["resetting"] and len(ctrl.store) >= 10

    window.picker.presetChosen.emit("quick")  # its model is wider than this run's: the run cannot continue
    assert asked == ["resetting", "switching the task"]
    assert ctrl.config.model.hidden == 16 and ctrl.state == "stopped" and len(ctrl.store) >= 10, "cancel keeps it"

    combo = window.picker.task_combo
    combo.setCurrentIndex(combo.findText("point-nav-2d"))
    asked = answer(window, monkeypatch, Choice.Discard)
    combo.activated.emit(combo.findText("point-nav-2d"))
    assert asked == ["switching the task"] and ctrl.config.task.name == "point-nav-2d"
    assert len(ctrl.store) == 0 and ctrl.store.task_fit is None, "the old task's plots go at once"
    wait_state(qtbot, ctrl, "ready")
    qtbot.waitUntil(lambda: ctrl.store.rollouts is not None, timeout=TIMEOUT)
    assert ctrl.iteration == 0 and not ctrl.unsaved


# -- what the window tells ---------------------------------------------------------------------------

def test_divergence_banner_goes_when_training_resumes_and_the_log_says_what_was_rolled_back(qtbot):
    with opened_window(qtbot, small_config(**{"inner.lr": 10.0, "inner.steps": 100})) as win:
        with qtbot.waitSignal(win.controller.diverged, timeout=TIMEOUT) as diverged:
            win.controller.start()
        event = diverged.args[0]
        assert win.banner.isVisible()
        assert win.panel.change_log.item(0).text() == (
            f"diverged at iteration {event.iteration}: {event.reason}; rolled back to iteration {event.rolled_back_to}")
        wait_state(qtbot, win.controller, "paused")
        win.controller.update({"inner.lr": 0.01, "inner.steps": 5})
        wait_state(qtbot, win.controller, "running")
        assert not win.banner.isVisible()


def test_editing_the_task_view_while_stopped_says_why_nothing_changes(qtbot, window):
    train_and_stop(qtbot, window.controller, 3)
    window.plots["task_view"].pointAdded.emit(0.5, 1.0)
    assert "Start" in window.status.currentMessage()


def test_status_bar_shows_progress_and_no_stale_rate(qtbot):
    bar = RunStatusBar()
    store = RunStore()
    store.extend_metrics(synthetic_metrics(3))
    bar.update_from(store, "running", "cpu", IterationProgress(12, 3, 20, 2, 3, 4100.0))
    assert bar.text_of("progress") == "iteration 12: task 3/20, update 2/3, 4,100 env steps/s"
    assert not bar.fields["progress"].isHidden() and bar.text_of("rate") == "100 it/s"
    bar.update_from(store, "paused", "cpu")
    assert bar.text_of("rate") == "paused" and bar.fields["progress"].isHidden()
    slow = RunStore()
    slow.extend_metrics({**synthetic_metrics(1), "iterations_per_second": np.array([1 / 170])})
    bar.update_from(slow, "running", "cpu")
    assert bar.text_of("rate") == "170 s/it"
    bar.deleteLater()


# -- a bad session on the command line ----------------------------------------------------------------

def test_a_bad_session_on_the_command_line_exits_with_a_message(tmp_path):
    empty_manifest = tmp_path / "empty.reptile"
    with zipfile.ZipFile(empty_manifest, "w") as archive:
        archive.writestr("session.json", "[]")
    garbage = tmp_path / "garbage.reptile"
    garbage.write_bytes(b"not a zip")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    for path in (empty_manifest, garbage):
        result = subprocess.run([sys.executable, "-m", "reptile_gui", "--preset", "quick", "--session", str(path)],
                                env=env, capture_output=True, text=True, timeout=120, cwd=Path(__file__).parent)
        assert result.returncode == 2, result.stderr[-2000:]
        assert "reptile-gui: error:" in result.stderr and str(path) in result.stderr, result.stderr[-2000:]
        assert "QThread" not in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


# -- closing is quick --------------------------------------------------------------------------------

CLOSE_TIMING_SCRIPT = textwrap.dedent("""
    import sys, time

    def main():
        # Imported here, not at the top: the spawned trainer process re-imports this script and needs none of it.
        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from reptile_engine.presets import preset
        from reptile_gui.main_window import MainWindow

        app = QApplication([])
        window = MainWindow(preset("default"))
        window.show()
        training = sys.argv[1] == "training"
        def poll():
            state = window.controller.state
            if state == "failed":
                app.exit(3)
            if state == "ready" and training:
                window.controller.start()
            if (state == "ready" and not training) or len(window.store) >= 20:
                timer.stop()
                began = time.monotonic()
                window.close()
                print(f"closed in {time.monotonic() - began:.3f} s", flush=True)
                app.quit()
        timer = QTimer()
        timer.timeout.connect(poll)
        timer.start(20)
        QTimer.singleShot(90_000, lambda: app.exit(4))
        return app.exec()

    if __name__ == "__main__":
        sys.exit(main())
""")


@pytest.mark.parametrize(("moment", "limit_s"), [("idle", 1.0), ("training", 2.0)])
def test_closing_hides_the_window_and_ends_the_trainer_quickly(tmp_path, moment, limit_s):
    script = tmp_path / "close_timing.py"
    script.write_text(CLOSE_TIMING_SCRIPT)
    result = subprocess.run([sys.executable, str(script), moment], env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                            capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    seconds = float(result.stdout.split("closed in ")[1].split()[0])
    assert seconds < limit_s, f"closing {moment} took {seconds:.2f} s"
