"""The off-policy inner loop: from theta, K rounds of TD3 (Fujimoto et al. 2018) on every task of a meta-batch.

``TD3Agent`` is a deterministic actor (tanh output, actions in ``[-1, 1]``) and twin Q critics ``Q1(s, a)``,
``Q2(s, a)`` in ONE flat parameter vector (names ``actor.*``, ``critic1.*``, ``critic2.*``), batched over
tasks on ``BatchedMLP`` like ``ActorCritic``, so the runner, Reptile's outer step and checkpoints treat both
agents alike. It explores with Gaussian noise of a fixed ``exploration_std`` added to the actor's action.

``adapt`` starts every task's actor and critics at theta and its target networks equal to them. Each of the
``K`` updates collects ``episodes`` fresh episodes per task into that task's replay buffer, then takes
``gradient_steps`` TD3 steps on all tasks together:

* critics: ``y = r + gamma * (1 - terminated) * min(Q1', Q2')(s', clip(actor'(s') + clip(noise)))`` (clipped
  double-Q with target policy smoothing; a truncated episode still bootstraps from its true last observation),
  loss ``mean((Q1 - y)^2) + mean((Q2 - y)^2)``;
* every ``policy_delay``-th step: the actor on ``-mean(Q1(s, actor(s)))``, then Polyak averaging of the targets.

The settings are the experiment's ``rl`` section (``reptile_engine.config.RLConfig``), read as they are; a
call may override the actor's rate (the scheduled one), the counts and the evaluation of phi.

Actor and critics are two stacked tensors ``[T, Pa]`` and ``[T, Pc]``, each with a stock ``torch.optim.Adam``:
Adam is elementwise, so these are per-task optimizers (see ``onpolicy``), and summing the per-task losses
gives every task its own gradient. ``phi`` is their concatenation.

>>> from reptile_engine.rl.families import make_family
>>> from reptile_engine.rl.runner import MetaEpisodeRunner
>>> family = make_family("point-nav-2d")
>>> agent = TD3Agent(2, 2, actor_hidden=(8,), critic_hidden=(8,))
>>> agent.layout.names[::4], agent.size
(('actor.0.weight', 'critic1.0.weight', 'critic2.0.weight'), 140)
>>> runner = MetaEpisodeRunner(family, agent, horizon=10)
>>> rl = RLConfig(algorithm="td3", updates=2, episodes=2, gradient_steps=3, batch_size=8)
>>> theta = agent.init(torch.Generator().manual_seed(0))
>>> tasks = family.sample_tasks(np.random.default_rng(0), 3)
>>> seeds = np.arange(9).reshape(3, 3)           # [K + 1 collections, T tasks]
>>> result = adapt(agent, runner, theta, tasks, seeds, rl, torch.Generator().manual_seed(0))
>>> tuple(result.phi.shape), result.returns.shape, sorted(result.metrics)
((3, 140), (3, 3), ['agent_loss', 'critic_loss', 'entropy', 'policy_loss', 'return_after', 'return_before'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from reptile_engine.config import RLConfig
from reptile_engine.learner import exhaust
from reptile_engine.models import BatchedMLP, MLPViews, ParamLayout
from reptile_engine.rl.agents import Act
from reptile_engine.rl.buffers import ReplayBuffer, ReplaySamples, RolloutBuffer
from reptile_engine.rl.onpolicy import (
    InnerResult,
    check_seeds,
    clip_grad_norm_per_task_,
    return_metrics,
    start_params,
)
from reptile_engine.rl.runner import MetaEpisodeRunner, Task, Ticks, relay

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
"""The inner Adam's constants for actor and critics (TD3's and CleanRL's)."""

_HALF_LOG_2PI_E = 0.5 * math.log(2 * math.pi * math.e)


class PreparedTD3(NamedTuple):
    """Views into per-task actor and critic parameters, made once per forward/backward pass."""

    actor: MLPViews
    critic1: MLPViews
    critic2: MLPViews


class TD3Modules(NamedTuple):
    """One task's agent as ordinary modules (single-observation use, export, reference tests)."""

    actor: nn.Sequential
    """Ends in ``Tanh``."""
    critic1: nn.Sequential
    """Takes ``concat(obs, action)``."""
    critic2: nn.Sequential


class TD3Agent:
    """A deterministic tanh actor and twin Q critics in one flat parameter vector.

    Duck-types what ``MetaEpisodeRunner`` and ``RLLearner`` use of ``ActorCritic``; it has no ``log_std``
    (``log_std_slice`` is empty) and no state value (``value`` is zero, so the runner's truncation bootstrap,
    which only on-policy learning reads, is zero too).

    Args:
        obs_dim, act_dim: observation and action sizes.
        actor_hidden, critic_hidden: hidden layer widths (both critics alike).
        activation: ``"relu"`` (TD3's and CleanRL's choice) or ``"tanh"`` for the hidden layers.
        exploration_std: std of the Gaussian noise added to the actor's action when acting, in ``[-1, 1]`` units.
    """

    def __init__(self, obs_dim: int, act_dim: int, *, actor_hidden: Sequence[int] = (256, 256),
                 critic_hidden: Sequence[int] = (256, 256), activation: str = "relu", exploration_std: float = 0.1):
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.exploration_std = float(exploration_std)
        self.actor = BatchedMLP([self.obs_dim, *actor_hidden, self.act_dim], activation)
        self.critic = BatchedMLP([self.obs_dim + self.act_dim, *critic_hidden, 1], activation)
        a, c = self.actor.layout, self.critic.layout
        self.layout = ParamLayout(
            tuple(f"actor.{n}" for n in a.names) + tuple(f"critic1.{n}" for n in c.names)
            + tuple(f"critic2.{n}" for n in c.names), a.shapes + c.shapes + c.shapes)
        self.actor_slice = slice(0, a.size)
        self.critic_slice = slice(a.size, self.layout.size)
        self.log_std_slice = slice(a.size, a.size)

    @property
    def size(self) -> int:
        return self.layout.size

    @property
    def exploration_entropy(self) -> float:
        """Differential entropy of the exploration noise ``N(0, exploration_std^2 I)`` (a constant per agent)."""
        return self.act_dim * (math.log(self.exploration_std) + _HALF_LOG_2PI_E)

    def init(self, generator: torch.Generator) -> torch.Tensor:
        """Flat initial parameters ``[P]`` from ``generator`` (``nn.Linear``'s default init, as TD3 uses)."""
        return torch.cat([self.actor.init(generator), self.critic.init(generator), self.critic.init(generator)])

    def prepare(self, params: torch.Tensor) -> PreparedTD3:
        """Per-layer views into ``params`` (``[T, P]``); writes to ``params`` show through."""
        return self.prepare_parts(params[..., self.actor_slice], params[..., self.critic_slice])

    def prepare_parts(self, actor: torch.Tensor, critics: torch.Tensor) -> PreparedTD3:
        """Views into separate actor ``[T, Pa]`` and critic ``[T, Pc]`` parameters (each optimized on its own)."""
        c = self.critic.layout.size
        return PreparedTD3(self.actor.prepare(actor), self.critic.prepare(critics[..., :c]),
                           self.critic.prepare(critics[..., c:]))

    def _prepared(self, params: torch.Tensor | PreparedTD3) -> PreparedTD3:
        return params if isinstance(params, PreparedTD3) else self.prepare(params)

    def policy(self, params: torch.Tensor | PreparedTD3, obs: torch.Tensor) -> torch.Tensor:
        """The actor's actions ``[T, N, act_dim]`` in ``[-1, 1]`` for observations ``[T, N, obs_dim]``."""
        return torch.tanh(self.actor.forward(self._prepared(params).actor, obs))

    def q_values(self, params: torch.Tensor | PreparedTD3, obs: torch.Tensor,
                 actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q1(s, a)`` and ``Q2(s, a)``, each ``[T, N]``."""
        prepared = self._prepared(params)
        x = torch.cat([obs, actions], dim=-1)
        return (self.critic.forward(prepared.critic1, x).squeeze(-1),
                self.critic.forward(prepared.critic2, x).squeeze(-1))

    def act(self, params: torch.Tensor | PreparedTD3, obs: torch.Tensor, noise: torch.Tensor | None = None,
            generator: torch.Generator | None = None) -> Act:
        """``clamp(actor(obs) + exploration_std * noise, -1, 1)``; log-probabilities and values are zeros."""
        actions = self.policy(params, obs)
        if noise is None:
            noise = torch.randn(actions.shape, generator=generator, device=actions.device, dtype=actions.dtype)
        actions = torch.clamp(actions + self.exploration_std * noise, -1.0, 1.0)
        zeros = actions.new_zeros(actions.shape[:-1])
        return Act(actions, zeros, zeros)

    def value(self, params: torch.Tensor | PreparedTD3, obs: torch.Tensor) -> torch.Tensor:
        """Zeros ``[T, N]``: TD3 bootstraps from its replayed next observations, not a rollout state value."""
        return obs.new_zeros(obs.shape[:-1])

    def td_target(self, target: torch.Tensor | PreparedTD3, samples: ReplaySamples, gamma: float,
                  smoothing: torch.Tensor) -> torch.Tensor:
        """``r + gamma * (1 - terminated) * min(Q1', Q2')(s', clamp(actor'(s') + smoothing, -1, 1))`` ``[T, B]``.

        ``target`` are the target networks; ``smoothing`` is the (already clipped) target policy noise
        ``[T, B, act_dim]``. Only termination stops the bootstrap: a truncated transition is not terminated.
        """
        prepared = self._prepared(target)
        next_actions = torch.clamp(self.policy(prepared, samples.next_obs) + smoothing, -1.0, 1.0)
        q1, q2 = self.q_values(prepared, samples.next_obs, next_actions)
        return samples.rewards + gamma * (~samples.terminated) * torch.minimum(q1, q2)

    def critic_loss(self, params: torch.Tensor | PreparedTD3, samples: ReplaySamples,
                    target_q: torch.Tensor) -> torch.Tensor:
        """``mean((Q1 - y)^2) + mean((Q2 - y)^2)`` of each task, ``[T]``."""
        q1, q2 = self.q_values(params, samples.obs, samples.actions)
        return (q1 - target_q).square().mean(-1) + (q2 - target_q).square().mean(-1)

    def actor_loss(self, params: torch.Tensor | PreparedTD3, obs: torch.Tensor) -> torch.Tensor:
        """``-mean(Q1(s, actor(s)))`` of each task, ``[T]`` (detach the critics to train the actor alone)."""
        prepared = self._prepared(params)
        return -self.q_values(prepared, obs, self.policy(prepared, obs))[0].mean(-1)

    def modules(self, params: torch.Tensor) -> TD3Modules:
        """One parameter vector ``[P]`` as ``nn.Sequential`` actor and critics (copies)."""
        if params.dim() != 1 or params.shape[0] != self.size:
            raise ValueError(f"expected a flat vector of {self.size} parameters, got shape {tuple(params.shape)}")
        c = self.critic.layout.size
        actor, critic1, critic2 = self.actor.module(), self.critic.module(), self.critic.module()
        parts = (params[self.actor_slice], params[self.critic_slice][:c], params[self.critic_slice][c:])
        with torch.no_grad():
            for module, part in zip((actor, critic1, critic2), parts, strict=True):
                nn.utils.vector_to_parameters(part.detach().clone(), module.parameters())
        return TD3Modules(nn.Sequential(*actor, nn.Tanh()), critic1, critic2)


def store(replay: ReplayBuffer, rollout: RolloutBuffer) -> None:
    """Every real step of a rollout into its task's replay buffer (padding is left out)."""
    replay.extend(rollout.obs.flatten(1, 2), rollout.actions.flatten(1, 2), rollout.rewards.flatten(1, 2),
                  rollout.next_obs.flatten(1, 2), rollout.terminated.flatten(1, 2), valid=rollout.valid.flatten(1, 2))


def _step(optimizer: torch.optim.Optimizer, params: nn.Parameter, loss: torch.Tensor, max_grad_norm: float) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.sum().backward()  # sum over tasks: row t of the gradient is task t's own
    if max_grad_norm > 0:
        clip_grad_norm_per_task_(params.grad, max_grad_norm)
    optimizer.step()


def draw_batch(replay: ReplayBuffer, rl: RLConfig, generator: torch.Generator) -> tuple[ReplaySamples, torch.Tensor]:
    """The next gradient step's ``rl.batch_size`` replayed transitions per task and their target policy smoothing
    noise ``[T, B, act_dim]`` (clipped to ``rl.noise_clip``), both from ``generator``."""
    samples = replay.sample(generator, rl.batch_size)
    noise = torch.randn(samples.actions.shape, generator=generator).to(samples.actions.device)
    return samples, (noise * rl.policy_noise).clamp(-rl.noise_clip, rl.noise_clip)


def gradient_step(agent: TD3Agent, actor: nn.Parameter, critics: nn.Parameter, target: torch.Tensor,
                  optimizers: tuple[torch.optim.Optimizer, torch.optim.Optimizer], samples: ReplaySamples,
                  smoothing: torch.Tensor, rl: RLConfig, *, update_actor: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One TD3 step of every task on ``draw_batch``'s transitions: the critics; with ``update_actor`` also the
    actor, then the targets.

    ``target`` ``[T, P]`` holds the target networks and is Polyak-averaged in place. Returns the per-task critic
    and actor losses ``[T]``, each measured before its own step (the actor's after the critics' step, as TD3
    orders them; also when it does not step). ``rl.max_grad_norm`` clips each task's actor and critic gradients
    (0: no clipping).
    """
    actor_optimizer, critic_optimizer = optimizers
    with torch.no_grad():
        target_q = agent.td_target(target, samples, rl.gamma, smoothing)
    critic_loss = agent.critic_loss(agent.prepare_parts(actor.detach(), critics), samples, target_q)
    _step(critic_optimizer, critics, critic_loss, rl.max_grad_norm)
    with torch.set_grad_enabled(update_actor):
        actor_loss = agent.actor_loss(agent.prepare_parts(actor, critics.detach()), samples.obs)
    if update_actor:
        _step(actor_optimizer, actor, actor_loss, rl.max_grad_norm)
        with torch.no_grad():
            target[:, agent.actor_slice].lerp_(actor, rl.tau)
            target[:, agent.critic_slice].lerp_(critics, rl.tau)
    return critic_loss.detach(), actor_loss.detach()


def adapt(agent: TD3Agent, runner: MetaEpisodeRunner, theta: torch.Tensor, tasks: Sequence[Task],
          seeds: np.ndarray | Sequence[Sequence[int]], rl: RLConfig, generator: torch.Generator, *,
          lr: float | None = None, updates: int | None = None, episodes: int | None = None,
          evaluate_after: bool = True) -> InnerResult:
    """Adapt theta to every task with ``updates`` (default ``rl.updates``) rounds of TD3; see the module docstring.

    ``lr`` is the actor's rate (default ``rl.actor_lr``, the scheduled rate during training; the critics keep
    ``rl.critic_lr``). ``seeds`` is ``[collections(updates, evaluate_after), T]``: row ``k`` seeds the episodes
    collected in round ``k`` (the last row, with ``evaluate_after``, the evaluation episodes; all with
    exploration noise). ``generator`` draws the replay batches and the target smoothing noise. Neither ``theta``
    nor the runner's state is modified. Metrics: ``critic_loss`` and ``policy_loss`` (the actor's) averaged over
    tasks and gradient steps, ``agent_loss`` their sum, ``entropy`` the exploration noise's
    (``TD3Agent.exploration_entropy``), and ``return_before``/``return_after`` as on-policy.
    """
    return exhaust(adapt_ticks(agent, runner, theta, tasks, seeds, rl, generator, lr=lr, updates=updates,
                               episodes=episodes, evaluate_after=evaluate_after))


def adapt_ticks(agent: TD3Agent, runner: MetaEpisodeRunner, theta: torch.Tensor, tasks: Sequence[Task],
                seeds: np.ndarray | Sequence[Sequence[int]], rl: RLConfig, generator: torch.Generator, *,
                lr: float | None = None, updates: int | None = None, episodes: int | None = None,
                evaluate_after: bool = True) -> Ticks[InnerResult]:
    """``adapt`` as ``Ticks``: yields the updates done so far after every environment and gradient step."""
    tasks = list(tasks)
    updates = rl.updates if updates is None else int(updates)
    episodes = episodes or rl.episodes
    seeds = check_seeds(seeds, updates, evaluate_after, len(tasks))
    start = start_params(theta, len(tasks)).detach()
    target = start.clone()
    actor = nn.Parameter(start[:, agent.actor_slice].clone())
    critics = nn.Parameter(start[:, agent.critic_slice].clone())
    optimizers = (torch.optim.Adam([actor], lr=rl.actor_lr if lr is None else lr, betas=ADAM_BETAS, eps=ADAM_EPS),
                  torch.optim.Adam([critics], lr=rl.critic_lr, betas=ADAM_BETAS, eps=ADAM_EPS))
    capacity = max(1, min(rl.buffer_size, updates * episodes * runner.horizon))
    replay = ReplayBuffer(capacity, agent.obs_dim, agent.act_dim, len(tasks), device=start.device)

    def phi() -> torch.Tensor:
        return torch.cat([actor.detach(), critics.detach()], dim=-1)

    returns, losses, steps = [], [], 0
    for k in range(updates):
        rollout = yield from relay(runner.collect_steps(phi(), tasks, seeds[k], episodes), k)
        returns.append(rollout.episode_returns.mean(axis=1))
        store(replay, rollout.buffer)
        for _ in range(rl.gradient_steps):
            steps += 1
            batch = draw_batch(replay, rl, generator)
            losses.append(torch.stack(gradient_step(agent, actor, critics, target, optimizers, *batch, rl,
                                                    update_actor=steps % rl.policy_delay == 0)))
            yield k
    if evaluate_after:
        evaluation = yield from relay(runner.collect_steps(phi(), tasks, seeds[-1], episodes), updates)
        returns.append(evaluation.episode_returns.mean(axis=1))
    metrics: dict[str, float] = {}
    if losses:
        critic_loss, policy_loss = torch.stack(losses).mean(dim=(0, 2)).tolist()
        metrics.update(agent_loss=critic_loss + policy_loss, policy_loss=policy_loss, critic_loss=critic_loss,
                       entropy=agent.exploration_entropy)
    metrics.update(return_metrics(returns, evaluate_after))
    return InnerResult(phi(), np.stack(returns) if returns else np.zeros((0, len(tasks))), metrics)
