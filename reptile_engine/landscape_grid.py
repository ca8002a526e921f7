"""The loss over a plane through parameter space, and the inner-loop paths that cross it.

A slice is the loss over the plane ``theta + a * d1 + b * d2`` (``reptile_engine.landscape``) on an
``R x R`` grid of ``(a, b)`` in ``[-span, span]^2``. The planes:

* ``random_plane``: filter-normalized Gaussian directions (Li et al. 2018). A raw Gaussian step would be
  huge for a layer of small weights and tiny for one of large weights, so each direction is rescaled
  filter by filter to the weights it perturbs; then ``span = 1`` means "as far again as the weights".
* ``pca_plane``: the top two principal directions of the recent meta-trajectory, the plane the
  meta-parameters actually move in (random directions almost never contain the trajectory).
* ``task_plane``: the plane through ``theta`` and two tasks' adapted parameters, so the two inner-loop
  end points whose pull Reptile averages are visible on the surface.

The losses (all on the tasks' *query* points):

* ``"task"``: one task's MSE; ``"mean"``: the mean MSE over a batch of (held-out) tasks;
* ``"adapted"``: the mean MSE *after* ``steps`` full-batch SGD steps on each task's support set: the
  meta-loss surface that Reptile descends.

Every grid point is one parameter set: they are stacked like the tasks of a meta-batch and go through the
model's own batched ``prepare``/``forward``/``gradient``, one chunk of grid points at a time, so that
memory stays under a budget and no Python loop runs over grid points.

>>> from reptile_engine.landscape import random_plane
>>> from reptile_engine.models import BatchedMLP
>>> from reptile_engine.tasks.sine import SineTasks
>>> mlp = BatchedMLP([1, 16, 1])
>>> theta = mlp.init(torch.Generator().manual_seed(0))
>>> tasks = SineTasks().sample(torch.Generator().manual_seed(1), 4, 10, 20, query_grid=True)
>>> plane = random_plane(mlp.layout, theta, torch.Generator().manual_seed(2))
>>> values = loss_grid(mlp, plane, tasks, resolution=11, span=1.0, loss="mean")
>>> values.shape, values.dtype.name
((11, 11), 'float64')
>>> bool(np.isclose(values[5, 5], losses_at(mlp, plane, [[0.0, 0.0]], tasks)[0]))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from reptile_engine.landscape import (
    LOSS_KINDS,
    PLANE_KINDS,
    DegeneratePlane,
    LandscapeSlice,
    LossKind,
    Plane,
    PlaneKind,
    coordinates,
    pca_plane,
    project,
    random_plane,
    task_plane,
)
from reptile_engine.models import BatchedModel
from reptile_engine.tasks.base import TaskBatch

DEFAULT_MEMORY_BUDGET = 16 * 2**20
"""Working memory of one chunk, in bytes. 16 MiB keeps a chunk near the CPU's L2/L3 caches; larger
chunks were slower on CPU, not faster (``benchmarks/bench_landscape.py``), and smaller ones add
per-chunk overhead."""


def inner_paths(model: BatchedModel, plane: Plane, theta: torch.Tensor, tasks: TaskBatch, steps: int,
                lr: float, n_tasks: int, *, first_task: int = 0) -> np.ndarray:
    """Each task's inner-loop path from ``theta`` in plane coordinates: ``[n_tasks, steps + 1, 2]``.

    Tasks ``first_task, first_task + 1, ...`` (wrapping around) take ``steps`` full-batch SGD steps at
    ``lr`` on their support sets, all at once; entry ``k`` is the position after ``k`` steps.
    """
    if n_tasks == 0:
        return np.zeros((0, steps + 1, 2))
    index = (first_task + torch.arange(n_tasks)) % tasks.num_tasks
    _, coords = _adapt(model, theta, tasks, index, steps, lr, plane)
    return coords.cpu().numpy()


def adapted_parameters(model: BatchedModel, theta: torch.Tensor, tasks: TaskBatch, task_indices: Sequence[int],
                       steps: int, lr: float) -> torch.Tensor:
    """``phi`` ``[len(task_indices), P]``: ``theta`` after ``steps`` full-batch SGD steps on each task."""
    return _adapt(model, theta, tasks, torch.as_tensor(list(task_indices), dtype=torch.long), steps, lr)[0]


def _adapt(model: BatchedModel, theta: torch.Tensor, tasks: TaskBatch, index: torch.Tensor, steps: int, lr: float,
           plane: Plane | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The tasks' parameters after ``steps`` full-batch SGD steps (``[n, P]``), and with a ``plane`` their
    coordinates after each of 0..``steps`` steps (``[n, steps + 1, 2]``), in the pattern of
    ``evaluation.adaptation_trajectory``."""
    index = index.to(tasks.support_x.device)
    x, y = tasks.support_x[index].to(theta.device), tasks.support_y[index].to(theta.device)
    with torch.no_grad():
        phi = theta.detach().expand(len(index), -1).clone()
        prepared = model.prepare(phi)
        params = model.param_views(prepared)
        coords = [] if plane is None else [coordinates(plane, phi)]
        for _ in range(steps):
            torch._foreach_add_(params, model.gradient(prepared, x, y), alpha=-lr)
            if plane is not None:
                coords.append(coordinates(plane, phi))
    return phi, (torch.stack(coords, dim=1) if plane is not None else None)


# Losses over the plane.


def grid_axes(resolution: int, span: float) -> tuple[np.ndarray, np.ndarray]:
    """The grid's ``alphas`` and ``betas``: ``resolution`` points from ``-span`` to ``span``, float64.

    The axes are exactly antisymmetric, so an odd resolution puts an exact ``0.0`` in the middle and
    the central grid point is ``theta`` itself, bit for bit.
    """
    axis = np.linspace(-span, span, resolution)
    axis = (axis - axis[::-1]) / 2
    return axis, axis.copy()


def loss_grid(model: BatchedModel, plane: Plane, tasks: TaskBatch, *, resolution: int, span: float,
              loss: LossKind = "mean", task_index: int = 0, steps: int = 5, lr: float = 0.02,
              memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
    """The loss over the grid, float64 ``[R, R]``: ``values[i, j]`` at ``a = alphas[j]``, ``b = betas[i]``.

    Rows follow ``b`` and columns ``a`` (image convention), with the axes from ``grid_axes``. See
    ``losses_at`` for the loss kinds and the memory bound.
    """
    alphas, betas = grid_axes(resolution, span)
    b, a = np.meshgrid(betas, alphas, indexing="ij")
    coords = np.stack([a.ravel(), b.ravel()], axis=1)
    values = losses_at(model, plane, coords, tasks, loss=loss, task_index=task_index, steps=steps, lr=lr,
                       memory_budget_bytes=memory_budget_bytes)
    return values.reshape(resolution, resolution)


def losses_at(model: BatchedModel, plane: Plane, coords: Any, tasks: TaskBatch, *, loss: LossKind = "mean",
              task_index: int = 0, steps: int = 5, lr: float = 0.02,
              memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
    """The loss at plane coordinates ``coords`` (``[M, 2]``: ``a``, ``b``), float64 ``[M]``.

    ``loss``:

    * ``"task"``: query MSE of task ``task_index``;
    * ``"mean"``: query MSE averaged over all tasks of ``tasks``;
    * ``"adapted"``: query MSE after ``steps`` full-batch SGD steps at ``lr`` on each task's support
      set, starting from the grid point, averaged over all tasks.

    ``"task"`` and ``"mean"`` evaluate the network once per *distinct* query input: when tasks share
    their query inputs (held-out tasks on a grid) the mean over tasks of ``(f(x) - y_t)^2`` equals
    ``(f(x) - mean_t y_t)^2`` plus a constant (the spread of the targets at ``x``), exactly, so ``T``
    tasks cost one network evaluation per point instead of ``T``; with distinct inputs it reduces to
    the plain sum. ``"adapted"`` runs every (grid point, task) pair as one parameter set.

    Memory: grid points (for ``"adapted"``: grid point and task pairs) go through the model in chunks of
    ``max(1, memory_budget_bytes // per_set)``, with ``per_set = 4 * (P * (2 if adapting else 1) +
    3 * points * width)`` for float32 (``width``: the summed output sizes of the weight matrices,
    ``points``: the distinct query inputs, or the larger of support and query points per task). The
    chunk's parameters, gradients and activations stay about within ``memory_budget_bytes``, except
    that one set is always evaluated, whatever it needs. Results do not depend on the chunk size
    beyond float rounding.
    """
    if loss not in LOSS_KINDS:
        raise ValueError(f"loss must be one of {LOSS_KINDS}, got {loss!r}")
    origin = plane.origin.detach()
    coef = torch.as_tensor(np.asarray(coords, dtype=np.float64), device=origin.device).to(origin.dtype)
    if coef.dim() != 2 or coef.shape[1] != 2:
        raise ValueError(f"coords must be [M, 2], got {tuple(coef.shape)}")
    if tasks.query_x.device != origin.device:
        tasks = tasks.to(origin.device)
    directions = plane.directions.to(origin.dtype)
    with torch.no_grad():
        if loss == "adapted":
            result = _adapted_losses(model, origin, directions, coef, tasks, steps, lr, memory_budget_bytes)
        else:
            batch = tasks if loss == "mean" else _one_task(tasks, task_index)
            result = _query_losses(model, origin, directions, coef, batch, memory_budget_bytes)
    return result.cpu().numpy()


class _Queries(NamedTuple):
    """Query points reduced to distinct inputs: ``sum over tasks, points (f(x) - y)^2 ==
    sum_u weight_u * |f(x_u) - mean_u|^2 + constant``."""

    inputs: torch.Tensor     # [U, in]
    means: torch.Tensor      # [U, out], mean target at each distinct input
    weights: torch.Tensor    # [U], how many (task, point) pairs share the input
    constant: torch.Tensor   # float64 scalar: sum of squared deviations of the targets from their means
    count: int               # number of (task, point, output) terms in the mean


def _reduce_queries(x: torch.Tensor, y: torch.Tensor) -> _Queries:
    xs, ys = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]).double()
    inputs, inverse, counts = _unique_rows(xs)
    sums = torch.zeros(len(inputs), ys.shape[1], dtype=torch.float64, device=ys.device).index_add_(0, inverse, ys)
    means = sums / counts[:, None]
    constant = (ys - means[inverse]).square().sum()
    return _Queries(inputs, means.to(x.dtype), counts.to(x.dtype), constant, ys.numel())


def _unique_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``torch.unique(rows, dim=0, return_inverse=True, return_counts=True)`` by a lexicographic sort:
    ``unique(dim=0)`` compares row by row in Python-level loops (33 ms for 10k rows, measured)."""
    order = torch.arange(len(rows), device=rows.device)
    for column in range(rows.shape[1] - 1, -1, -1):
        order = order[torch.argsort(rows[order, column], stable=True)]
    ordered = rows[order]
    first = torch.ones(len(rows), dtype=torch.bool, device=rows.device)
    first[1:] = (ordered[1:] != ordered[:-1]).any(dim=1)
    group = first.cumsum(0) - 1
    inverse = torch.empty_like(group)
    inverse[order] = group
    return ordered[first], inverse, torch.bincount(group)


def _query_losses(model: BatchedModel, origin: torch.Tensor, directions: torch.Tensor, coef: torch.Tensor,
                  tasks: TaskBatch, budget: int) -> torch.Tensor:
    queries = _reduce_queries(tasks.query_x, tasks.query_y)
    x = queries.inputs.unsqueeze(0)
    chunk = _chunk_size(model, origin, len(queries.inputs), adapting=False, budget=budget, total=len(coef))
    buffer = torch.empty(chunk, origin.numel(), dtype=origin.dtype, device=origin.device)
    sums = torch.empty(len(coef), dtype=torch.float64, device=origin.device)
    for start in range(0, len(coef), chunk):
        block = coef[start:start + chunk]
        n = len(block)
        flat = torch.addmm(origin, block, directions, out=buffer[:n])
        pred = model.forward(model.prepare(flat), x.expand(n, -1, -1))
        squared = (pred - queries.means).square_().sum(dim=-1)
        sums[start:start + n] = squared @ queries.weights
    return (sums + queries.constant) / queries.count


def _adapted_losses(model: BatchedModel, origin: torch.Tensor, directions: torch.Tensor, coef: torch.Tensor,
                    tasks: TaskBatch, steps: int, lr: float, budget: int) -> torch.Tensor:
    """Sets are (grid point, task) pairs in grid-major order, chunked over the flattened ``G * T`` index,
    so a chunk may hold part of a grid point's tasks; per-set losses are summed into their grid point."""
    n_tasks = tasks.num_tasks
    total = len(coef) * n_tasks
    points = max(tasks.support_x.shape[1], tasks.query_x.shape[1])
    chunk = _chunk_size(model, origin, points, adapting=True, budget=budget, total=total)
    buffer = torch.empty(chunk, origin.numel(), dtype=origin.dtype, device=origin.device)
    sums = torch.zeros(len(coef), dtype=torch.float64, device=origin.device)
    for start in range(0, total, chunk):
        index = torch.arange(start, min(start + chunk, total), device=origin.device)
        grid, task = index // n_tasks, index % n_tasks
        flat = torch.addmm(origin, coef[grid], directions, out=buffer[:len(index)])
        prepared = model.prepare(flat)
        params = model.param_views(prepared)
        support_x, support_y = tasks.support_x[task], tasks.support_y[task]
        for _ in range(steps):
            torch._foreach_add_(params, model.gradient(prepared, support_x, support_y), alpha=-lr)
        pred = model.forward(prepared, tasks.query_x[task])
        losses = (pred - tasks.query_y[task]).square_().mean(dim=(-2, -1))
        sums.index_add_(0, grid, losses.double())
    return sums / n_tasks


def _chunk_size(model: BatchedModel, origin: torch.Tensor, points: int, *, adapting: bool, budget: int,
                total: int) -> int:
    element = origin.element_size()
    width = sum(shape[0] for shape in model.layout.shapes if len(shape) >= 2)
    per_set = element * (origin.numel() * (2 if adapting else 1) + 3 * points * width)
    return max(1, min(total, budget // per_set))


def _one_task(tasks: TaskBatch, index: int) -> TaskBatch:
    return TaskBatch(*(t[index:index + 1] for t in tasks[:4]), {k: v[index:index + 1] for k, v in tasks.params.items()})


# The trainer's entry point.


def compute_slice(model: BatchedModel, theta: torch.Tensor, tasks: TaskBatch, *, plane_kind: PlaneKind = "random",
                  loss_kind: LossKind = "mean", resolution: int = 41, span: float = 1.0,
                  snapshots: torch.Tensor | None = None, generator: torch.Generator | None = None,
                  directions: Plane | None = None, steps: int = 5, lr: float = 0.02, task_index: int = 0,
                  iteration: int = 0, n_paths: int = 2,
                  memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> tuple[LandscapeSlice, Plane]:
    """One slice through ``theta`` with everything a view draws, and the plane it used.

    * The plane: ``directions`` (a frozen ``Plane``: "freeze plane") keeps its ``d1``/``d2`` and kind,
      re-centred at the current ``theta``, so the surface stays centred on the meta-parameters while the
      axes stay put between refreshes; otherwise a fresh plane of ``plane_kind``: ``"random"`` draws from
      ``generator`` (required), ``"pca"`` uses ``snapshots`` (``DegeneratePlane`` when too few),
      ``"task"`` runs through the parameters adapted to tasks ``task_index`` and ``task_index + 1``.
    * ``steps`` full-batch SGD steps at ``lr`` on the support sets define the adapted parameters (the
      task plane, the ``"adapted"`` loss and the inner paths alike).
    * ``trajectory``: ``snapshots`` (``[M, P]``, oldest first) projected, ``[0, 2]`` without them.
    * ``inner_paths``: ``n_paths`` tasks from ``task_index`` on (for the task plane, the first two end
      at ``phi_a`` and ``phi_b``); ``center_loss``: the loss at ``theta`` itself.
    """
    theta = theta.detach()
    kind = directions.kind if directions is not None else plane_kind
    if kind not in PLANE_KINDS:
        raise ValueError(f"plane_kind must be one of {PLANE_KINDS}, got {kind!r}")
    if loss_kind not in LOSS_KINDS:
        raise ValueError(f"loss_kind must be one of {LOSS_KINDS}, got {loss_kind!r}")
    alphas, betas = grid_axes(resolution, span)
    if tasks.query_x.device != theta.device:
        tasks = tasks.to(theta.device)
    phis = None
    if kind == "task":
        if tasks.num_tasks < 2:
            raise DegeneratePlane("a task plane needs at least 2 tasks")
        pair = [task_index, (task_index + 1) % tasks.num_tasks]
        phis = adapted_parameters(model, theta, tasks, pair, steps, lr)
    if directions is not None:
        plane = directions.at(theta)
    elif kind == "random":
        if generator is None:
            raise ValueError("a random plane needs a generator (no hidden global random state)")
        plane = random_plane(model.layout, theta, generator)
    elif kind == "pca":
        if snapshots is None:
            raise DegeneratePlane("a PCA plane needs snapshots of the meta-trajectory")
        plane = pca_plane(snapshots, theta)
    else:
        plane = task_plane(theta, phis[0], phis[1])
    options = {"loss": loss_kind, "task_index": task_index, "steps": steps, "lr": lr,
               "memory_budget_bytes": memory_budget_bytes}
    values = loss_grid(model, plane, tasks, resolution=resolution, span=span, **options)
    center = float(losses_at(model, plane, [[0.0, 0.0]], tasks, **options)[0])
    trajectory = np.zeros((0, 2)) if snapshots is None or len(snapshots) == 0 else project(plane, snapshots)
    paths = inner_paths(model, plane, theta, tasks, steps, lr, n_paths, first_task=task_index)
    task_points = project(plane, phis) if phis is not None else np.zeros((0, 2))
    result = LandscapeSlice(kind, loss_kind, alphas, betas, values, center, trajectory, paths, task_points,
                            float(span), int(resolution), int(iteration), plane.explained)
    return result, plane
