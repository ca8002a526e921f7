"""Reptile's outer step: hand the pseudo-gradient ``theta - mean(phi)`` to a stock optimizer.

With ``torch.optim.SGD(lr=epsilon)`` the update is the paper's interpolation
``theta <- theta + epsilon * (mean(phi) - theta)``; any other optimizer (Adam, schedulers) just works.

>>> theta = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
>>> phi = torch.tensor([[3.0, 2.0], [5.0, 6.0]])
>>> _ = outer_step(theta, torch.optim.SGD([theta], lr=0.5), phi)
>>> theta.detach().tolist()
[2.5, 3.0]
"""

from __future__ import annotations

import torch


def pseudo_gradient(theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Reptile's update direction as a gradient: ``theta - mean over tasks of phi``."""
    return theta.detach() - phi.mean(dim=0)


def outer_step(theta: torch.nn.Parameter, optimizer: torch.optim.Optimizer, phi: torch.Tensor,
               frozen: slice | None = None) -> torch.Tensor:
    """Step ``theta`` towards the mean of the adapted parameters ``phi`` (``[tasks, P]``) and return the
    pseudo-gradient it stepped on; the ``frozen`` slice of theta stays where it is (its gradient is zero)."""
    grad = pseudo_gradient(theta, phi)
    if frozen is not None:
        grad[frozen] = 0.0
    theta.grad = grad
    optimizer.step()
    return grad
