"""The child-process trainer: every event reaches the parent, the final state is saved first, close is quick."""

from __future__ import annotations

import os
import signal
import time

from reptile_engine.checkpoint import load
from reptile_engine.events import CheckpointSaved, Failed, Finished, IterationMetrics
from reptile_engine.presets import preset
from reptile_engine.remote import RemoteTrainer

TIMEOUT_S = 60.0


def small_config(iterations: int = 1_000_000):
    return preset("quick").with_updates({"model.hidden": 16, "meta.iterations": iterations, "evaluation.tasks": 4,
                                         "evaluation.steps": 2, "meta.meta_batch": 2})


def read_until(remote: RemoteTrainer, done) -> list:
    events, deadline = [], time.monotonic() + TIMEOUT_S
    while not done(events):
        assert time.monotonic() < deadline, f"gave up waiting; got {[type(e).__name__ for e in events]}"
        events += remote.events(timeout=0.1)
    return events


def test_the_final_checkpoint_is_reported_before_finished(tmp_path):
    path = tmp_path / "run.safetensors"
    remote = RemoteTrainer(small_config(iterations=30), checkpoint_path=path)
    remote.start()
    try:
        events = read_until(remote, lambda _: remote.finished)
        names = [type(event).__name__ for event in events]
        assert names[-2:] == ["CheckpointSaved", "Finished"], names
        saved = events[-2]
        assert saved == CheckpointSaved(30, str(path))
        assert load(path)[1]["iteration"] == 30
        read_until(remote, lambda _: remote.ended)
    finally:
        remote.close()


def test_stop_saves_the_state_it_stopped_at_and_nothing_follows_finished(tmp_path):
    path = tmp_path / "run.safetensors"
    remote = RemoteTrainer(small_config(), checkpoint_path=path)
    remote.start()
    try:
        events = read_until(remote, lambda got: sum(isinstance(e, IterationMetrics) for e in got) >= 5)
        remote.stop()
        events += read_until(remote, lambda _: remote.ended)
        finished = next(i for i, e in enumerate(events) if isinstance(e, Finished))
        assert finished == len(events) - 1, "no event may come after Finished"
        saved = [e for e in events if isinstance(e, CheckpointSaved)]
        assert saved and saved[-1].iteration == events[finished].iteration
        assert load(path)[1]["iteration"] == events[finished].iteration
    finally:
        remote.close()


def test_close_at_once_ends_a_training_child_quickly():
    remote = RemoteTrainer(small_config())
    remote.start()
    read_until(remote, lambda got: any(isinstance(e, IterationMetrics) for e in got))
    began = time.monotonic()
    remote.close(timeout=0)
    assert time.monotonic() - began < 1.0
    assert not remote.alive and remote.ended


def test_a_child_that_dies_is_reported_as_failed_and_ended():
    remote = RemoteTrainer(small_config())
    remote.start()
    try:
        read_until(remote, lambda got: any(isinstance(e, IterationMetrics) for e in got))
        os.kill(remote.pid, signal.SIGKILL)
        events = read_until(remote, lambda _: remote.ended)
        assert any(isinstance(e, Failed) and "died" in e.message for e in events)
        assert remote.finished
    finally:
        remote.close()
