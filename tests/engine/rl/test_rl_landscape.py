"""The meta-RL landscape's surrogates are the agents' own losses on one fixed batch of theta's transitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reptile_engine.config import RLConfig
from reptile_engine.rl import landscape
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.offpolicy import TD3Agent
from reptile_engine.rl.onpolicy import agent_loss, prepare_advantages
from reptile_engine.rl.runner import MetaEpisodeRunner

TASK = [{"goal": [0.3, -0.2]}]


def rollout_of(agent, theta: torch.Tensor):
    runner = MetaEpisodeRunner(make_family("point-nav-2d"), agent, horizon=20)
    return runner.collect(theta.expand(1, -1), TASK, seeds=[4], episodes=3)


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_the_on_policy_surface_at_theta_is_the_agents_loss_on_the_batch(algorithm):
    rl = RLConfig(algorithm=algorithm, clip_ratio=0.2)
    agent = ActorCritic(2, 2, actor_hidden=(8,), critic_hidden=(8,), init_log_std=-0.5)
    theta = agent.init(torch.Generator().manual_seed(0))
    rollout = rollout_of(agent, theta)
    policy, count = landscape.surrogate(agent, rl, theta, rollout, "policy", torch.Generator().manual_seed(1))
    critic, _ = landscape.surrogate(agent, rl, theta, rollout, "critic", torch.Generator().manual_seed(1))
    prepare_advantages(rollout.buffer, rl)
    samples = rollout.buffer.samples()
    assert count == int(samples.mask.sum())  # every valid transition of the one task, no padding
    # Perturbed away from theta, so that PPO's ratio differs from 1 and its clip takes part.
    params = theta + 0.3 * torch.randn(3, theta.numel(), generator=torch.Generator().manual_seed(2))
    expected = agent_loss(agent, params, samples.__class__(*(f.expand(3, *f.shape[1:]) for f in samples)), rl)
    torch.testing.assert_close(policy(params), expected.policy)
    torch.testing.assert_close(critic(params), expected.critic)
    with torch.no_grad():
        assert float(policy(theta.unsqueeze(0))[0]) == pytest.approx(
            float(agent_loss(agent, theta.unsqueeze(0), samples, rl).policy[0]), rel=1e-5, abs=1e-6)


def test_the_td3_surface_is_its_critic_loss_against_thetas_td_targets_and_its_actor_loss():
    rl = RLConfig(algorithm="td3", gamma=0.9)
    agent = TD3Agent(2, 2, actor_hidden=(8,), critic_hidden=(8,))
    theta = agent.init(torch.Generator().manual_seed(0))
    rollout = rollout_of(agent, theta)
    policy, count = landscape.surrogate(agent, rl, theta, rollout, "policy", torch.Generator())
    critic, _ = landscape.surrogate(agent, rl, theta, rollout, "critic", torch.Generator())
    buffer = rollout.buffer
    valid = buffer.valid[0]
    assert count == int(valid.sum())
    obs, actions = buffer.obs[0][valid].unsqueeze(0), buffer.actions[0][valid].unsqueeze(0)
    next_obs = buffer.next_obs[0][valid].unsqueeze(0)
    rewards, terminated = buffer.rewards[0][valid].unsqueeze(0), buffer.terminated[0][valid].unsqueeze(0)
    with torch.no_grad():
        next_q = torch.minimum(*agent.q_values(theta.unsqueeze(0), next_obs, agent.policy(theta.unsqueeze(0),
                                                                                          next_obs)))
        targets = rewards + 0.9 * (~terminated) * next_q
        q1, q2 = agent.q_values(theta.unsqueeze(0), obs, actions)
        expected_critic = (q1 - targets).square().mean() + (q2 - targets).square().mean()
        expected_policy = agent.actor_loss(theta.unsqueeze(0), obs)[0]
        assert float(critic(theta.unsqueeze(0))[0]) == pytest.approx(float(expected_critic), rel=1e-5)
        assert float(policy(theta.unsqueeze(0))[0]) == pytest.approx(float(expected_policy), rel=1e-5)


def test_the_fixed_batch_is_subsampled_to_its_limit_the_same_rows_of_every_field():
    agent = ActorCritic(2, 2, actor_hidden=(8,), critic_hidden=(8,))
    theta = agent.init(torch.Generator().manual_seed(0))
    rollout = rollout_of(agent, theta)
    prepare_advantages(rollout.buffer, RLConfig())
    batch = landscape.onpolicy_batch(rollout.buffer.samples(), torch.Generator().manual_seed(0), limit=10)
    assert all(field.shape[:2] == (1, 10) for field in batch)
    full = landscape.onpolicy_batch(rollout.buffer.samples(), torch.Generator().manual_seed(0))
    rows = [int(np.flatnonzero((full.actions[0] == action).all(-1))[0]) for action in batch.actions[0]]
    for field, kept in zip(full, batch, strict=True):
        torch.testing.assert_close(kept[0], field[0, rows])
