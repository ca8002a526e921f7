"""The flat-parameter actor-critic: batched forward, distribution maths, losses and per-task gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch.func import functional_call, grad, vmap

from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.buffers import RolloutSamples

TASKS, POINTS = 4, 7


@pytest.fixture
def agent() -> ActorCritic:
    return ActorCritic(obs_dim=3, act_dim=2, actor_hidden=(16, 8), critic_hidden=(12,), init_log_std=-0.7)


def per_task_params(agent: ActorCritic, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([agent.init(generator) for _ in range(TASKS)])


def random_samples(agent: ActorCritic, seed: int = 1) -> RolloutSamples:
    g = torch.Generator().manual_seed(seed)
    shape = (TASKS, POINTS)
    mask = (torch.rand(shape, generator=g) > 0.2).float()
    obs = torch.randn(*shape, agent.obs_dim, generator=g)
    actions = torch.randn(*shape, agent.act_dim, generator=g)
    old_log_probs = torch.randn(shape, generator=g) - 1.0
    advantages, returns, values = (torch.randn(shape, generator=g) for _ in range(3))
    return RolloutSamples(obs, actions, old_log_probs, advantages, returns, values, mask)


def test_one_flat_vector_holds_actor_log_std_and_critic(agent):
    layout = agent.layout
    assert layout.names[0].startswith("actor.") and layout.names[-1].startswith("critic.")
    assert "log_std" in layout.names
    sizes = [agent.actor_slice, agent.log_std_slice, agent.critic_slice]
    assert sum(s.stop - s.start for s in sizes) == layout.size == agent.size
    theta = agent.init(torch.Generator().manual_seed(0))
    assert theta.shape == (layout.size,)
    assert theta[agent.log_std_slice].tolist() == pytest.approx([-0.7, -0.7])
    modules = agent.modules(theta)
    assert sum(p.numel() for p in modules.actor.parameters()) == agent.actor_slice.stop
    assert isinstance(modules.actor[1], torch.nn.Tanh)
    # The output layer starts small: the initial policy is nearly state-independent.
    assert modules.actor[-1].weight.abs().max() < 0.01


def test_batched_forward_matches_each_tasks_own_modules(agent):
    params = per_task_params(agent)
    obs = torch.randn(TASKS, POINTS, agent.obs_dim, generator=torch.Generator().manual_seed(3))
    mean, log_std = agent.policy(params, obs)
    values = agent.value(params, obs)
    assert mean.shape == (TASKS, POINTS, agent.act_dim) and values.shape == (TASKS, POINTS)
    for t in range(TASKS):
        modules = agent.modules(params[t])
        with torch.no_grad():
            torch.testing.assert_close(mean[t], modules.actor(obs[t]))
            torch.testing.assert_close(values[t], modules.critic(obs[t]).squeeze(-1))
        assert torch.equal(log_std[t], modules.log_std)
    # A prepared view is the same computation, reused.
    prepared = agent.prepare(params)
    assert torch.equal(agent.policy(prepared, obs)[0], mean)


def test_log_prob_entropy_and_sample_agree_with_torch_distributions(agent):
    params = per_task_params(agent)
    obs = torch.randn(TASKS, POINTS, agent.obs_dim)
    mean, log_std = agent.policy(params, obs)
    noise = torch.randn(TASKS, POINTS, agent.act_dim)
    actions = agent.sample(mean, log_std, noise=noise)
    dist = torch.distributions.Normal(mean, log_std.exp().unsqueeze(1))
    torch.testing.assert_close(actions, mean + log_std.exp().unsqueeze(1) * noise)
    torch.testing.assert_close(agent.log_prob(mean, log_std, actions), dist.log_prob(actions).sum(-1))
    torch.testing.assert_close(agent.entropy(log_std), dist.entropy().sum(-1)[:, 0])
    drawn = [agent.sample(mean, log_std, torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(drawn[0], drawn[1])
    act = agent.act(params, obs, noise)
    torch.testing.assert_close(act.actions, actions)
    torch.testing.assert_close(act.values, agent.value(params, obs))


def test_losses_by_hand(agent):
    params = per_task_params(agent)
    samples = random_samples(agent)
    mean, log_std = agent.policy(params, samples.obs)
    log_probs = agent.log_prob(mean, log_std, samples.actions)
    m, count = samples.mask, samples.mask.sum(-1)
    critic = ((agent.value(params, samples.obs) - samples.returns).square() * m).sum(-1) / count
    entropy = agent.entropy(log_std)

    a2c = agent.loss(params, samples, value_coef=0.3, entropy_coef=0.01)
    torch.testing.assert_close(a2c.policy, (-samples.advantages * log_probs * m).sum(-1) / count)
    torch.testing.assert_close(a2c.critic, critic)
    torch.testing.assert_close(a2c.total, a2c.policy + 0.3 * critic - 0.01 * entropy)

    ratio = torch.exp(log_probs - samples.old_log_probs)
    surrogate = torch.maximum(-samples.advantages * ratio, -samples.advantages * ratio.clamp(0.8, 1.2))
    ppo = agent.loss(params, samples, clip_ratio=0.2, value_coef=0.3, entropy_coef=0.01)
    torch.testing.assert_close(ppo.policy, (surrogate * m).sum(-1) / count)
    # With the data's own log-probabilities the ratio is one: the policy loss is minus the mean advantage.
    on_policy = samples._replace(old_log_probs=log_probs.detach())
    torch.testing.assert_close(agent.loss(params, on_policy, clip_ratio=0.2).policy,
                               -(samples.advantages * m).sum(-1) / count)


def test_summing_per_task_losses_gives_each_tasks_own_gradient(agent):
    """The trick the inner loop relies on, checked against torch.func's vmap(grad(single-task loss))."""
    params = per_task_params(agent).requires_grad_(True)
    samples = random_samples(agent)
    loss = agent.loss(params, samples, clip_ratio=0.2, value_coef=0.5, entropy_coef=0.01)
    (batched,) = torch.autograd.grad(loss.total.sum(), params)

    def single_task_loss(flat: torch.Tensor, *fields: torch.Tensor) -> torch.Tensor:
        one = RolloutSamples(*(f.unsqueeze(0) for f in fields))
        return agent.loss(flat.unsqueeze(0), one, clip_ratio=0.2, value_coef=0.5, entropy_coef=0.01).total[0]

    reference = vmap(grad(single_task_loss))(params.detach(), *samples)
    torch.testing.assert_close(batched, reference, rtol=1e-5, atol=1e-6)
    # And against the plain nn.Module of one task, through functional_call.
    t = 2
    modules = agent.modules(params[t].detach())
    actor_params = {n: p.detach().clone().requires_grad_(True) for n, p in modules.actor.named_parameters()}
    mean = functional_call(modules.actor, actor_params, (samples.obs[t],))
    log_std = params[t, agent.log_std_slice].detach()
    z = (samples.actions[t] - mean) / log_std.exp()
    log_probs = (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    a2c_policy = (-samples.advantages[t] * log_probs * samples.mask[t]).sum() / samples.mask[t].sum()
    grads = torch.autograd.grad(a2c_policy, list(actor_params.values()))
    params.grad = None
    agent.loss(params, samples).policy.sum().backward()
    torch.testing.assert_close(params.grad[t, agent.actor_slice], torch.cat([g.reshape(-1) for g in grads]))
    others = [i for i in range(TASKS) if i != t]
    assert params.grad[others].abs().sum() > 0  # every task has its own, different gradient
