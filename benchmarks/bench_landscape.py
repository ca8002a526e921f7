"""Loss-landscape slices: the vectorized engine against a plain loop over grid points.

Setting: the default 1-64-64-1 tanh MLP after a short Reptile run (``--random-init`` skips it), the
trainer's held-out set (100 sine tasks, 10 support points, 100 query points on a grid), a
filter-normalized random plane, span 1, one torch thread. The plain loop is what one writes first:
for each grid point ``vector_to_parameters`` into the ``nn.Module`` and evaluate it (for the
post-adaptation surface, ``deepcopy`` per task and ``torch.optim.SGD``). It is timed on an evenly
spread subset of the grid and extrapolated linearly (the table says from how many points), and its
values on that subset are checked against the engine's. Engine times are medians of ``--repeats``.

    python benchmarks/bench_landscape.py [--quick] [--sweep] [--random-init]

``--sweep`` also times each case at several ``memory_budget_bytes`` (the chunk size).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn.functional import mse_loss
from torch.nn.utils import vector_to_parameters

from reptile_engine.config import ExperimentConfig
from reptile_engine.landscape import random_plane
from reptile_engine.landscape_grid import DEFAULT_MEMORY_BUDGET, grid_axes, loss_grid
from reptile_engine.models import BatchedMLP
from reptile_engine.runtime import tune_allocator
from reptile_engine.tasks.base import TaskBatch
from reptile_engine.tasks.sine import SineTasks
from reptile_engine.trainer import Trainer

TASKS, SUPPORT, QUERY, SPAN = 100, 10, 100, 1.0
STEPS, LR = 5, 0.02
# (name, resolution, loss, held-out tasks, target ms, plain-loop subset size). The adapted surface
# averages ``landscape.tasks`` held-out tasks (default 5), its cost grows with that count (each task
# adapts from every grid point); the rows below it show larger counts for scale.
ADAPTED_TASKS = ExperimentConfig().landscape.tasks
CASES = [
    ("41x41 mean", 41, "mean", TASKS, 40.0, 200),
    ("101x101 mean", 101, "mean", TASKS, 250.0, 200),
    (f"41x41 adapted k=5, {ADAPTED_TASKS} tasks", 41, "adapted", ADAPTED_TASKS, 1000.0, 3),
    ("  same, 20 tasks", 41, "adapted", 20, None, 3),
    (f"  same, {TASKS} tasks", 41, "adapted", TASKS, None, 3),
]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def plain_loss(module: torch.nn.Module, flat: torch.Tensor, tasks: TaskBatch, loss: str) -> float:
    """One grid point, the textbook way: load it into the module, evaluate (and adapt) task by task."""
    vector_to_parameters(flat, module.parameters())
    if loss == "mean":
        with torch.no_grad():
            return mse_loss(module(tasks.query_x), tasks.query_y).item()
    losses = []
    for t in range(tasks.num_tasks):
        task_module = copy.deepcopy(module)
        optimizer = torch.optim.SGD(task_module.parameters(), lr=LR)
        for _ in range(STEPS):
            optimizer.zero_grad()
            mse_loss(task_module(tasks.support_x[t]), tasks.support_y[t]).backward()
            optimizer.step()
        with torch.no_grad():
            losses.append(mse_loss(task_module(tasks.query_x[t]), tasks.query_y[t]).item())
    return float(np.mean(losses))


def plain_loop(mlp: BatchedMLP, plane, tasks: TaskBatch, resolution: int, loss: str, subset: int,
               repeats: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Milliseconds for the whole grid (extrapolated from ``subset`` points), the subset's flat indices
    and values."""
    alphas, betas = grid_axes(resolution, SPAN)
    index = np.unique(np.linspace(0, resolution**2 - 1, subset).round().astype(int))
    points = [plane.point(float(alphas[k % resolution]), float(betas[k // resolution])) for k in index]
    module = mlp.module()
    values = np.empty(len(index))

    def run() -> None:
        for n, point in enumerate(points):
            values[n] = plain_loss(module, point, tasks, loss)

    ms = median_ms(run, repeats)
    return ms * resolution**2 / len(index), index, values


def quick_reptile_theta(iterations: int) -> torch.Tensor:
    trainer = Trainer(ExperimentConfig().with_updates({"meta.iterations": iterations, "threads": 1}))
    for _ in range(iterations):
        trainer.step()
    return trainer.theta.detach().clone()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and a smaller reference subset")
    parser.add_argument("--sweep", action="store_true", help="also time several memory budgets")
    parser.add_argument("--random-init", action="store_true", help="theta from init instead of a Reptile run")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 7)
    torch.set_num_threads(1)
    tune_allocator()  # the trainer does this at construction; the landscape runs inside the trainer

    mlp = BatchedMLP([1, 64, 64, 1])
    theta = mlp.init(torch.Generator().manual_seed(0)) if args.random_init else quick_reptile_theta(300)
    tasks = SineTasks().sample(torch.Generator().manual_seed(20_181_231), TASKS, SUPPORT, QUERY, query_grid=True)
    plane = random_plane(mlp.layout, theta, torch.Generator().manual_seed(1))
    print(f"torch {torch.__version__}, 1 thread; {TASKS} tasks x {QUERY} query / {SUPPORT} support points, "
          f"P = {theta.numel()}, theta from {'init' if args.random_init else '300 Reptile iterations'}, "
          f"memory budget {DEFAULT_MEMORY_BUDGET / 2**20:g} MiB")
    print(f"{'case':<20} {'plain loop ms':>22} {'vectorized ms':>14} {'ratio':>8} {'target':>9}  "
          f"{'verdict':<7} {'max rel err':>11}")
    all_tasks = tasks
    for name, resolution, loss, n_tasks, target, subset in CASES:
        tasks = TaskBatch(*(t[:n_tasks] for t in all_tasks[:4]), {k: v[:n_tasks] for k, v in all_tasks.params.items()})
        case_repeats = max(3, repeats // 2) if loss == "adapted" else repeats
        values = loss_grid(mlp, plane, tasks, resolution=resolution, span=SPAN, loss=loss, steps=STEPS, lr=LR)
        engine = median_ms(lambda r=resolution, lo=loss, ts=tasks: loss_grid(mlp, plane, ts, resolution=r, span=SPAN,
                                                                              loss=lo, steps=STEPS, lr=LR),
                           case_repeats)
        subset = max(1, subset // (4 if args.quick else 1))
        reference, index, reference_values = plain_loop(mlp, plane, tasks, resolution, loss, subset,
                                                        1 if loss == "adapted" else 3)
        error = float(np.max(np.abs(values.ravel()[index] - reference_values) / np.abs(reference_values)))
        total = resolution**2
        note = f"{reference:>9.0f} (from {len(index)}/{total})" if len(index) < total else f"{reference:>9.0f}"
        verdict = "" if target is None else "met" if engine <= target else "MISSED"
        goal = "" if target is None else f"{target:.0f}ms"
        print(f"{name:<20} {note:>22} {engine:>14.1f} {reference / engine:>7.1f}x {goal:>9}  "
              f"{verdict:<7} {error:>11.1e}", flush=True)
    if loss_floor := adapted_floor_ms():
        print(f"adapted 41x41, {TASKS} tasks, compute floor: {loss_floor:.0f} ms (its matmul MACs at this CPU's "
              "large-bmm rate; no activations, no memory traffic)")
    if args.sweep:
        sweep(mlp, plane, all_tasks, repeats)


def adapted_floor_ms() -> float:
    """Lower bound for the post-adaptation case: per (grid point, task) set, 3 matmuls of
    support x 64 x 64 per inner step (forward, weight gradient, input gradient) and one of
    query x 64 x 64, at the throughput of one large batched matmul."""
    a, b = torch.randn(256, QUERY, 64), torch.randn(256, 64, 64)
    seconds = median_ms(lambda: torch.bmm(a, b), 20) / 1e3
    macs_per_second = a.shape[0] * QUERY * 64 * 64 / seconds
    sets = 41 * 41 * TASKS
    macs = sets * (STEPS * 3 * SUPPORT * 64 * 64 + QUERY * 64 * 64)
    return 1e3 * macs / macs_per_second


def sweep(mlp: BatchedMLP, plane, tasks: TaskBatch, repeats: int) -> None:
    print("\nmemory budget sweep (vectorized ms, median)")
    budgets = [1, 4, 16, 64, 256]
    print(f"{'case':<20}" + "".join(f"{f'{b} MiB':>10}" for b in budgets))
    for name, resolution, loss, _, _, _ in CASES[:3]:
        if loss == "adapted":
            resolution = 11  # 11x11, scaled to 41x41 below: the full case takes seconds per budget
        row = []
        for budget in budgets:
            ms = median_ms(lambda r=resolution, lo=loss, b=budget: loss_grid(
                mlp, plane, tasks, resolution=r, span=SPAN, loss=lo, steps=STEPS, lr=LR,
                memory_budget_bytes=b * 2**20), max(3, repeats // 2))
            row.append(ms * (41 * 41 / 121 if loss == "adapted" else 1))
        print(f"{name:<20}" + "".join(f"{ms:>10.1f}" for ms in row), flush=True)


if __name__ == "__main__":
    main()
