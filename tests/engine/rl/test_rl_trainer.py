"""Meta-RL under the one trainer: its commands, events and checkpoints over ``RLLearner``."""

from __future__ import annotations

import csv
import dataclasses
import math
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from reptile_engine.checkpoint import CheckpointError
from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.events import (
    AdaptationCurve,
    ConfigChanged,
    Diverged,
    Finished,
    IterationProgress,
    LandscapeReady,
    RLIterationMetrics,
    Rollouts,
    StateChanged,
)
from reptile_engine.presets import preset, preset_for_task
from reptile_engine.rl import onpolicy
from reptile_engine.rl.learner import RLLearner
from reptile_engine.rl.onpolicy import InnerResult
from reptile_engine.supervised import SupervisedLearner
from reptile_engine.trainer import FitTask, Trainer, open_trainer, resume_trainer

TINY = {"meta.iterations": 4, "meta.meta_batch": 3, "rl.episodes": 2, "rl.updates": 1, "rl.hidden": 8,
        "rl.epochs": 1, "rl.minibatches": 2, "rl.horizon": 20, "evaluation.tasks": 3, "evaluation.steps": 1,
        "evaluation.every": 2, "landscape.every": 0, "landscape.resolution": 11, "landscape.snapshot_every": 1}


def tiny(**changes) -> ExperimentConfig:
    return preset("meta-rl").with_updates({**TINY, **{k.replace("__", "."): v for k, v in changes.items()}})


def metrics_of(events):
    return [e for e in events if isinstance(e, RLIterationMetrics)]


def test_open_trainer_picks_the_learner_by_task_kind():
    assert isinstance(open_trainer(tiny()).learner, RLLearner)
    assert isinstance(open_trainer(preset("quick")).learner, SupervisedLearner)
    assert preset_for_task("point-nav-2d") == "meta-rl" and preset_for_task("sine") == "default"


def test_rl_config_is_validated_like_the_supervised_one():
    with pytest.raises(ConfigError) as info:
        tiny(rl__episodes=0)
    assert info.value.field == "rl.episodes" and "[1, 1000]" in str(info.value)
    with pytest.raises(ConfigError) as info:
        tiny(rl__algorithm="sac")
    assert info.value.field == "rl.algorithm" and "ppo" in str(info.value)
    with pytest.raises(ConfigError) as info:
        tiny(landscape__loss="mean")
    assert info.value.field == "landscape.loss" and "policy" in str(info.value)
    with pytest.raises(ConfigError) as info:
        preset("quick").with_updates({"landscape.loss": "policy"})
    assert info.value.field == "landscape.loss"


def test_the_inner_loop_runs_at_the_scheduled_rate_on_the_live_config(monkeypatch):
    cfg = tiny(rl__lr=0.02, inner_schedule__kind="linear", meta__iterations=4)
    seen = []
    adapt_ticks = onpolicy.adapt_ticks

    def watching(agent, runner, theta, tasks, seeds, rl, generator, **options):
        seen.append((rl.lr, rl.episodes, options["lr"], len(tasks)))
        return (yield from adapt_ticks(agent, runner, theta, tasks, seeds, rl, generator, **options))

    monkeypatch.setattr(onpolicy, "adapt_ticks", watching)
    trainer = Trainer(cfg)
    trainer.step()
    trainer.update({"rl.episodes": 3})
    list(trainer.run(iterations=2))
    training = [call for call in seen if call[2] is not None]  # the evaluations run at the base rate
    assert training[0] == (0.02, 2, 0.02, 3)
    assert training[1] == (0.02, 3, pytest.approx(0.02 * 3 / 4), 3)


def test_run_reports_rl_metrics_and_return_curves():
    events = list(Trainer(tiny()).run())
    assert isinstance(events[0], StateChanged) and isinstance(events[-1], Finished)
    metrics = metrics_of(events)
    assert [m.iteration for m in metrics] == [1, 2, 3, 4]
    for m in metrics:
        for value in (m.policy_loss, m.critic_loss, m.agent_loss, m.entropy, m.return_before, m.return_after):
            assert math.isfinite(value)
        assert m.return_before < 0 and m.return_after < 0  # point-nav rewards are negative distances
        assert m.env_steps_per_second > 0 and m.meta_batch == 3 and m.inner_updates == 1
    curves = [e for e in events if isinstance(e, AdaptationCurve)]
    assert [c.iteration for c in curves] == [0, 2, 4]
    for curve in curves:
        assert curve.quantity == "return" and list(curve.steps) == [0, 1]
        assert curve.meta_init.shape == curve.scratch.shape == (2,) and np.all(curve.meta_init < 0)
    np.testing.assert_array_equal(curves[0].scratch, curves[-1].scratch)  # computed once, reused


def test_live_changes_apply_between_iterations():
    trainer = Trainer(tiny(meta__iterations=3))
    events = trainer.run()
    seen = []
    for event in events:
        seen.append(event)
        if isinstance(event, RLIterationMetrics) and event.iteration == 1:
            trainer.update({"rl.updates": 2, "meta.meta_batch": 2, "rl.lr": 0.001})
    changed = [e for e in seen if isinstance(e, ConfigChanged)]
    assert len(changed) == 1 and changed[0].iteration == 2
    assert changed[0].changes["rl.updates"] == (1, 2)
    metrics = metrics_of(seen)
    assert (metrics[0].inner_updates, metrics[0].meta_batch) == (1, 3)
    assert (metrics[1].inner_updates, metrics[1].meta_batch, metrics[1].inner_lr) == (2, 2, 0.001)


def inner_loop_returning(change):
    """The on-policy inner loop with ``change`` applied to its result."""
    adapt_ticks = onpolicy.adapt_ticks

    def changed(*args, **options) -> InnerResult:
        return change((yield from adapt_ticks(*args, **options)))

    return changed


def test_a_non_finite_iteration_rolls_back(monkeypatch):
    trainer = Trainer(tiny())
    theta = trainer.theta.detach().clone()
    list(trainer.run(iterations=1))
    monkeypatch.setattr(onpolicy, "adapt_ticks", inner_loop_returning(lambda result: result._replace(
        phi=torch.full_like(result.phi, math.nan))))
    event = trainer.step()
    assert isinstance(event, Diverged) and "non-finite" in event.reason
    # The adapted parameters of iteration 2 measure theta after iteration 1: the state before it is restored.
    assert event.rolled_back_to == 0 and "rl.lr (scheduled)" in event.hyperparameters
    assert trainer.iteration == 1
    torch.testing.assert_close(trainer.theta.detach(), theta, rtol=0, atol=0)


@pytest.mark.parametrize(("optimizer", "lr"), [("sgd", 0.3), ("adam", 0.01)])
def test_resume_from_a_checkpoint_is_exact(tmp_path, optimizer, lr):
    straight = Trainer(tiny(meta__optimizer=optimizer, meta__lr=lr))
    list(straight.run(iterations=4))
    first = Trainer(tiny(meta__optimizer=optimizer, meta__lr=lr))
    list(first.run(iterations=2))
    path = first.save_checkpoint(tmp_path / "rl.safetensors")
    resumed = resume_trainer(path)
    assert isinstance(resumed.learner, RLLearner) and resumed.iteration == 2
    list(resumed.run(iterations=4))
    torch.testing.assert_close(resumed.theta.detach(), straight.theta.detach(), rtol=0, atol=0)
    assert resumed.learner.rng.bit_generator.state == straight.learner.rng.bit_generator.state
    assert torch.equal(resumed.learner.generator.get_state(), straight.learner.generator.get_state())


def test_a_checkpoint_of_another_agent_is_refused(tmp_path):
    path = Trainer(tiny()).save_checkpoint(tmp_path / "rl.safetensors")
    with pytest.raises(CheckpointError, match="theta"):
        Trainer.from_checkpoint(path, overrides={"rl.hidden": 16})
    with pytest.raises(CheckpointError, match="theta"):
        Trainer.from_checkpoint(path, overrides={"rl.algorithm": "td3"})


def test_rollouts_show_a_held_out_task_after_each_update_count():
    trainer = Trainer(tiny())
    event = trainer.fit_task(FitTask(request=7, seed=3, steps=(0, 1, 2)))
    assert isinstance(event, Rollouts) and event.request == 7 and event.updates == (0, 1, 2)
    assert event.family == "point-nav-2d" and event.labels == ("x", "y")
    assert event.target[0] == "point" and tuple(event.task["goal"]) == event.target[1]
    assert len(event.traces) == 3 and event.returns.shape == (3, len(event.traces[0]))
    for traces in event.traces:
        for trace in traces:
            assert trace.shape[1] == 2 and trace.shape[0] >= 1
            np.testing.assert_array_equal(trace[0], [0.0, 0.0])  # every episode starts at the origin
    assert len(event.mean_traces) == 3 and event.mean_returns.shape == (3,)
    for mean_trace in event.mean_traces:
        np.testing.assert_array_equal(mean_trace[0], [0.0, 0.0])
    assert not np.array_equal(event.mean_traces[0], event.traces[0][0])  # no exploration noise
    again = trainer.fit_task(FitTask(request=8, seed=3, steps=(0, 1, 2)))
    np.testing.assert_array_equal(again.returns, event.returns)


@pytest.mark.parametrize("loss", ["policy", "critic"])
@pytest.mark.parametrize("plane", ["random", "task", "pca"])
def test_landscape_is_a_labelled_surrogate_centred_on_theta(loss, plane):
    trainer = Trainer(tiny(landscape__loss=loss, landscape__plane=plane))
    list(trainer.run(iterations=4))
    event = trainer.landscape()
    assert isinstance(event, LandscapeReady)
    result = event.slice
    assert result.loss == loss and result.kind == plane and result.values.shape == (11, 11)
    assert np.all(np.isfinite(result.values))
    assert result.values[5, 5] == pytest.approx(result.center_loss, rel=1e-5, abs=1e-6)
    if loss == "critic":
        assert np.all(result.values >= 0)
    assert result.inner_paths.shape == (2, 2, 2)
    assert result.task_points.shape == ((2, 2) if plane == "task" else (0, 2))
    assert result.trajectory.shape == (5, 2)


def test_landscape_leaves_the_run_unchanged():
    plain = Trainer(tiny())
    list(plain.run(iterations=2))
    sliced = Trainer(tiny())
    list(sliced.run(iterations=1))
    sliced.landscape()
    list(sliced.run(iterations=2))
    torch.testing.assert_close(sliced.theta.detach(), plain.theta.detach(), rtol=0, atol=0)


def test_cli_trains_an_rl_family_and_resumes(tmp_path):
    out = tmp_path / "run"
    flags = [f"--{k}={v}" for k, v in TINY.items()]

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "reptile_engine", "--preset", "meta-rl", *flags, "--out",
                               str(out), *args], capture_output=True, text=True, timeout=240)

    result = cli("--meta.iterations=2")
    assert result.returncode == 0, result.stderr
    assert "held-out mean return" in result.stdout
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in rows] == [1, 2]
    assert {"policy_loss", "critic_loss", "agent_loss", "return_before", "return_after"} <= set(rows[0])
    with open(out / "adaptation.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["inner_step", "meta_init_return", "scratch_return"]
    resumed = cli("--resume", str(out / "checkpoint.safetensors"), "--meta.iterations=3")
    assert resumed.returncode == 0, resumed.stderr
    with open(out / "metrics.csv", newline="") as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [1, 2, 3]


TD3 = {"rl.algorithm": "td3", "rl.gradient_steps": 4, "rl.batch_size": 16}


def test_td3_trains_resumes_and_slices(tmp_path):
    straight = Trainer(tiny(**{k.replace(".", "__"): v for k, v in TD3.items()}))
    events = list(straight.run(iterations=3))
    assert type(straight.learner.agent).__name__ == "TD3Agent"
    assert all(math.isfinite(m.critic_loss) and math.isfinite(m.return_after) for m in metrics_of(events))
    first = Trainer(tiny(**{k.replace(".", "__"): v for k, v in TD3.items()}))
    list(first.run(iterations=2))
    resumed = resume_trainer(first.save_checkpoint(tmp_path / "td3.safetensors"))
    list(resumed.run(iterations=3))
    torch.testing.assert_close(resumed.theta.detach(), straight.theta.detach(), rtol=0, atol=0)
    for loss in ("policy", "critic"):
        result = resumed.landscape(dataclasses.replace(resumed.config.landscape, loss=loss)).slice
        assert result.loss == loss and np.all(np.isfinite(result.values))
        assert result.values[5, 5] == pytest.approx(result.center_loss, rel=1e-5, abs=1e-6)


@pytest.fixture
def slow(monkeypatch) -> ExperimentConfig:
    """Many inner updates per meta-iteration on point-nav-2d, reported every few milliseconds."""
    monkeypatch.setattr("reptile_engine.trainer.PROGRESS_EVERY", 0.005)
    return tiny(meta__iterations=3, meta__meta_batch=4, rl__updates=10, rl__episodes=10, rl__horizon=40,
                evaluation__every=100)


def test_progress_is_reported_within_a_slow_iteration(slow):
    trainer = Trainer(slow)
    events = list(trainer.run(iterations=1))
    progress = [e for e in events if isinstance(e, IterationProgress)]
    (finished,) = metrics_of(events)
    assert len(progress) >= 2
    assert events.index(progress[-1]) < events.index(finished)
    assert all(p.iteration == 1 and p.tasks_total == 4 and p.updates_total == 10 for p in progress)
    assert all(p.env_steps_per_second > 0 for p in progress)
    done = [p.updates_done for p in progress]
    assert done == sorted(done) and done[-1] <= 10
    assert all(p.tasks_done in (0, 4) for p in progress)


def test_stop_mid_iteration_discards_it(slow):
    trainer = Trainer(slow)
    list(trainer.run(iterations=1))
    theta = trainer.theta.detach().clone()
    tensors, meta = trainer.learner.state()
    events = []
    for event in trainer.run(iterations=3):
        events.append(event)
        if isinstance(event, IterationProgress):
            threading.Thread(target=trainer.stop).start()  # as the GUI would, from another thread
    assert isinstance(events[-1], Finished) and events[-1].reason == "stopped"
    assert not metrics_of(events) and events[-1].iteration == 1
    assert trainer.iteration == 1
    assert torch.equal(trainer.theta.detach(), theta)
    assert trainer.learner.rng.bit_generator.state == meta["rng"], "the generators as before the iteration"
    assert torch.equal(trainer.learner.generator.get_state(), tensors["generator"])


def test_a_pause_mid_iteration_redoes_it_exactly_on_resume(slow):
    straight = Trainer(slow)
    list(straight.run(iterations=1))
    paused = Trainer(slow)
    events = []
    for event in paused.run(iterations=1):
        events.append(event)
        if isinstance(event, IterationProgress) and len(events) < 5:
            paused.pause()
        if isinstance(event, StateChanged) and event.state == "paused":
            assert paused.iteration == 0
            paused.resume()
    assert [s.state for s in events if isinstance(s, StateChanged)] == ["running", "paused", "running"]
    assert torch.equal(paused.theta.detach(), straight.theta.detach())


def test_an_exploding_critic_loss_rolls_back_before_it_is_non_finite(monkeypatch):
    trainer = Trainer(tiny(meta__iterations=40))
    list(trainer.run(iterations=25))
    monkeypatch.setattr(onpolicy, "adapt_ticks", inner_loop_returning(lambda result: result._replace(
        metrics={**result.metrics, "critic_loss": 1e9})))
    event = trainer.step()
    assert isinstance(event, Diverged) and "critic loss" in event.reason
    assert event.rolled_back_to == 24 and trainer.iteration == 25
