"""Loss-landscape slices agree with plain, one-network-at-a-time references.

The references load a grid point into the ``nn.Module`` from ``BatchedMLP.module()`` with
``vector_to_parameters`` and evaluate it task by task; for the post-adaptation loss they adapt a
``deepcopy`` with ``torch.optim.SGD``. Everything runs on tiny networks so the file stays fast.
"""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest
import torch
from torch.nn.functional import mse_loss
from torch.nn.utils import vector_to_parameters

from reptile_engine.landscape import (
    DegeneratePlane,
    LandscapeSlice,
    Plane,
    pca_plane,
    project,
    random_plane,
    task_plane,
)
from reptile_engine.landscape_grid import compute_slice, grid_axes, inner_paths, loss_grid, losses_at
from reptile_engine.models import BatchedMLP
from reptile_engine.tasks.base import TaskBatch
from reptile_engine.tasks.sine import SineTasks

SIZES = [1, 16, 16, 1]
RTOL = 1e-5
STEPS, LR = 3, 0.02
RESOLUTION, SPAN = 11, 0.8
SAMPLED = [(0, 0), (0, 10), (10, 3), (4, 7), (7, 1), (10, 10)]


@pytest.fixture(scope="module")
def mlp() -> BatchedMLP:
    return BatchedMLP(SIZES)


@pytest.fixture(scope="module")
def theta(mlp: BatchedMLP) -> torch.Tensor:
    return mlp.init(torch.Generator().manual_seed(0))


@pytest.fixture(scope="module", params=["grid", "random"])
def tasks(request: pytest.FixtureRequest) -> TaskBatch:
    """Held-out tasks sharing a query grid (the trainer's case), and tasks with their own query points."""
    return SineTasks().sample(torch.Generator().manual_seed(1), 5, 8, 12, query_grid=request.param == "grid")


@pytest.fixture(scope="module")
def plane(mlp: BatchedMLP, theta: torch.Tensor) -> Plane:
    return random_plane(mlp.layout, theta, torch.Generator().manual_seed(2))


def module_at(mlp: BatchedMLP, flat: torch.Tensor) -> torch.nn.Module:
    module = mlp.module()
    vector_to_parameters(flat, module.parameters())
    return module


def reference_loss(mlp: BatchedMLP, flat: torch.Tensor, tasks: TaskBatch, loss: str, task_index: int = 0,
                   steps: int = STEPS, lr: float = LR) -> float:
    """The loss of one parameter vector, one task at a time, with a stock module and optimizer."""
    module = module_at(mlp, flat)
    indices = [task_index] if loss == "task" else range(tasks.num_tasks)
    losses = []
    for t in indices:
        model = module
        if loss == "adapted":
            model = copy.deepcopy(module)
            optimizer = torch.optim.SGD(model.parameters(), lr=lr)
            for _ in range(steps):
                optimizer.zero_grad()
                mse_loss(model(tasks.support_x[t]), tasks.support_y[t]).backward()
                optimizer.step()
        with torch.no_grad():
            losses.append(mse_loss(model(tasks.query_x[t]), tasks.query_y[t]).item())
    return float(np.mean(losses))


def grid(mlp: BatchedMLP, plane: Plane, tasks: TaskBatch, loss: str, **kwargs) -> np.ndarray:
    return loss_grid(mlp, plane, tasks, resolution=RESOLUTION, span=SPAN, loss=loss, task_index=2, steps=STEPS,
                     lr=LR, **kwargs)


@pytest.mark.parametrize("loss", ["task", "mean", "adapted"])
def test_grid_centre_is_the_loss_at_theta(mlp, theta, tasks, plane, loss):
    values = grid(mlp, plane, tasks, loss)
    centre = values[RESOLUTION // 2, RESOLUTION // 2]
    assert centre == pytest.approx(reference_loss(mlp, theta, tasks, loss, task_index=2), rel=RTOL)


@pytest.mark.parametrize("loss", ["task", "mean", "adapted"])
def test_grid_values_match_a_module_loaded_with_each_point(mlp, tasks, plane, loss):
    values = grid(mlp, plane, tasks, loss)
    alphas, betas = grid_axes(RESOLUTION, SPAN)
    for i, j in SAMPLED:
        point = plane.origin + float(alphas[j]) * plane.d1 + float(betas[i]) * plane.d2
        expected = reference_loss(mlp, point, tasks, loss, task_index=2)
        assert values[i, j] == pytest.approx(expected, rel=RTOL), (loss, i, j)
    # A surface, not a constant: the sampled values differ from the centre.
    assert np.ptp(values) > 1e-3 * abs(values[RESOLUTION // 2, RESOLUTION // 2])


def test_adapted_loss_without_steps_is_the_mean_loss(mlp, tasks, plane):
    no_steps = loss_grid(mlp, plane, tasks, resolution=RESOLUTION, span=SPAN, loss="adapted", steps=0)
    np.testing.assert_allclose(no_steps, grid(mlp, plane, tasks, "mean"), rtol=RTOL)


@pytest.mark.parametrize("loss", ["task", "mean", "adapted"])
def test_chunked_and_unchunked_evaluation_agree(mlp, tasks, plane, loss):
    one_at_a_time = grid(mlp, plane, tasks, loss, memory_budget_bytes=1)
    all_at_once = grid(mlp, plane, tasks, loss, memory_budget_bytes=2**40)
    np.testing.assert_allclose(one_at_a_time, all_at_once, rtol=RTOL)


def test_filter_normalized_directions(mlp, theta):
    layout = mlp.layout
    for ignore_biases in (True, False):
        plane = random_plane(layout, theta, torch.Generator().manual_seed(3), ignore_biases=ignore_biases)
        assert not torch.equal(plane.d1, plane.d2)
        for d in (plane.d1, plane.d2):
            for name, dv, tv in zip(layout.names, layout.views(d), layout.views(theta), strict=True):
                if tv.dim() == 1:
                    if ignore_biases:
                        assert torch.count_nonzero(dv) == 0, name
                    else:
                        torch.testing.assert_close(dv.abs(), tv.abs(), rtol=1e-6, atol=0)
                else:
                    torch.testing.assert_close(dv.norm(dim=1), tv.norm(dim=1), rtol=1e-5, atol=0)
                    if tv.shape[1] > 1:  # rescaled, not replaced: a row keeps its Gaussian direction
                        assert not torch.allclose(dv.abs(), tv.abs())


def test_random_plane_comes_from_the_generator_only(mlp, theta):
    a = random_plane(mlp.layout, theta, torch.Generator().manual_seed(5))
    b = random_plane(mlp.layout, theta, torch.Generator().manual_seed(5))
    assert torch.equal(a.d1, b.d1) and torch.equal(a.d2, b.d2)


def test_projection_onto_a_non_orthonormal_plane_is_least_squares(plane):
    gram = plane.directions @ plane.directions.T
    assert not torch.allclose(gram, torch.eye(2), atol=1e-3)  # the random plane is not orthonormal
    coords = np.array([[0.3, -0.7], [-1.2, 0.05], [0.0, 0.0]])
    points = torch.stack([plane.point(float(a), float(b)) for a, b in coords])
    np.testing.assert_allclose(project(plane, points), coords, atol=1e-5)


def test_task_plane_contains_theta_and_both_adapted_points(theta):
    g = torch.Generator().manual_seed(4)
    phi_a = theta + 0.1 * torch.randn(theta.shape, generator=g)
    phi_b = theta + 0.1 * torch.randn(theta.shape, generator=g)
    plane = task_plane(theta, phi_a, phi_b)
    d = plane.directions
    torch.testing.assert_close(d @ d.T, torch.eye(2), rtol=0, atol=1e-6)
    coords = project(plane, torch.stack([theta, phi_a, phi_b]))
    expected_b = [float(plane.d1 @ (phi_b - theta)), float(plane.d2 @ (phi_b - theta))]
    np.testing.assert_allclose(coords[0], [0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(coords[1], [float((phi_a - theta).norm()), 0.0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(coords[2], expected_b, rtol=1e-6, atol=1e-6)
    for point, (a, b) in zip((phi_a, phi_b), coords[1:], strict=True):
        residual = (plane.point(float(a), float(b)) - point).norm() / (point - theta).norm()
        assert residual < 1e-5
    with pytest.raises(DegeneratePlane, match="line"):
        task_plane(theta, phi_a, theta + 2 * (phi_a - theta))
    with pytest.raises(ValueError, match="coincides"):
        task_plane(theta, theta.clone(), phi_b)


def test_pca_plane_is_orthonormal_and_spans_a_planted_trajectory(theta):
    g = torch.Generator().manual_seed(6)
    basis, _ = torch.linalg.qr(torch.randn(theta.numel(), 2, generator=g, dtype=torch.float64))
    steps = torch.linspace(0, 1, 12, dtype=torch.float64)
    coeffs = torch.stack([3 * (1 - steps), torch.sin(4 * steps)], dim=1)  # a curved path ending at theta
    snapshots = (theta.double() + coeffs @ basis.T).float()
    plane = pca_plane(snapshots, theta)
    d = plane.directions.double()
    torch.testing.assert_close(d @ d.T, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-6)
    # Both planted directions lie in the plane: projecting them onto span(d1, d2) loses nothing.
    residual = basis - d.T @ (d @ basis)
    assert residual.norm() < 1e-5
    assert sum(plane.explained) == pytest.approx(1.0, abs=1e-6)
    # The trajectory is reproduced exactly in plane coordinates (up to the plane's rotation).
    coords = project(plane, snapshots)
    reconstructed = plane.origin.double() + torch.as_tensor(coords) @ d
    torch.testing.assert_close(reconstructed, snapshots.double(), rtol=0, atol=1e-5)
    assert coords[0, 0] >= 0 and coords[0, 1] >= 0  # the oldest snapshot sets the signs


def test_pca_plane_refuses_too_few_or_collinear_snapshots(theta):
    with pytest.raises(ValueError, match="at least 3 snapshots"):
        pca_plane(torch.stack([theta, theta + 1]), theta)
    line = torch.stack([theta + t * torch.ones_like(theta) for t in (0.0, 0.5, 1.0, 2.0)])
    with pytest.raises(DegeneratePlane, match="two directions"):
        pca_plane(line, theta)


def test_inner_paths_follow_each_tasks_sgd_steps(mlp, theta, tasks, plane):
    paths = inner_paths(mlp, plane, theta, tasks, STEPS, LR, n_tasks=3, first_task=3)
    assert paths.shape == (3, STEPS + 1, 2)
    np.testing.assert_allclose(paths[:, 0], 0.0, atol=1e-7)
    for n, t in enumerate([3, 4, 0]):  # wraps around the batch
        module = module_at(mlp, theta.clone())
        optimizer = torch.optim.SGD(module.parameters(), lr=LR)
        for k in range(1, STEPS + 1):
            optimizer.zero_grad()
            mse_loss(module(tasks.support_x[t]), tasks.support_y[t]).backward()
            optimizer.step()
            flat = torch.nn.utils.parameters_to_vector(module.parameters()).detach()
            np.testing.assert_allclose(paths[n, k], project(plane, flat)[0], rtol=1e-4, atol=1e-6)
    assert np.abs(paths[:, -1]).max() > 1e-4  # the paths move


def assert_plain(result: LandscapeSlice) -> None:
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        assert not isinstance(value, torch.Tensor), f.name
        assert isinstance(value, np.ndarray | float | int | str | tuple), (f.name, type(value))
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float64 and not value.flags.writeable, f.name
        if isinstance(value, tuple):
            assert all(type(v) is float for v in value), f.name


@pytest.mark.parametrize("plane_kind", ["random", "pca", "task"])
def test_compute_slice_returns_plain_arrays(mlp, theta, tasks, plane_kind):
    g = torch.Generator().manual_seed(7)
    snapshots = theta + 0.05 * torch.randn(6, theta.numel(), generator=g)
    result, plane = compute_slice(mlp, theta, tasks, plane_kind=plane_kind, loss_kind="mean", resolution=11,
                                  span=0.5, snapshots=snapshots, generator=g, steps=STEPS, lr=LR, task_index=1,
                                  iteration=42, n_paths=2)
    assert_plain(result)
    relayed = pickle.loads(pickle.dumps(result))  # how RemoteTrainer hands events across processes
    np.testing.assert_array_equal(relayed.values, result.values)
    assert (result.kind, result.loss, result.iteration, result.resolution, result.span) == \
        (plane_kind, "mean", 42, 11, 0.5)
    assert result.values.shape == (11, 11) and result.alphas.shape == result.betas.shape == (11,)
    assert result.center_loss == pytest.approx(result.values[5, 5], rel=RTOL)
    assert result.trajectory.shape == (6, 2) and result.inner_paths.shape == (2, STEPS + 1, 2)
    assert plane.kind == plane_kind and torch.equal(plane.origin, theta)
    if plane_kind == "task":
        # The first two inner paths end at phi_a and phi_b, which sit on the first axis and in the plane.
        assert result.task_points.shape == (2, 2)
        np.testing.assert_allclose(result.inner_paths[:, -1], result.task_points, rtol=1e-5, atol=1e-6)
        assert result.task_points[0, 1] == pytest.approx(0.0, abs=1e-6)
    else:
        assert result.task_points.shape == (0, 2)
    assert (len(result.explained_variance) == 2) == (plane_kind == "pca")


def test_a_frozen_plane_keeps_its_directions_and_follows_theta(mlp, theta, tasks, plane):
    moved = theta + 0.01
    result, frozen = compute_slice(mlp, moved, tasks, directions=plane, resolution=11, span=SPAN, steps=STEPS,
                                   lr=LR, n_paths=0)
    assert torch.equal(frozen.d1, plane.d1) and torch.equal(frozen.d2, plane.d2)
    assert torch.equal(frozen.origin, moved) and frozen.kind == plane.kind == result.kind
    assert result.center_loss == pytest.approx(reference_loss(mlp, moved, tasks, "mean"), rel=RTOL)
    assert result.inner_paths.shape == (0, STEPS + 1, 2)


def test_compute_slice_needs_its_inputs(mlp, theta, tasks):
    with pytest.raises(ValueError, match="generator"):
        compute_slice(mlp, theta, tasks, plane_kind="random", resolution=11)
    with pytest.raises(DegeneratePlane):
        compute_slice(mlp, theta, tasks, plane_kind="pca", resolution=11)
    with pytest.raises(ValueError, match="plane_kind"):
        compute_slice(mlp, theta, tasks, plane_kind="hessian", resolution=11)


def test_losses_at_arbitrary_points(mlp, theta, tasks, plane):
    coords = [[0.25, -0.5], [1.5, 2.0]]
    values = losses_at(mlp, plane, coords, tasks, loss="mean")
    for (a, b), value in zip(coords, values, strict=True):
        assert value == pytest.approx(reference_loss(mlp, plane.point(a, b), tasks, "mean"), rel=RTOL)

