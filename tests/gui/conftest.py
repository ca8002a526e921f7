"""GUI test set-up: every test must leave no running QThread and no new non-daemon thread behind."""

from __future__ import annotations

import threading
import weakref

import pytest
import shiboken6
from gui_testlib import PlotKeeper, make_filled_rl_store, make_filled_store
from PySide6.QtCore import QThread

from reptile_gui.store import RunStore

THREAD_GRACE_S = 5.0


@pytest.fixture(autouse=True)
def no_leaked_threads(monkeypatch):
    """Fail a test that leaves a started QThread running or a new non-daemon Python thread alive.

    ``QThread.start`` is wrapped to remember every thread a test starts (as napari's conftest does);
    at teardown (after the test's own fixtures have shut down) each must have finished.
    """
    before = set(threading.enumerate())
    started: list[weakref.ref] = []
    original_start = QThread.start

    def tracking_start(self, *args, **kwargs):
        started.append(weakref.ref(self))
        return original_start(self, *args, **kwargs)

    monkeypatch.setattr(QThread, "start", tracking_start)
    yield
    monkeypatch.undo()

    running = []
    for ref in started:
        thread = ref()
        if thread is None or not shiboken6.isValid(thread):
            continue
        if thread.isRunning() and not thread.wait(int(THREAD_GRACE_S * 1000)):
            running.append(thread.objectName() or repr(thread))
            thread.quit()  # so the leak fails this test instead of aborting the process at exit
            thread.wait(int(THREAD_GRACE_S * 1000))
    leaked = []
    for thread in set(threading.enumerate()) - before:
        if thread.daemon:
            continue
        thread.join(THREAD_GRACE_S)
        if thread.is_alive():
            leaked.append(thread.name)
    problems = [f"QThread still running: {name}" for name in running]
    problems += [f"non-daemon thread still alive: {name}" for name in leaked]
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture
def filled_store() -> RunStore:
    """A store with synthetic history, adaptation curves, markers and a task fit."""
    return make_filled_store()


@pytest.fixture
def filled_rl_store() -> RunStore:
    """A meta-RL store with synthetic history, return curves, a marker and rollouts."""
    return make_filled_rl_store()


@pytest.fixture
def make(qtbot):
    """``make(PlotClass, store, show=True, **kwargs)``: a plot torn down with the test."""
    keeper = PlotKeeper(qtbot)
    yield keeper
    keeper.close_all()
