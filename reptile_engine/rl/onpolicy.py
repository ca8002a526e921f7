"""The on-policy inner loop: from theta, K actor-critic updates on every task of a meta-batch at once.

Every task starts from the same meta-parameters theta (actor, ``log_std`` and critic). Each of the ``K``
updates collects fresh episodes of every task with its current parameters (``MetaEpisodeRunner``), computes
GAE in the rollout buffer, and runs A2C (one full-batch gradient step) or PPO (``epochs`` passes over
``minibatches`` minibatches with the clipped surrogate) on all tasks together.

The adapted parameters are one ``[T, P]`` tensor; the per-task losses ``[T]`` are summed and differentiated
once (tasks share no parameters, so row ``t`` of the gradient is task ``t``'s own gradient). The inner
optimizer is a stock ``torch.optim.SGD``/``Adam`` over that one tensor: both are elementwise, so on the
stacked tensor they ARE per-task optimizers with per-task state (Adam's moments are ``[T, P]``; the step
count is shared because every task takes the same steps). Gradient clipping is the only non-elementwise
part and is done per task (each row's norm).

>>> from reptile_engine.rl.agents import ActorCritic
>>> from reptile_engine.rl.families import make_family
>>> from reptile_engine.rl.runner import MetaEpisodeRunner
>>> family = make_family("point-nav-2d")
>>> agent = ActorCritic(2, 2, actor_hidden=(8,), critic_hidden=(8,))
>>> runner = MetaEpisodeRunner(family, agent, horizon=10)
>>> config = OnPolicyConfig(updates=2, episodes=2, epochs=2, minibatches=2)
>>> theta = agent.init(torch.Generator().manual_seed(0))
>>> tasks = family.sample_tasks(np.random.default_rng(0), 3)
>>> seeds = np.arange(9).reshape(3, 3)           # [K + 1 collections, T tasks]
>>> result = adapt(agent, runner, theta, tasks, seeds, config, torch.Generator().manual_seed(0))
>>> tuple(result.phi.shape), result.returns.shape, sorted(result.metrics)[:3]
((3, 77), (3, 3), ['agent_loss', 'critic_loss', 'entropy'])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from reptile_engine.rl.agents import ActorCritic, AgentLoss
from reptile_engine.rl.buffers import RolloutBuffer, RolloutSamples
from reptile_engine.rl.runner import MetaEpisodeRunner, Task, Ticks, exhaust, relay

ALGORITHMS = ("ppo", "a2c")
OPTIMIZERS = ("adam", "sgd")


class InnerLoopSettings:
    """What the on- and off-policy inner-loop configs share: ``collections`` and the checks of common fields."""

    @property
    def collections(self) -> int:
        """Rollouts one inner loop collects: one per update, plus the evaluation after the last one."""
        return self.updates + int(self.evaluate_after)

    def _check(self, name: str, ok: bool, allowed: str) -> None:
        if not ok:
            raise ValueError(f"inner.{name} = {getattr(self, name)!r}: must be {allowed}")

    def _check_shared(self, numbers: tuple[str, ...], counts: tuple[str, ...]) -> None:
        """Finite ``numbers``, positive ``counts`` (``updates`` may be 0), Adam's constants, gamma, clipping."""
        for name in numbers:
            value = getattr(self, name)
            self._check(name, isinstance(value, int | float) and math.isfinite(value), "a finite number")
        for name in counts:
            value = getattr(self, name)
            self._check(name, isinstance(value, int) and value >= (0 if name == "updates" else 1),
                        "a non-negative integer" if name == "updates" else "a positive integer")
        self._check("adam_beta1", 0 <= self.adam_beta1 < 1, "in [0, 1)")
        self._check("adam_beta2", 0 <= self.adam_beta2 < 1, "in [0, 1)")
        self._check("adam_eps", self.adam_eps > 0, "positive")
        self._check("gamma", 0 <= self.gamma <= 1, "in [0, 1]")
        self._check("max_grad_norm", self.max_grad_norm is None
                    or (isinstance(self.max_grad_norm, int | float) and math.isfinite(self.max_grad_norm)
                        and self.max_grad_norm > 0), "None or a positive finite number")


@dataclass(frozen=True)
class OnPolicyConfig(InnerLoopSettings):
    """Settings of the on-policy inner loop (CleanRL-style: one field per hyperparameter)."""

    algorithm: str = "ppo"
    """``"ppo"`` (clipped surrogate, several epochs of minibatches) or ``"a2c"`` (one full-batch step)."""
    updates: int = 3
    """K: policy updates per task, each on freshly collected episodes."""
    episodes: int = 10
    """Episodes collected per task for each update."""
    lr: float = 3e-3
    """Inner learning rate."""
    optimizer: str = "adam"
    """``"adam"`` or ``"sgd"``; fresh state for every inner loop."""
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-5
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE's lambda: 0 is one-step TD, 1 is Monte Carlo."""
    clip_ratio: float = 0.2
    """PPO's probability-ratio clip range."""
    epochs: int = 4
    """PPO: passes over each rollout."""
    minibatches: int = 4
    """PPO: minibatches per pass (over each task's steps; all tasks update together)."""
    value_coef: float = 0.5
    """Weight of the critic loss in the agent loss."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus in the agent loss."""
    max_grad_norm: float | None = 0.5
    """Clip each task's gradient to this L2 norm; ``None`` disables clipping."""
    normalize_advantages: bool = True
    """Standardize each task's advantages over its rollout before the update."""
    evaluate_after: bool = True
    """Collect one more set of episodes with the adapted parameters (the return after K updates)."""

    def validate(self) -> OnPolicyConfig:
        """Return ``self`` or raise ``ValueError`` naming the field, the value and what is allowed."""
        self._check_shared(("lr", "adam_beta1", "adam_beta2", "adam_eps", "gamma", "gae_lambda", "clip_ratio",
                            "value_coef", "entropy_coef"), ("updates", "episodes", "epochs", "minibatches"))
        self._check("algorithm", self.algorithm in ALGORITHMS, f"one of {ALGORITHMS}")
        self._check("optimizer", self.optimizer in OPTIMIZERS, f"one of {OPTIMIZERS}")
        self._check("lr", self.lr > 0, "positive")
        self._check("gae_lambda", 0 <= self.gae_lambda <= 1, "in [0, 1]")
        self._check("clip_ratio", 0 < self.clip_ratio < 1, "in (0, 1)")
        self._check("value_coef", self.value_coef >= 0, "non-negative")
        self._check("entropy_coef", self.entropy_coef >= 0, "non-negative")
        return self


class InnerResult(NamedTuple):
    phi: torch.Tensor
    """Adapted parameters ``[T, P]`` (actor, ``log_std`` and critic)."""
    returns: np.ndarray
    """``[collections, T]``: row ``k`` is each task's mean episode return after ``k`` updates."""
    metrics: dict[str, float]
    """Losses and entropy averaged over tasks and gradient steps; ``return_before`` (theta's episodes) and, with
    ``evaluate_after``, ``return_after`` (phi's episodes after the K updates)."""


def start_params(theta: torch.Tensor, tasks: int) -> nn.Parameter:
    """Every task's starting point: a ``[tasks, P]`` copy of theta (``[P]``, or already ``[tasks, P]``).

    An off-policy inner loop would build its target networks with the same call, so that they too start at
    theta and equal to the online networks.
    """
    return nn.Parameter(theta.detach().expand(tasks, -1).clone())


def make_optimizer(phi: nn.Parameter, config: OnPolicyConfig) -> torch.optim.Optimizer:
    """A stock optimizer over the stacked ``[T, P]`` tensor: per-task SGD or Adam (see the module docstring)."""
    if config.optimizer == "adam":
        return torch.optim.Adam([phi], lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                eps=config.adam_eps)
    return torch.optim.SGD([phi], lr=config.lr)


def agent_loss(agent: ActorCritic, params: torch.Tensor, samples: RolloutSamples, config: OnPolicyConfig) -> AgentLoss:
    """The configured algorithm's per-task agent loss ``[T]`` on ``samples``."""
    return agent.loss(params, samples, clip_ratio=config.clip_ratio if config.algorithm == "ppo" else None,
                      value_coef=config.value_coef, entropy_coef=config.entropy_coef)


def clip_grad_norm_per_task_(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` applied to each row of ``grad`` ``[T, P]`` separately; returns the norms ``[T]``."""
    norms = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
    grad.mul_(torch.clamp(max_norm / (norms + 1e-6), max=1.0))
    return norms.squeeze(-1)


def prepare_advantages(buffer: RolloutBuffer, config: OnPolicyConfig) -> None:
    """GAE (and, if configured, per-task standardization) in the buffer, ready for ``update``."""
    buffer.compute_gae(config.gamma, config.gae_lambda)
    if config.normalize_advantages:
        buffer.normalize_advantages()


def update(agent: ActorCritic, phi: nn.Parameter, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
           config: OnPolicyConfig, generator: torch.Generator) -> AgentLoss:
    """One A2C or PPO update of every task on its rollout (GAE already in the buffer: ``prepare_advantages``).

    Returns the per-task losses ``[T]`` averaged over the gradient steps taken (as measured before each step).
    """
    return exhaust(update_steps(agent, phi, optimizer, buffer, config, generator))


def update_steps(agent: ActorCritic, phi: nn.Parameter, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
                 config: OnPolicyConfig, generator: torch.Generator) -> Ticks[AgentLoss]:
    """``update`` as ``Ticks``: yields after every gradient step."""
    if config.algorithm == "a2c":
        batches: Sequence[RolloutSamples] = [buffer.samples()]
    else:
        batches = [batch for _ in range(config.epochs) for batch in buffer.batches(config.minibatches, generator)]
    total = None
    for batch in batches:
        loss = agent_loss(agent, phi, batch, config)
        optimizer.zero_grad(set_to_none=True)
        loss.total.sum().backward()  # sum over tasks: row t of phi.grad is task t's own gradient
        if config.max_grad_norm is not None:
            clip_grad_norm_per_task_(phi.grad, config.max_grad_norm)
        optimizer.step()
        detached = torch.stack([part.detach() for part in loss])
        total = detached if total is None else total + detached
        yield
    return AgentLoss(*(total / len(batches)))


def adapt(agent: ActorCritic, runner: MetaEpisodeRunner, theta: torch.Tensor, tasks: Sequence[Task],
          seeds: np.ndarray | Sequence[Sequence[int]], config: OnPolicyConfig,
          generator: torch.Generator) -> InnerResult:
    """Adapt theta to every task with ``config.updates`` on-policy updates; see the module docstring.

    ``seeds`` is ``[config.collections, T]``: row ``k`` seeds the episodes collected for update ``k`` (the last
    row, with ``evaluate_after``, the evaluation episodes). ``generator`` shuffles PPO's minibatches. Neither
    ``theta`` nor the runner's state is modified.
    """
    return exhaust(adapt_ticks(agent, runner, theta, tasks, seeds, config, generator))


def adapt_ticks(agent: ActorCritic, runner: MetaEpisodeRunner, theta: torch.Tensor, tasks: Sequence[Task],
                seeds: np.ndarray | Sequence[Sequence[int]], config: OnPolicyConfig,
                generator: torch.Generator) -> Ticks[InnerResult]:
    """``adapt`` as ``Ticks``: yields the updates done so far after every environment and gradient step."""
    config = config.validate()
    tasks = list(tasks)
    seeds = np.asarray(seeds, dtype=np.int64)
    if seeds.shape != (config.collections, len(tasks)):
        raise ValueError(f"seeds must be [{config.collections}, {len(tasks)}], got {seeds.shape}")
    phi = start_params(theta, len(tasks))
    optimizer = make_optimizer(phi, config)
    returns, losses = [], []
    for k in range(config.updates):
        rollout = yield from relay(runner.collect_steps(phi.detach(), tasks, seeds[k], config.episodes), k)
        returns.append(rollout.episode_returns.mean(axis=1))
        prepare_advantages(rollout.buffer, config)
        loss = yield from relay(update_steps(agent, phi, optimizer, rollout.buffer, config, generator), k)
        losses.append(torch.stack(loss))
    if config.evaluate_after:
        evaluation = yield from relay(runner.collect_steps(phi.detach(), tasks, seeds[-1], config.episodes),
                                      config.updates)
        returns.append(evaluation.episode_returns.mean(axis=1))
    metrics: dict[str, float] = {}
    if losses:
        means = torch.stack(losses).mean(dim=(0, 2)).tolist()
        metrics.update(zip(("agent_loss", "policy_loss", "critic_loss", "entropy"), means, strict=True))
    if returns:
        metrics["return_before"] = float(returns[0].mean())
    if config.evaluate_after:
        metrics["return_after"] = float(returns[-1].mean())
    return InnerResult(phi.detach(), np.stack(returns) if returns else np.zeros((0, len(tasks))), metrics)
