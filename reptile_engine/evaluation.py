"""The adaptation curve: how fast a parameter vector learns a held-out task.

>>> from reptile_engine.models import BatchedMLP
>>> from reptile_engine.tasks.sine import SineTasks
>>> mlp = BatchedMLP([1, 16, 1])
>>> tasks = SineTasks().sample(torch.Generator().manual_seed(1), 8, 10, 20, query_grid=True)
>>> curve = adaptation_curve(mlp, mlp.init(torch.Generator().manual_seed(0)), tasks, steps=3, lr=0.02)
>>> curve.shape
(4,)
"""

from __future__ import annotations

import numpy as np
import torch

from reptile_engine.models import BatchedModel
from reptile_engine.tasks.base import TaskBatch


def adaptation_trajectory(model: BatchedModel, theta: torch.Tensor, tasks: TaskBatch, steps: int,
                          lr: float) -> torch.Tensor:
    """Per-task query MSE after 0..``steps`` full-batch SGD steps on the support set: ``[steps + 1, tasks]``."""
    with torch.no_grad():
        phi = theta.expand(tasks.num_tasks, -1).clone()
        prepared = model.prepare(phi)
        params = model.param_views(prepared)
        losses = []
        for k in range(steps + 1):
            pred = model.forward(prepared, tasks.query_x)
            losses.append((pred - tasks.query_y).square().mean(dim=(-2, -1)))
            if k < steps:
                grads = model.gradient(prepared, tasks.support_x, tasks.support_y)
                torch._foreach_add_(params, grads, alpha=-lr)
        return torch.stack(losses)


def adaptation_curve(model: BatchedModel, theta: torch.Tensor, tasks: TaskBatch, steps: int,
                     lr: float) -> np.ndarray:
    """Mean query MSE over the tasks after 0..``steps`` inner steps, as a float64 numpy array."""
    trajectory = adaptation_trajectory(model, theta, tasks, steps, lr)
    return trajectory.mean(dim=1).double().cpu().numpy()
