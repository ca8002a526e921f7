"""Reptile's outer step: a stock optimizer fed the pseudo-gradient ``theta - mean(phi)``."""

from __future__ import annotations

import pytest
import torch

from reptile_engine.algorithms.inner import InnerLoop, adapt, minibatches
from reptile_engine.algorithms.reptile import meta_step, pseudo_gradient
from reptile_engine.models import BatchedMLP
from reptile_engine.tasks.sine import SineTasks


def setup(seed: int = 0, tasks: int = 4, steps: int = 3):
    mlp = BatchedMLP([1, 16, 16, 1])
    generator = torch.Generator().manual_seed(seed)
    theta = mlp.init(generator)
    batch = SineTasks().sample(generator, tasks, 10, 5)
    xs, ys = minibatches(generator, batch.support_x, batch.support_y, steps, 5)
    return mlp, theta, xs, ys, InnerLoop(steps, 0.02)


@pytest.mark.parametrize("eps", [1.0, 0.5, 0.1, 1e-3])
def test_sgd_outer_step_is_the_paper_interpolation(eps):
    mlp, theta0, xs, ys, inner = setup()
    expected_phi = adapt(mlp, theta0, xs, ys, inner)
    theta = torch.nn.Parameter(theta0.clone())
    result = meta_step(mlp, theta, torch.optim.SGD([theta], lr=eps), xs, ys, inner)
    assert torch.equal(result.phi, expected_phi)
    expected = theta0 + eps * (expected_phi.mean(dim=0) - theta0)
    torch.testing.assert_close(theta.detach(), expected, rtol=1e-6, atol=1e-7)
    # The step really moved theta (so the comparison above is not trivially satisfied).
    assert not torch.allclose(theta.detach(), theta0, rtol=0, atol=1e-5)


def test_eps_one_lands_on_the_mean_of_the_adapted_parameters():
    mlp, theta0, xs, ys, inner = setup(seed=1)
    theta = torch.nn.Parameter(theta0.clone())
    result = meta_step(mlp, theta, torch.optim.SGD([theta], lr=1.0), xs, ys, inner)
    torch.testing.assert_close(theta.detach(), result.phi.mean(dim=0), rtol=1e-6, atol=1e-7)


def test_eps_zero_leaves_theta_bit_identical():
    mlp, theta0, xs, ys, inner = setup(seed=2)
    theta = torch.nn.Parameter(theta0.clone())
    result = meta_step(mlp, theta, torch.optim.SGD([theta], lr=0.0), xs, ys, inner)
    assert torch.equal(theta.detach(), theta0)
    assert result.pseudo_gradient.abs().max() > 0  # there was a non-zero update to ignore


def test_pseudo_gradient_is_theta_minus_mean_phi():
    mlp, theta0, xs, ys, inner = setup(seed=3, tasks=6)
    theta = torch.nn.Parameter(theta0.clone())
    result = meta_step(mlp, theta, torch.optim.SGD([theta], lr=0.3), xs, ys, inner)
    assert result.phi.shape == (6, mlp.layout.size)
    assert torch.equal(result.pseudo_gradient, theta0 - result.phi.mean(dim=0))
    assert torch.equal(pseudo_gradient(theta0, result.phi), theta0 - result.phi.mean(dim=0))
    # The optimizer saw exactly that pseudo-gradient.
    assert torch.equal(theta.grad, result.pseudo_gradient)


def test_pseudo_gradient_on_handmade_values():
    theta = torch.tensor([1.0, 2.0, 3.0])
    phi = torch.tensor([[0.0, 2.0, 5.0], [1.0, 4.0, 7.0]])
    assert torch.equal(pseudo_gradient(theta, phi), torch.tensor([0.5, -1.0, -3.0]))
    # A parameter that requires grad yields a plain tensor outside the autograd graph.
    param = torch.nn.Parameter(theta.clone())
    assert not pseudo_gradient(param, phi).requires_grad


def test_meta_step_does_not_modify_inputs():
    mlp, theta0, xs, ys, inner = setup(seed=4)
    xs_before, ys_before = xs.clone(), ys.clone()
    theta = torch.nn.Parameter(theta0.clone())
    meta_step(mlp, theta, torch.optim.SGD([theta], lr=0.5), xs, ys, inner)
    assert torch.equal(xs, xs_before) and torch.equal(ys, ys_before)
    phi = adapt(mlp, theta0, xs, ys, inner)
    assert phi.data_ptr() != theta0.data_ptr()
    assert torch.equal(theta0, setup(seed=4)[1])


def test_adam_outer_optimizer_consumes_the_pseudo_gradient():
    mlp, theta0, xs, ys, inner = setup(seed=5)
    theta = torch.nn.Parameter(theta0.clone())
    result = meta_step(mlp, theta, torch.optim.Adam([theta], lr=0.01), xs, ys, inner)
    # Adam's first step moves every coordinate by about lr against the sign of its gradient.
    g = result.pseudo_gradient
    moved = theta.detach() - theta0
    big = g.abs() > 1e-4
    assert big.any()
    assert torch.equal(torch.sign(moved[big]), -torch.sign(g[big]))
    torch.testing.assert_close(moved[big].abs(), torch.full_like(moved[big], 0.01), rtol=1e-3, atol=1e-6)
