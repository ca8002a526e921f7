"""Reptile's outer step: a stock optimizer fed the pseudo-gradient ``theta - mean(phi)``."""

from __future__ import annotations

import pytest
import torch

from reptile_engine.algorithms.reptile import outer_step, pseudo_gradient


def setup(seed: int = 0, tasks: int = 4, size: int = 49) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    theta = torch.randn(size, generator=generator)
    return theta, theta + 0.1 * torch.randn(tasks, size, generator=generator)


@pytest.mark.parametrize("eps", [1.0, 0.5, 0.1, 1e-3])
def test_sgd_outer_step_is_the_paper_interpolation(eps):
    theta0, phi = setup()
    theta = torch.nn.Parameter(theta0.clone())
    outer_step(theta, torch.optim.SGD([theta], lr=eps), phi)
    mean_phi = sum(phi[t] for t in range(phi.shape[0])) / phi.shape[0]
    torch.testing.assert_close(theta.detach(), theta0 + eps * (mean_phi - theta0), rtol=1e-6, atol=1e-7)
    assert not torch.allclose(theta.detach(), theta0, rtol=0, atol=1e-5), "the step moved theta"


def test_eps_zero_leaves_theta_bit_identical():
    theta0, phi = setup(seed=2)
    theta = torch.nn.Parameter(theta0.clone())
    grad = outer_step(theta, torch.optim.SGD([theta], lr=0.0), phi)
    assert torch.equal(theta.detach(), theta0)
    assert grad.abs().max() > 0  # there was a non-zero update to ignore


def test_the_optimizer_steps_on_theta_minus_mean_phi():
    theta0, phi = setup(seed=3, tasks=6)
    theta = torch.nn.Parameter(theta0.clone())
    grad = outer_step(theta, torch.optim.SGD([theta], lr=0.3), phi)
    assert torch.equal(theta.grad, grad)
    torch.testing.assert_close(grad, theta0 - phi.sum(dim=0) / 6, rtol=1e-6, atol=1e-7)


def test_pseudo_gradient_on_handmade_values():
    theta = torch.tensor([1.0, 2.0, 3.0])
    phi = torch.tensor([[0.0, 2.0, 5.0], [1.0, 4.0, 7.0]])
    assert torch.equal(pseudo_gradient(theta, phi), torch.tensor([0.5, -1.0, -3.0]))
    # A parameter that requires grad yields a plain tensor outside the autograd graph.
    param = torch.nn.Parameter(theta.clone())
    assert not pseudo_gradient(param, phi).requires_grad


def test_a_frozen_slice_stays_where_it_is():
    theta0, phi = setup(seed=4, size=10)
    theta = torch.nn.Parameter(theta0.clone())
    grad = outer_step(theta, torch.optim.SGD([theta], lr=1.0), phi, frozen=slice(3, 6))
    assert torch.equal(theta.detach()[3:6], theta0[3:6]) and not grad[3:6].any()
    assert not torch.equal(theta.detach()[:3], theta0[:3]) and not torch.equal(theta.detach()[6:], theta0[6:])


def test_the_outer_step_does_not_modify_phi():
    theta0, phi = setup(seed=5)
    before = phi.clone()
    theta = torch.nn.Parameter(theta0.clone())
    outer_step(theta, torch.optim.SGD([theta], lr=0.5), phi)
    assert torch.equal(phi, before)


def test_adam_outer_optimizer_consumes_the_pseudo_gradient():
    theta0, phi = setup(seed=6)
    theta = torch.nn.Parameter(theta0.clone())
    g = outer_step(theta, torch.optim.Adam([theta], lr=0.01), phi)
    # Adam's first step moves every coordinate by about lr against the sign of its gradient.
    moved = theta.detach() - theta0
    big = g.abs() > 1e-4
    assert big.any()
    assert torch.equal(torch.sign(moved[big]), -torch.sign(g[big]))
    torch.testing.assert_close(moved[big].abs(), torch.full_like(moved[big], 0.01), rtol=1e-3, atol=1e-6)
