"""The controller drives a real child-process trainer: state machine, live updates, sessions."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from gui_testlib import SPAWN_TIMEOUT, TINY_RL_CHANGES, opened_controller

from reptile_engine.config import ConfigError
from reptile_engine.presets import preset
from reptile_gui import session
from reptile_gui.controller import ACTIONS, TrainingController


@pytest.fixture
def small_config():
    return preset("quick").with_updates({
        "model.hidden": 16, "meta.iterations": 1_000_000, "evaluation.tasks": 8, "evaluation.steps": 3,
        "evaluation.every": 25, "meta.meta_batch": 2})


@pytest.fixture
def controller(qtbot, small_config):
    with opened_controller(qtbot, small_config) as ctrl:
        yield ctrl


def paused_with_session(qtbot, ctrl, path, iterations):
    """Train ``iterations``, pause, and save a session to ``path``."""
    ctrl.start()
    wait_iterations(qtbot, ctrl, iterations)
    ctrl.pause()
    wait_state(qtbot, ctrl, "paused")
    with qtbot.waitSignal(ctrl.message, timeout=SPAWN_TIMEOUT):
        ctrl.save_session(path)


def wait_state(qtbot, ctrl, state):
    qtbot.waitUntil(lambda: ctrl.state == state, timeout=SPAWN_TIMEOUT)


def wait_iterations(qtbot, ctrl, at_least):
    qtbot.waitUntil(lambda: len(ctrl.store) >= at_least, timeout=SPAWN_TIMEOUT)


def round_trip(qtbot, ctrl):
    """Wait until the trainer has answered a task fit: it has been through its loop since every earlier command."""
    version = ctrl.store.task_version
    ctrl.fit_task(seed=version + 1)
    qtbot.waitUntil(lambda: ctrl.store.task_version > version, timeout=SPAWN_TIMEOUT)


def test_state_machine(qtbot, controller):
    assert controller.allowed("start") and not controller.allowed("pause")
    controller.start()
    wait_state(qtbot, controller, "running")
    wait_iterations(qtbot, controller, 5)
    assert ACTIONS["running"] == {"pause", "stop", "reset"}
    controller.pause()
    wait_state(qtbot, controller, "paused")
    before = len(controller.store)
    round_trip(qtbot, controller)
    assert len(controller.store) == before, "a paused run must not train"
    controller.step()
    wait_iterations(qtbot, controller, before + 1)
    round_trip(qtbot, controller)
    assert len(controller.store) == before + 1, "step runs exactly one iteration"
    controller.resume()
    wait_state(qtbot, controller, "running")
    controller.stop()
    wait_state(qtbot, controller, "stopped")
    stopped_at = len(controller.store)
    controller.start()
    wait_state(qtbot, controller, "running")
    wait_iterations(qtbot, controller, stopped_at + 3)
    iterations = controller.store.column("iteration")
    assert np.array_equal(iterations, np.arange(1, len(iterations) + 1)), "a restart continues the history"
    controller.reset()
    wait_state(qtbot, controller, "ready")
    assert len(controller.store) == 0


def test_live_update_is_echoed_and_applied(qtbot, controller):
    controller.start()
    wait_iterations(qtbot, controller, 3)
    with qtbot.waitSignal(controller.changeApplied, timeout=SPAWN_TIMEOUT) as blocker:
        controller.update({"inner.lr": 0.0123})
    event = blocker.args[0]
    assert event.changes == {"inner.lr": (0.02, 0.0123)}
    assert controller.config.inner.lr == 0.0123
    qtbot.waitUntil(lambda: controller.store.latest("iteration") >= event.iteration, timeout=SPAWN_TIMEOUT)
    iterations = controller.store.column("iteration")
    inner_lr = controller.store.column("inner_lr")
    assert np.all(inner_lr[iterations >= event.iteration] == pytest.approx(0.0123))
    assert np.all(inner_lr[iterations < event.iteration] == pytest.approx(0.02))
    assert [m.iteration for m in controller.store.markers] == [event.iteration]


def test_non_live_change_refused_while_running(qtbot, controller):
    controller.start()
    wait_state(qtbot, controller, "running")
    with pytest.raises(ConfigError) as info:
        controller.update({"model.hidden": 32})
    assert info.value.field == "model.hidden"
    with pytest.raises(ConfigError):
        controller.update({"inner.lr": float("nan")})


def test_session_round_trip_resumes_exactly(qtbot, controller, small_config, tmp_path):
    path = tmp_path / "run.reptile"
    paused_with_session(qtbot, controller, path, 30)
    history = {name: controller.store.column(name).copy() for name in ("iteration", "loss_after")}
    controller.step()
    wait_iterations(qtbot, controller, len(history["iteration"]) + 1)
    next_loss = controller.store.latest("loss_after")

    other = TrainingController(small_config)
    try:
        with qtbot.waitSignal(other.stateChanged, timeout=SPAWN_TIMEOUT, check_params_cb=lambda s: s == "paused"):
            other.load_session(path)
        assert np.array_equal(other.store.column("iteration"), history["iteration"])
        assert np.array_equal(other.store.column("loss_after"), history["loss_after"])
        assert other.config == controller.config
        other.step()
        wait_iterations(qtbot, other, len(history["iteration"]) + 1)
        assert other.store.latest("loss_after") == next_loss
    finally:
        other.shutdown()


def test_corrupt_session_is_refused_and_nothing_is_lost(qtbot, controller, tmp_path):
    good = tmp_path / "good.reptile"
    paused_with_session(qtbot, controller, good, 5)
    truncated = tmp_path / "truncated.reptile"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    history = controller.store.column("iteration").copy()
    with qtbot.waitSignal(controller.failed, timeout=5_000) as blocker:
        controller.load_session(truncated)
    assert "Cannot open session" in blocker.args[0]
    assert controller.state == "paused"
    assert np.array_equal(controller.store.column("iteration"), history)

    future = tmp_path / "future.reptile"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(future, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "session.json":
                data = data.replace(f'"version": {session.VERSION}'.encode(), b'"version": 99')
            dst.writestr(item, data)
    with qtbot.waitSignal(controller.failed, timeout=5_000) as blocker:
        controller.load_session(future)
    assert "version 99" in blocker.args[0]

    with qtbot.waitSignal(controller.failed, timeout=SPAWN_TIMEOUT) as blocker:
        controller.save_session(tmp_path / "missing-dir" / "x.reptile")
    assert "Cannot write session" in blocker.args[0]
    assert controller.state == "paused"


def test_task_fit_arrives_and_follows_edits(qtbot, controller):
    qtbot.waitUntil(lambda: controller.store.task_fit is not None, timeout=SPAWN_TIMEOUT)
    fit = controller.store.task_fit
    assert fit.predictions.shape == (3, len(fit.grid_x))
    xs = tuple(fit.support_x.tolist()) + (0.5,)
    ys = tuple(fit.support_y.tolist()) + (2.0,)
    version = controller.store.task_version
    controller.fit_task(support=(xs, ys))
    qtbot.waitUntil(lambda: controller.store.task_version > version, timeout=SPAWN_TIMEOUT)
    assert controller.store.task_fit.support_x[-1] == pytest.approx(0.5)
    assert not np.allclose(controller.store.task_fit.predictions[2], fit.predictions[2])


def test_divergence_pauses_and_the_next_change_resumes(qtbot, small_config):
    with opened_controller(qtbot, small_config.with_updates({"inner.lr": 10.0, "inner.steps": 100})) as ctrl:
        with qtbot.waitSignal(ctrl.diverged, timeout=SPAWN_TIMEOUT) as diverged:
            ctrl.start()
        event = diverged.args[0]
        assert event.hyperparameters["inner.lr"] == 10.0 and event.rolled_back_to == event.iteration - 1
        wait_state(qtbot, ctrl, "paused")
        trained = len(ctrl.store)
        ctrl.update({"inner.lr": 0.01, "inner.steps": 5})
        wait_state(qtbot, ctrl, "running")
        wait_iterations(qtbot, ctrl, trained + 10)
        assert np.all(np.isfinite(ctrl.store.column("loss_after")))


def test_engine_error_is_reported_with_traceback_and_reset_recovers(qtbot, small_config, monkeypatch):
    monkeypatch.setenv("REPTILE_LAB_PLUGINS", "broken_tasks:FailingSineTasks")  # the trainer process inherits it
    with opened_controller(qtbot, small_config.with_updates({"task.name": "broken_tasks:FailingSineTasks"})) as ctrl:
        with qtbot.waitSignal(ctrl.failed, timeout=SPAWN_TIMEOUT) as failed:
            ctrl.start()
        message, details = failed.args
        assert "the task source went away" in message and "Traceback" in details
        wait_state(qtbot, ctrl, "failed")
        iterations = ctrl.store.column("iteration")
        assert len(iterations) >= 10, "the history up to the failure is kept"
        assert np.array_equal(iterations, np.arange(1, len(iterations) + 1))
        ctrl.update({"task.name": "sine"})
        ctrl.reset()
        wait_state(qtbot, ctrl, "ready")
        ctrl.start()
        wait_iterations(qtbot, ctrl, 5)


# -- meta-RL ---------------------------------------------------------------------------------------

@pytest.fixture
def rl_controller(qtbot):
    with opened_controller(qtbot, preset("meta-rl").with_updates(TINY_RL_CHANGES)) as ctrl:
        yield ctrl


def test_meta_rl_run_reports_metrics_and_rollouts_and_stops(qtbot, rl_controller):
    ctrl = rl_controller
    assert ctrl.store.kind == "rl"
    qtbot.waitUntil(lambda: ctrl.store.rollouts is not None, timeout=SPAWN_TIMEOUT)
    first = ctrl.store.rollouts
    assert first.updates == (0, 1) and first.family == "point-nav-2d" and first.target[0] == "point"
    assert first.returns.shape[0] == 2 and all(trace.shape[1] == 2 for trace in first.traces[0])
    ctrl.start()
    wait_iterations(qtbot, ctrl, 4)
    iterations = ctrl.store.column("iteration")
    np.testing.assert_array_equal(iterations, np.arange(1, len(iterations) + 1))
    for name in ("policy_loss", "critic_loss", "agent_loss", "return_before", "return_after"):
        assert np.all(np.isfinite(ctrl.store.column(name))), name
    assert np.all(ctrl.store.column("inner_updates") == 1)
    assert len(ctrl.store.column("loss_after")) == 0
    qtbot.waitUntil(lambda: ctrl.store.latest_curve is not None, timeout=SPAWN_TIMEOUT)
    assert ctrl.store.latest_curve.quantity == "return"

    version = ctrl.store.rollouts_version
    ctrl.fit_task(seed=7)
    qtbot.waitUntil(lambda: ctrl.store.rollouts_version > version
                    and ctrl.store.rollouts.task != first.task, timeout=SPAWN_TIMEOUT)
    ctrl.stop()
    wait_state(qtbot, ctrl, "stopped")


def test_meta_rl_session_round_trip(qtbot, rl_controller, tmp_path):
    path = tmp_path / "rl.reptile"
    qtbot.waitUntil(lambda: rl_controller.store.rollouts is not None, timeout=SPAWN_TIMEOUT)
    paused_with_session(qtbot, rl_controller, path, 3)
    store = rl_controller.store
    other = TrainingController(preset("default"))
    try:
        with qtbot.waitSignal(other.stateChanged, timeout=SPAWN_TIMEOUT, check_params_cb=lambda s: s == "paused"):
            other.load_session(path)
        assert other.store.kind == "rl" and other.config == rl_controller.config
        for name in ("iteration", "policy_loss", "return_after", "env_steps_per_second"):
            np.testing.assert_array_equal(other.store.column(name), store.column(name))
        assert other.store.rollouts.family == "point-nav-2d" and other.store.rollouts.updates == (0, 1)
        other.step()
        wait_iterations(qtbot, other, len(store) + 1)
        assert other.store.latest("iteration") == store.column("iteration")[-1] + 1
    finally:
        other.shutdown()
