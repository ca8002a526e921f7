"""The on-policy inner loop: from theta, K actor-critic updates on every task of a meta-batch at once.

Every task starts from the same meta-parameters theta (actor, ``log_std`` and critic). Each of the ``K``
updates collects fresh episodes of every task with its current parameters (``MetaEpisodeRunner``), computes
GAE in the rollout buffer, and runs A2C (one full-batch gradient step) or PPO (``epochs`` passes over
``minibatches`` minibatches with the clipped surrogate) on all tasks together. The settings are the
experiment's ``rl`` section (``reptile_engine.config.RLConfig``), read as they are; a call may override the
rate (the scheduled one), the counts and the evaluation of phi.

The adapted parameters are one ``[T, P]`` tensor; the per-task losses ``[T]`` are summed and differentiated
once (tasks share no parameters, so row ``t`` of the gradient is task ``t``'s own gradient). The inner
optimizer is a stock ``torch.optim.SGD``/``Adam`` over that one tensor: both are elementwise, so on the
stacked tensor they ARE per-task optimizers with per-task state (Adam's moments are ``[T, P]``; the step
count is shared because every task takes the same steps). Gradient clipping is the only non-elementwise
part and is done per task (each row's norm).

>>> from reptile_engine.config import RLConfig
>>> from reptile_engine.rl.agents import ActorCritic
>>> from reptile_engine.rl.families import make_family
>>> from reptile_engine.rl.runner import MetaEpisodeRunner
>>> family = make_family("point-nav-2d")
>>> agent = ActorCritic(2, 2, actor_hidden=(8,), critic_hidden=(8,))
>>> runner = MetaEpisodeRunner(family, agent, horizon=10)
>>> rl = RLConfig(updates=2, episodes=2, epochs=2, minibatches=2)
>>> theta = agent.init(torch.Generator().manual_seed(0))
>>> tasks = family.sample_tasks(np.random.default_rng(0), 3)
>>> seeds = np.arange(9).reshape(3, 3)           # [K + 1 collections, T tasks]
>>> result = adapt(agent, runner, theta, tasks, seeds, rl, torch.Generator().manual_seed(0))
>>> tuple(result.phi.shape), result.returns.shape, sorted(result.metrics)[:3]
((3, 77), (3, 3), ['agent_loss', 'critic_loss', 'entropy'])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from reptile_engine.config import RLConfig
from reptile_engine.learner import exhaust
from reptile_engine.rl.agents import ActorCritic, AgentLoss
from reptile_engine.rl.buffers import RolloutBuffer, RolloutSamples
from reptile_engine.rl.runner import MetaEpisodeRunner, Task, Ticks, relay

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-5
"""The inner Adam's constants (CleanRL's PPO uses this epsilon)."""


class InnerResult(NamedTuple):
    phi: torch.Tensor
    """Adapted parameters ``[T, P]`` (actor, ``log_std`` and critic)."""
    returns: np.ndarray
    """``[collections, T]``: row ``k`` is each task's mean episode return after ``k`` updates."""
    metrics: dict[str, float]
    """Losses and entropy averaged over tasks and gradient steps; ``return_before`` (theta's episodes) and, with
    ``evaluate_after``, ``return_after`` (phi's episodes after the K updates)."""


def collections(updates: int, evaluate_after: bool = True) -> int:
    """Rollouts one inner loop collects: one per update, plus the evaluation after the last one."""
    return updates + int(evaluate_after)


def check_seeds(seeds: np.ndarray | Sequence[Sequence[int]], updates: int, evaluate_after: bool,
                tasks: int) -> np.ndarray:
    """``seeds`` as an int64 table ``[collections, tasks]``; a ``ValueError`` if it has another shape."""
    seeds = np.asarray(seeds, dtype=np.int64)
    expected = (collections(updates, evaluate_after), tasks)
    if seeds.shape != expected:
        raise ValueError(f"seeds must be [{expected[0]}, {expected[1]}], got {seeds.shape}")
    return seeds


def start_params(theta: torch.Tensor, tasks: int) -> nn.Parameter:
    """Every task's starting point: a ``[tasks, P]`` copy of theta (``[P]``, or already ``[tasks, P]``).

    The off-policy inner loop builds its target networks with the same call, so that they too start at
    theta and equal to the online networks.
    """
    return nn.Parameter(theta.detach().expand(tasks, -1).clone())


def make_optimizer(phi: nn.Parameter, rl: RLConfig, lr: float) -> torch.optim.Optimizer:
    """A stock optimizer over the stacked ``[T, P]`` tensor: per-task SGD or Adam (see the module docstring)."""
    if rl.optimizer == "adam":
        return torch.optim.Adam([phi], lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    return torch.optim.SGD([phi], lr=lr)


def clip_ratio(rl: RLConfig) -> float | None:
    """PPO's clip range, or ``None`` for A2C's plain policy gradient."""
    return rl.clip_ratio if rl.algorithm == "ppo" else None


def agent_loss(agent: ActorCritic, params: torch.Tensor, samples: RolloutSamples, rl: RLConfig) -> AgentLoss:
    """The configured algorithm's per-task agent loss ``[T]`` on ``samples``."""
    return agent.loss(params, samples, clip_ratio=clip_ratio(rl), value_coef=rl.value_coef,
                      entropy_coef=rl.entropy_coef)


def clip_grad_norm_per_task_(grad: torch.Tensor, max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` applied to each row of ``grad`` ``[T, P]`` separately; returns the norms ``[T]``."""
    norms = torch.linalg.vector_norm(grad, dim=-1, keepdim=True)
    grad.mul_(torch.clamp(max_norm / (norms + 1e-6), max=1.0))
    return norms.squeeze(-1)


def prepare_advantages(buffer: RolloutBuffer, rl: RLConfig) -> None:
    """GAE and its per-task standardization in the buffer, ready for ``update``."""
    buffer.compute_gae(rl.gamma, rl.gae_lambda)
    buffer.normalize_advantages()


def update(agent: ActorCritic, phi: nn.Parameter, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
           rl: RLConfig, generator: torch.Generator) -> AgentLoss:
    """One A2C or PPO update of every task on its rollout (GAE already in the buffer: ``prepare_advantages``).

    Returns the per-task losses ``[T]`` averaged over the gradient steps taken (as measured before each step).
    """
    return exhaust(update_steps(agent, phi, optimizer, buffer, rl, generator))


def update_steps(agent: ActorCritic, phi: nn.Parameter, optimizer: torch.optim.Optimizer, buffer: RolloutBuffer,
                 rl: RLConfig, generator: torch.Generator) -> Ticks[AgentLoss]:
    """``update`` as ``Ticks``: yields after every gradient step (``rl.max_grad_norm`` 0: no clipping)."""
    if rl.algorithm == "a2c":
        batches: Sequence[RolloutSamples] = [buffer.samples()]
    else:
        batches = [batch for _ in range(rl.epochs) for batch in buffer.batches(rl.minibatches, generator)]
    total = None
    for batch in batches:
        loss = agent_loss(agent, phi, batch, rl)
        optimizer.zero_grad(set_to_none=True)
        loss.total.sum().backward()  # sum over tasks: row t of phi.grad is task t's own gradient
        if rl.max_grad_norm > 0:
            clip_grad_norm_per_task_(phi.grad, rl.max_grad_norm)
        optimizer.step()
        detached = torch.stack([part.detach() for part in loss])
        total = detached if total is None else total + detached
        yield
    return AgentLoss(*(total / len(batches)))


def adapt(agent: ActorCritic, runner: MetaEpisodeRunner, theta: torch.Tensor, tasks: Sequence[Task],
          seeds: np.ndarray | Sequence[Sequence[int]], rl: RLConfig, generator: torch.Generator, *,
          lr: float | None = None, updates: int | None = None, episodes: int | None = None,
          evaluate_after: bool = True) -> InnerResult:
    """Adapt theta to every task with ``updates`` (default ``rl.updates``) on-policy updates at ``lr`` (default
    ``rl.lr``, the scheduled rate during training) of ``episodes`` (default ``rl.episodes``) each.

    ``seeds`` is ``[collections(updates, evaluate_after), T]``: row ``k`` seeds the episodes collected for update
    ``k`` (the last row, with ``evaluate_after``, the evaluation episodes of phi). ``generator`` shuffles PPO's
    minibatches. Neither ``theta`` nor the runner's state is modified.
    """
    return exhaust(adapt_ticks(agent, runner, theta, tasks, seeds, rl, generator, lr=lr, updates=updates,
                               episodes=episodes, evaluate_after=evaluate_after))


def adapt_ticks(agent: ActorCritic, runner: MetaEpisodeRunner, theta: torch.Tensor, tasks: Sequence[Task],
                seeds: np.ndarray | Sequence[Sequence[int]], rl: RLConfig, generator: torch.Generator, *,
                lr: float | None = None, updates: int | None = None, episodes: int | None = None,
                evaluate_after: bool = True) -> Ticks[InnerResult]:
    """``adapt`` as ``Ticks``: yields the updates done so far after every environment and gradient step."""
    tasks = list(tasks)
    updates = rl.updates if updates is None else int(updates)
    episodes = episodes or rl.episodes
    seeds = check_seeds(seeds, updates, evaluate_after, len(tasks))
    phi = start_params(theta, len(tasks))
    optimizer = make_optimizer(phi, rl, rl.lr if lr is None else lr)
    returns, losses = [], []
    for k in range(updates):
        rollout = yield from relay(runner.collect_steps(phi.detach(), tasks, seeds[k], episodes), k)
        returns.append(rollout.episode_returns.mean(axis=1))
        prepare_advantages(rollout.buffer, rl)
        loss = yield from relay(update_steps(agent, phi, optimizer, rollout.buffer, rl, generator), k)
        losses.append(torch.stack(loss))
    if evaluate_after:
        evaluation = yield from relay(runner.collect_steps(phi.detach(), tasks, seeds[-1], episodes), updates)
        returns.append(evaluation.episode_returns.mean(axis=1))
    metrics: dict[str, float] = {}
    if losses:
        means = torch.stack(losses).mean(dim=(0, 2)).tolist()
        metrics.update(zip(("agent_loss", "policy_loss", "critic_loss", "entropy"), means, strict=True))
    metrics.update(return_metrics(returns, evaluate_after))
    return InnerResult(phi.detach(), np.stack(returns) if returns else np.zeros((0, len(tasks))), metrics)


def return_metrics(returns: list[np.ndarray], evaluate_after: bool) -> dict[str, float]:
    """``return_before`` (theta's first episodes) and, with ``evaluate_after``, ``return_after`` (phi's)."""
    metrics = {"return_before": float(returns[0].mean())} if returns else {}
    if evaluate_after:
        metrics["return_after"] = float(returns[-1].mean())
    return metrics
