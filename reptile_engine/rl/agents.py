"""An actor-critic agent over one flat parameter vector, evaluated for a whole meta-batch at once.

The actor is a Gaussian policy: an MLP (tanh hidden layers) gives the mean action, and a state-independent
``log_std`` parameter gives the spread. The critic is an MLP state-value function. Actor, ``log_std`` and
critic live in ONE flat vector described by a ``ParamLayout`` (names ``actor.*``, ``log_std``, ``critic.*``),
so Reptile's outer step, the divergence check and a checkpoint each see a single tensor: ``[P]`` for the
meta-parameters, ``[T, P]`` for the per-task copies.

Forward passes take per-task parameters ``[T, P]`` and per-task observations ``[T, N, obs_dim]`` and run as
batched matmuls (``BatchedMLP`` from ``reptile_engine.models``), one call for the whole meta-batch.

Per-task gradients come from plain autograd on the stacked tensor: tasks share no parameters, so the
gradient of ``loss.sum()`` (``loss`` shaped ``[T]``) with respect to ``params`` ``[T, P]`` is, row by row, the
gradient of each task's own loss. One backward pass adapts the whole meta-batch (``torch.func.vmap(grad(...))``
computes the same numbers; the test suite checks it).

>>> agent = ActorCritic(obs_dim=2, act_dim=2, actor_hidden=(8,), critic_hidden=(8,))
>>> theta = agent.init(torch.Generator().manual_seed(0))
>>> params = theta.expand(3, -1)                        # 3 tasks, one parameter row each
>>> mean, log_std = agent.policy(params, torch.zeros(3, 5, 2))
>>> tuple(mean.shape), tuple(log_std.shape), tuple(agent.value(params, torch.zeros(3, 5, 2)).shape)
((3, 5, 2), (3, 2), (3, 5))
>>> agent.layout.names[:3], agent.layout.size
(('actor.0.weight', 'actor.0.bias', 'actor.2.weight'), 77)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from reptile_engine.models import BatchedMLP, MLPViews, ParamLayout
from reptile_engine.rl.buffers import RolloutSamples

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The mean of ``x`` ``[T, N]`` over each row's entries where ``mask`` is 1."""
    return (x * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


class PreparedAgent(NamedTuple):
    """Views into a ``[T, P]`` parameter tensor, made once and reused for many forward passes."""

    actor: MLPViews
    log_std: torch.Tensor
    critic: MLPViews


class AgentLoss(NamedTuple):
    """Per-task losses ``[T]``: ``total = policy + value_coef * critic - entropy_coef * entropy``."""

    total: torch.Tensor
    policy: torch.Tensor
    critic: torch.Tensor
    entropy: torch.Tensor


class ActorCriticModules(NamedTuple):
    """One task's agent as ordinary modules (single-observation use, export, reference tests)."""

    actor: nn.Sequential
    log_std: torch.Tensor
    critic: nn.Sequential


class Act(NamedTuple):
    """What the runner needs per time step, each ``[T, N, ...]``."""

    actions: torch.Tensor
    log_probs: torch.Tensor
    values: torch.Tensor


class ActorCritic:
    """A Gaussian actor and a state-value critic in one flat parameter vector.

    Args:
        obs_dim, act_dim: observation and action sizes.
        actor_hidden, critic_hidden: hidden layer widths of the two MLPs.
        activation: ``"tanh"`` (default) or ``"relu"`` for the hidden layers.
        init_log_std: initial ``log_std`` of every action component.
        policy_init_scale: the actor's output layer starts scaled by this (CleanRL uses 0.01), so the initial
            policy is an almost state-independent Gaussian around zero.
    """

    def __init__(self, obs_dim: int, act_dim: int, *, actor_hidden: Sequence[int] = (64, 64),
                 critic_hidden: Sequence[int] = (64, 64), activation: str = "tanh", init_log_std: float = 0.0,
                 policy_init_scale: float = 0.01):
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.init_log_std = float(init_log_std)
        self.policy_init_scale = float(policy_init_scale)
        self.actor = BatchedMLP([self.obs_dim, *actor_hidden, self.act_dim], activation)
        self.critic = BatchedMLP([self.obs_dim, *critic_hidden, 1], activation)
        a, c = self.actor.layout, self.critic.layout
        self.layout = ParamLayout(
            tuple(f"actor.{n}" for n in a.names) + ("log_std",) + tuple(f"critic.{n}" for n in c.names),
            a.shapes + ((self.act_dim,),) + c.shapes)
        self.actor_slice = slice(0, a.size)
        self.log_std_slice = slice(a.size, a.size + self.act_dim)
        self.critic_slice = slice(a.size + self.act_dim, self.layout.size)

    @property
    def size(self) -> int:
        return self.layout.size

    def init(self, generator: torch.Generator) -> torch.Tensor:
        """Flat initial parameters ``[P]`` from ``generator`` (``nn.Linear``'s default init for both MLPs)."""
        actor = self.actor.init(generator)
        *_, last_weight, last_bias = self.actor.layout.views(actor)
        last_weight.mul_(self.policy_init_scale)
        last_bias.mul_(self.policy_init_scale)
        log_std = torch.full((self.act_dim,), self.init_log_std)
        return torch.cat([actor, log_std, self.critic.init(generator)])

    def prepare(self, params: torch.Tensor) -> PreparedAgent:
        """Per-layer views into ``params`` (``[T, P]``); writes to ``params`` show through."""
        return PreparedAgent(self.actor.prepare(params[..., self.actor_slice]), params[..., self.log_std_slice],
                             self.critic.prepare(params[..., self.critic_slice]))

    def _prepared(self, params: torch.Tensor | PreparedAgent) -> PreparedAgent:
        return params if isinstance(params, PreparedAgent) else self.prepare(params)

    def policy(self, params: torch.Tensor | PreparedAgent, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean action ``[T, N, act_dim]`` and ``log_std`` ``[T, act_dim]`` for observations ``[T, N, obs_dim]``."""
        prepared = self._prepared(params)
        return self.actor.forward(prepared.actor, obs), prepared.log_std

    def value(self, params: torch.Tensor | PreparedAgent, obs: torch.Tensor) -> torch.Tensor:
        """State values ``[T, N]`` for observations ``[T, N, obs_dim]``."""
        return self.critic.forward(self._prepared(params).critic, obs).squeeze(-1)

    @staticmethod
    def log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Log-density of ``actions`` ``[T, N, A]`` under the diagonal Gaussian, summed over components: ``[T, N]``."""
        log_std = log_std.unsqueeze(-2)
        z = (actions - mean) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - _HALF_LOG_2PI).sum(-1)

    @staticmethod
    def entropy(log_std: torch.Tensor) -> torch.Tensor:
        """Entropy of the (state-independent) Gaussian policy of each task: ``[T]``."""
        return (log_std + 0.5 + _HALF_LOG_2PI).sum(-1)

    @staticmethod
    def sample(mean: torch.Tensor, log_std: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> torch.Tensor:
        """Actions ``mean + std * noise``; the standard-normal ``noise`` is drawn from ``generator`` if not given."""
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(log_std).unsqueeze(-2) * noise

    def act(self, params: torch.Tensor | PreparedAgent, obs: torch.Tensor, noise: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> Act:
        """Sampled actions, their log-probabilities and the state values, for one step of a meta-batch."""
        prepared = self._prepared(params)
        mean, log_std = self.policy(prepared, obs)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        actions = torch.addcmul(mean, torch.exp(log_std).unsqueeze(-2), noise)
        # log N(mean + std * noise; mean, std) = -noise^2 / 2 - log_std - log(2 pi) / 2, without re-deriving noise
        log_probs = (noise.square().mul(-0.5) - (log_std + _HALF_LOG_2PI).unsqueeze(-2)).sum(-1)
        return Act(actions, log_probs, self.value(prepared, obs))

    def loss(self, params: torch.Tensor | PreparedAgent, samples: RolloutSamples, *, clip_ratio: float | None = None,
             value_coef: float = 0.5, entropy_coef: float = 0.0) -> AgentLoss:
        """Per-task agent loss ``policy + value_coef * critic - entropy_coef * entropy`` (each ``[T]``): the
        ``policy_loss``, the ``critic_loss`` and the policy's entropy."""
        prepared = self._prepared(params)
        policy = self.policy_loss(prepared, samples, clip_ratio)
        critic = self.critic_loss(prepared, samples)
        entropy = self.entropy(prepared.log_std)
        return AgentLoss(policy + value_coef * critic - entropy_coef * entropy, policy, critic, entropy)

    def policy_loss(self, params: torch.Tensor | PreparedAgent, samples: RolloutSamples,
                    clip_ratio: float | None = None) -> torch.Tensor:
        """PPO's clipped surrogate ``mean(max(-A r, -A clip(r, 1 - c, 1 + c)))`` with
        ``r = exp(log_prob - old_log_prob)`` when ``clip_ratio`` is given, else the vanilla policy gradient
        (A2C) ``-mean(A log_prob)``; the mean runs over each task's entries whose ``samples.mask`` is 1: ``[T]``."""
        mean, log_std = self.policy(params, samples.obs)
        log_probs = self.log_prob(mean, log_std, samples.actions)
        advantages = samples.advantages
        if clip_ratio is None:
            return _masked_mean(-advantages * log_probs, samples.mask)
        ratio = torch.exp(log_probs - samples.old_log_probs)
        clipped = torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
        return _masked_mean(torch.maximum(-advantages * ratio, -advantages * clipped), samples.mask)

    def critic_loss(self, params: torch.Tensor | PreparedAgent, samples: RolloutSamples) -> torch.Tensor:
        """The critic's ``mean((V - returns)^2)`` over each task's entries whose ``samples.mask`` is 1: ``[T]``."""
        return _masked_mean((self.value(params, samples.obs) - samples.returns).square(), samples.mask)

    def modules(self, params: torch.Tensor) -> ActorCriticModules:
        """One parameter vector ``[P]`` as ``nn.Sequential`` actor and critic (copies) and the ``log_std``."""
        if params.dim() != 1 or params.shape[0] != self.size:
            raise ValueError(f"expected a flat vector of {self.size} parameters, got shape {tuple(params.shape)}")
        actor, critic = self.actor.module(), self.critic.module()
        with torch.no_grad():
            nn.utils.vector_to_parameters(params[self.actor_slice].detach().clone(), actor.parameters())
            nn.utils.vector_to_parameters(params[self.critic_slice].detach().clone(), critic.parameters())
        return ActorCriticModules(actor, params[self.log_std_slice].detach().clone(), critic)
