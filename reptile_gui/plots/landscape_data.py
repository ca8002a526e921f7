"""Pure functions over a loss-landscape slice: its colours (log10 or linear, safe to draw, their levels), the
names of its values, the part of the plane to frame, its title and its CSV table.

>>> values = np.array([[0.0, 1.0], [10.0, np.inf]])
>>> log_values(values).tolist()
[[0.0, 0.0], [1.0, 1.0]]
>>> value_levels(log_values(values))
(0.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF

from reptile_gui.toolkit.landscape_terms import VALUE_NAMES


def value_name(loss: str) -> str:
    """The name of a slice's values, with its unit or its caveat: ``loss (MSE)`` or a surrogate's name."""
    return VALUE_NAMES.get(loss, "loss (MSE)")


def value_text(loss: str, value: float) -> str:
    """``loss 0.123 (MSE)`` or ``critic TD loss (fixed batch) 0.123``."""
    return f"{VALUE_NAMES[loss]} {value:.4g}" if loss in VALUE_NAMES else f"loss {value:.4g} (MSE)"


def has_log_scale(values: np.ndarray) -> bool:
    """Whether a slice can be coloured by log10: no finite value below zero (an exact zero is the scale's
    bottom, see ``log_values``)."""
    values = np.asarray(values, dtype=np.float64)
    return not bool(np.any(values[np.isfinite(values)] < 0))


def log_values(values: np.ndarray) -> np.ndarray:
    """log10 of a loss grid, made safe to draw: non-positive losses (an exact zero) take the smallest
    positive loss's log, ``+inf`` (a diverged point) the largest finite log; NaN stays NaN (a transparent
    pixel). With no positive finite loss at all, every finite cell is ``-12``."""
    values = np.asarray(values, dtype=np.float64)
    positive = np.isfinite(values) & (values > 0)
    out = np.full(values.shape, np.nan)
    out[positive] = np.log10(values[positive])
    low = float(out[positive].min()) if positive.any() else -12.0
    high = float(out[positive].max()) if positive.any() else -12.0
    out[np.isfinite(values) & (values <= 0)] = low
    out[values == -np.inf] = low
    out[values == np.inf] = high
    return out


def linear_values(values: np.ndarray) -> np.ndarray:
    """A loss grid made safe to draw: ``+inf`` becomes the largest finite loss, NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    out = values.copy()
    finite = np.isfinite(values)
    high = float(values[finite].max()) if finite.any() else 0.0
    low = float(values[finite].min()) if finite.any() else 0.0
    out[values == np.inf] = high
    out[values == -np.inf] = low
    return out


def value_levels(shown: np.ndarray) -> tuple[float, float]:
    """``(min, max)`` over the finite cells, widened when they are equal so a colour map can stretch."""
    finite = shown[np.isfinite(shown)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        pad = max(abs(low) * 1e-3, 1e-6)
        low, high = low - pad, high + pad
    return low, high


def grid_rect(alphas: np.ndarray, betas: np.ndarray) -> QRectF:
    """The rectangle the image covers: each grid point is the centre of its pixel."""
    da = (alphas[-1] - alphas[0]) / (len(alphas) - 1) if len(alphas) > 1 else 1.0
    db = (betas[-1] - betas[0]) / (len(betas) - 1) if len(betas) > 1 else 1.0
    return QRectF(float(alphas[0] - da / 2), float(betas[0] - db / 2), float(da * len(alphas)),
                  float(db * len(betas)))


def frame_rect(rect: QRectF, landscape: Any) -> QRectF:
    """The part of the plane to show: the grid, widened to take in the meta-trajectory, the inner-loop
    paths and the task points where they leave it (a long PCA trajectory often does)."""
    points = [np.asarray(landscape.trajectory, dtype=np.float64).reshape(-1, 2),
              np.asarray(landscape.inner_paths, dtype=np.float64).reshape(-1, 2),
              np.asarray(landscape.task_points, dtype=np.float64).reshape(-1, 2)]
    points = np.concatenate(points)
    points = points[np.isfinite(points).all(axis=1)]
    if len(points) == 0:
        return rect
    left, bottom = np.minimum(points.min(axis=0), (rect.left(), rect.top()))
    right, top = np.maximum(points.max(axis=0), (rect.right(), rect.bottom()))
    return QRectF(float(left), float(bottom), float(right - left), float(top - bottom))


def arrow_angle(path: np.ndarray) -> float | None:
    """The ``ArrowItem`` angle (degrees, screen frame, 0 = pointing left) of a path's last move."""
    end = path[-1]
    for start in path[-2::-1]:
        dx, dy = end - start
        if math.hypot(dx, dy) > 0:
            # the arrow's rest direction (-1, 0) rotated by the angle (clockwise on screen, where y
            # points down) must equal the move (dx, -dy) on screen; the aspect ratio is locked
            return math.degrees(math.atan2(dy, -dx))
    return None


def slice_title(landscape: Any) -> str:
    """The plot's title for a slice: its plane, what its values are, and the iteration it was taken at."""
    kind = landscape.kind
    if kind == "random":
        plane = "random plane (filter-normalized)"
    elif kind == "pca":
        explained = tuple(landscape.explained_variance)[:2]
        shares = " + ".join(f"{100 * v:.1f}%" for v in explained)
        plane = f"PCA plane ({shares} of the trajectory's variance)" if explained else "PCA plane"
    elif kind == "task":
        plane = "task plane through θ, φ<sub>a</sub>, φ<sub>b</sub>"
    else:
        plane = f"{kind} plane"
    loss = landscape.loss
    if loss == "mean":
        what = "mean held-out query loss"
    elif loss == "task":
        what = "one held-out task's query loss"
    elif loss == "adapted":
        paths = np.asarray(landscape.inner_paths)
        steps = paths.shape[1] - 1 if paths.ndim == 3 and paths.shape[1] > 0 else None
        what = f"query loss after {steps} inner steps" if steps else "query loss after adapting"
    elif loss in VALUE_NAMES:
        what = VALUE_NAMES[loss]
    else:
        what = f"{loss} loss"
    return f"{plane} · {what} · iteration {landscape.iteration}"


def slice_table(landscape: Any) -> tuple[list[str], list[np.ndarray]]:
    """A slice (or ``None``) in long format, one row per grid cell, and its paths in shorter columns beside it.

    * ``alpha, beta, loss``: one row per cell, ``beta`` the slow index and ``alpha`` the fast one
      (``values`` flattened row by row: row ``i * R + j`` is the cell at ``alphas[j], betas[i]``);
      the raw loss, whatever the colour scale;
    * ``traj_alpha, traj_beta``: the meta-trajectory, oldest first (ending at θ, the origin);
    * ``path<k>_alpha, path<k>_beta`` per inner-loop path: ``θ`` and the position after each step;
    * ``task_alpha, task_beta`` (task plane only): ``φ_a`` then ``φ_b``.

    The shorter columns leave their cells empty below their end. The plane kind, loss kind and
    iteration are in the PNG/SVG title, not in the table.
    """
    header = ["alpha", "beta", "loss", "traj_alpha", "traj_beta"]
    if landscape is None:
        return header, [np.empty(0) for _ in header]
    alphas, betas = np.asarray(landscape.alphas), np.asarray(landscape.betas)
    values = np.asarray(landscape.values)
    trajectory = np.asarray(landscape.trajectory, dtype=np.float64).reshape(-1, 2)
    columns = [np.tile(alphas, len(betas)), np.repeat(betas, len(alphas)), values.ravel(),
               trajectory[:, 0], trajectory[:, 1]]
    paths = np.asarray(landscape.inner_paths, dtype=np.float64)
    for k, path in enumerate(paths if paths.ndim == 3 else ()):
        header += [f"path{k}_alpha", f"path{k}_beta"]
        columns += [path[:, 0], path[:, 1]]
    points = np.asarray(landscape.task_points, dtype=np.float64).reshape(-1, 2)
    if len(points):
        header += ["task_alpha", "task_beta"]
        columns += [points[:, 0], points[:, 1]]
    return header, columns
