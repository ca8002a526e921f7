"""What a task kind provides to the one run loop: the ``MetaLearner`` protocol.

A learner knows its task kind: how to build the meta-parameters theta, draw a meta-batch, adapt every task of
it from theta, and show what theta does (the adaptation curve, landscape surfaces, task fits or rollouts). It
never steps theta itself: ``reptile_engine.trainer.Trainer`` owns the outer step, the command queue, schedules,
divergence rollback, the landscape's trajectory and plane, checkpoints and events, written once for every
learner. Sine regression (``reptile_engine.supervised.SupervisedLearner``) and meta-RL
(``reptile_engine.rl.learner.RLLearner``) are learners; a new task kind is a new class with these members.

Every method that depends on settings takes the current ``ExperimentConfig``: the learner reads its sections
directly, so a live change reaches it with the next call and there is no second config to keep in step.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

import torch

from reptile_engine.config import ExperimentConfig, LandscapeConfig
from reptile_engine.events import AdaptationCurve, Event, TaskFit
from reptile_engine.landscape import LandscapeSlice, Plane

T = TypeVar("T")


def exhaust(ticks: Generator[Any, None, T]) -> T:
    """Run ``ticks`` to its end and return its result, ignoring what it yields on the way."""
    while True:
        try:
            next(ticks)
        except StopIteration as done:
            return done.value


class Progress(NamedTuple):
    """How far one meta-batch's adaptation has come; the trainer turns it into ``IterationProgress``."""

    tasks_done: int
    updates_done: int
    updates_total: int
    env_steps: int
    """Environment steps taken in this meta-iteration so far (0 for a supervised learner)."""


class Adaptation(NamedTuple):
    """One meta-batch adapted from theta.

    ``phi`` holds a row of adapted parameters per task, in the meta-batch's order; the trainer's outer step
    is ``theta - phi.mean(0)``. ``losses`` are what the divergence monitor watches, by the names its reasons
    use, and ``references`` stand in for a loss's recent level while that warms up. ``metrics`` are the
    learner's numbers for its iteration event. ``finite`` is false when anything adapted became non-finite.
    """

    phi: torch.Tensor
    losses: Mapping[str, float]
    references: Mapping[str, float] | None
    metrics: Mapping[str, float]
    finite: bool


class MetaLearner(Protocol):
    """A task kind under Reptile (see the module docstring)."""

    monitored_losses: ClassVar[tuple[str, ...]]
    """The ``Adaptation.losses`` names the divergence monitor watches."""
    level_settings: ClassVar[tuple[str, ...]]
    """Dotted-path prefixes whose live change moves ``level_losses`` on purpose (their recent level resets)."""
    level_losses: ClassVar[tuple[str, ...]]
    snapshot_every: ClassVar[int]
    """Iterations between healthy snapshots: often where iterations are slow, rarely where they are fast."""

    @property
    def size(self) -> int:
        """Number of meta-parameters (the length of theta)."""

    @property
    def device(self) -> torch.device:
        """Where theta and the adaptation live."""

    def initial_theta(self) -> torch.Tensor:
        """The meta-parameters ``[P]`` a new run starts from, drawn from the learner's own generator (seeded with
        ``config.seed`` when the learner was built, so a run's first draws stay what they were)."""

    def inner_rate_field(self, config: ExperimentConfig) -> str:
        """The dotted path of the inner loop's base learning rate, which ``inner_schedule`` scales."""

    def adapt(self, theta: torch.Tensor, config: ExperimentConfig, inner_lr: float
              ) -> Generator[Progress, None, Adaptation]:
        """Draw the next meta-batch from the learner's own generators and adapt every task from ``theta``.

        Yields ``Progress`` where an iteration takes long enough to report on, and returns the ``Adaptation``.
        Closed early, it leaves nothing changed but the generators (``state`` taken before restores them).
        """

    def outer_mask(self, config: ExperimentConfig) -> slice | None:
        """A slice of theta the outer step leaves where it is (``None``: it moves everything)."""

    def iteration_event(self, iteration: int, adaptation: Adaptation, rates: tuple[float, float],
                        config: ExperimentConfig, iterations_per_second: float, elapsed: float,
                        seconds: float) -> Event:
        """The event that reports one finished meta-iteration (``seconds``: how long it took)."""

    def evaluate(self, theta: torch.Tensor, config: ExperimentConfig, iteration: int) -> AdaptationCurve:
        """The held-out adaptation curve of ``theta`` and of a fresh initialization."""

    def landscape(self, theta: torch.Tensor, config: ExperimentConfig, settings: LandscapeConfig,
                  trajectory: torch.Tensor, frozen: Plane | None, generator: torch.Generator,
                  iteration: int) -> tuple[LandscapeSlice, Plane]:
        """A 2D slice through ``theta``; ``trajectory`` stacks the recorded meta-parameters and theta, ``frozen``
        is a plane to keep (re-centred on theta). Raises ``DegeneratePlane`` when the plane cannot be built."""

    def fit_task(self, theta: torch.Tensor, request: Any, config: ExperimentConfig, iteration: int
                 ) -> TaskFit | Event:
        """Adapt one task (``commands.FitTask``) from ``theta`` and show the result."""

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The learner's own state for a checkpoint (its generators), as tensors and JSON-ready data."""

    def load_state(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], source: str) -> None:
        """Restore ``state()``; a ``CheckpointError`` naming ``source`` (changing nothing) if it does not fit."""
