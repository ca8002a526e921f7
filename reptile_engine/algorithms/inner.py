"""The inner loop: K optimizer steps on every task of a meta-batch at once.

>>> from reptile_engine.models import BatchedMLP
>>> mlp = BatchedMLP([1, 16, 1])
>>> theta = mlp.init(torch.Generator().manual_seed(0))
>>> xs, ys = torch.randn(5, 4, 10, 1), torch.randn(5, 4, 10, 1)   # [steps, tasks, points, 1]
>>> phi = adapt(mlp, theta, xs, ys, InnerLoop(steps=5, lr=0.02))
>>> tuple(phi.shape)
(4, 49)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from reptile_engine.models import BatchedModel


@dataclass(frozen=True)
class InnerLoop:
    """Settings of one inner loop. Adam runs with beta1 = 0 and fresh state for every task."""

    steps: int
    lr: float
    optimizer: str = "sgd"
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8


def minibatches(generator: torch.Generator, x: torch.Tensor, y: torch.Tensor, steps: int,
                batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inner minibatches for every step, shaped ``[steps, tasks, batch_size, features]``.

    The support set is walked epoch after epoch in a fresh random order, without replacement inside
    an epoch (as in the paper's sine demo). One order serves all tasks of the meta-batch: their
    support points are drawn independently, so a shared order is as random as one per task, and it
    costs one ``randperm`` instead of a sort per task. A full batch needs no shuffling and no copy.
    """
    points = x.shape[1]
    if batch_size >= points:
        return x.expand(steps, *x.shape), y.expand(steps, *y.shape)
    epochs = math.ceil(steps * batch_size / points)
    order = torch.cat([torch.randperm(points, generator=generator) for _ in range(epochs)])
    index = order[: steps * batch_size].to(x.device)
    return (x[:, index].unflatten(1, (steps, batch_size)).transpose(0, 1),
            y[:, index].unflatten(1, (steps, batch_size)).transpose(0, 1))


def adapt(model: BatchedModel, theta: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
          inner: InnerLoop) -> torch.Tensor:
    """Adapt a copy of ``theta`` to every task and return ``phi`` shaped ``[tasks, P]``.

    ``theta`` is ``[P]`` (shared meta-parameters) or ``[tasks, P]``; ``xs``/``ys`` come from
    ``minibatches``. The caller's tensors are never modified.
    """
    phi = theta.detach().expand(xs.shape[1], -1).clone()
    adapt_(model, model.prepare(phi), xs, ys, inner)
    return phi


def adapt_(model: BatchedModel, prepared: Any, xs: torch.Tensor, ys: torch.Tensor,
           inner: InnerLoop) -> torch.Tensor:
    """``adapt`` in place on parameters already laid out by ``model.prepare`` (reused buffers).

    Returns each task's loss on its first minibatch, before any step: the pre-adaptation loss, for free.
    """
    with torch.no_grad():
        params = model.param_views(prepared)
        second_moments = [torch.zeros_like(p) for p in params] if inner.optimizer == "adam" else None
        first_loss = None
        for k, (x, y) in enumerate(zip(xs.unbind(0), ys.unbind(0), strict=False)):
            if k == inner.steps:
                break
            if first_loss is None:
                first_loss, grads = model.loss_and_grad(prepared, x, y)
            else:
                grads = model.gradient(prepared, x, y)
            if second_moments is None:
                torch._foreach_add_(params, grads, alpha=-inner.lr)
            else:
                _adam_beta1_zero_step(params, grads, second_moments, k + 1, inner)
    return first_loss


def _adam_beta1_zero_step(params: list[torch.Tensor], grads: list[torch.Tensor],
                          second_moments: list[torch.Tensor], step: int, inner: InnerLoop) -> None:
    """``torch.optim.Adam(betas=(0, beta2))``: the first moment is the gradient itself."""
    beta2 = inner.adam_beta2
    torch._foreach_mul_(second_moments, beta2)
    torch._foreach_addcmul_(second_moments, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(second_moments)
    torch._foreach_div_(denom, math.sqrt(1 - beta2**step))
    torch._foreach_add_(denom, inner.adam_eps)
    torch._foreach_addcdiv_(params, grads, denom, value=-inner.lr)
