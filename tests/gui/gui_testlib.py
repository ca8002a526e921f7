"""Synthetic run data and opened controllers and windows for the GUI tests (imported by them; not a conftest)."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import shiboken6

from reptile_engine.events import AdaptationCurve, Rollouts, TaskFit
from reptile_gui.controller import TrainingController
from reptile_gui.main_window import MainWindow
from reptile_gui.store import ChangeMarker, RunStore

SPAWN_TIMEOUT = 60_000
"""Milliseconds a trainer process may take to come up on a loaded machine."""


@contextlib.contextmanager
def opened_controller(qtbot, config):
    """A controller whose trainer process is up and ready; shut down on exit."""
    ctrl = TrainingController(config)
    try:
        with qtbot.waitSignal(ctrl.stateChanged, timeout=SPAWN_TIMEOUT, check_params_cb=lambda s: s == "ready"):
            ctrl.open()
        yield ctrl
    finally:
        ctrl.shutdown()


@contextlib.contextmanager
def opened_window(qtbot, config):
    """A shown window whose trainer is ready; closed (and deleted) on exit."""
    win = MainWindow(config)
    win.show()
    try:
        qtbot.waitUntil(lambda: win.controller.state == "ready", timeout=SPAWN_TIMEOUT)
        yield win
    finally:
        if shiboken6.isValid(win):
            with qtbot.waitSignal(win.destroyed, timeout=SPAWN_TIMEOUT):
                win.close()


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


def reference_ema(values, weight) -> np.ndarray:
    """TensorBoard's smoothing loop, transcribed: the reference the plots' smoothed curves are held to."""
    last, count, out = 0.0, 0, []
    for v in values:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1 - weight) * v
        count += 1
        out.append(last / (1 - weight ** count))
    return np.array(out)


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


TINY_RL_CHANGES = {"meta.meta_batch": 2, "rl.episodes": 2, "rl.updates": 1, "rl.hidden": 8, "evaluation.tasks": 2,
                   "evaluation.steps": 1, "landscape.every": 0, "landscape.resolution": 11,
                   "meta.iterations": 1_000_000}
"""Changes to the ``meta-rl`` preset for a meta-RL run that trains many iterations a second."""


def synthetic_rl_metrics(n: int, seed: int = 0, start: int = 1) -> dict[str, np.ndarray]:
    """``n`` meta-RL iterations as ``RunStore.extend_metrics`` takes them: a signed policy loss around zero,
    a falling critic loss, and negative returns that rise, those after adaptation above those before."""
    rng = np.random.default_rng(seed)
    iteration = np.arange(start, start + n, dtype=np.float64)
    progress = 1.0 - np.exp(-iteration / max(1.0, n / 3))
    policy = rng.normal(0.0, 0.02, n) - 0.01
    critic = (5.0 * (1.0 - progress) + 0.2) * np.exp(rng.normal(0.0, 0.2, n))
    entropy = 1.5 - 0.5 * progress
    return {
        "iteration": iteration,
        "policy_loss": policy,
        "critic_loss": critic,
        "agent_loss": policy + 0.5 * critic,
        "entropy": entropy,
        "return_before": -40.0 + 15.0 * progress + rng.normal(0.0, 2.0, n),
        "return_after": -35.0 + 25.0 * progress + rng.normal(0.0, 2.0, n),
        "meta_lr": np.full(n, 0.1),
        "inner_lr": np.full(n, 0.01),
        "meta_batch": np.full(n, 20.0),
        "inner_updates": np.full(n, 3.0),
        "env_steps_per_second": np.full(n, 12_345.0),
        "iterations_per_second": np.full(n, 2.5),
        "elapsed": (start - 1 + np.arange(1, n + 1)) * 0.4,
    }


def synthetic_return_curve(iteration: int, quality: float, k: int = 3) -> AdaptationCurve:
    """Mean held-out return after 0..k updates; smaller ``quality`` means a better meta-initialisation."""
    steps = np.arange(k + 1)
    return AdaptationCurve(iteration, steps, -10.0 - 30.0 * quality * np.exp(-steps / 2.0),
                           -45.0 + 2.0 * steps, quantity="return")


def synthetic_rollouts(updates: tuple[int, ...] = (0, 1, 3), episodes: int = 3, *,
                       target: str = "point") -> Rollouts:
    """Episodes that head for the goal the better the more updates: a path in the plane (``target="point"``,
    point-nav-2d) or a position over time reaching a level (``"level"``, mountain car)."""
    rng = np.random.default_rng(7)
    steps = 60
    t = np.linspace(0.0, 1.0, steps)[:, None]
    traces, returns = [], []
    if target == "point":
        goal = np.array([0.3, -0.2])
        for i, _ in enumerate(updates):
            reach = (i + 1) / len(updates)
            episodes_of = tuple(t * goal * reach + 0.02 * rng.normal(size=(steps, 2)).cumsum(0) / steps
                                for _ in range(episodes))
            traces.append(episodes_of)
            returns.append([-np.sum(np.linalg.norm(path - goal, axis=1)) for path in episodes_of])
        labels, aim = ("x", "y"), ("point", (float(goal[0]), float(goal[1])))
        task = {"goal": goal.tolist()}
    else:
        level = 0.45
        for i, _ in enumerate(updates):
            reach = (i + 1) / len(updates)
            episodes_of = tuple(np.column_stack([np.arange(steps), -0.5 + (level + 0.5) * reach * t[:, 0]
                                                 + 0.01 * rng.normal(size=steps)]) for _ in range(episodes))
            traces.append(episodes_of)
            returns.append([float(-steps + 50 * reach)] * episodes)
        labels, aim = ("step", "position"), ("level", (level,))
        task = {"goal_position": level, "gravity": 0.0025}
    mean_traces = tuple(np.asarray(episodes[0]) * 0.9 for episodes in traces)  # noiseless stand-ins
    return Rollouts(1, 120, "point-nav-2d" if target == "point" else "mountaincar-goal-gravity", updates, task,
                    tuple(traces), np.array(returns), labels, aim, mean_traces,
                    np.array(returns).max(axis=1) + 1.0)


def make_filled_rl_store() -> RunStore:
    """A meta-RL run: 120 iterations, a change at 60, 3 return curves and rollouts of a navigation task."""
    store = RunStore("rl")
    store.extend_metrics(synthetic_rl_metrics(120))
    store.markers.append(ChangeMarker(60, 24.0, "rl.lr: 0.01 → 0.005"))
    store.markers_version += 1
    for i, quality in enumerate((1.0, 0.5, 0.2)):
        store.add_curve(synthetic_return_curve(i * 50, quality))
    store.set_rollouts(synthetic_rollouts())
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
    through the origin, the kind of picture a real slice gives. ``surface="signed"``: ``0.1 a - 0.05 +
    0.2 b^2``, negative and positive like a meta-RL policy surrogate (use ``loss="policy"``).
    """
    from reptile_engine.landscape import LandscapeSlice
    from reptile_engine.landscape_grid import grid_axes

    alphas, betas = grid_axes(resolution, span)
    a, b = np.meshgrid(alphas / span, betas / span)  # [R, R]: rows follow b, columns follow a
    if surface == "bowl":
        values = 1.0 + (a * span) ** 2 + 3.0 * (b * span) ** 2
    elif surface == "valley":
        values = 0.02 + 30.0 * (b - 0.9 * a ** 2 + 0.25 * a) ** 2 + 0.6 * (a - 0.35) ** 2
    elif surface == "signed":
        values = 0.1 * a * span - 0.05 + 0.2 * (b * span) ** 2
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
