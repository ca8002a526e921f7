"""Loss-landscape slices for meta-RL, on a surrogate that says what it is.

The expected return has no closed form: every point of a plane would need fresh episodes, and their noise
would swamp the surface. A slice therefore shows a *surrogate* evaluated on one fixed batch of transitions,
collected by the meta-parameters theta on held-out tasks (advantages and critic targets from theta's own
critic):

* ``"policy"``: the actor's policy loss on that batch, PPO's clipped surrogate or A2C's ``-A log pi``
  (TD3: ``-Q1(s, mu(s))`` with theta's critic);
* ``"critic"``: the critic's squared TD error against the batch's fixed targets (TD(lambda) returns; TD3:
  one-step targets from theta's target networks).

Both are the agents' own losses (``ActorCritic.policy_loss``/``critic_loss``, ``TD3Agent.actor_loss``/
``critic_loss`` against ``td_target``), the ones the inner loops descend, on all the tasks' transitions pooled.

At theta the policy surrogate's gradient is the inner loop's first policy-gradient step, so the surface shows
which way adaptation starts from each point; it is not the return. The planes are the supervised ones
(``reptile_engine.landscape``): random filter-normalized directions, the meta-trajectory's PCA, or the plane
through theta and two tasks' adapted parameters. Grid points are stacked like tasks of a meta-batch and go
through the agent's batched forward in chunks under a memory budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reptile_engine.config import RLConfig
from reptile_engine.landscape import (
    DegeneratePlane,
    LandscapeSlice,
    Plane,
    pca_plane,
    project,
    random_plane,
    task_plane,
)
from reptile_engine.landscape_grid import DEFAULT_MEMORY_BUDGET, grid_axes
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.buffers import ReplaySamples, RolloutSamples
from reptile_engine.rl.onpolicy import clip_ratio, prepare_advantages
from reptile_engine.rl.runner import Rollout

MAX_TRANSITIONS = 1024
"""Transitions kept in the fixed batch: enough for a smooth surface, few enough for a 41 x 41 grid in a second."""

Losses = Callable[[torch.Tensor], torch.Tensor]
"""A surrogate: grid points' parameters ``[G, P]`` in, one loss per point ``[G]`` out."""


def subsample(fields: tuple[torch.Tensor, ...], generator: torch.Generator,
              limit: int = MAX_TRANSITIONS) -> tuple[torch.Tensor, ...]:
    """At most ``limit`` rows of ``fields`` (each ``[M, ...]``), the same rows of each, drawn without replacement."""
    count = fields[0].shape[0]
    if count <= limit:
        return fields
    keep = torch.randperm(count, generator=generator)[:limit].to(fields[0].device)
    return tuple(field[keep] for field in fields)


def _expanded(batch: Any, points: int) -> Any:
    """A one-row batch ``[1, M, ...]`` as a view for ``points`` grid points ``[G, M, ...]``."""
    return type(batch)(*(field.expand(points, *field.shape[1:]) for field in batch))


def surface(losses: Losses, plane: Plane, *, resolution: int, span: float, width: int, transitions: int,
            memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
    """``losses(params [G, P]) -> [G]`` over the grid, float64 ``[R, R]`` (rows follow ``b``, columns ``a``).

    ``width`` (the widest layer) and ``transitions`` size the chunks so activations stay under the budget.
    """
    alphas, betas = grid_axes(resolution, span)
    b, a = np.meshgrid(betas, alphas, indexing="ij")
    coef = torch.tensor(np.stack([a.ravel(), b.ravel()], axis=1), dtype=plane.origin.dtype,
                        device=plane.origin.device)
    directions = plane.directions
    per_point = 4 * max(width, 1) * max(transitions, 1) * 4
    chunk = max(1, memory_budget_bytes // per_point)
    values = []
    with torch.no_grad():
        for start in range(0, coef.shape[0], chunk):
            params = plane.origin + coef[start:start + chunk] @ directions
            values.append(losses(params).double().cpu())
    return torch.cat(values).numpy().reshape(resolution, resolution)


def make_plane(kind: str, layout, theta: torch.Tensor, *, generator: torch.Generator, snapshots: torch.Tensor | None,
               phis: torch.Tensor | None, frozen: Plane | None) -> Plane:
    """The plane of ``kind`` through ``theta`` (``frozen``: its directions, re-centred); see the module docstring."""
    if frozen is not None:
        return frozen.at(theta)
    if kind == "random":
        return random_plane(layout, theta, generator)
    if kind == "pca":
        if snapshots is None:
            raise DegeneratePlane("a PCA plane needs snapshots of the meta-trajectory")
        return pca_plane(snapshots, theta)
    if phis is None or phis.shape[0] < 2:
        raise DegeneratePlane("a task plane needs two tasks' adapted parameters")
    return task_plane(theta, phis[0], phis[1])


def compute_rl_slice(losses: Losses, layout, theta: torch.Tensor, *, loss_kind: str, plane_kind: str, resolution: int,
                     span: float, width: int, transitions: int, generator: torch.Generator,
                     snapshots: torch.Tensor | None = None, phis: torch.Tensor | None = None,
                     frozen: Plane | None = None, iteration: int = 0) -> tuple[LandscapeSlice, Plane]:
    """A surrogate slice through ``theta`` and the plane it used.

    ``losses(params [G, P]) -> [G]`` is the surrogate (``loss_kind`` names it in the result); ``phis``
    ``[n, P]`` are adapted parameters whose straight paths from theta are drawn (and, for the task plane,
    whose first two span it).
    """
    theta = theta.detach()
    plane = make_plane(plane_kind, layout, theta, generator=generator, snapshots=snapshots, phis=phis, frozen=frozen)
    alphas, betas = grid_axes(resolution, span)
    values = surface(losses, plane, resolution=resolution, span=span, width=width, transitions=transitions)
    with torch.no_grad():
        center = float(losses(theta.unsqueeze(0))[0])
    trajectory = np.zeros((0, 2)) if snapshots is None or len(snapshots) == 0 else project(plane, snapshots)
    if phis is not None and len(phis) >= 2:
        ends = project(plane, phis[:2])
        paths = np.stack([np.stack([project(plane, theta)[0], end]) for end in ends])
    else:
        ends, paths = np.zeros((0, 2)), np.zeros((0, 2, 2))
    task_points = ends if plane.kind == "task" else np.zeros((0, 2))
    result = LandscapeSlice(plane.kind, loss_kind, alphas, betas, values, center, trajectory, paths, task_points,
                            float(span), int(resolution), int(iteration), plane.explained)
    return result, plane


def onpolicy_batch(samples: RolloutSamples, generator: torch.Generator,
                   limit: int = MAX_TRANSITIONS) -> RolloutSamples:
    """The valid transitions of every task's ``RolloutSamples`` ``[T, N, ...]`` (GAE done), pooled into one fixed
    batch ``[1, M, ...]``."""
    valid = samples.mask.reshape(-1) > 0
    pooled = tuple(field.reshape(valid.shape[0], *field.shape[2:])[valid] for field in samples)
    return RolloutSamples(*(field.unsqueeze(0) for field in subsample(pooled, generator, limit)))


def onpolicy_losses(agent: ActorCritic, batch: RolloutSamples, kind: str, clip: float | None) -> Losses:
    """The actor-critic's own policy loss (PPO's with ``clip``, else A2C's) or critic loss on ``batch``."""
    def losses(params: torch.Tensor) -> torch.Tensor:
        samples = _expanded(batch, params.shape[0])
        if kind == "critic":
            return agent.critic_loss(params, samples)
        return agent.policy_loss(params, samples, clip)

    return losses


def offpolicy_batch(agent, theta: torch.Tensor, rollout: Rollout, gamma: float, generator: torch.Generator,
                    limit: int = MAX_TRANSITIONS) -> tuple[ReplaySamples, torch.Tensor]:
    """Theta's transitions ``[1, M, ...]`` and their TD targets ``[1, M]`` with theta as its own target networks
    (``TD3Agent.td_target`` without smoothing noise)."""
    buffer = rollout.buffer
    valid = buffer.valid.reshape(-1)
    fields = (buffer.obs, buffer.actions, buffer.rewards, buffer.next_obs, buffer.terminated)
    pooled = tuple(field.reshape(valid.shape[0], *field.shape[3:])[valid] for field in fields)
    samples = ReplaySamples(*(field.unsqueeze(0) for field in subsample(pooled, generator, limit)))
    with torch.no_grad():
        targets = agent.td_target(theta.unsqueeze(0), samples, gamma, torch.zeros_like(samples.actions))
    return samples, targets


def offpolicy_losses(agent, batch: ReplaySamples, targets: torch.Tensor, kind: str) -> Losses:
    """TD3's own actor loss ``-Q1(s, mu(s))`` or twin critics' TD loss against ``targets`` on ``batch``."""
    def losses(params: torch.Tensor) -> torch.Tensor:
        samples = _expanded(batch, params.shape[0])
        if kind == "critic":
            return agent.critic_loss(params, samples, targets.expand(params.shape[0], -1))
        return agent.actor_loss(params, samples.obs)

    return losses


def surrogate(agent, rl: RLConfig, theta: torch.Tensor, rollout: Rollout, kind: str,
              generator: torch.Generator) -> tuple[Losses, int]:
    """The ``kind`` surrogate on theta's ``rollout`` for either agent, and its batch's transition count."""
    if isinstance(agent, ActorCritic):
        prepare_advantages(rollout.buffer, rl)
        batch = onpolicy_batch(rollout.buffer.samples(), generator)
        return onpolicy_losses(agent, batch, kind, clip_ratio(rl)), batch.obs.shape[1]
    samples, targets = offpolicy_batch(agent, theta, rollout, rl.gamma, generator)
    return offpolicy_losses(agent, samples, targets, kind), samples.obs.shape[1]
