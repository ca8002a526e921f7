"""Loss-landscape slices for meta-RL, on a surrogate that says what it is.

The expected return has no closed form: every point of a plane would need fresh episodes, and their noise
would swamp the surface. A slice therefore shows a *surrogate* evaluated on one fixed batch of transitions,
collected by the meta-parameters theta on held-out tasks (advantages and critic targets from theta's own
critic):

* ``"policy"``: the actor's policy loss on that batch, PPO's clipped surrogate or A2C's ``-A log pi``
  (TD3: ``-Q1(s, mu(s))`` with theta's critic);
* ``"critic"``: the critic's squared TD error against the batch's fixed targets (TD(lambda) returns; TD3:
  one-step targets from theta's target networks).

At theta the policy surrogate's gradient is the inner loop's first policy-gradient step, so the surface shows
which way adaptation starts from each point; it is not the return. The planes are the supervised ones
(``reptile_engine.landscape``): random filter-normalized directions, the meta-trajectory's PCA, or the plane
through theta and two tasks' adapted parameters. Grid points are stacked like tasks of a meta-batch and go
through the agent's batched forward in chunks under a memory budget.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from reptile_engine.landscape import (
    DEFAULT_MEMORY_BUDGET,
    DegeneratePlane,
    LandscapeSlice,
    Plane,
    grid_axes,
    pca_plane,
    project,
    random_plane,
    task_plane,
)

SURROGATE_LABELS = {"policy": "policy loss (surrogate on a fixed batch)",
                    "critic": "critic TD loss (on a fixed batch)"}
MAX_TRANSITIONS = 1024
"""Transitions kept in the fixed batch: enough for a smooth surface, few enough for a 41 x 41 grid in a second."""


class SurrogateBatch(NamedTuple):
    """Fixed transitions ``[M, ...]`` (one row of the batch dimension, shared by every grid point)."""

    obs: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    advantages: torch.Tensor
    targets: torch.Tensor
    next_obs: torch.Tensor
    not_terminated: torch.Tensor


def subsample(batch: SurrogateBatch, generator: torch.Generator, limit: int = MAX_TRANSITIONS) -> SurrogateBatch:
    """At most ``limit`` transitions of ``batch``, drawn without replacement from ``generator``."""
    count = batch.obs.shape[0]
    if count <= limit:
        return batch
    keep = torch.randperm(count, generator=generator)[:limit].to(batch.obs.device)
    return SurrogateBatch(*(field[keep] for field in batch))


def surface(losses, plane: Plane, *, resolution: int, span: float, width: int, transitions: int,
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


def compute_rl_slice(losses, layout, theta: torch.Tensor, *, loss_kind: str, plane_kind: str, resolution: int,
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


def onpolicy_batch(samples, generator: torch.Generator, limit: int = MAX_TRANSITIONS) -> SurrogateBatch:
    """The valid transitions of on-policy ``RolloutSamples`` ``[T, N, ...]`` (GAE done) as one fixed batch."""
    valid = samples.mask.reshape(-1) > 0
    obs = samples.obs.reshape(-1, samples.obs.shape[-1])[valid]
    empty = obs.new_zeros(obs.shape[0])
    batch = SurrogateBatch(obs, samples.actions.reshape(-1, samples.actions.shape[-1])[valid],
                           samples.old_log_probs.reshape(-1)[valid], samples.advantages.reshape(-1)[valid],
                           samples.returns.reshape(-1)[valid], obs, empty)
    return subsample(batch, generator, limit)


def onpolicy_losses(agent, batch: SurrogateBatch, kind: str, clip_ratio: float | None):
    """``params [G, P] -> [G]``: the actor-critic's policy surrogate or critic loss on ``batch``."""
    def losses(params: torch.Tensor) -> torch.Tensor:
        g = params.shape[0]
        obs = batch.obs.expand(g, -1, -1)
        if kind == "critic":
            return (agent.value(params, obs) - batch.targets).square().mean(-1)
        mean, log_std = agent.policy(params, obs)
        log_probs = agent.log_prob(mean, log_std, batch.actions.expand(g, -1, -1))
        if clip_ratio is None:
            return (-batch.advantages * log_probs).mean(-1)
        ratio = torch.exp(log_probs - batch.old_log_probs)
        clipped = torch.clamp(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
        return torch.maximum(-batch.advantages * ratio, -batch.advantages * clipped).mean(-1)

    return losses


def offpolicy_batch(agent, theta: torch.Tensor, rollout, gamma: float, generator: torch.Generator,
                    limit: int = MAX_TRANSITIONS) -> SurrogateBatch:
    """Theta's transitions with one-step TD targets from theta as its own target networks (no smoothing noise)."""
    buffer = rollout.buffer
    valid = buffer.valid.reshape(-1)
    obs = buffer.obs.reshape(-1, buffer.obs.shape[-1])[valid]
    next_obs = buffer.next_obs.reshape(-1, buffer.next_obs.shape[-1])[valid]
    actions = buffer.actions.reshape(-1, buffer.actions.shape[-1])[valid]
    rewards = buffer.rewards.reshape(-1)[valid].to(obs.dtype)
    not_terminated = (~buffer.terminated.reshape(-1)[valid]).to(obs.dtype)
    with torch.no_grad():
        target = theta.unsqueeze(0)
        next_actions = agent.policy(target, next_obs.unsqueeze(0))
        q1, q2 = agent.q_values(target, next_obs.unsqueeze(0), next_actions)
        targets = rewards + gamma * not_terminated * torch.minimum(q1, q2)[0]
    empty = obs.new_zeros(obs.shape[0])
    return subsample(SurrogateBatch(obs, actions, empty, empty, targets, next_obs, not_terminated), generator, limit)


def offpolicy_losses(agent, batch: SurrogateBatch, kind: str):
    """``params [G, P] -> [G]``: TD3's actor loss ``-Q1(s, mu(s))`` or its twin critics' TD loss on ``batch``."""
    def losses(params: torch.Tensor) -> torch.Tensor:
        g = params.shape[0]
        obs = batch.obs.expand(g, -1, -1)
        if kind == "critic":
            q1, q2 = agent.q_values(params, obs, batch.actions.expand(g, -1, -1))
            return (q1 - batch.targets).square().mean(-1) + (q2 - batch.targets).square().mean(-1)
        return agent.actor_loss(params, obs)

    return losses
