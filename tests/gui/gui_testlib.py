"""Synthetic run data for the plot and export tests (imported by them; not a conftest)."""

from __future__ import annotations

import numpy as np

from reptile_engine.events import AdaptationCurve, TaskFit
from reptile_gui.store import ChangeMarker, RunStore


def synthetic_metrics(n: int, seed: int = 0, start: int = 1) -> dict[str, np.ndarray]:
    """``n`` iterations of a decaying, noisy loss as ``RunStore.extend_metrics`` takes them."""
    rng = np.random.default_rng(seed)
    iteration = np.arange(start, start + n, dtype=np.float64)
    base = 0.05 + 2.5 * np.exp(-iteration / max(1.0, n / 4))
    return {
        "iteration": iteration,
        "loss_before": base * 1.5 * np.exp(rng.normal(0.0, 0.1, n)),
        "loss_after": base * np.exp(rng.normal(0.0, 0.3, n)),
        "meta_lr": np.full(n, 0.1),
        "inner_lr": np.full(n, 0.02),
        "meta_batch": np.full(n, 5.0),
        "inner_steps": np.full(n, 5.0),
        "iterations_per_second": np.full(n, 100.0),
        "elapsed": (start - 1 + np.arange(1, n + 1)) * 0.01 + rng.uniform(0.0, 0.004, n),
    }


def synthetic_curve(iteration: int, quality: float, k: int = 8) -> AdaptationCurve:
    """Query MSE after 0..k steps; smaller ``quality`` means a better meta-initialisation."""
    steps = np.arange(k + 1)
    return AdaptationCurve(iteration, steps, 0.02 + 2.0 * quality * np.exp(-steps / 3.0),
                           2.5 * np.exp(-steps / 40.0))


def synthetic_task_fit(steps: tuple[int, ...] = (0, 1, 32), n_support: int = 5) -> TaskFit:
    """A sine task with float32 arrays, as the engine sends them."""
    grid = np.linspace(-5, 5, 101).astype(np.float32)
    truth = (2.0 * np.sin(grid + 0.5)).astype(np.float32)
    predictions = np.stack([(1 - 0.5 ** (k + 1)) * truth for k in steps]).astype(np.float32)
    support_x = np.linspace(-4, 4, n_support).astype(np.float32)
    support_y = (2.0 * np.sin(support_x + 0.5)).astype(np.float32)
    return TaskFit(1, 100, steps, grid, truth, predictions, support_x, support_y,
                   {"amplitude": 2.0, "phase": 0.5})


def make_filled_store() -> RunStore:
    """300 iterations, 2 hyperparameter changes (at iterations 100 and 220), 4 curves and a task fit."""
    store = RunStore()
    store.extend_metrics(synthetic_metrics(300))
    store.markers.extend([ChangeMarker(100, 1.0, "inner.lr: 0.02 → 0.01"),
                          ChangeMarker(220, 2.2, "inner.steps: 5 → 10")])
    store.markers_version += 1
    for i, quality in enumerate((1.0, 0.6, 0.3, 0.1)):
        store.add_curve(synthetic_curve(i * 100, quality))
    store.set_task_fit(synthetic_task_fit())
    return store


class PlotKeeper:
    """Makes plots for a test, holds them, and tears them down deterministically at the end.

    pytest-qt's ``addWidget`` holds only a weak reference. A shown top-level plot that the test
    dropped can then be garbage-collected (pyqtgraph objects sit in reference cycles) in the middle of
    a later paint event, which deletes the widget while Qt paints it: a segfault. Holding the plots
    and closing and deleting them at teardown takes the collector's timing out of it.
    """

    def __init__(self, qtbot) -> None:
        self._qtbot = qtbot
        self._plots: list = []

    def __call__(self, cls, store, *, show: bool = True, size=(640, 420), **kwargs):
        plot = cls(store, **kwargs)
        self._plots.append(plot)
        if show:
            plot.resize(*size)
            plot.show()
            self._qtbot.waitExposed(plot)
        return plot

    def close_all(self) -> None:
        from PySide6.QtCore import QCoreApplication, QEvent

        for plot in self._plots:
            plot.close()
            plot.deleteLater()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        self._plots.clear()


# -- synthetic loss landscapes (for tests/gui/test_landscape_plot.py) ------------------------------

def synthetic_landscape(resolution: int = 41, span: float = 1.0, *, kind: str = "random", loss: str = "mean",
                        surface: str = "bowl", iteration: int = 1000, trajectory_points: int = 40,
                        steps: int = 5):
    """A ``LandscapeSlice`` with a known surface, a trajectory spiralling into the origin, two inner
    paths and (for ``kind="task"``) the two task points at the paths' ends.

    ``surface="bowl"``: ``values = 1 + a^2 + 3 b^2`` (``values[i, j]`` at ``a = alphas[j]``,
    ``b = betas[i]``). ``surface="valley"``: a curved valley over several decades of loss, bending
    through the origin, the kind of picture a real slice gives.
    """
    from reptile_engine.landscape import LandscapeSlice, grid_axes

    alphas, betas = grid_axes(resolution, span)
    a, b = np.meshgrid(alphas / span, betas / span)  # [R, R]: rows follow b, columns follow a
    if surface == "bowl":
        values = 1.0 + (a * span) ** 2 + 3.0 * (b * span) ** 2
    elif surface == "valley":
        values = 0.02 + 30.0 * (b - 0.9 * a ** 2 + 0.25 * a) ** 2 + 0.6 * (a - 0.35) ** 2
    else:
        raise ValueError(f"unknown surface {surface!r}")
    t = np.linspace(0.0, 1.0, trajectory_points)
    radius = 0.85 * span * (1.0 - t) ** 1.5
    angle = 3.0 * np.pi * t
    trajectory = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    targets = np.array([[0.38, 0.22], [-0.18, 0.42]]) * span
    fractions = (1.0 - 0.6 ** np.arange(steps + 1)) / (1.0 - 0.6 ** steps)
    bend = np.array([[0.0, 1.0], [-1.0, 0.0]]) * 0.15  # curved paths, as gradient steps are
    paths = np.stack([np.outer(fractions, target) + np.outer(fractions * (1 - fractions), target @ bend)
                      for target in targets])
    task_points = targets.copy() if kind == "task" else np.zeros((0, 2))
    explained = (0.82, 0.11) if kind == "pca" else ()
    return LandscapeSlice(kind, loss, alphas, betas, values, float(values[resolution // 2, resolution // 2]),
                          trajectory, paths, task_points, float(span), int(resolution), int(iteration), explained)


def store_with_landscape(landscape=None) -> RunStore:
    """A store holding ``landscape`` (default: ``synthetic_landscape()``)."""
    store = RunStore()
    store.set_landscape(landscape if landscape is not None else synthetic_landscape())
    return store
