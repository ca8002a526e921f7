"""What the trainer reports: small frozen dataclasses of Python scalars and small numpy arrays.

No tensor ever crosses a thread or process boundary, so a GUI slot can use an event as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reptile_engine.config import ExperimentConfig


@dataclass(frozen=True)
class IterationMetrics:
    """One finished meta-iteration, averaged over the meta-batch.

    ``loss_before``: MSE of the meta-parameters on each task's first inner minibatch (data the
    meta-parameters have not seen). ``loss_after``: MSE of the adapted parameters on the task's
    separate query points.
    """

    iteration: int
    loss_before: float
    loss_after: float
    meta_lr: float
    inner_lr: float
    meta_batch: int
    inner_steps: int
    iterations_per_second: float
    elapsed: float


@dataclass(frozen=True)
class AdaptationCurve:
    """Mean held-out query MSE after 0..K inner steps, from the meta-parameters and from scratch."""

    iteration: int
    steps: np.ndarray
    meta_init: np.ndarray
    scratch: np.ndarray


@dataclass(frozen=True)
class ConfigChanged:
    """Changes applied between iterations; ``iteration`` is the first iteration that uses them."""

    iteration: int
    changes: dict[str, tuple[Any, Any]]
    config: ExperimentConfig


@dataclass(frozen=True)
class CommandRejected:
    """A command could not be applied; nothing changed."""

    iteration: int
    message: str
    field: str | None = None


@dataclass(frozen=True)
class StateChanged:
    """The run moved to ``running`` or ``paused``."""

    iteration: int
    state: str
    reason: str = ""


@dataclass(frozen=True)
class CheckpointSaved:
    iteration: int
    path: str


@dataclass(frozen=True)
class Diverged:
    """A non-finite loss or parameter appeared; the meta-parameters were rolled back and the run paused."""

    iteration: int
    reason: str
    rolled_back_to: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFit:
    """One task adapted from the current meta-parameters, predicted on a grid after each of ``steps``.

    ``predictions`` is ``[len(steps), grid points]``; ``truth`` the task's noiseless target on the grid.
    """

    request: int
    iteration: int
    steps: tuple[int, ...]
    grid_x: np.ndarray
    truth: np.ndarray
    predictions: np.ndarray
    support_x: np.ndarray
    support_y: np.ndarray
    task: dict[str, float]


@dataclass(frozen=True)
class LandscapeReady:
    """A 2D loss-landscape slice (``reptile_engine.landscape.LandscapeSlice``: numpy arrays only)."""

    iteration: int
    slice: Any


@dataclass(frozen=True)
class Failed:
    """The engine raised; the run is over, the last good state is where it was."""

    iteration: int
    message: str
    traceback: str


@dataclass(frozen=True)
class Finished:
    """``run()`` ended: ``completed`` its iterations or ``stopped`` on request."""

    iteration: int
    reason: str


Event = (IterationMetrics | AdaptationCurve | ConfigChanged | CommandRejected | StateChanged | CheckpointSaved
         | Diverged | TaskFit | LandscapeReady | Failed | Finished)
