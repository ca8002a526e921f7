"""The inner loop: K optimizer steps on every task of a meta-batch at once.

>>> from reptile_engine.models import BatchedMLP
>>> mlp = BatchedMLP([1, 16, 1])
>>> theta = mlp.init(torch.Generator().manual_seed(0))
>>> xs, ys = torch.randn(5, 4, 10, 1), torch.randn(5, 4, 10, 1)   # [steps, tasks, points, 1]
>>> phi, first_loss = adapt(mlp, theta, xs, ys, InnerLoop(steps=5, lr=0.02))
>>> tuple(phi.shape), tuple(first_loss.shape)
((4, 49), (4,))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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

    Each task walks through its own shuffled support set, epoch after epoch, without replacement
    inside an epoch (as in the paper's sine demo). A full batch needs no shuffling and no copy.
    """
    tasks, points, _ = x.shape
    if batch_size >= points:
        return x.expand(steps, *x.shape), y.expand(steps, *y.shape)
    epochs = math.ceil(steps * batch_size / points)
    order = torch.rand(tasks, epochs, points, generator=generator).argsort(dim=-1)
    index = order.view(tasks, -1)[:, : steps * batch_size].to(x.device)
    index = index.view(tasks, steps, batch_size).transpose(0, 1).unsqueeze(-1)
    gather_x = x.unsqueeze(0).expand(steps, *x.shape)
    gather_y = y.unsqueeze(0).expand(steps, *y.shape)
    return (torch.gather(gather_x, 2, index.expand(-1, -1, -1, x.shape[-1])),
            torch.gather(gather_y, 2, index.expand(-1, -1, -1, y.shape[-1])))


def adapt(model: BatchedModel, theta: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor,
          inner: InnerLoop) -> tuple[torch.Tensor, torch.Tensor]:
    """Adapt a copy of ``theta`` to every task; return ``phi`` ``[tasks, P]`` and the first step's loss.

    ``theta`` is ``[P]`` (shared meta-parameters) or ``[tasks, P]``; ``xs``/``ys`` come from
    ``minibatches``. The caller's tensors are never modified.
    """
    tasks = xs.shape[1]
    with torch.no_grad():
        phi = theta.expand(tasks, -1).clone()
        prepared = model.prepare(phi)
        params = model.param_views(prepared)
        first_loss = None
        second_moments = [torch.zeros_like(p) for p in params] if inner.optimizer == "adam" else None
        for k in range(inner.steps):
            loss, grads = model.loss_and_grad(prepared, xs[k], ys[k])
            if first_loss is None:
                first_loss = loss
            if second_moments is None:
                torch._foreach_add_(params, grads, alpha=-inner.lr)
            else:
                _adam_beta1_zero_step(params, grads, second_moments, k + 1, inner)
    return phi, first_loss


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
