"""The trainer: commands applied between iterations, pause/step/stop, divergence rollback, determinism."""

from __future__ import annotations

import dataclasses
import math
import queue
import threading

import numpy as np
import pytest
import torch

from reptile_engine.commands import FitTask
from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.divergence import DIVERGENCE_FACTOR
from reptile_engine.events import (
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    ConfigChanged,
    Diverged,
    Finished,
    IterationMetrics,
    StateChanged,
    TaskFit,
)
from reptile_engine.learner import Progress
from reptile_engine.presets import preset
from reptile_engine.supervised import SupervisedLearner
from reptile_engine.trainer import Trainer

# Everything a Trainer emits (``events.Failed`` comes only from the child-process wrapper).
ALL_EVENT_TYPES = {
    IterationMetrics,
    AdaptationCurve,
    ConfigChanged,
    CommandRejected,
    StateChanged,
    CheckpointSaved,
    Diverged,
    TaskFit,
    Finished,
}


def metrics(events, iteration: int) -> IterationMetrics:
    (found,) = [e for e in events if isinstance(e, IterationMetrics) and e.iteration == iteration]
    return found


def of_type(events, kind):
    return [e for e in events if isinstance(e, kind)]


# --- (a)-(c) live updates ---


def test_update_takes_effect_at_the_next_iteration_boundary(make_config):
    cfg = make_config({"meta.iterations": 6})
    assert cfg.inner_schedule.kind == "constant"
    old = cfg.inner.lr
    trainer = Trainer(cfg)
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 2:
            trainer.update({"inner.lr": 0.005})
            assert trainer.config.inner.lr == old, "applied before the iteration boundary"
    m2, m3 = metrics(events, 2), metrics(events, 3)
    (changed,) = of_type(events, ConfigChanged)
    assert events.index(m2) < events.index(changed) < events.index(m3)
    assert changed.iteration == 3
    assert changed.changes == {"inner.lr": (old, 0.005)}
    assert changed.config.inner.lr == 0.005 and changed.config == trainer.config
    assert [metrics(events, i).inner_lr for i in (1, 2)] == [old, old]
    assert [metrics(events, i).inner_lr for i in (3, 4, 5, 6)] == [0.005] * 4
    assert trainer.config.inner.lr == 0.005
    assert trainer.config == cfg.with_updates({"inner.lr": 0.005})


def test_update_queued_mid_iteration_waits_for_the_boundary(make_config, monkeypatch):
    """An update arriving while the inner loop runs must not change that iteration."""
    cfg = make_config({"meta.iterations": 5})
    trainer = Trainer(cfg)
    calls = []

    def then_update(original):
        def wrapped(*args, **kwargs):
            calls.append(trainer.iteration)
            if calls.count(2) == 1 and calls[-1] == 2:  # first inner step of iteration 3
                trainer.update({"inner.lr": 0.005, "meta.meta_batch": 2})
            result = original(*args, **kwargs)
            if calls[-1] == 2:
                assert trainer.config.inner.lr == cfg.inner.lr, "applied inside the iteration"
            return result
        return wrapped

    for name in ("gradient", "loss_and_grad"):
        monkeypatch.setattr(trainer.learner.model, name, then_update(getattr(trainer.learner.model, name)))
    events = list(trainer.run())
    assert {0, 1, 2, 3, 4} <= set(calls)
    assert calls.count(2) == cfg.inner.steps  # every inner step of iteration 3 ran with the update queued
    m3, m4 = metrics(events, 3), metrics(events, 4)
    assert (m3.inner_lr, m3.meta_batch) == (cfg.inner.lr, cfg.meta.meta_batch)
    assert (m4.inner_lr, m4.meta_batch) == (0.005, 2)
    (changed,) = of_type(events, ConfigChanged)
    assert changed.iteration == 4
    assert events.index(m3) < events.index(changed) < events.index(m4)
    assert changed.changes == {"inner.lr": (cfg.inner.lr, 0.005), "meta.meta_batch": (cfg.meta.meta_batch, 2)}


def test_repeated_updates_coalesce_into_one_change(make_config):
    cfg = make_config({"meta.iterations": 4})
    trainer = Trainer(cfg)
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 2:
            trainer.update({"inner.lr": 0.01})
            trainer.update({"meta.meta_batch": 3})
            trainer.update(inner__lr=0.005)
    (changed,) = of_type(events, ConfigChanged)
    assert changed.iteration == 3
    assert changed.changes == {"inner.lr": (cfg.inner.lr, 0.005), "meta.meta_batch": (cfg.meta.meta_batch, 3)}
    m3 = metrics(events, 3)
    assert (m3.inner_lr, m3.meta_batch) == (0.005, 3)
    assert (trainer.config.inner.lr, trainer.config.meta.meta_batch) == (0.005, 3)


def test_update_back_to_the_current_value_is_not_echoed(make_config):
    cfg = make_config({"meta.iterations": 3})
    trainer = Trainer(cfg)
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            trainer.update({"inner.lr": 0.3})
            trainer.update({"inner.lr": cfg.inner.lr})
    assert of_type(events, ConfigChanged) == []
    assert trainer.config == cfg


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"model.hidden": 32}, "model.hidden"),
        ({"meta.optimizer": "adam"}, "meta.optimizer"),
        ({"seed": 3}, "seed"),
        ({"inner.lr": -1.0}, "inner.lr"),
        ({"inner.lr": math.nan}, "inner.lr"),
        ({"inner.steps": 0}, "inner.steps"),
        ({"inner.batch_size": 11}, "inner.batch_size"),  # above task.support = 10
        ({"inner.optimizer": "rmsprop"}, "inner.optimizer"),
        ({"inner.bogus": 1}, "inner.bogus"),
    ],
)
def test_invalid_update_raises_at_once_and_queues_nothing(make_config, changes, field):
    cfg = make_config({"meta.iterations": 2})
    trainer = Trainer(cfg)
    with pytest.raises(ConfigError) as info:
        trainer.update(changes)
    assert info.value.field == field
    assert trainer.config == cfg
    events = list(trainer.run())
    assert of_type(events, ConfigChanged) == [] and of_type(events, CommandRejected) == []
    assert trainer.config == cfg


# --- (d) pause, step and resume ---


def test_pause_blocks_without_spinning_step_runs_one_iteration_and_resume_continues(make_config, monkeypatch):
    trainer = Trainer(make_config({"meta.iterations": 8, "evaluation.every": 100}))
    drains: list[bool] = []
    blocking_waits: queue.Queue[int] = queue.Queue()
    original_drain = trainer.commands.drain

    def recording_drain(block: bool):
        drains.append(block)
        if block:
            blocking_waits.put(trainer.iteration)
        return original_drain(block)

    monkeypatch.setattr(trainer.commands, "drain", recording_drain)
    events: list = []
    errors: list[BaseException] = []
    paused_seen = threading.Event()

    def worker() -> None:
        try:
            for event in trainer.run():
                events.append(event)
                if isinstance(event, IterationMetrics) and event.iteration == 3:
                    trainer.pause()
                if isinstance(event, StateChanged) and event.state == "paused":
                    paused_seen.set()
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)
            paused_seen.set()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        assert paused_seen.wait(timeout=60), "never paused"
        assert not errors
        # run() now waits in a blocking read of the command queue, not in a polling loop.
        assert blocking_waits.get(timeout=60) == 3
        paused_at = trainer.iteration
        assert paused_at == 3
        assert trainer.paused
        assert thread.is_alive()
        seen = len(events)
        assert [e.iteration for e in of_type(events, IterationMetrics)] == [1, 2, 3]

        trainer.request_step()
        assert blocking_waits.get(timeout=60) == 4, "Step should run exactly one iteration and wait again"
        assert trainer.iteration == paused_at + 1
        assert [e.iteration for e in of_type(events[seen:], IterationMetrics)] == [4]
        assert trainer.paused

        trainer.resume()
        thread.join(timeout=120)
        assert not thread.is_alive()
    finally:
        if thread.is_alive():
            trainer.stop()
            thread.join(timeout=60)
    assert not errors
    assert [e.iteration for e in of_type(events, IterationMetrics)] == list(range(1, 9))
    states = [(e.iteration, e.state, e.reason) for e in of_type(events, StateChanged)]
    assert states == [(0, "running", ""), (3, "paused", ""), (4, "running", "")]
    assert events[-1] == Finished(8, "completed")
    # Exactly two waits while paused (before and after the step), back to back: no polling in between.
    assert drains.count(True) == 2
    first = drains.index(True)
    assert drains[first : first + 2] == [True, True]
    assert blocking_waits.empty()


def test_pause_and_resume_in_one_drain(make_config):
    trainer = Trainer(make_config({"meta.iterations": 4}))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            trainer.pause()
            trainer.resume()
    states = [(e.state, e.iteration) for e in of_type(events, StateChanged)]
    assert states == [("running", 0), ("paused", 1), ("running", 1)]
    assert [e.iteration for e in of_type(events, IterationMetrics)] == [1, 2, 3, 4]


# --- (e) stop and completion ---


def test_stop_ends_run_with_stopped(make_config):
    trainer = Trainer(make_config({"meta.iterations": 10}))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 2:
            trainer.stop()
    assert events[-1] == Finished(2, "stopped")
    assert [e.iteration for e in of_type(events, IterationMetrics)] == [1, 2]
    assert trainer.iteration == 2


def test_stop_while_paused(make_config):
    trainer = Trainer(make_config({"meta.iterations": 10}))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            trainer.pause()
            trainer.stop()
    assert events[-1] == Finished(1, "stopped")


def test_completing_the_iterations_gives_completed(make_config):
    cfg = make_config({"meta.iterations": 7})
    trainer = Trainer(cfg)
    events = list(trainer.run())
    assert events[0] == StateChanged(0, "running")
    assert isinstance(events[1], AdaptationCurve) and events[1].iteration == 0
    assert events[-1] == Finished(7, "completed")
    assert [e.iteration for e in of_type(events, IterationMetrics)] == list(range(1, 8))
    assert trainer.iteration == 7
    # A later run continues to an explicit total.
    more = list(trainer.run(iterations=9))
    assert [e.iteration for e in of_type(more, IterationMetrics)] == [8, 9]
    assert more[-1] == Finished(9, "completed")


def test_evaluation_cadence(make_config):
    trainer = Trainer(make_config({"meta.iterations": 25, "evaluation.every": 10}))
    events = list(trainer.run())
    assert [e.iteration for e in of_type(events, AdaptationCurve)] == [0, 10, 20, 25]
    # An explicit request adds one.
    trainer2 = Trainer(make_config({"meta.iterations": 3, "evaluation.every": 10}))
    events2 = []
    for event in trainer2.run():
        events2.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            trainer2.request_evaluation()
    assert [e.iteration for e in of_type(events2, AdaptationCurve)] == [0, 1, 3]


def test_metrics_follow_the_meta_schedule(make_config):
    cfg = make_config({"meta.iterations": 10, "meta_schedule.kind": "linear", "meta.lr": 0.5})
    events = list(Trainer(cfg).run())
    for m in of_type(events, IterationMetrics):
        assert m.meta_lr == pytest.approx(0.5 * (1 - (m.iteration - 1) / 10), rel=1e-12)  # linear down to 0
        assert m.inner_lr == cfg.inner.lr
        assert (m.meta_batch, m.inner_steps) == (cfg.meta.meta_batch, cfg.inner.steps)
        assert math.isfinite(m.loss_before) and math.isfinite(m.loss_after)
        assert m.elapsed > 0 and m.iterations_per_second > 0


def test_the_inner_schedule_scales_the_learners_inner_rate(make_config):
    cfg = make_config({"meta.iterations": 4, "inner_schedule.kind": "linear", "inner.lr": 0.04})
    rates = [m.inner_lr for m in of_type(list(Trainer(cfg).run()), IterationMetrics)]
    assert rates == pytest.approx([0.04, 0.03, 0.02, 0.01], rel=1e-12)


class ReportingLearner(SupervisedLearner):
    """A supervised learner that reports progress three times after drawing and adapting its meta-batch."""

    def __init__(self, config, on_progress):
        super().__init__(config)
        self.on_progress = on_progress

    def adapt(self, theta, config, inner_lr):
        adaptation = yield from super().adapt(theta, config, inner_lr)
        for done in range(1, 4):
            self.on_progress()
            yield Progress(done, done, 3, 0)
        return adaptation


def test_a_pause_queued_mid_iteration_discards_it_and_the_resumed_run_redoes_it(make_config, metrics_of):
    cfg = make_config({"meta.iterations": 4})
    straight = metrics_of(Trainer(cfg).run())
    progress = []

    def pause_in_the_second_iteration():
        progress.append(trainer.iteration)
        if len(progress) == 4:
            trainer.pause()

    trainer = Trainer(cfg, learner=ReportingLearner(cfg, pause_in_the_second_iteration))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, StateChanged) and event.state == "paused":
            assert trainer.iteration == 1 and progress == [0, 0, 0, 1]
            trainer.resume()
    assert metrics_of(events) == straight, "the discarded iteration left the learner's generator as it was"
    assert progress.count(1) == 4, "iteration 2 ran again from its start"


# --- (f) divergence ---


def test_divergence_rolls_back_pauses_and_recovers(make_config):
    cfg = make_config({"meta.iterations": 12})
    trainer = Trainer(cfg)
    events = []
    initial_theta = trainer.theta.detach().clone()
    diverged_seen = False
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics):
            assert math.isfinite(event.loss_after)
            if event.iteration == 3:
                trainer.update({"inner.lr": 10.0, "inner.steps": 50})
        elif isinstance(event, Diverged):
            diverged_seen = True
            assert event.rolled_back_to == 0, "the only healthy snapshot is the initial state"
            assert event.iteration == 4
            assert event.hyperparameters["inner.lr"] == 10.0
            assert event.hyperparameters["inner.steps"] == 50
            assert event.reason
            assert trainer.iteration == 3, "the diverging iteration is not counted"
            assert torch.equal(trainer.theta.detach(), initial_theta)
        elif isinstance(event, StateChanged) and event.reason == "diverged":
            assert isinstance(events[-2], Diverged), "the pause must follow the Diverged event"
            assert event.state == "paused" and trainer.paused
            trainer.update({"inner.lr": 0.02, "inner.steps": 5})
            trainer.resume()
    assert diverged_seen
    assert len(of_type(events, Diverged)) == 1
    assert events[-1] == Finished(12, "completed")
    after = [m for m in of_type(events, IterationMetrics) if m.iteration > 3]
    assert [m.iteration for m in after] == list(range(4, 13))
    assert all(math.isfinite(m.loss_before) and math.isfinite(m.loss_after) for m in after)
    assert all(m.inner_lr == 0.02 for m in after)
    assert torch.isfinite(trainer.theta).all()


def poison_outer_step(trainer: Trainer, monkeypatch, when: set[int]) -> None:
    """Make the outer optimizer write NaN into theta on the given (0-based) calls."""
    real_step = trainer.optimizer.step
    calls = {"n": 0}

    def step(*args, **kwargs):
        out = real_step(*args, **kwargs)
        if calls["n"] in when:
            with torch.no_grad():
                trainer.theta.fill_(math.nan)
        calls["n"] += 1
        return out

    monkeypatch.setattr(trainer.optimizer, "step", step)


def optimizer_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.optimizer.state.get(trainer.theta, {}).items()}


@pytest.mark.parametrize(("optimizer", "snapshot_every", "bad_step"), [("sgd", 50, 0), ("sgd", 50, 3),
                                                                       ("adam", 50, 3), ("adam", 4, 6)])
def test_a_bad_outer_step_restores_the_last_healthy_snapshot_exactly(make_config, monkeypatch, optimizer,
                                                                      snapshot_every, bad_step):
    cfg = make_config({"meta.optimizer": optimizer, "meta.lr": 0.05 if optimizer == "adam" else 0.5})
    trainer = Trainer(cfg)
    trainer.learner.snapshot_every = snapshot_every
    poison_outer_step(trainer, monkeypatch, when={bad_step})
    snapshot_at = (bad_step // snapshot_every) * snapshot_every
    saved = None
    for _ in range(bad_step):
        if trainer.iteration == snapshot_at:
            saved = trainer.theta.detach().clone(), optimizer_tensors(trainer)
        assert isinstance(trainer.step(), IterationMetrics)
    if saved is None:
        saved = trainer.theta.detach().clone(), optimizer_tensors(trainer)
    event = trainer.step()
    assert isinstance(event, Diverged) and "outer step" in event.reason
    assert event.rolled_back_to == snapshot_at and trainer.iteration == bad_step
    assert torch.equal(trainer.theta.detach(), saved[0])
    restored = optimizer_tensors(trainer)
    assert restored.keys() == saved[1].keys()
    assert all(torch.equal(restored[k], saved[1][k]) for k in restored), "the optimizer state is rolled back too"
    assert isinstance(trainer.step(), IterationMetrics) and torch.isfinite(trainer.theta).all()


def train(trainer: Trainer, iterations: int, every_event=None) -> list:
    """Drive ``run()`` to ``iterations`` in total, resuming after each divergence; returns the events."""
    events = []
    for event in trainer.run(iterations=iterations):
        events.append(event)
        if every_event is not None:
            every_event(event)
        if isinstance(event, StateChanged) and event.reason == "diverged":
            trainer.resume()
    return events


def test_a_meta_lr_spike_is_contained_and_the_loss_recovers():
    """Sine's default preset, meta lr 10 for 200 iterations, then back: within 500 the loss is back within 2x."""
    cfg = preset("default").with_updates({"evaluation.every": 100_000, "evaluation.tasks": 4})
    trainer = Trainer(cfg)
    before_spike = of_type(train(trainer, 300), IterationMetrics)
    level_before = float(np.median([m.loss_after for m in before_spike[-50:]]))
    trainer.update({"meta.lr": 10.0})
    spike = train(trainer, 500)
    divergences = of_type(spike, Diverged)
    assert divergences, "meta lr 10 must be noticed"
    first = spike.index(divergences[0])
    assert all(m.loss_after < 1e6 for m in of_type(spike[:first], IterationMetrics))
    for divergence in divergences:  # the iteration after a rollback adapts from the restored, healthy theta
        after = [e for e in spike[spike.index(divergence):] if isinstance(e, IterationMetrics)][:1]
        assert not after or after[0].loss_after < DIVERGENCE_FACTOR * level_before
    trainer.update({"meta.lr": cfg.meta.lr})
    recovered = of_type(train(trainer, 1000), IterationMetrics)
    level_after = float(np.median([m.loss_after for m in recovered[-50:]]))
    assert level_after <= 2 * level_before, (level_before, level_after)


def test_a_slowly_climbing_loss_is_caught_before_it_explodes(make_config):
    """Plain SGD at meta lr 10 grows theta tenfold an iteration: caught while the loss is still finite."""
    trainer = Trainer(make_config({"meta.iterations": 200, "meta.optimizer": "sgd"}))
    train(trainer, 60)
    trainer.update({"meta.lr": 10.0})
    events = []
    for event in trainer.run(iterations=200):
        events.append(event)
        if isinstance(event, Diverged):
            trainer.stop()
    (diverged,) = of_type(events, Diverged)
    assert "times its recent level" in diverged.reason
    assert all(m.loss_after < 1e6 for m in of_type(events, IterationMetrics))
    assert diverged.rolled_back_to in (0, 50) and torch.isfinite(trainer.theta).all()


def test_adaptation_made_worse_than_before_is_a_divergence(make_config):
    """Inner lr far too high: the loss after adaptation towers over its level, caught within a few iterations."""
    trainer = Trainer(make_config({"meta.iterations": 400}))
    train(trainer, 100)
    trainer.update({"inner.lr": 0.3})
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, Diverged):
            trainer.stop()
    (diverged,) = of_type(events, Diverged)
    assert diverged.iteration <= 100 + 2 * 5 and diverged.rolled_back_to <= 100


def test_noise_of_one_task_per_iteration_is_not_a_divergence():
    cfg = preset("paper").with_updates({"meta.iterations": 1500, "evaluation.every": 100_000, "evaluation.tasks": 4})
    assert not of_type(list(Trainer(cfg).run()), Diverged)


# --- (g) determinism ---


def test_same_seed_same_run_different_seed_different_run(make_config, metrics_of):
    cfg = make_config({"meta.iterations": 15, "inner.batch_size": 4})
    trainers = [Trainer(cfg), Trainer(cfg)]
    runs = [list(t.run()) for t in trainers]
    assert metrics_of(runs[0]) == metrics_of(runs[1])
    assert len(metrics_of(runs[0])) == 15
    assert torch.equal(trainers[0].theta, trainers[1].theta)
    for c0, c1 in zip(of_type(runs[0], AdaptationCurve), of_type(runs[1], AdaptationCurve), strict=True):
        assert np.array_equal(c0.meta_init, c1.meta_init) and np.array_equal(c0.scratch, c1.scratch)

    other = Trainer(cfg.with_updates({"seed": 1}))
    other_events = list(other.run())
    assert not torch.equal(other.theta, trainers[0].theta)
    assert [m[1:3] for m in metrics_of(other_events)] != [m[1:3] for m in metrics_of(runs[0])]


# --- (h) events are plain data ---


def assert_plain(value, where: str) -> None:
    assert not isinstance(value, torch.Tensor), f"{where} is a torch tensor"
    if isinstance(value, ExperimentConfig):
        return
    if isinstance(value, np.ndarray):
        assert value.dtype != object, f"{where} is an object array"
        return
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where} has key {k!r}"
            assert_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, tuple):  # ConfigChanged.changes maps a path to an (old, new) pair
        for i, v in enumerate(value):
            assert_plain(v, f"{where}[{i}]")
        return
    assert value is None or type(value) in (bool, int, float, str), f"{where} is {type(value).__name__}"


def test_events_carry_only_plain_data(make_config, tmp_path):
    (tmp_path / "adir").mkdir()
    trainer = Trainer(make_config({"meta.iterations": 8}))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            trainer.update({"inner.lr": 0.01})
            trainer.request_checkpoint(tmp_path / "ck.safetensors")
            trainer.request_checkpoint(tmp_path / "adir")  # a directory: the save is rejected
            trainer.request_evaluation()
            trainer.request_task_fit(FitTask(request=1, seed=3, steps=(0, 2, 5), grid_points=20))
        if isinstance(event, IterationMetrics) and event.iteration == 2:
            trainer.update({"inner.lr": 10.0, "inner.steps": 50})
        if isinstance(event, StateChanged) and event.reason == "diverged":
            trainer.update({"inner.lr": 0.02, "inner.steps": 5})
            trainer.resume()
    assert {type(e) for e in events} == ALL_EVENT_TYPES
    for event in events:
        for f in dataclasses.fields(event):
            assert_plain(getattr(event, f.name), f"{type(event).__name__}.{f.name}")
    (rejected,) = of_type(events, CommandRejected)
    assert rejected.field == "checkpoint"
    (fit,) = of_type(events, TaskFit)
    assert fit.predictions.shape == (3, 20) and fit.steps == (0, 2, 5)
    (saved,) = of_type(events, CheckpointSaved)
    assert saved.path == str(tmp_path / "ck.safetensors") and saved.iteration == 1


# --- (i) the adaptation curve ---


def test_adaptation_curve_shape(make_config):
    trainer = Trainer(make_config({"evaluation.steps": 6}))
    curve = trainer.evaluate()
    assert curve.iteration == 0
    assert np.array_equal(curve.steps, np.arange(7))
    assert curve.meta_init.shape == curve.scratch.shape == (7,)
    assert np.isfinite(curve.meta_init).all() and np.isfinite(curve.scratch).all()


def test_meta_learned_init_adapts_faster_than_scratch():
    cfg = ExperimentConfig().with_updates(
        {"meta.iterations": 300, "meta.meta_batch": 5, "evaluation.tasks": 50, "evaluation.every": 100}
    )
    trainer = Trainer(cfg)
    curves = of_type(trainer.run(), AdaptationCurve)
    assert [c.iteration for c in curves] == [0, 100, 200, 300]
    for c in curves:
        assert np.array_equal(c.steps, np.arange(cfg.evaluation.steps + 1))
        assert np.array_equal(c.scratch, curves[0].scratch)  # the same held-out tasks and scratch network
    final = curves[-1]
    assert final.meta_init[10] < final.scratch[10]
    assert final.meta_init[10] < final.meta_init[0]  # and it adapts
    assert final.meta_init[10] < curves[0].meta_init[10]  # meta-training helped


# --- the command queue under a flood ---


def test_stop_jumps_a_flood_of_evaluation_requests(make_config):
    trainer = Trainer(make_config({"meta.iterations": 1000, "evaluation.every": 100_000}))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 2:
            for _ in range(5000):
                trainer.request_evaluation()
            trainer.stop()
    assert events[-1] == Finished(2, "stopped")
    assert len(of_type(events, AdaptationCurve)) <= 3, "the first curve, at most one answer, the last curve"


def test_repeated_requests_coalesce(make_config, tmp_path):
    trainer = Trainer(make_config({"meta.iterations": 3, "evaluation.every": 100_000}))
    path = tmp_path / "one.safetensors"
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            for _ in range(3000):
                trainer.request_checkpoint(path)
            trainer.request_checkpoint(tmp_path / "other.safetensors")
            for seed in range(3):
                trainer.request_task_fit(FitTask(request=seed, seed=seed, steps=(0, 1)))
                trainer.request_evaluation()
    saves = of_type(events, CheckpointSaved)
    assert sorted(s.path for s in saves) == sorted([str(path), str(tmp_path / "other.safetensors")])
    (fit,) = of_type(events, TaskFit)
    assert fit.request == 2, "the newest task fit wins"
    assert [c.iteration for c in of_type(events, AdaptationCurve)] == [0, 1, 3]


def test_pause_jumps_the_queue_and_a_later_resume_undoes_it(make_config):
    trainer = Trainer(make_config({"meta.iterations": 3}))
    trainer.request_evaluation()
    trainer.pause()
    assert trainer.commands.interrupt_pending()
    commands = trainer.commands.drain(block=False)
    assert [type(c).__name__ for c in commands] == ["Pause", "Evaluate"]
    trainer.pause()
    trainer.resume()
    assert not trainer.commands.interrupt_pending()
    trainer.stop()
    assert trainer.commands.interrupt_pending()
