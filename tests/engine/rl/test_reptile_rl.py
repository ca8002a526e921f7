"""Reptile over actor and critic(s): the trainer's outer step on ``RLLearner``'s adapted meta-batch, against each
task adapted alone; the learner's adaptation curve."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.events import RLIterationMetrics
from reptile_engine.learner import exhaust
from reptile_engine.presets import preset
from reptile_engine.rl import offpolicy, onpolicy
from reptile_engine.rl.learner import RLLearner
from reptile_engine.rl.offpolicy import TD3Agent
from reptile_engine.rl.onpolicy import collections
from reptile_engine.rl.runner import SEED_HIGH
from reptile_engine.trainer import Trainer

SMALL = {"meta.meta_batch": 3, "meta.lr": 0.5, "meta_schedule.kind": "constant", "rl.horizon": 15,
         "rl.hidden": 16, "rl.depth": 1, "rl.updates": 2, "rl.episodes": 2, "rl.epochs": 2, "rl.minibatches": 2,
         "rl.optimizer": "adam", "rl.lr": 3e-3, "evaluation.tasks": 3, "landscape.every": 0, "seed": 3}
TD3 = {"rl.algorithm": "td3", "rl.gradient_steps": 4, "rl.batch_size": 16}


def small(**changes) -> ExperimentConfig:
    return preset("meta-rl").with_updates({**SMALL, **changes})


class Recorded:
    """A trained-on meta-batch, as the trainer's step saw it: theta, the learner's generators and the rates before
    it, and the ``Adaptation`` it stepped on."""

    def __init__(self, trainer: Trainer, monkeypatch):
        learner = trainer.learner
        self.theta = trainer.theta.detach().clone()
        self.rng = copy.deepcopy(learner.rng)
        self.generator_state = learner.generator.get_state()
        self.rates = trainer.current_rates()
        adapt = learner.adapt

        def recording(theta, config, inner_lr):
            self.adaptation = yield from adapt(theta, config, inner_lr)
            return self.adaptation

        monkeypatch.setattr(learner, "adapt", recording)
        self.event = trainer.step()
        monkeypatch.undo()

    def draws(self, config: ExperimentConfig, learner: RLLearner) -> tuple[list, np.ndarray]:
        """The meta-batch's tasks and episode seeds, drawn again from the learner's generator as it was."""
        count = config.meta.meta_batch
        tasks = learner.family.sample_tasks(self.rng, count)
        return tasks, self.rng.integers(0, SEED_HIGH, size=(collections(config.rl.updates), count))

    def generator(self) -> torch.Generator:
        return torch.Generator().set_state(self.generator_state)


def trained(config: ExperimentConfig, monkeypatch) -> tuple[Trainer, Recorded]:
    trainer = Trainer(config)
    trainer.step()  # start from a theta that is not the initialization
    return trainer, Recorded(trainer, monkeypatch)


@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_outer_step_moves_actor_and_critic_by_eps_towards_the_mean_of_phi(eps, monkeypatch):
    config = small(**{"meta.lr": eps, "rl.meta_log_std": True})
    trainer, step = trained(config, monkeypatch)
    phi, theta0, theta1 = step.adaptation.phi, step.theta, trainer.theta.detach()
    torch.testing.assert_close(theta1, theta0 + eps * (phi.mean(dim=0) - theta0), rtol=1e-6, atol=1e-7)
    agent = trainer.learner.agent
    for part in (agent.actor_slice, agent.log_std_slice, agent.critic_slice):
        assert not torch.allclose(theta1[part], theta0[part], rtol=0, atol=1e-6)
        assert not torch.allclose(phi[0, part], phi[1, part], rtol=0, atol=1e-6)  # tasks adapted differently
    assert isinstance(step.event, RLIterationMetrics) and step.event.inner_lr == step.rates[1]


@pytest.mark.parametrize("algorithm", ["ppo", "td3"])
def test_one_meta_iteration_equals_each_task_adapted_alone_then_the_mean(algorithm, monkeypatch):
    """The batched inner loop and the trainer's outer step against a plain per-task loop with the same seeds.

    PPO's minibatch order is one permutation for all tasks, so each task alone replays it from the same
    generator state. TD3 draws replay batches and target noise for all tasks at once: each task alone is given
    its own row of the batched draws.
    """
    config = small(**{"meta.optimizer": "sgd", **(TD3 if algorithm == "td3" else {})})
    trainer, step = trained(config, monkeypatch)
    learner = trainer.learner
    inner = offpolicy if algorithm == "td3" else onpolicy
    tasks, seeds = step.draws(config, learner)
    drawn: list[tuple] = []
    if algorithm == "td3":
        draw_batch = offpolicy.draw_batch
        monkeypatch.setattr(offpolicy, "draw_batch", lambda *args: drawn.append(draw_batch(*args)) or drawn[-1])
        inner.adapt(learner.agent, learner.runner, step.theta, tasks, seeds, config.rl, step.generator(),
                    lr=step.rates[1])
    phis, metrics = [], []
    for t, task in enumerate(tasks):
        if algorithm == "td3":
            rows = iter([(type(samples)(*(field[t:t + 1] for field in samples)), noise[t:t + 1])
                         for samples, noise in drawn])
            monkeypatch.setattr(offpolicy, "draw_batch", lambda *args, rows=rows: next(rows))
        alone = inner.adapt(learner.agent, learner.runner, step.theta, [task], seeds[:, t:t + 1], config.rl,
                            step.generator(), lr=step.rates[1])
        phis.append(alone.phi[0])
        metrics.append(alone.metrics)
    batched = step.adaptation
    torch.testing.assert_close(batched.phi, torch.stack(phis), rtol=1e-4, atol=1e-5)
    for name in ("critic_loss", "policy_loss", "return_before", "return_after"):
        assert batched.metrics[name] == pytest.approx(np.mean([m[name] for m in metrics]), rel=1e-4, abs=1e-5)
    grad = step.theta - torch.stack(phis).mean(dim=0)
    mask = learner.outer_mask(config)
    if mask is not None:
        grad[mask] = 0.0
    expected = step.theta - step.rates[0] * grad
    torch.testing.assert_close(trainer.theta.detach(), expected, rtol=1e-5, atol=1e-6)


def test_td3_moves_actor_and_both_critics_and_reports_its_exploration_entropy(monkeypatch):
    trainer, step = trained(small(**TD3), monkeypatch)
    agent, theta0, theta1 = trainer.learner.agent, step.theta, trainer.theta.detach()
    assert isinstance(agent, TD3Agent) and trainer.learner.outer_mask(trainer.config) is None
    expected = theta0 + 0.5 * (step.adaptation.phi.mean(dim=0) - theta0)
    torch.testing.assert_close(theta1, expected, rtol=1e-6, atol=1e-7)
    for part in (agent.actor_slice, agent.critic_slice):
        assert not torch.allclose(theta1[part], theta0[part], rtol=0, atol=1e-6)
    assert step.event.entropy == pytest.approx(agent.exploration_entropy)


def test_adam_outer_step_sees_the_pseudo_gradient(monkeypatch):
    trainer = Trainer(small(**{"meta.optimizer": "adam", "meta.lr": 0.01, "rl.meta_log_std": True}))
    step = Recorded(trainer, monkeypatch)
    reference = torch.nn.Parameter(step.theta.clone())
    optimizer = torch.optim.Adam([reference], lr=0.01)
    reference.grad = step.theta - step.adaptation.phi.mean(dim=0)
    optimizer.step()
    torch.testing.assert_close(trainer.theta.detach(), reference.detach())


def test_meta_log_std_off_keeps_thetas_spread_but_adapts_it_per_task(monkeypatch):
    config = small(**{"rl.meta_log_std": False})
    trainer = Trainer(config)
    step = Recorded(trainer, monkeypatch)
    agent, theta0, theta1, phi = trainer.learner.agent, step.theta, trainer.theta.detach(), step.adaptation.phi
    assert trainer.learner.outer_mask(config) == agent.log_std_slice
    assert torch.equal(theta1[agent.log_std_slice], theta0[agent.log_std_slice])
    assert not torch.equal(phi[:, agent.log_std_slice], theta0[agent.log_std_slice].expand(3, -1))
    expected = theta0 + 0.5 * (phi.mean(dim=0) - theta0)
    for part in (agent.actor_slice, agent.critic_slice):
        torch.testing.assert_close(theta1[part], expected[part], rtol=1e-6, atol=1e-7)


def test_the_learner_builds_what_the_rl_section_names():
    learner = RLLearner(small(**{"rl.hidden": 8, "rl.depth": 2, "rl.horizon": 0}))
    assert learner.agent.layout.shapes[0] == (8, 2) and len(learner.agent.actor.layout.shapes) == 6
    assert learner.runner.horizon == learner.family.horizon  # 0: the family's own horizon
    assert learner.inner_rate_field(small()) == "rl.lr" and learner.size == learner.agent.size
    td3 = RLLearner(small(**TD3))
    assert isinstance(td3.agent, TD3Agent) and td3.inner_rate_field(small(**TD3)) == "rl.actor_lr"
    # The first draw of the torch generator is theta's initialization, as in every checkpoint of a fresh run.
    torch.testing.assert_close(learner.initial_theta(), learner.agent.init(torch.Generator().manual_seed(3)),
                               rtol=0, atol=0)


def test_adaptation_curve_is_repeatable_and_leaves_the_learner_alone():
    config = small()
    learner = RLLearner(config)
    theta = learner.initial_theta()
    tasks = learner.family.sample_tasks(np.random.default_rng(123), 4)
    state = learner.state()
    rng_state = copy.deepcopy(state[1]["rng"])
    meta = learner.return_curve(theta, tasks, 2, config, seed=5)
    scratch = learner.return_curve(learner.fresh_theta(5), tasks, 2, config, seed=5)
    assert meta.shape == scratch.shape == (3,) and not np.array_equal(meta, scratch)
    np.testing.assert_array_equal(learner.return_curve(theta, tasks, 2, config, seed=5), meta)
    assert learner.rng.bit_generator.state == rng_state
    assert torch.equal(learner.generator.get_state(), state[0]["generator"])
    curve = learner.evaluate(theta, config, iteration=4)
    assert curve.iteration == 4 and curve.quantity == "return" and list(curve.steps) == [0, 1, 2, 3]
    again = learner.evaluate(theta + 0.01, config, iteration=5)
    np.testing.assert_array_equal(again.scratch, curve.scratch)  # the fresh init's curve, computed once
    assert not np.array_equal(again.meta_init, curve.meta_init)


def test_progress_counts_updates_and_environment_steps():
    config = small()
    learner = RLLearner(config)
    ticks = learner.adapt(learner.initial_theta(), config, config.rl.lr)
    progress = []
    while True:
        try:
            progress.append(next(ticks))
        except StopIteration as done:
            adaptation = done.value
            break
    assert [p.updates_done for p in progress] == sorted(p.updates_done for p in progress)
    assert {p.updates_total for p in progress} == {2} and progress[-1].updates_done == 2
    assert {p.tasks_done for p in progress} == {0, 3}
    assert progress[-1].env_steps <= adaptation.metrics["env_steps"] == learner.runner.env_steps
    assert adaptation.finite and adaptation.references is None
    assert set(adaptation.losses) == {"critic loss"}
    assert exhaust(learner.adapt(learner.initial_theta(), config, config.rl.lr)).phi.shape == (3, learner.size)


def test_config_is_validated_before_a_learner_exists():
    with pytest.raises(ConfigError) as info:
        small(**{"meta.meta_batch": 0})
    assert info.value.field == "meta.meta_batch"
    with pytest.raises(ConfigError) as info:
        small(**{"rl.optimizer": "rmsprop"})
    assert info.value.field == "rl.optimizer"
