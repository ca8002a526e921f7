"""The vectorized Reptile meta-update agrees with a plain, sequential textbook implementation.

The reference adapts one ``nn.Module`` copy per task with a stock ``torch.optim`` optimizer, then
interpolates ``theta <- theta + eps * (mean(phi) - theta)``. Both sides see exactly the same tasks and
inner minibatches, drawn once per meta-iteration with the engine's own ``minibatches``.
"""

from __future__ import annotations

import copy

import pytest
import torch

from reptile_engine.algorithms.inner import InnerLoop, adapt, minibatches
from reptile_engine.algorithms.reptile import meta_step
from reptile_engine.models import BatchedMLP, FunctionalModel, build_model
from reptile_engine.tasks.sine import SineTasks

SIZES = [1, 32, 32, 1]
META_ITERATIONS = 50
META_LR = 0.5
SUPPORT = 10
QUERY = 5
RTOL = 1e-5

# Inner settings of the float32 comparison. Adam runs at the paper's lr = 0.001: Reptile with sign-like Adam
# inner steps amplifies rounding differences between any two correct implementations by about 1.4x per
# meta-iteration at lr = 0.01, beta2 = 0.99 (measured in float64: 5e-17 after one iteration, 3e-10 after
# fifty), so a float32 comparison at 1e-5 over 50 iterations is only meaningful where the dynamics are
# tame. The aggressive regime is checked in float64 below, where that growth still leaves many digits.
INNER = {
    "sgd": InnerLoop(steps=0, lr=0.02, optimizer="sgd"),
    "adam": InnerLoop(steps=0, lr=0.001, optimizer="adam", adam_beta2=0.999, adam_eps=1e-8),
}


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float((value - reference).norm() / reference.norm())


def load_flat(module: torch.nn.Module, mlp: BatchedMLP, theta: torch.Tensor) -> None:
    names = [name for name, _ in module.named_parameters()]
    assert tuple(names) == mlp.layout.names
    with torch.no_grad():
        for p, view in zip(module.parameters(), mlp.layout.views(theta), strict=True):
            p.copy_(view)


def reference_meta_step(
    mlp: BatchedMLP, theta: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor, inner: InnerLoop, eps: float
) -> torch.Tensor:
    """Sequential textbook Reptile: one module copy and one fresh optimizer per task."""
    module = mlp.module().to(theta.dtype)
    load_flat(module, mlp, theta)
    steps, tasks = xs.shape[:2]
    phis = []
    for t in range(tasks):
        m = copy.deepcopy(module)
        if inner.optimizer == "sgd":
            opt = torch.optim.SGD(m.parameters(), lr=inner.lr)
        else:
            opt = torch.optim.Adam(
                m.parameters(), lr=inner.lr, betas=(0.0, inner.adam_beta2), eps=inner.adam_eps
            )
        for k in range(steps):
            loss = ((m(xs[k, t]) - ys[k, t]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        phis.append(torch.nn.utils.parameters_to_vector(m.parameters()).detach())
    mean_phi = torch.stack(phis).mean(dim=0)
    return theta + eps * (mean_phi - theta)


def compare(
    tasks: int,
    steps: int,
    batch_size: int,
    inner: InnerLoop,
    activation: str = "tanh",
    dtype: torch.dtype = torch.float32,
    iterations: int = META_ITERATIONS,
    seed: int = 0,
) -> tuple[float, float]:
    """Run both implementations side by side; return (worst relative error, relative distance moved)."""
    mlp = BatchedMLP(SIZES, activation)
    generator = torch.Generator().manual_seed(seed)
    theta0 = mlp.init(torch.Generator().manual_seed(7)).to(dtype)
    theta_param = torch.nn.Parameter(theta0.clone())
    outer = torch.optim.SGD([theta_param], lr=META_LR)
    theta_ref = theta0.clone()
    worst = 0.0
    for _ in range(iterations):
        batch = SineTasks().sample(generator, tasks, SUPPORT, QUERY)
        xs, ys = minibatches(
            generator, batch.support_x.to(dtype), batch.support_y.to(dtype), steps, batch_size
        )
        assert xs.shape == (steps, tasks, batch_size, 1) and ys.shape == xs.shape
        meta_step(mlp, theta_param, outer, xs, ys, inner)
        theta_ref = reference_meta_step(mlp, theta_ref, xs, ys, inner, META_LR)
        assert theta_param.dtype == dtype
        worst = max(worst, relative_error(theta_param.detach(), theta_ref))
    return worst, relative_error(theta_ref, theta0)


CASES = [
    pytest.param(b, k, mb, optimizer, activation, id=f"{optimizer}-{activation}-B{b}-K{k}-mb{mb}")
    for optimizer in ("sgd", "adam")
    for activation, shapes in (("tanh", [(1, 5), (4, 3), (10, 8)]), ("relu", [(4, 3)]))
    for b, k in shapes
    for mb in (4, SUPPORT)  # shuffled minibatches smaller than the support set, and the full batch
]


@pytest.mark.parametrize(("tasks", "steps", "batch_size", "optimizer", "activation"), CASES)
def test_vectorized_meta_step_matches_sequential_reference(tasks, steps, batch_size, optimizer, activation):
    inner = InnerLoop(
        steps, INNER[optimizer].lr, optimizer, INNER[optimizer].adam_beta2, INNER[optimizer].adam_eps
    )
    worst, moved = compare(tasks, steps, batch_size, inner, activation, seed=1234 + 17 * tasks + steps)
    assert worst <= RTOL, f"relative error {worst:.3g} within {META_ITERATIONS} meta-iterations"
    # The agreement is not vacuous: training moved theta far more than the tolerance.
    assert moved > 100 * RTOL


def test_adam_with_large_steps_matches_reference_in_float64():
    inner = InnerLoop(3, lr=0.01, optimizer="adam", adam_beta2=0.99, adam_eps=1e-8)
    worst, moved = compare(4, 3, 4, inner, dtype=torch.float64, iterations=30, seed=99)
    assert worst <= 1e-9, f"relative error {worst:.3g}"
    assert moved > 1e-2


def test_reference_detects_a_wrong_inner_rate():
    """The harness itself is sensitive: a 1% change of the inner rate is far outside the tolerance."""
    mlp = BatchedMLP(SIZES)
    generator = torch.Generator().manual_seed(5)
    theta = mlp.init(torch.Generator().manual_seed(7))
    batch = SineTasks().sample(generator, 4, SUPPORT, QUERY)
    xs, ys = minibatches(generator, batch.support_x, batch.support_y, 5, 4)
    reference = reference_meta_step(mlp, theta, xs, ys, InnerLoop(5, 0.02), 1.0)
    assert relative_error(adapt(mlp, theta, xs, ys, InnerLoop(5, 0.02)).mean(dim=0), reference) <= RTOL
    wrong = adapt(mlp, theta, xs, ys, InnerLoop(5, 0.02 * 1.01)).mean(dim=0)
    assert relative_error(wrong, reference) > 10 * RTOL


def test_minibatches_walk_shuffled_epochs_without_replacement():
    generator = torch.Generator().manual_seed(3)
    batch = SineTasks().sample(generator, 3, SUPPORT, QUERY)
    steps, batch_size = 5, 4  # 20 draws: exactly two epochs over the 10 support points
    xs, ys = minibatches(generator, batch.support_x, batch.support_y, steps, batch_size)
    assert xs.shape == ys.shape == (steps, 3, batch_size, 1)
    for t in range(3):
        stream_x = xs[:, t].reshape(-1)
        support = batch.support_x[t].reshape(-1)
        for epoch in range(2):
            chunk = stream_x[epoch * SUPPORT : (epoch + 1) * SUPPORT]
            assert torch.equal(chunk.sort().values, support.sort().values)
        # Every x keeps its own y.
        index = (stream_x.unsqueeze(1) == support.unsqueeze(0)).float().argmax(dim=1)
        assert torch.equal(ys[:, t].reshape(-1), batch.support_y[t].reshape(-1)[index])
    # Shuffled, not the support set in its stored order.
    assert not torch.equal(xs[:, 0].reshape(-1)[:SUPPORT], batch.support_x[0].reshape(-1))


def test_full_batch_minibatches_repeat_the_support_set():
    generator = torch.Generator().manual_seed(3)
    batch = SineTasks().sample(generator, 2, SUPPORT, QUERY)
    state = generator.get_state()
    xs, ys = minibatches(generator, batch.support_x, batch.support_y, 4, SUPPORT)
    assert xs.shape == (4, 2, SUPPORT, 1)
    for k in range(4):
        assert torch.equal(xs[k], batch.support_x) and torch.equal(ys[k], batch.support_y)
    assert torch.equal(generator.get_state(), state), "a full batch should draw no random numbers"


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_functional_backend_matches_batched_mlp(optimizer):
    sizes = [1, 16, 16, 1]
    matmul = build_model(sizes, "tanh", "matmul")
    func = build_model(sizes, "tanh", "func")
    assert isinstance(matmul, BatchedMLP) and isinstance(func, FunctionalModel)
    assert func.layout == matmul.layout
    theta0 = matmul.init(torch.Generator().manual_seed(11))
    assert torch.equal(func.init(torch.Generator().manual_seed(11)), theta0)

    # One evaluation: forward, per-task loss and gradients.
    generator = torch.Generator().manual_seed(2)
    batch = SineTasks().sample(generator, 6, SUPPORT, QUERY)
    phi = theta0.expand(6, -1).clone() + 0.01 * torch.randn(6, theta0.numel(), generator=generator)
    out_m = matmul.forward(matmul.prepare(phi.clone()), batch.query_x)
    out_f = func.forward(func.prepare(phi.clone()), batch.query_x)
    assert out_m.shape == out_f.shape == (6, QUERY, 1)
    assert relative_error(out_f, out_m) <= RTOL
    loss_m, grads_m = matmul.loss_and_grad(matmul.prepare(phi.clone()), batch.support_x, batch.support_y)
    loss_f, grads_f = func.loss_and_grad(func.prepare(phi.clone()), batch.support_x, batch.support_y)
    assert loss_m.shape == loss_f.shape == (6,)
    assert relative_error(loss_f, loss_m) <= RTOL
    for g_m, g_f in zip(grads_m, grads_f, strict=True):
        assert g_m.shape == g_f.shape
        assert relative_error(g_f, g_m) <= RTOL

    # Whole meta-steps.
    theta_m = torch.nn.Parameter(theta0.clone())
    theta_f = torch.nn.Parameter(theta0.clone())
    opt_m = torch.optim.SGD([theta_m], lr=META_LR)
    opt_f = torch.optim.SGD([theta_f], lr=META_LR)
    inner = InnerLoop(
        4, INNER[optimizer].lr, optimizer, INNER[optimizer].adam_beta2, INNER[optimizer].adam_eps
    )
    for _ in range(20):
        batch = SineTasks().sample(generator, 5, SUPPORT, QUERY)
        xs, ys = minibatches(generator, batch.support_x, batch.support_y, 4, 5)
        meta_step(matmul, theta_m, opt_m, xs, ys, inner)
        meta_step(func, theta_f, opt_f, xs, ys, inner)
    assert relative_error(theta_f.detach(), theta_m.detach()) <= RTOL
    assert relative_error(theta_m.detach(), theta0) > 100 * RTOL
