"""The on-policy inner loop: updates that learn, per-task independence, and fresh episodes for every update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reptile_engine.config import ConfigError, RLConfig
from reptile_engine.presets import preset
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.onpolicy import (
    adapt,
    agent_loss,
    clip_grad_norm_per_task_,
    make_optimizer,
    prepare_advantages,
    start_params,
    update,
)
from reptile_engine.rl.runner import MetaEpisodeRunner

TASKS = [{"goal": [0.3, -0.2]}, {"goal": [-0.4, 0.1]}, {"goal": [0.1, 0.45]}]


@pytest.fixture
def setting():
    family = make_family("point-nav-2d")
    agent = ActorCritic(2, 2, actor_hidden=(16, 16), critic_hidden=(16, 16), init_log_std=-0.5)
    runner = MetaEpisodeRunner(family, agent, horizon=20)
    theta = agent.init(torch.Generator().manual_seed(0))
    return agent, runner, theta


@pytest.mark.parametrize("config", [
    RLConfig(algorithm="a2c", optimizer="sgd", max_grad_norm=0.0),
    RLConfig(algorithm="ppo", optimizer="adam", lr=1e-3, epochs=1, minibatches=1),
    RLConfig(algorithm="ppo", optimizer="sgd", lr=1e-3, epochs=1, minibatches=1, entropy_coef=0.01),
], ids=["a2c-sgd-unclipped", "ppo-adam", "ppo-sgd-entropy"])
def test_one_inner_update_reduces_each_tasks_agent_loss_on_its_own_batch(setting, config):
    agent, runner, theta = setting
    rollout = runner.collect(theta.expand(3, -1), TASKS, seeds=[3, 4, 5], episodes=4)
    prepare_advantages(rollout.buffer, config)
    batch = rollout.buffer.samples()
    phi = start_params(theta, 3)
    before = agent_loss(agent, phi, batch, config).total.detach()
    optimizer = make_optimizer(phi, config, 1e-3)
    measured = update(agent, phi, optimizer, rollout.buffer, config, torch.Generator().manual_seed(0))
    after = agent_loss(agent, phi, batch, config).total.detach()
    torch.testing.assert_close(measured.total, before)  # one step: the reported loss is the one before it
    assert (after < before).all(), (before, after)
    assert not torch.equal(phi.detach(), theta.expand(3, -1))


def test_adapting_a_meta_batch_equals_adapting_each_task_alone(setting):
    """Per-task gradients, per-task Adam state and per-task clipping: no task leaks into another."""
    agent, runner, theta = setting
    config = RLConfig(updates=2, episodes=2, epochs=2, minibatches=2, optimizer="adam", lr=3e-3, max_grad_norm=0.1)
    seeds = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    together = adapt(agent, runner, theta, TASKS, seeds, config, torch.Generator().manual_seed(0))
    for t, task in enumerate(TASKS):
        alone = adapt(agent, runner, theta, [task], seeds[:, t:t + 1], config, torch.Generator().manual_seed(0))
        torch.testing.assert_close(alone.phi[0], together.phi[t], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(alone.returns[:, 0], together.returns[:, t], rtol=1e-4)


def test_each_update_collects_fresh_episodes_with_the_current_parameters(setting, monkeypatch):
    agent, runner, theta = setting
    config = RLConfig(updates=3, episodes=2, epochs=1, minibatches=2, lr=1e-3)
    calls = []
    collect = runner.collect_steps
    monkeypatch.setattr(runner, "collect_steps", lambda params, tasks, seeds, episodes, **kw:
                        calls.append((params.clone(), list(seeds))) or collect(params, tasks, seeds, episodes, **kw))
    seeds = np.arange(12).reshape(4, 3)
    result = adapt(agent, runner, theta, TASKS, seeds, config, torch.Generator().manual_seed(0))
    assert len(calls) == 4  # K updates + the evaluation of phi
    assert torch.equal(calls[0][0], theta.expand(3, -1))  # the first episodes are theta's
    for k in range(1, 4):
        assert not torch.equal(calls[k][0], calls[k - 1][0])  # every update moved the parameters
        assert calls[k][1] == seeds[k].tolist()  # ... and sees new episodes
    assert torch.equal(calls[-1][0], result.phi)
    assert result.returns.shape == (4, 3)
    assert set(result.metrics) == {"agent_loss", "policy_loss", "critic_loss", "entropy", "return_before",
                                   "return_after"}
    assert result.metrics["return_before"] == pytest.approx(result.returns[0].mean())
    assert result.metrics["return_after"] == pytest.approx(result.returns[-1].mean())
    assert not theta.requires_grad  # the caller's theta is untouched


def test_adapt_checks_the_seed_table(setting):
    agent, runner, theta = setting
    with pytest.raises(ValueError, match="seeds"):
        adapt(agent, runner, theta, TASKS, np.zeros((2, 3)), RLConfig(updates=2), torch.Generator().manual_seed(0))
    # Without the evaluation of phi the table has one row per update.
    result = adapt(agent, runner, theta, TASKS, np.zeros((2, 3)), RLConfig(updates=2), torch.Generator(),
                   evaluate_after=False)
    assert result.returns.shape == (2, 3) and "return_after" not in result.metrics


def test_per_task_gradient_clipping_matches_clip_grad_norm():
    grads = torch.randn(4, 10, generator=torch.Generator().manual_seed(0)) * torch.tensor([[0.01], [1], [5], [20]])
    expected = []
    for row in grads:
        p = torch.nn.Parameter(torch.zeros(10))
        p.grad = row.clone()
        torch.nn.utils.clip_grad_norm_(p, 1.5)
        expected.append(p.grad)
    clipped = grads.clone()
    clip_grad_norm_per_task_(clipped, 1.5)
    torch.testing.assert_close(clipped, torch.stack(expected))


def test_the_rate_and_counts_of_a_call_override_the_config(setting):
    agent, runner, theta = setting
    config = RLConfig(updates=1, episodes=2, epochs=1, minibatches=1, lr=1e-3)
    seeds = np.arange(9).reshape(3, 3)
    longer = adapt(agent, runner, theta, TASKS, seeds, config, torch.Generator().manual_seed(0), updates=2,
                   episodes=3)
    assert longer.returns.shape == (3, 3)
    same = adapt(agent, runner, theta, TASKS, seeds, RLConfig(updates=2, episodes=3, epochs=1, minibatches=1,
                                                              lr=0.05), torch.Generator().manual_seed(0))
    faster = adapt(agent, runner, theta, TASKS, seeds, RLConfig(updates=2, episodes=3, epochs=1, minibatches=1),
                   torch.Generator().manual_seed(0), lr=0.05)
    assert torch.equal(same.phi, faster.phi) and not torch.equal(same.phi, longer.phi)


@pytest.mark.parametrize(("field", "value"), [("algorithm", "dqn"), ("lr", float("nan")), ("epochs", 0),
                                              ("clip_ratio", 1.5), ("gamma", 1.1), ("max_grad_norm", -1.0)])
def test_the_rl_section_is_validated_once_naming_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        preset("meta-rl").with_updates({f"rl.{field}": value})
    assert info.value.field == f"rl.{field}"
