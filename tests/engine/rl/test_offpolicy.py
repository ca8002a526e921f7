"""TD3 as the inner loop: the agent, per-task replay, the TD3 update rules and learning."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from reptile_engine.config import ConfigError, RLConfig
from reptile_engine.presets import preset
from reptile_engine.rl import offpolicy
from reptile_engine.rl.buffers import ReplayBuffer, ReplaySamples
from reptile_engine.rl.families import make_family
from reptile_engine.rl.offpolicy import TD3Agent, adapt, draw_batch, gradient_step, store
from reptile_engine.rl.onpolicy import collections
from reptile_engine.rl.runner import SEED_HIGH, MetaEpisodeRunner, to_env_actions

TASKS = [{"goal": [0.3, -0.2]}, {"goal": [-0.4, 0.1]}, {"goal": [0.1, 0.45]}]
SMALL = RLConfig(algorithm="td3", updates=2, episodes=2, gradient_steps=4, batch_size=16)


def make_setting(horizon: int = 20, hidden: tuple[int, ...] = (16, 16), backend: str = "auto",
                 autoreset_mode: AutoresetMode = AutoresetMode.NEXT_STEP, seed: int = 0):
    family = make_family("point-nav-2d")
    agent = TD3Agent(2, 2, actor_hidden=hidden, critic_hidden=hidden)
    runner = MetaEpisodeRunner(family, agent, horizon=horizon, backend=backend, autoreset_mode=autoreset_mode)
    return agent, runner, agent.init(torch.Generator().manual_seed(seed))


@pytest.fixture
def setting():
    return make_setting()


def seed_table(config: RLConfig, tasks: int = len(TASKS), seed: int = 0, evaluate_after: bool = True) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, SEED_HIGH, size=(collections(config.updates, evaluate_after),
                                                                    tasks))


# --- The agent ---


def test_agent_layout_and_forwards_match_plain_modules_per_task():
    agent = TD3Agent(3, 2, actor_hidden=(8, 8), critic_hidden=(6,), exploration_std=0.3)
    generator = torch.Generator().manual_seed(1)
    params = torch.stack([agent.init(generator) for _ in range(2)])
    names = agent.layout.names
    assert {n.split(".")[0] for n in names} == {"actor", "critic1", "critic2"}
    assert params[0, agent.actor_slice].numel() + params[0, agent.critic_slice].numel() == agent.size
    assert params[:, agent.log_std_slice].numel() == 0
    obs = torch.randn(2, 5, 3, generator=generator)
    actions = torch.rand(2, 5, 2, generator=generator) * 2 - 1
    noise = torch.randn(2, 5, 2, generator=generator) * 10
    policy, (q1, q2) = agent.policy(params, obs), agent.q_values(params, obs, actions)
    act = agent.act(params, obs, noise)
    for t in range(2):
        modules = agent.modules(params[t])
        with torch.no_grad():
            torch.testing.assert_close(policy[t], modules.actor(obs[t]))
            torch.testing.assert_close(q1[t], modules.critic1(torch.cat([obs[t], actions[t]], -1)).squeeze(-1))
            torch.testing.assert_close(q2[t], modules.critic2(torch.cat([obs[t], actions[t]], -1)).squeeze(-1))
    assert policy.abs().max() < 1
    torch.testing.assert_close(act.actions, torch.clamp(policy + 0.3 * noise, -1, 1))
    assert act.actions.abs().max() == 1  # the large noise is clipped to the policy's range
    assert torch.equal(act.log_probs, torch.zeros(2, 5)) and torch.equal(act.values, torch.zeros(2, 5))
    assert torch.equal(agent.value(params, obs), torch.zeros(2, 5))
    gaussian = torch.distributions.Normal(torch.zeros(2), torch.full((2,), 0.3)).entropy().sum()
    assert agent.exploration_entropy == pytest.approx(float(gaussian))


# --- Replay ---


def test_replay_extend_keeps_each_tasks_real_steps_and_samples_only_its_filled_slots():
    replay = ReplayBuffer(capacity=4, obs_dim=1, act_dim=1, tasks=2)
    obs = torch.tensor([[1.0, 2.0, 3.0], [101.0, 102.0, 103.0]]).unsqueeze(-1)
    valid = torch.tensor([[True, False, True], [False, True, False]])
    replay.extend(obs, obs, obs[..., 0], obs + 0.5, obs[..., 0] > 2, valid=valid)
    assert replay.sizes.tolist() == [2, 1] and replay.positions.tolist() == [2, 1]
    with pytest.raises(RuntimeError, match="sizes"):
        _ = replay.size
    sample = replay.sample(torch.Generator().manual_seed(0), batch=200)
    assert set(sample.obs[0, :, 0].tolist()) == {1.0, 3.0}  # task 0's two steps, never the padding or empty slots
    assert set(sample.obs[1, :, 0].tolist()) == {102.0}
    torch.testing.assert_close(sample.next_obs, sample.obs + 0.5)
    assert torch.equal(sample.terminated, sample.rewards > 2)
    # More than the capacity: the same as adding the real steps one at a time to a buffer of each task alone.
    steps = torch.arange(2 * 9, dtype=torch.float32).view(2, 9, 1)
    valid = torch.rand(2, 9, generator=torch.Generator().manual_seed(3)) < 0.8
    replay.extend(steps, steps, steps[..., 0], steps, steps[..., 0] > 0, valid=valid)
    for t in range(2):
        alone = ReplayBuffer(capacity=4, obs_dim=1, act_dim=1, tasks=1)
        alone.extend(obs[t:t + 1], obs[t:t + 1], obs[t:t + 1, :, 0], obs[t:t + 1] + 0.5, obs[t:t + 1, :, 0] > 2,
                     valid=torch.tensor([[True, False, True], [False, True, False]])[t:t + 1])
        for i in range(9):
            if valid[t, i]:
                alone.add(steps[t, i], steps[t, i], steps[t, i, 0], steps[t, i], steps[t, i, 0] > 0)
        assert (alone.size, alone.pos) == (int(replay.sizes[t]), int(replay.positions[t]))
        for field in ("obs", "actions", "rewards", "next_obs", "terminated"):
            assert torch.equal(getattr(replay, field)[t], getattr(alone, field)[0]), field


@pytest.mark.parametrize(("backend", "mode", "horizon"), [
    ("native", AutoresetMode.NEXT_STEP, 30),
    ("vector", AutoresetMode.NEXT_STEP, 30),
    ("vector", AutoresetMode.SAME_STEP, 100),  # the env's own time limit: the last observation is in infos
])
def test_rollouts_carry_the_true_next_observation_into_the_replay_buffer(backend, mode, horizon):
    agent, runner, theta = make_setting(horizon, backend=backend, autoreset_mode=mode, seed=2)
    # Near goals end by termination, the far one runs into the horizon: both kinds of end, at different steps.
    tasks = [{"goal": [0.004, 0.0]}, {"goal": [0.3, -0.2]}]
    rollout = runner.collect(theta.expand(2, -1), tasks, seeds=[5, 6], episodes=2)
    buffer = rollout.buffer
    valid = buffer.valid
    assert buffer.terminated[valid].any() and buffer.truncated[valid].any()
    # Point-nav moves by the clipped action: the next observation follows from the observation and the action.
    moved = buffer.obs + to_env_actions(buffer.actions, runner.action_low, runner.action_high)
    torch.testing.assert_close(buffer.next_obs[valid], moved[valid], rtol=0, atol=1e-6)
    replay = ReplayBuffer(4 * horizon, 2, 2, tasks=2)
    store(replay, buffer)
    assert replay.sizes.tolist() == rollout.episode_lengths.sum(axis=1).tolist()  # no padding stored
    for t in range(2):
        n = int(replay.sizes[t])
        assert torch.equal(replay.next_obs[t, :n], buffer.next_obs[t][valid[t]])
        # Truncated (time-limit) transitions are stored as not terminated, so they bootstrap.
        assert torch.equal(replay.terminated[t, :n], buffer.terminated[t][valid[t]])


# --- The TD3 update ---


def test_td_target_bootstraps_truncated_transitions_but_not_terminated_ones():
    agent = TD3Agent(2, 2, actor_hidden=(8,), critic_hidden=(8,))
    target = torch.stack([agent.init(torch.Generator().manual_seed(s)) for s in (1, 2)])
    obs = torch.tensor([[0.1, 0.2], [0.3, -0.4]]).expand(2, 2, 2)
    next_obs = torch.tensor([[0.5, 0.5], [-0.2, 0.1]]).expand(2, 2, 2)
    # Per task: transition 0 terminated, transition 1 truncated (a time-limit cut: not terminated).
    samples = ReplaySamples(obs, torch.zeros(2, 2, 2), torch.tensor([[1.0, 2.0], [3.0, 4.0]]), next_obs,
                            torch.tensor([[True, False], [True, False]]))
    smoothing = torch.tensor([0.3, -2.0]).expand(2, 2, 2)  # the second component lands outside [-1, 1]
    y = agent.td_target(target, samples, 0.9, smoothing)
    assert y[:, 0].tolist() == [1.0, 3.0]  # no future after termination
    for t in range(2):
        modules = agent.modules(target[t])
        with torch.no_grad():
            s = next_obs[t, 1]
            a = torch.clamp(modules.actor(s) + smoothing[t, 1], -1, 1)
            q = torch.minimum(modules.critic1(torch.cat([s, a])), modules.critic2(torch.cat([s, a])))
        assert y[t, 1].item() == pytest.approx(samples.rewards[t, 1].item() + 0.9 * q.item(), rel=1e-6)
        assert y[t, 1] != samples.rewards[t, 1]


def test_targets_and_online_networks_of_every_task_start_at_theta(setting, monkeypatch):
    agent, runner, theta = setting
    seen = []
    step = offpolicy.gradient_step
    monkeypatch.setattr(offpolicy, "gradient_step", lambda agent, actor, critics, target, *a, **k: seen.append(
        (actor.detach().clone(), critics.detach().clone(), target.clone())) or step(agent, actor, critics, target,
                                                                                     *a, **k))
    collected = []
    collect = runner.collect_steps
    monkeypatch.setattr(runner, "collect_steps", lambda params, *a, **k: collected.append(params.clone())
                        or collect(params, *a, **k))
    adapt(agent, runner, theta, TASKS, seed_table(SMALL), SMALL, torch.Generator().manual_seed(0))
    actor, critics, target = seen[0]
    start = theta.expand(len(TASKS), -1)
    assert torch.equal(collected[0], start)
    assert torch.equal(actor, start[:, agent.actor_slice]) and torch.equal(critics, start[:, agent.critic_slice])
    assert torch.equal(target, start)
    assert len(seen) == SMALL.updates * SMALL.gradient_steps
    assert not torch.equal(seen[-1][2], start)  # the targets move (Polyak) once the actor has stepped


def test_with_policy_delay_the_actor_and_targets_wait_while_the_critics_learn(setting):
    agent, runner, theta = setting
    config = RLConfig(algorithm="td3", updates=1, episodes=2, gradient_steps=1, batch_size=16, policy_delay=2)
    seeds = seed_table(config, evaluate_after=False)
    start = theta.expand(len(TASKS), -1)

    def adapted(config: RLConfig) -> torch.Tensor:
        return adapt(agent, runner, theta, TASKS, seeds, config, torch.Generator().manual_seed(0),
                     evaluate_after=False).phi

    one = adapted(config)
    assert torch.equal(one[:, agent.actor_slice], start[:, agent.actor_slice])  # the first step skips the actor
    assert (one[:, agent.critic_slice] != start[:, agent.critic_slice]).any(dim=1).all()  # ... not the critics
    two = adapted(dataclasses.replace(config, gradient_steps=2))
    assert (two[:, agent.actor_slice] != start[:, agent.actor_slice]).any(dim=1).all()  # the second moves it
    every = adapted(dataclasses.replace(config, policy_delay=1))
    assert (every[:, agent.actor_slice] != start[:, agent.actor_slice]).any(dim=1).all()


def test_target_policy_smoothing_noise_is_clipped(setting):
    agent, runner, theta = setting
    seeds = seed_table(SMALL)

    def phi(**changes: float) -> torch.Tensor:
        config = dataclasses.replace(SMALL, **changes)
        return adapt(agent, runner, theta, TASKS, seeds, config, torch.Generator().manual_seed(0)).phi

    # Huge noise clipped to nothing is no noise at all; unclipped, it changes the targets.
    assert torch.equal(phi(policy_noise=50.0, noise_clip=0.0), phi(policy_noise=0.0))
    assert not torch.equal(phi(policy_noise=0.2), phi(policy_noise=0.0))


def test_a_delayed_step_updates_the_actor_on_q1_then_polyak_averages_the_targets(setting):
    agent, runner, theta = setting
    config = dataclasses.replace(SMALL, tau=0.3)
    rollout = runner.collect(theta.expand(3, -1), TASKS, seeds=[1, 2, 3], episodes=2)
    replay = ReplayBuffer(200, 2, 2, tasks=3)
    store(replay, rollout.buffer)
    critics = torch.nn.Parameter(theta[agent.critic_slice].expand(3, -1).clone())
    actor = torch.nn.Parameter(theta[agent.actor_slice].expand(3, -1).clone())
    target = torch.stack([agent.init(torch.Generator().manual_seed(s)) for s in range(3)])
    optimizers = (torch.optim.SGD([actor], lr=0.1), torch.optim.SGD([critics], lr=0.1))
    before_target = target.clone()
    samples, smoothing = draw_batch(replay, config, torch.Generator().manual_seed(0))
    critic_loss, actor_loss = gradient_step(agent, actor, critics, target, optimizers, samples, smoothing, config,
                                            update_actor=True)
    # The actor's loss is -mean(Q1(s, actor(s))) with the critics as they are after their own step.
    reference = -agent.q_values(agent.prepare_parts(theta[agent.actor_slice].expand(3, -1), critics.detach()),
                                samples.obs, agent.policy(theta.expand(3, -1), samples.obs))[0].mean(-1)
    torch.testing.assert_close(actor_loss, reference)
    assert critic_loss.shape == (3,) and (critic_loss > 0).all()
    online = torch.cat([actor.detach(), critics.detach()], dim=-1)
    torch.testing.assert_close(target, before_target + 0.3 * (online - before_target))


def test_adapt_is_deterministic_and_reports_td3_metrics(setting):
    agent, runner, theta = setting
    seeds = seed_table(SMALL)
    first = adapt(agent, runner, theta, TASKS, seeds, SMALL, torch.Generator().manual_seed(4))
    again = adapt(agent, runner, theta, TASKS, seeds, SMALL, torch.Generator().manual_seed(4))
    assert torch.equal(first.phi, again.phi)
    np.testing.assert_array_equal(first.returns, again.returns)
    assert first.metrics == again.metrics
    other = adapt(agent, runner, theta, TASKS, seeds, SMALL, torch.Generator().manual_seed(5))
    assert not torch.equal(other.phi, first.phi)  # the generator draws the replay batches and target noise
    assert first.returns.shape == (collections(SMALL.updates), len(TASKS))
    assert set(first.metrics) == {"agent_loss", "policy_loss", "critic_loss", "entropy", "return_before",
                                  "return_after"}
    assert first.metrics["agent_loss"] == pytest.approx(first.metrics["policy_loss"] + first.metrics["critic_loss"])
    assert first.metrics["entropy"] == pytest.approx(2 * (math.log(SMALL.exploration_noise)
                                                          + 0.5 * math.log(2 * math.pi * math.e)))
    assert first.metrics["return_before"] == pytest.approx(first.returns[0].mean())
    assert first.metrics["return_after"] == pytest.approx(first.returns[-1].mean())
    assert not theta.requires_grad


def test_td3_inner_loop_improves_point_nav_from_a_random_init():
    agent, runner, theta = make_setting(horizon=30, hidden=(64, 64))
    config = RLConfig(algorithm="td3", updates=4, episodes=4, gradient_steps=128, batch_size=128, max_grad_norm=0.0)
    seeds = seed_table(config)
    result = adapt(agent, runner, theta, TASKS, seeds, config, torch.Generator().manual_seed(0))
    standing_still = runner.evaluate_returns(torch.zeros(3, agent.size), TASKS, 1, seeds[0], deterministic=True)
    before, after = result.returns[0].mean(), result.returns[-1].mean()
    assert after > before + 4.0, result.returns
    assert after > standing_still.mean() + 3.0, (result.returns, standing_still)


def test_adapt_checks_the_seed_table(setting):
    agent, runner, theta = setting
    with pytest.raises(ValueError, match="seeds"):
        adapt(agent, runner, theta, TASKS, np.zeros((2, 3)), SMALL, torch.Generator())


def test_draw_batch_clips_the_smoothing_noise_and_follows_the_generator(setting):
    agent, runner, theta = setting
    replay = ReplayBuffer(200, 2, 2, tasks=3)
    store(replay, runner.collect(theta.expand(3, -1), TASKS, seeds=[1, 2, 3], episodes=2).buffer)
    config = dataclasses.replace(SMALL, policy_noise=5.0, noise_clip=0.3)
    samples, smoothing = draw_batch(replay, config, torch.Generator().manual_seed(7))
    assert smoothing.shape == samples.actions.shape == (3, SMALL.batch_size, 2)
    assert smoothing.abs().max() == pytest.approx(0.3) and (smoothing.abs() < 0.3).any()
    again = draw_batch(replay, config, torch.Generator().manual_seed(7))
    assert torch.equal(again[0].obs, samples.obs) and torch.equal(again[1], smoothing)


@pytest.mark.parametrize(("field", "value"), [
    ("algorithm", "sac"), ("actor_lr", 0.0), ("critic_lr", float("inf")), ("gradient_steps", 0), ("batch_size", 0),
    ("tau", 0.0), ("tau", 1.5), ("gamma", 1.1), ("policy_delay", 0), ("policy_noise", -0.1), ("noise_clip", -1.0),
    ("exploration_noise", 0.0), ("buffer_size", 0), ("max_grad_norm", -1.0), ("updates", -1),
])
def test_the_rl_section_is_validated_once_naming_the_field(field, value):
    with pytest.raises(ConfigError) as info:
        preset("meta-rl").with_updates({"rl.algorithm": "td3", f"rl.{field}": value})
    assert info.value.field == f"rl.{field}"
