"""Reptile's outer step over actor and critic, the learner's adaptation curve, and bit-exact resume."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from reptile_engine import checkpoint
from reptile_engine.rl.onpolicy import OnPolicyConfig, adapt
from reptile_engine.rl.reptile_rl import SEED_HIGH, RLMetaConfig, RLMetaLearner

SMALL = RLMetaConfig(meta_batch=3, horizon=15, actor_hidden=(16,), critic_hidden=(16,), meta_lr=0.5,
                     inner=OnPolicyConfig(updates=2, episodes=2, epochs=2, minibatches=2, lr=3e-3), seed=3)


@pytest.mark.parametrize("eps", [0.5, 1.0])
def test_outer_step_moves_actor_and_critic_by_eps_towards_the_mean_of_phi(eps, monkeypatch):
    learner = RLMetaLearner(dataclasses.replace(SMALL, meta_lr=eps))
    learner.step()  # start from a theta that is not the initialization
    theta0 = learner.theta.detach().clone()
    rng = copy.deepcopy(learner.rng)
    generator = torch.Generator().set_state(learner.generator.get_state())
    starts = []
    collect = learner.runner.collect_steps
    monkeypatch.setattr(learner.runner, "collect_steps", lambda params, *a, **k:
                        starts.append(params.clone()) or collect(params, *a, **k))

    learner.step()

    # Every task's inner loop started from theta: actor, log_std and critic.
    assert torch.equal(starts[0], theta0.expand(SMALL.meta_batch, -1))
    # The same inner loop done by hand, from the same random state, gives the same phi.
    tasks = learner.family.sample_tasks(rng, SMALL.meta_batch)
    seeds = rng.integers(0, SEED_HIGH, size=(SMALL.inner.collections, SMALL.meta_batch))
    assert tasks == learner.last_tasks
    manual = adapt(learner.agent, learner.runner, theta0, tasks, seeds, SMALL.inner, generator)
    phi = learner.last_result.phi
    assert torch.equal(manual.phi, phi)
    # theta <- theta + eps * (mean(phi) - theta), for every part of the agent.
    expected = theta0 + eps * (phi.mean(dim=0) - theta0)
    theta1 = learner.theta.detach()
    torch.testing.assert_close(theta1, expected, rtol=1e-6, atol=1e-7)
    agent = learner.agent
    for part in (agent.actor_slice, agent.log_std_slice, agent.critic_slice):
        assert not torch.allclose(theta1[part], theta0[part], rtol=0, atol=1e-6)
        assert not torch.allclose(phi[0, part], phi[1, part], rtol=0, atol=1e-6)  # tasks adapted differently


def test_adam_outer_step_sees_the_pseudo_gradient():
    learner = RLMetaLearner(dataclasses.replace(SMALL, meta_optimizer="adam", meta_lr=0.01))
    theta0 = learner.theta.detach().clone()
    learner.step()
    reference = torch.nn.Parameter(theta0.clone())
    optimizer = torch.optim.Adam([reference], lr=0.01)
    reference.grad = theta0 - learner.last_result.phi.mean(dim=0)
    optimizer.step()
    torch.testing.assert_close(learner.theta.detach(), reference.detach())


def test_meta_log_std_off_keeps_thetas_spread_but_adapts_it_per_task():
    learner = RLMetaLearner(dataclasses.replace(SMALL, meta_log_std=False))
    theta0 = learner.theta.detach().clone()
    learner.step()
    agent, theta1, phi = learner.agent, learner.theta.detach(), learner.last_result.phi
    assert torch.equal(theta1[agent.log_std_slice], theta0[agent.log_std_slice])
    assert not torch.equal(phi[:, agent.log_std_slice], theta0[agent.log_std_slice].expand(SMALL.meta_batch, -1))
    expected = theta0 + SMALL.meta_lr * (phi.mean(dim=0) - theta0)
    for part in (agent.actor_slice, agent.critic_slice):
        torch.testing.assert_close(theta1[part], expected[part], rtol=1e-6, atol=1e-7)


def _without_time(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "seconds"}


@pytest.mark.parametrize("meta_optimizer", ["sgd", "adam"])
def test_resume_from_a_checkpoint_is_bit_exact(meta_optimizer, tmp_path):
    config = dataclasses.replace(SMALL, meta_optimizer=meta_optimizer, meta_lr=0.3 if meta_optimizer == "sgd" else 0.01)
    straight = RLMetaLearner(config)
    first = [_without_time(straight.step()) for _ in range(2)]
    rest = [_without_time(straight.step()) for _ in range(2)]

    interrupted = RLMetaLearner(config)
    assert [_without_time(interrupted.step()) for _ in range(2)] == first
    state = interrupted.state_dict()
    path = checkpoint.save(tmp_path / "rl.safetensors", state["tensors"], state["meta"])
    tensors, meta = checkpoint.load(path)
    resumed = RLMetaLearner(dataclasses.replace(config, seed=config.seed + 1))  # its own state is overwritten
    resumed.load_state_dict({"tensors": tensors, "meta": meta})
    assert resumed.iteration == 2
    assert [_without_time(resumed.step()) for _ in range(2)] == rest
    assert torch.equal(resumed.theta.detach(), straight.theta.detach())
    assert RLMetaConfig.from_dict(meta["config"]) == config


def test_adaptation_curve_is_repeatable_and_leaves_the_learner_alone():
    learner = RLMetaLearner(SMALL)
    tasks = learner.family.sample_tasks(np.random.default_rng(123), 4)
    rng_state = copy.deepcopy(learner.rng.bit_generator.state)
    generator_state = learner.generator.get_state()
    theta = learner.theta.detach().clone()
    meta, scratch = learner.adaptation_curve(tasks, updates=2, seed=5)
    assert meta.shape == scratch.shape == (3,)
    again = learner.adaptation_curve(tasks, updates=2, seed=5)
    np.testing.assert_array_equal(again[0], meta)
    np.testing.assert_array_equal(again[1], scratch)
    assert learner.rng.bit_generator.state == rng_state
    assert torch.equal(learner.generator.get_state(), generator_state)
    assert torch.equal(learner.theta.detach(), theta)
    # The scratch curve starts from the fresh init of `seed`: with theta set to it, both curves coincide.
    with torch.no_grad():
        learner.theta.copy_(learner.agent.init(torch.Generator().manual_seed(5)))
    same_meta, same_scratch = learner.adaptation_curve(tasks, updates=2, seed=5)
    np.testing.assert_array_equal(same_meta, same_scratch)
    np.testing.assert_array_equal(same_scratch, scratch)


def test_config_is_validated():
    with pytest.raises(ValueError, match="meta_batch"):
        RLMetaLearner(dataclasses.replace(SMALL, meta_batch=0))
    with pytest.raises(ValueError, match="inner.optimizer"):
        RLMetaLearner(dataclasses.replace(SMALL, inner=OnPolicyConfig(optimizer="rmsprop")))
