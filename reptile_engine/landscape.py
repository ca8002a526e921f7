"""2D slices through parameter space: the planes, and the projection of points onto them.

A slice is the loss over the plane ``theta + a * d1 + b * d2`` on an ``R x R`` grid of ``(a, b)`` in
``[-span, span]^2`` (``reptile_engine.landscape_grid`` evaluates it). The planes:

* ``random_plane``: filter-normalized Gaussian directions (Li et al. 2018). A raw Gaussian step would be
  huge for a layer of small weights and tiny for one of large weights, so each direction is rescaled
  filter by filter to the weights it perturbs; then ``span = 1`` means "as far again as the weights".
* ``pca_plane``: the top two principal directions of the recent meta-trajectory, the plane the
  meta-parameters actually move in (random directions almost never contain the trajectory).
* ``task_plane``: the plane through ``theta`` and two tasks' adapted parameters, so the two inner-loop
  end points whose pull Reptile averages are visible on the surface.

>>> theta = torch.zeros(4)
>>> plane = task_plane(theta, torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 2.0, 0, 0]))
>>> project(plane, torch.tensor([[3.0, 4.0, 0, 0]])).tolist()
[[3.0, 4.0]]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from reptile_engine.models import ParamLayout

PlaneKind = Literal["random", "pca", "task"]
LossKind = Literal["task", "mean", "adapted"]
PLANE_KINDS: tuple[str, ...] = ("random", "pca", "task")
LOSS_KINDS: tuple[str, ...] = ("task", "mean", "adapted")

_ORTHONORMAL_TOLERANCE = 1e-5


class DegeneratePlane(ValueError):
    """The requested plane does not exist for these points: too few snapshots, or points on a line.

    A ``ValueError``, so a caller can catch it and fall back to another plane (e.g. the random one).
    """


@dataclass(frozen=True, eq=False)
class Plane:
    """The plane ``origin + a * d1 + b * d2`` in parameter space; flat ``[P]`` tensors.

    ``d1`` and ``d2`` are orthonormal for the PCA and task planes; the random plane's directions are
    filter-normalized instead (nearly orthogonal in high dimension, but not unit length), which is why
    ``project`` solves least squares there. ``explained`` holds the PCA plane's explained-variance ratios.
    """

    origin: torch.Tensor
    d1: torch.Tensor
    d2: torch.Tensor
    kind: str
    explained: tuple[float, ...] = ()

    @property
    def directions(self) -> torch.Tensor:
        """``[2, P]``: the rows are ``d1`` and ``d2``."""
        return torch.stack([self.d1, self.d2])

    def at(self, origin: torch.Tensor) -> Plane:
        """The same directions through a new origin: how a frozen plane follows the meta-parameters."""
        origin = origin.detach()
        if origin.shape != self.d1.shape:
            raise ValueError(f"origin has shape {tuple(origin.shape)}, the plane's directions {tuple(self.d1.shape)}")
        return dataclasses.replace(self, origin=origin)

    def point(self, a: float, b: float) -> torch.Tensor:
        """``origin + a * d1 + b * d2``."""
        return self.origin + a * self.d1 + b * self.d2


@dataclass(frozen=True, eq=False)
class LandscapeSlice:
    """One computed slice, in plain numpy arrays and Python scalars, ready for an event.

    ``values[i, j]`` is the loss at ``a = alphas[j]``, ``b = betas[i]``: rows follow ``b`` (the vertical
    axis of an image), columns follow ``a``. ``trajectory`` ``[M, 2]`` and ``inner_paths``
    ``[n, steps + 1, 2]`` are plane coordinates; ``task_points`` ``[2, 2]`` holds ``phi_a`` and ``phi_b``
    for the task plane and is ``[0, 2]`` otherwise. Arrays are read-only: the slice crosses threads.
    """

    kind: str
    loss: str
    alphas: np.ndarray
    betas: np.ndarray
    values: np.ndarray
    center_loss: float
    trajectory: np.ndarray
    inner_paths: np.ndarray
    task_points: np.ndarray
    span: float
    resolution: int
    iteration: int
    explained_variance: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)


# Planes.


def random_plane(model_layout: ParamLayout, theta: torch.Tensor, generator: torch.Generator,
                 ignore_biases: bool = True) -> Plane:
    """Two filter-normalized Gaussian directions through ``theta`` (Li et al. 2018).

    Each row of each weight (one output unit's incoming weights, a "filter"; for higher-dimensional
    weights everything after the first axis) is rescaled to the norm of the same row of ``theta``, so
    every unit is perturbed in proportion to its own scale. One-dimensional parameters (biases) are
    zeroed when ``ignore_biases``, as in Li et al.'s plots (their ``ignore='biasbn'``), so the surface
    shows the weights alone; otherwise each element counts as a filter of size one, so ``d_i`` becomes
    ``sign(d_i) * |theta_i|``, which is what their filter normalization does to a 1-D tensor. The directions come from
    ``generator`` only; ``d1`` is drawn before ``d2``.
    """
    theta = theta.detach()
    if theta.shape != (model_layout.size,):
        raise ValueError(f"theta has shape {tuple(theta.shape)}, the layout needs ({model_layout.size},)")
    d1 = _filter_normalized(model_layout, theta, generator, ignore_biases)
    d2 = _filter_normalized(model_layout, theta, generator, ignore_biases)
    return Plane(theta, d1, d2, "random")


def _filter_normalized(layout: ParamLayout, theta: torch.Tensor, generator: torch.Generator,
                       ignore_biases: bool) -> torch.Tensor:
    d = torch.randn(layout.size, generator=generator, device=generator.device).to(theta.device, theta.dtype)
    for dv, tv in zip(layout.views(d), layout.views(theta), strict=True):
        if tv.dim() <= 1:
            if ignore_biases:
                dv.zero_()
            else:
                dv.copy_(dv.sign() * tv.abs())
            continue
        d_rows, t_rows = dv.reshape(dv.shape[0], -1), tv.reshape(tv.shape[0], -1)
        d_rows.mul_(t_rows.norm(dim=1, keepdim=True) / d_rows.norm(dim=1, keepdim=True).clamp_min(1e-30))
    return d


def pca_plane(snapshots: torch.Tensor, theta: torch.Tensor) -> Plane:
    """The top two principal directions of a meta-trajectory ``snapshots`` ``[N, P]``, through ``theta``.

    The snapshots are taken relative to ``theta`` (as in Li et al. 2018, section 7), not to their own
    mean: the slice is centred on ``theta``, and the leading direction then is the one the trajectory
    arrived from. The SVD runs in float64. Signs are fixed so the oldest snapshot (row 0) has
    non-negative coordinates, so the plane does not flip between refreshes of a similar trajectory.

    Raises ``DegeneratePlane`` (a ``ValueError``) for fewer than 3 snapshots or when the snapshots span
    fewer than two directions around ``theta`` beyond rounding noise.
    """
    theta = theta.detach()
    if snapshots.dim() != 2 or snapshots.shape[1] != theta.numel():
        raise ValueError(f"snapshots must be [N, {theta.numel()}], got {tuple(snapshots.shape)}")
    if snapshots.shape[0] < 3:
        raise DegeneratePlane(f"a PCA plane needs at least 3 snapshots of the trajectory, got {snapshots.shape[0]}")
    x = snapshots.detach().to(theta.device, torch.float64) - theta.double()
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    eps = torch.finfo(snapshots.dtype).eps
    noise = 10 * eps * max(float(s[0]), float(theta.double().norm()) * snapshots.shape[0] ** 0.5)
    if float(s[1]) <= noise:
        raise DegeneratePlane("the snapshots span fewer than two directions around theta")
    d = vh[:2]
    signs = torch.where(x[0] @ d.T < 0, -1.0, 1.0).to(d.dtype)
    d = d * signs[:, None]
    variance = s.square()
    explained = tuple(float(v) for v in variance[:2] / variance.sum())
    return Plane(theta, d[0].to(theta.dtype), d[1].to(theta.dtype), "pca", explained)


def task_plane(theta: torch.Tensor, phi_a: torch.Tensor, phi_b: torch.Tensor) -> Plane:
    """The plane through ``theta``, ``phi_a`` and ``phi_b``, with ``theta`` at the origin.

    ``d1 = (phi_a - theta) / |phi_a - theta|`` and ``d2`` is ``phi_b - theta`` made orthogonal to ``d1``
    (Gram-Schmidt, in float64) and normalized. So ``phi_a`` lies at ``(|phi_a - theta|, 0)`` and
    ``phi_b`` at ``(d1 . (phi_b - theta), d2 . (phi_b - theta))``. Raises ``DegeneratePlane`` when
    ``phi_a`` equals ``theta`` or ``phi_b`` lies on the line through them.
    """
    theta = theta.detach()
    origin = theta.double()
    u = phi_a.detach().to(theta.device, torch.float64) - origin
    v = phi_b.detach().to(theta.device, torch.float64) - origin
    u_norm, v_norm = float(u.norm()), float(v.norm())
    if u_norm == 0.0:
        raise DegeneratePlane("phi_a coincides with theta: the task plane needs a step away from theta")
    d1 = u / u_norm
    v = v - (v @ d1) * d1
    if float(v.norm()) <= 1e-6 * v_norm or v_norm == 0.0:
        raise DegeneratePlane("phi_b lies on the line through theta and phi_a")
    d2 = v / v.norm()
    return Plane(theta, d1.to(theta.dtype), d2.to(theta.dtype), "task")


# Projections.


def project(plane: Plane, points: torch.Tensor) -> np.ndarray:
    """Coordinates ``(a, b)`` of ``points`` (``[M, P]`` or ``[P]``) in the plane: float64 ``[M, 2]``.

    With orthonormal directions (Gram matrix the identity to 1e-5) these are the dot products with
    ``d1`` and ``d2``; otherwise (the random plane) the least-squares coordinates, which minimize the
    distance between a point and its reconstruction ``origin + a * d1 + b * d2``.
    """
    return coordinates(plane, points).cpu().numpy()


def coordinates(plane: Plane, points: torch.Tensor) -> torch.Tensor:
    """``project`` as a float64 tensor on the plane's device."""
    directions = plane.directions.double()
    relative = points.detach().to(plane.origin.device, torch.float64).reshape(-1, directions.shape[1])
    rhs = (relative - plane.origin.double()) @ directions.T
    gram = directions @ directions.T
    eye = torch.eye(2, dtype=gram.dtype, device=gram.device)
    if torch.allclose(gram, eye, rtol=0.0, atol=_ORTHONORMAL_TOLERANCE):
        return rhs
    if float(torch.linalg.det(gram)) <= 1e-12 * float(gram.diagonal().prod()):
        raise DegeneratePlane("the plane's directions are parallel")
    return torch.linalg.solve(gram, rhs.T).T
