"""Reptile's outer step: hand the pseudo-gradient ``theta - mean(phi)`` to a stock optimizer.

With ``torch.optim.SGD(lr=epsilon)`` the update is the paper's interpolation
``theta <- theta + epsilon * (mean(phi) - theta)``; any other optimizer (Adam, schedulers) just works.

>>> from reptile_engine.models import BatchedMLP
>>> from reptile_engine.algorithms.inner import InnerLoop
>>> mlp = BatchedMLP([1, 16, 1])
>>> theta = torch.nn.Parameter(mlp.init(torch.Generator().manual_seed(0)))
>>> opt = torch.optim.SGD([theta], lr=0.5)
>>> xs, ys = torch.randn(5, 4, 10, 1), torch.randn(5, 4, 10, 1)
>>> result = meta_step(mlp, theta, opt, xs, ys, InnerLoop(steps=5, lr=0.02))
>>> tuple(result.phi.shape)
(4, 49)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from reptile_engine.algorithms.inner import InnerLoop, adapt
from reptile_engine.models import BatchedModel


class MetaStepResult(NamedTuple):
    phi: torch.Tensor
    pseudo_gradient: torch.Tensor


def pseudo_gradient(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Reptile's update direction as a gradient: ``theta - mean over tasks of phi``."""
    return theta.detach() - phi.mean(dim=0)


def meta_step(model: BatchedModel, theta: torch.nn.Parameter, optimizer: torch.optim.Optimizer,
              xs: torch.Tensor, ys: torch.Tensor, inner: InnerLoop) -> MetaStepResult:
    """Adapt to every task of the meta-batch, then take one outer optimizer step on ``theta``."""
    phi = adapt(model, theta.detach(), xs, ys, inner)
    grad = pseudo_gradient(theta, phi)
    theta.grad = grad
    optimizer.step()
    return MetaStepResult(phi, grad)
