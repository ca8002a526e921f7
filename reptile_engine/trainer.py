"""The trainer: Reptile's outer loop, driven by commands and reporting events.

``step()`` runs one meta-iteration. ``run()`` is a generator of events for a GUI worker, a CLI or a
notebook. Other threads talk to a running trainer only through its command queue (``update``,
``pause``, ``resume``, ``request_step``, ``stop``, ``request_checkpoint``, ``request_evaluation``),
which the trainer drains between iterations, coalescing repeated updates and echoing each applied
change as a ``ConfigChanged`` event. Nothing outside the trainer mutates its config.

>>> from reptile_engine.config import ExperimentConfig
>>> cfg = ExperimentConfig().with_updates({"meta.iterations": 3, "evaluation.steps": 2, "evaluation.tasks": 4})
>>> trainer = Trainer(cfg)
>>> [type(e).__name__ for e in trainer.run()]  # doctest: +NORMALIZE_WHITESPACE
['StateChanged', 'AdaptationCurve', 'IterationMetrics', 'IterationMetrics', 'IterationMetrics',
 'AdaptationCurve', 'Finished']
"""

from __future__ import annotations

import abc
import ctypes
import math
import os
import platform
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Hashable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.functional import mse_loss

from reptile_engine import checkpoint, resources
from reptile_engine.algorithms.inner import InnerLoop, adapt_, minibatches
from reptile_engine.algorithms.reptile import pseudo_gradient
from reptile_engine.config import (
    ConfigError,
    ExperimentConfig,
    LandscapeConfig,
    applies_to,
    field_info,
    live_fields,
)
from reptile_engine.evaluation import adaptation_curve
from reptile_engine.events import (
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    ConfigChanged,
    Diverged,
    Event,
    Finished,
    IterationMetrics,
    LandscapeReady,
    StateChanged,
    TaskFit,
)
from reptile_engine.landscape import DegeneratePlane, Plane, compute_slice
from reptile_engine.models import BatchedModel, build_model
from reptile_engine.schedules import scheduled_rate
from reptile_engine.tasks import TaskBatch, TaskDistribution, registry

SMALL_MODEL_PARAMETERS = 1_000_000
"""Below this many parameters one intra-op thread is fastest: the ops are too small to split."""


@dataclass(frozen=True)
class Update:
    changes: dict[str, Any]


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Step:
    """Run exactly one iteration while paused."""


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class SaveCheckpoint:
    path: str


@dataclass(frozen=True)
class Evaluate:
    pass


@dataclass(frozen=True)
class ComputeLandscape:
    pass


@dataclass(frozen=True)
class FitTask:
    """Adapt one task drawn from ``seed`` (or to the given support points) and predict on a grid."""

    request: int
    seed: int
    steps: tuple[int, ...]
    support_x: tuple[float, ...] | None = None
    support_y: tuple[float, ...] | None = None
    grid_points: int = 200


Command = Update | Pause | Resume | Step | Stop | SaveCheckpoint | Evaluate | FitTask | ComputeLandscape


CONTROL_COMMANDS = (Pause, Resume, Step, Stop)
"""Commands that keep their order and go ahead of everything else queued."""


class CommandQueue:
    """The trainer's thread-safe inbox, drained between iterations.

    Control commands (pause, resume, step, stop) keep their order and come out before everything else, so a
    stop is never stuck behind a backlog. Updates merge into one. Other requests coalesce: one evaluation,
    one landscape, one task fit (the newest) and one save per path, however often they were asked for, in
    the order they were first asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._control: list[Command] = []
        self._changes: dict[str, Any] = {}
        self._requests: dict[Hashable, Command] = {}

    def put(self, command: Command) -> None:
        with self._lock:
            if isinstance(command, CONTROL_COMMANDS):
                self._control.append(command)
            elif isinstance(command, Update):
                self._changes.update(command.changes)
            else:
                key = ("save", command.path) if isinstance(command, SaveCheckpoint) else type(command)
                self._requests[key] = command
            self._lock.notify()

    def drain(self, block: bool) -> list[Command]:
        """Everything queued: control commands, then the merged update, then the requests.

        With ``block``, wait (without spinning) until there is at least one command.
        """
        with self._lock:
            while block and not (self._control or self._changes or self._requests):
                self._lock.wait()
            commands = [*self._control, *([Update(self._changes)] if self._changes else []),
                        *self._requests.values()]
            self._control, self._changes, self._requests = [], {}, {}
        return commands

    def interrupt_pending(self) -> bool:
        """Whether a stop, or a pause no later resume undoes, is waiting; cheap enough to ask between env steps.

        Nothing is taken off the queue: the commands are applied at the next boundary as usual.
        """
        if not self._control:
            return False
        with self._lock:
            if any(isinstance(command, Stop) for command in self._control):
                return True
            toggles = [command for command in self._control if isinstance(command, Pause | Resume)]
            return bool(toggles) and isinstance(toggles[-1], Pause)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "CUDA is not available on this machine; use cpu or auto")
    return torch.device(name)


def tune_allocator() -> None:
    """Keep glibc from returning and re-mapping the allocator's memory on every iteration.

    Tensors of a few hundred KiB cross glibc's adaptive mmap threshold, so a tight loop on the main
    thread would ``mmap``/``munmap`` and fault in fresh pages each iteration (measured: less than
    half the speed at B=100). Fixed thresholds, as ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` would set at start-up, avoid that. No-op off glibc or when those
    variables are set.
    """
    if platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def configure_threads(threads: int, parameters: int, device: torch.device) -> None:
    """Use ``threads`` intra-op threads, or one for small CPU models, where splitting ops only costs."""
    if threads > 0:
        torch.set_num_threads(threads)
    elif device.type == "cpu" and parameters < SMALL_MODEL_PARAMETERS:
        torch.set_num_threads(1)


DIVERGENCE_WINDOW = 200
"""In-range iterations whose median is a monitored loss's recent level."""
DIVERGENCE_WARMUP = 20
"""In-range iterations a loss needs before its recent level is trusted."""
DIVERGENCE_FACTOR = 10.0
"""A loss above this multiple of its recent level is out of range. Measured on sine regression: single
iterations reach 27 times the median with one task per meta-batch, but never 10 times for more than 2 in a row."""
DIVERGENCE_SUSTAIN = 5
"""Consecutive out-of-range iterations that make a divergence."""
DIVERGENCE_EXTREME = 1000.0
"""A loss above this multiple of its recent level is a divergence at once."""
SNAPSHOT_EVERY = 50
"""Iterations between the healthy snapshots a divergence rolls back to (the RL trainer takes one every iteration)."""
SNAPSHOTS_KEPT = 4
"""Healthy snapshots kept, oldest dropped first."""


class RecentLevel:
    """The median of a loss's last ``DIVERGENCE_WINDOW`` in-range values, refreshed every few values."""

    REFRESH_EVERY = 8

    def __init__(self) -> None:
        self._values = np.empty(DIVERGENCE_WINDOW)
        self._count = 0
        self._level = math.nan

    def clear(self) -> None:
        self._count = 0
        self._level = math.nan

    def level(self) -> float | None:
        """The recent level, or ``None`` while fewer than ``DIVERGENCE_WARMUP`` values are in."""
        return self._level if self._count >= DIVERGENCE_WARMUP else None

    def add(self, value: float) -> None:
        self._values[self._count % DIVERGENCE_WINDOW] = value
        self._count += 1
        if self._count == DIVERGENCE_WARMUP or self._count % self.REFRESH_EVERY == 0:
            self._level = float(np.median(self._values[:min(self._count, DIVERGENCE_WINDOW)]))


class DivergenceMonitor:
    """Tells a diverging run from a noisy one by its losses, not only by non-finite values.

    Each monitored loss is compared with its recent level (``RecentLevel``), or while that warms up with a
    reference the caller passes (the supervised trainer uses the loss before adaptation for the loss after it).
    A non-finite loss, one above ``DIVERGENCE_EXTREME`` times its level, or ``DIVERGENCE_SUSTAIN`` iterations in a
    row above ``DIVERGENCE_FACTOR`` times it are a divergence. Out-of-range values never enter a level, so a
    climbing loss cannot drag its own yardstick up.
    """

    def __init__(self, names: tuple[str, ...]):
        self._levels = {name: RecentLevel() for name in names}
        self.trouble_since: int | None = None
        """The first iteration of the current out-of-range stretch, ``None`` while all is in range."""
        self._streak = 0

    def forget(self, names: tuple[str, ...]) -> None:
        """Drop the recent levels of ``names``: a settings change moved them on purpose."""
        for name in names:
            self._levels[name].clear()

    def end_trouble(self) -> None:
        """Start counting afresh (after a rollback)."""
        self.trouble_since, self._streak = None, 0

    def check(self, iteration: int, losses: Mapping[str, float],
              references: Mapping[str, float] | None = None) -> str | None:
        """``None`` unless ``losses`` of ``iteration`` make a divergence; then the reason, in words."""
        worst: tuple[float, str] | None = None
        for name, value in losses.items():
            if not math.isfinite(value):
                return self._diverged(iteration, f"the {name} became {value}")
            level = self._levels[name].level()
            if level is None and references is not None:
                level = references.get(name)
            if level is not None and value > DIVERGENCE_FACTOR * level:
                ratio = value / level if level > 0 else math.inf
                if worst is None or ratio > worst[0]:
                    worst = (ratio, f"the {name} ({value:.4g}) is {ratio:.3g} times its recent level ({level:.4g})")
        if worst is None:
            for name, value in losses.items():
                self._levels[name].add(value)
            self.end_trouble()
            return None
        if self.trouble_since is None:
            self.trouble_since = iteration
        self._streak += 1
        if worst[0] > DIVERGENCE_EXTREME:
            return self._diverged(iteration, worst[1])
        if self._streak >= DIVERGENCE_SUSTAIN:
            return self._diverged(iteration, f"{worst[1]} for {self._streak} iterations in a row")
        return None

    def _diverged(self, iteration: int, reason: str) -> str:
        if self.trouble_since is None:
            self.trouble_since = iteration
        return reason


class HealthySnapshots:
    """A few spaced snapshots of a trainer's state taken while its losses were in range, oldest first.

    ``capture(buffers)`` makes a snapshot, reusing the buffers of the one it replaces (``None`` at first).
    """

    def __init__(self) -> None:
        self._entries: deque[tuple[int, Any]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def newest_iteration(self) -> int | None:
        return self._entries[-1][0] if self._entries else None

    def clear(self) -> None:
        self._entries.clear()

    def take(self, iteration: int, capture: Callable[[Any], Any]) -> None:
        reused = self._entries.popleft()[1] if len(self._entries) >= SNAPSHOTS_KEPT else None
        self._entries.append((iteration, capture(reused)))

    def rollback_target(self, trouble_since: int) -> tuple[int, Any]:
        """The newest snapshot older than the parameters that caused the trouble; newer ones are dropped.

        The loss of iteration ``i`` measures the parameters after ``i - 1`` iterations, so the trouble that
        showed at ``trouble_since`` started in the parameters after ``trouble_since - 1``. With no snapshot
        that old, the oldest one.
        """
        while len(self._entries) > 1 and self._entries[-1][0] > trouble_since - 2:
            self._entries.pop()
        return self._entries[-1]


class TrainerBase(abc.ABC):
    """The command queue, the run loop and checkpoint plumbing that every trainer shares.

    A subclass provides the learning: ``step()`` (one iteration, or ``Diverged`` after a rollback),
    ``evaluate()``, ``landscape()``, ``fit_task()``, ``save_checkpoint()`` and ``load_state()``, and for the
    divergence rollback the losses it monitors and how to capture and restore a healthy snapshot.

    A divergence (``DivergenceMonitor``) rolls the meta-parameters and the outer optimizer's state back to the
    last healthy snapshot (``HealthySnapshots``), drops the landscape trajectory after it and pauses the run.
    The iteration counter and the schedules go on from where they were, so the history stays in order;
    ``Diverged.rolled_back_to`` names the iteration whose state was restored. ``Trainer``'s task generator goes
    on too (the next iterations draw new tasks).
    """

    MONITORED_LOSSES: tuple[str, ...] = ()
    """The losses ``DivergenceMonitor`` watches, by the names its reasons use."""
    LEVEL_SETTINGS: tuple[str, ...] = ()
    """Config sections (``"inner."``) whose live change moves ``LEVEL_LOSSES`` on purpose."""
    LEVEL_LOSSES: tuple[str, ...] = ()
    """The monitored losses whose recent level a change in ``LEVEL_SETTINGS`` resets."""
    SNAPSHOT_EVERY = SNAPSHOT_EVERY

    def __init__(self, config: ExperimentConfig, checkpoint_path: str | Path | None = None):
        self._config = config
        self.iteration = 0
        self.elapsed = 0.0
        self.iterations_per_second = 0.0
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self._commands = CommandQueue()
        self._paused = False
        self._stop_requested = False
        self._step_requested = False
        self._monitor = DivergenceMonitor(self.MONITORED_LOSSES)
        self._healthy = HealthySnapshots()
        self._monitored_iteration: int | None = None
        self._trajectory: deque[tuple[int, torch.Tensor]] = deque(maxlen=config.landscape.snapshots)

    @staticmethod
    def _check_theta(theta: torch.Tensor | None, like: torch.Tensor, source: str) -> torch.Tensor:
        """A checkpoint's meta-parameters, refused with a ``CheckpointError`` unless they have ``like``'s shape
        and dtype (raw bytes of another dtype would be reinterpreted) and are finite."""
        if theta is None or theta.shape != like.shape:
            raise checkpoint.CheckpointError(
                f"{source}: theta has shape {None if theta is None else tuple(theta.shape)}, "
                f"the model needs {tuple(like.shape)}")
        if theta.dtype != like.dtype:
            raise checkpoint.CheckpointError(f"{source}: theta is {theta.dtype}, the model needs {like.dtype}")
        if not torch.isfinite(theta).all():
            raise checkpoint.CheckpointError(f"{source}: theta holds non-finite values")
        return theta

    @abc.abstractmethod
    def _capture(self, reused: Any) -> Any:
        """A snapshot of what a rollback restores, written into ``reused`` (an earlier snapshot) where it fits."""

    @abc.abstractmethod
    def _restore(self, snapshot: Any) -> None:
        """Put back what ``_capture`` took."""

    def _before_iteration(self) -> None:
        """Keep the healthy snapshots: afresh when the state was replaced from outside (a loaded checkpoint),
        and every ``SNAPSHOT_EVERY`` iterations while the losses are in range."""
        if self._monitored_iteration is not None and self._monitored_iteration != self.iteration:
            self._healthy.clear()
            self._monitor = DivergenceMonitor(self.MONITORED_LOSSES)
        self._monitored_iteration = self.iteration
        due = self.iteration % self.SNAPSHOT_EVERY == 0 and self._monitor.trouble_since is None
        if not len(self._healthy) or (due and self._healthy.newest_iteration != self.iteration):
            self._healthy.take(self.iteration, self._capture)

    def _after_iteration(self, theta: torch.Tensor) -> None:
        """Count a finished iteration in and record theta on the landscape's trajectory when it is due."""
        self._monitored_iteration = self.iteration
        if self.iteration % self._config.landscape.snapshot_every == 0:
            self._trajectory.append((self.iteration, theta.detach().cpu().clone()))

    def _roll_back(self, reason: str, hyperparameters: dict[str, Any], *, outer_step: bool = False) -> Diverged:
        """Restore the last healthy snapshot before the trouble began; the diverging iteration is not counted.

        ``outer_step``: only the outer step went wrong, so the parameters this iteration started from are
        still trusted (its losses measured them in range).
        """
        failed = self.iteration + 1
        trouble_since = self._monitor.trouble_since or (failed + 1 if outer_step else failed)
        target, snapshot = self._healthy.rollback_target(trouble_since)
        self._restore(snapshot)
        self._monitor.end_trouble()
        while self._trajectory and self._trajectory[-1][0] > target:
            self._trajectory.pop()
        return Diverged(failed, reason, target, hyperparameters)

    def _trajectory_points(self, theta: torch.Tensor) -> torch.Tensor:
        """The recorded meta-trajectory and the current theta, stacked on theta's device."""
        return torch.stack([*(point for _, point in self._trajectory), theta.cpu()]).to(theta.device)

    def _record_duration(self, duration: float) -> None:
        """Count one finished iteration's time into ``elapsed`` and the smoothed iteration rate."""
        self.elapsed += duration
        rate = 1.0 / max(duration, 1e-9)
        self.iterations_per_second = rate if self.iterations_per_second == 0 else \
            0.95 * self.iterations_per_second + 0.05 * rate

    @property
    def config(self) -> ExperimentConfig:
        return self._config

    @property
    def paused(self) -> bool:
        return self._paused

    # Commands: safe to call from any thread.

    def update(self, changes: Mapping[str, Any] | None = None, **fields: Any) -> None:
        """Queue a change of live fields, e.g. ``update({"inner.lr": 0.01})``.

        Raises ``ConfigError`` at once for an unknown, non-live or out-of-range value.
        """
        merged = {**(changes or {}), **{k.replace("__", "."): v for k, v in fields.items()}}
        for path, value in merged.items():
            if not field_info(path).metadata.get("live"):
                raise ConfigError(path, value, "cannot change during a run; build a new trainer")
        self._config.with_updates(merged)
        self._commands.put(Update(merged))

    def pause(self) -> None:
        self._commands.put(Pause())

    def resume(self) -> None:
        self._commands.put(Resume())

    def request_step(self) -> None:
        self._commands.put(Step())

    def stop(self) -> None:
        self._commands.put(Stop())

    def request_checkpoint(self, path: str | Path) -> None:
        self._commands.put(SaveCheckpoint(str(path)))

    def request_evaluation(self) -> None:
        self._commands.put(Evaluate())

    def request_task_fit(self, command: FitTask) -> None:
        self._commands.put(command)

    def request_landscape(self) -> None:
        self._commands.put(ComputeLandscape())

    def run(self, iterations: int | None = None, *, start_paused: bool = False) -> Iterator[Event]:
        """Train until ``iterations`` meta-iterations in total (default ``meta.iterations``) or a stop.

        Yields an adaptation curve first and every ``evaluation.every`` iterations, metrics after
        every iteration, and the answers to commands. While paused (from the start with
        ``start_paused``) it blocks on the command queue.
        """
        self._stop_requested = False
        if start_paused:
            self._paused = True
        yield StateChanged(self.iteration, "paused" if self._paused else "running")
        yield self.evaluate()
        while True:
            yield from self._apply(self._commands.drain(block=self._paused and not self._stop_requested))
            limit = iterations if iterations is not None else self._config.meta.iterations
            if self._stop_requested or self.iteration >= limit:
                break
            if self._paused and not self._step_requested:
                continue
            self._step_requested = False
            yield from self._train_once()
        if self.iteration % self._config.evaluation.every != 0:
            yield self.evaluate()
        yield Finished(self.iteration, "stopped" if self._stop_requested else "completed")

    def _train_once(self) -> Iterator[Event]:
        event = yield from self._iteration()
        if event is None:
            return
        yield event
        if isinstance(event, Diverged):
            self._paused = True
            yield StateChanged(self.iteration, "paused", "diverged")
            return
        cfg = self._config
        if self.iteration % cfg.evaluation.every == 0:
            yield self.evaluate()
        if cfg.landscape.every and self.iteration % cfg.landscape.every == 0:
            yield self.landscape()
        if cfg.checkpoint_every and self.checkpoint_path and self.iteration % cfg.checkpoint_every == 0:
            yield from self._save(self.checkpoint_path)

    def _iteration(self) -> Generator[Event, None, Event | None]:
        """One iteration as a generator: yields progress while it runs and returns its metrics or ``Diverged``,
        or ``None`` when a queued stop or pause cut it short (it then left the state as it found it). Here
        ``step()`` runs whole; a trainer whose iterations take long yields ``IterationProgress`` instead."""
        yield from ()
        return self.step()

    def _apply(self, commands: list[Command]) -> Iterator[Event]:
        """Apply drained commands in the queue's order; a stop skips the evaluations, landscapes and task fits
        queued with it (the run's last adaptation curve still comes), not the updates and saves."""
        for command in commands:
            if isinstance(command, Update):
                yield from self._apply_update(command.changes)
            elif self._stop_requested and isinstance(command, Evaluate | FitTask | ComputeLandscape):
                continue
            elif isinstance(command, Pause) and not self._paused:
                self._paused = True
                yield StateChanged(self.iteration, "paused")
            elif isinstance(command, Resume) and self._paused:
                self._paused = False
                yield StateChanged(self.iteration, "running")
            elif isinstance(command, Step):
                self._step_requested = True
            elif isinstance(command, Stop):
                self._stop_requested = True
            elif isinstance(command, SaveCheckpoint):
                yield from self._save(Path(command.path))
            elif isinstance(command, Evaluate):
                yield self.evaluate()
            elif isinstance(command, FitTask):
                yield self.fit_task(command)
            elif isinstance(command, ComputeLandscape):
                yield self.landscape()

    def _apply_update(self, changes: dict[str, Any]) -> Iterator[Event]:
        try:
            new = self._config.with_updates(changes)
        except ConfigError as exc:
            yield CommandRejected(self.iteration, str(exc), exc.field)
            return
        old_values = {path: value for path, value, _ in live_fields(self._config)}
        new_values = {path: value for path, value, _ in live_fields(new)}
        diff = {path: (old_values[path], new_values[path]) for path in changes
                if old_values.get(path) != new_values.get(path)}
        self._config = new
        if any(path.startswith(self.LEVEL_SETTINGS) for path in diff):
            self._monitor.forget(self.LEVEL_LOSSES)
        if diff:
            yield ConfigChanged(self.iteration + 1, diff, new)

    def _save(self, path: Path) -> Iterator[Event]:
        try:
            self.save_checkpoint(path)
        except checkpoint.CheckpointError as exc:
            yield CommandRejected(self.iteration, str(exc), "checkpoint")
            return
        yield CheckpointSaved(self.iteration, str(path))

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                        config: ExperimentConfig | None = None, checkpoint_path: str | Path | None = None,
                        **options: Any) -> TrainerBase:
        """A trainer that continues exactly where the checkpoint at ``path`` left off.

        ``config`` replaces the stored config and ``overrides`` change fields of it (for example
        ``meta.iterations`` to train longer); a change of the model's shape is refused when the
        weights are loaded. ``options`` go to the constructor (``tasks=`` for ``Trainer``).
        """
        tensors, meta = checkpoint.load(path)
        if config is None:
            try:
                config = ExperimentConfig.from_dict(meta["config"])
            except (ConfigError, KeyError, TypeError) as exc:
                raise checkpoint.CheckpointError(f"{path}: the stored config is invalid ({exc})") from None
        config = config.with_updates(overrides or {})
        trainer = cls(config, checkpoint_path=checkpoint_path, **options)
        trainer.load_state(tensors, meta, source=str(path))
        return trainer

    # What a subclass provides.

    @abc.abstractmethod
    def step(self) -> Event:
        """One iteration: its metrics, or ``Diverged`` after rolling back to the last good state."""

    @abc.abstractmethod
    def evaluate(self) -> AdaptationCurve:
        """The held-out adaptation curve of the meta-parameters and of a fresh initialization."""

    @abc.abstractmethod
    def landscape(self, settings: LandscapeConfig | None = None) -> LandscapeReady | CommandRejected:
        """A 2D slice through the meta-parameters, with ``settings`` or the config's ``landscape`` section."""

    @abc.abstractmethod
    def fit_task(self, request: FitTask) -> Event:
        """Adapt one held-out task from the meta-parameters and show the result."""

    @abc.abstractmethod
    def save_checkpoint(self, path: str | Path) -> Path:
        """Write everything needed to continue bit for bit, atomically, to ``path``."""

    @abc.abstractmethod
    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str = "state") -> None:
        """Restore what ``save_checkpoint`` wrote; ``CheckpointError`` naming ``source`` if it does not fit."""


class Trainer(TrainerBase):
    """Reptile meta-training of one model on one task distribution.

    Divergence is told by the loss before adaptation (the meta-parameters on unseen data) and the loss after
    it, each against its recent level; a live change of the inner loop resets the level of the loss after
    adaptation, which is then compared with the loss before it until the new level is known.
    """

    MONITORED_LOSSES = ("loss before adaptation", "loss after adaptation")
    LEVEL_SETTINGS = ("inner.",)
    LEVEL_LOSSES = ("loss after adaptation",)

    def __init__(self, config: ExperimentConfig | None = None, *, tasks: TaskDistribution | None = None,
                 checkpoint_path: str | Path | None = None):
        config = (config or ExperimentConfig()).validate()
        super().__init__(config, checkpoint_path)
        self.tasks = tasks if tasks is not None else registry.make(config.task.name)
        self.device = resolve_device(config.device)
        sizes = [self.tasks.input_dim] + [config.model.hidden] * config.model.depth + [self.tasks.output_dim]
        self.model: BatchedModel = build_model(sizes, config.model.activation, config.inner.backend)
        configure_threads(config.threads, self.model.layout.size, self.device)
        tune_allocator()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.theta = torch.nn.Parameter(self.model.init(self.generator).to(self.device))
        self.optimizer = self._make_optimizer()
        self._eval_cache: dict[tuple, tuple[TaskBatch, np.ndarray]] = {}
        self._phi: torch.Tensor | None = None
        self._plane: Plane | None = None
        self._landscape_generator = torch.Generator().manual_seed(config.seed + 1)
        self._phi_prepared: Any = None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if self._config.meta.optimizer == "adam":
            return torch.optim.Adam([self.theta], lr=self._config.meta.lr, fused=True)
        return torch.optim.SGD([self.theta], lr=self._config.meta.lr, foreach=False)

    # Training.

    def current_rates(self) -> tuple[float, float]:
        """The scheduled (meta, inner) learning rates for the next iteration."""
        cfg = self._config
        horizon = cfg.meta.iterations
        return (scheduled_rate(cfg.meta.lr, cfg.meta_schedule, self.iteration, horizon),
                scheduled_rate(cfg.inner.lr, cfg.inner_schedule, self.iteration, horizon))

    def step(self) -> IterationMetrics | Diverged:
        """One meta-iteration; on a divergence roll back to the last healthy snapshot and return ``Diverged``."""
        cfg = self._config
        started = time.perf_counter()
        self._before_iteration()
        meta_lr, inner_lr = self.current_rates()
        for group in self.optimizer.param_groups:
            group["lr"] = meta_lr
        batch = self.tasks.sample(self.generator, cfg.meta.meta_batch, cfg.task.support, cfg.task.query)
        if batch.support_x.device != self.device:
            batch = batch.to(self.device)
        xs, ys = minibatches(self.generator, batch.support_x, batch.support_y, cfg.inner.steps,
                             cfg.inner.batch_size)
        inner = InnerLoop(cfg.inner.steps, inner_lr, cfg.inner.optimizer, cfg.inner.adam_beta2, cfg.inner.adam_eps)
        theta = self.theta.detach()
        phi, prepared = self._adaptation_buffer(batch.num_tasks)
        with torch.no_grad():
            phi.copy_(theta)
            before = adapt_(self.model, prepared, xs, ys, inner).mean()
            after = mse_loss(self.model.forward(prepared, batch.query_x), batch.query_y)
            grad = pseudo_gradient(theta, phi)
            loss_before, loss_after, grad_sum = torch.stack([before, after, grad.sum()]).tolist()
        losses = {"loss before adaptation": loss_before, "loss after adaptation": loss_after}
        reason = self._monitor.check(self.iteration + 1, losses, {"loss after adaptation": loss_before})
        if reason is None and not math.isfinite(grad_sum):
            reason = "the adapted parameters became non-finite"
        if reason is not None:
            return self._roll_back(reason, self._hyperparameters(meta_lr, inner_lr))
        self.theta.grad = grad
        self.optimizer.step()
        if not math.isfinite(theta.sum().item()):
            return self._roll_back("meta-parameters became non-finite after the outer step",
                                   self._hyperparameters(meta_lr, inner_lr), outer_step=True)
        self.iteration += 1
        self._after_iteration(theta)
        self._record_duration(time.perf_counter() - started)
        return IterationMetrics(self.iteration, loss_before, loss_after, meta_lr, inner_lr, cfg.meta.meta_batch,
                                cfg.inner.steps, self.iterations_per_second, self.elapsed)

    def _capture(self, reused: tuple[torch.Tensor, dict[str, torch.Tensor]] | None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Theta and the outer optimizer's state tensors (Adam's moments and step), copied into reused buffers."""
        state = {k: v for k, v in self.optimizer.state.get(self.theta, {}).items() if isinstance(v, torch.Tensor)}
        theta_copy, state_copy = reused if reused is not None else (torch.empty_like(self.theta.detach()), {})
        theta_copy.copy_(self.theta.detach())
        if state.keys() != state_copy.keys() or any(state_copy[k].shape != v.shape for k, v in state.items()):
            state_copy = {k: v.clone() for k, v in state.items()}
        elif state:
            torch._foreach_copy_(list(state_copy.values()), list(state.values()))
        return theta_copy, state_copy

    def _restore(self, snapshot: tuple[torch.Tensor, dict[str, torch.Tensor]]) -> None:
        theta_copy, state_copy = snapshot
        with torch.no_grad():
            self.theta.copy_(theta_copy)
        self.theta.grad = None
        if not state_copy:
            self.optimizer.state.pop(self.theta, None)
            return
        state = self.optimizer.state[self.theta]
        for name, saved in state_copy.items():
            if name in state and state[name].shape == saved.shape:
                state[name].copy_(saved)
            else:
                state[name] = saved.clone()

    def _adaptation_buffer(self, tasks: int) -> tuple[torch.Tensor, Any]:
        """The reused ``[tasks, P]`` buffer for the adapted parameters and its prepared views."""
        if self._phi is None or self._phi.shape[0] != tasks:
            self._phi = torch.empty(tasks, self.model.layout.size, device=self.device)
            self._phi_prepared = self.model.prepare(self._phi)
        return self._phi, self._phi_prepared

    def _hyperparameters(self, meta_lr: float, inner_lr: float) -> dict[str, Any]:
        """The live settings and scheduled rates a divergence reports."""
        hyper: dict[str, Any] = {path: value for path, value, _ in live_fields(self._config)
                                 if applies_to(path, "supervised")}
        hyper.update({"meta.lr (scheduled)": meta_lr, "inner.lr (scheduled)": inner_lr})
        return hyper

    def _held_out(self) -> tuple[TaskBatch, np.ndarray]:
        """The held-out tasks (drawn once from their own seed) and the scratch network's curve on them."""
        ev = self._config.evaluation
        key = (ev.tasks, ev.support, ev.query, ev.seed, ev.steps, ev.lr)
        if key not in self._eval_cache:
            generator = torch.Generator().manual_seed(ev.seed)
            held_out = self.tasks.sample(generator, ev.tasks, ev.support, ev.query, query_grid=True).to(self.device)
            scratch_theta = self.model.init(generator).to(self.device)
            scratch = adaptation_curve(self.model, scratch_theta, held_out, ev.steps, ev.lr)
            self._eval_cache = {key: (held_out, scratch)}
        return self._eval_cache[key]

    def evaluate(self) -> AdaptationCurve:
        """The adaptation curve on the held-out tasks, for the meta-parameters and a fresh network."""
        ev = self._config.evaluation
        held_out, scratch = self._held_out()
        meta = adaptation_curve(self.model, self.theta.detach(), held_out, ev.steps, ev.lr)
        return AdaptationCurve(self.iteration, np.arange(ev.steps + 1), meta, scratch)

    def landscape(self, settings: LandscapeConfig | None = None) -> LandscapeReady | CommandRejected:
        """A 2D slice of the loss landscape through the meta-parameters.

        ``settings`` default to the config's ``landscape`` section (pass another, e.g. with
        ``dataclasses.replace``, for a one-off slice). Uses its own random generator, so computing
        slices never changes the training run. With ``freeze`` the previous slice's directions are
        kept (re-centred at the current theta).
        """
        lc, ev = settings or self._config.landscape, self._config.evaluation
        held_out, _ = self._held_out()
        tasks = held_out.head(min(lc.tasks, held_out.num_tasks)) if lc.loss == "adapted" else held_out
        theta = self.theta.detach()
        snapshots = self._trajectory_points(theta)
        frozen = self._plane if lc.freeze and self._plane is not None and self._plane.kind == lc.plane else None
        try:
            result, self._plane = compute_slice(
                self.model, theta, tasks, plane_kind=lc.plane, loss_kind=lc.loss, resolution=lc.resolution,
                span=lc.span, snapshots=snapshots, generator=self._landscape_generator, directions=frozen,
                steps=lc.steps, lr=ev.lr, iteration=self.iteration)
        except DegeneratePlane as exc:
            return CommandRejected(self.iteration, f"landscape.plane = {lc.plane!r}: {exc}", "landscape.plane")
        return LandscapeReady(self.iteration, result)

    def fit_task(self, request: FitTask) -> TaskFit:
        """Adapt a single one-dimensional-input task from the current meta-parameters (the task view).

        The task comes from ``request.seed`` with ``evaluation.support`` points; given support
        points replace the drawn ones (for points a user placed). Adaptation is full-batch SGD at
        ``evaluation.lr``, as on the adaptation curve.
        """
        ev = self._config.evaluation
        sampled = self.tasks.sample(torch.Generator().manual_seed(request.seed), 1, ev.support, 1)
        if request.support_x is not None and request.support_y is not None:
            support_x = torch.tensor(request.support_x, dtype=torch.float32).view(1, -1, 1)
            support_y = torch.tensor(request.support_y, dtype=torch.float32).view(1, -1, 1)
        else:
            support_x, support_y = sampled.support_x, sampled.support_y
        lo, hi = getattr(self.tasks, "x_range", (-5.0, 5.0))
        grid = torch.linspace(lo, hi, request.grid_points).view(1, -1, 1)
        truth = self.tasks.target(sampled.params, grid)
        predictions = []
        with torch.no_grad():
            phi = self.theta.detach().expand(1, -1).clone()
            prepared = self.model.prepare(phi)
            params = self.model.param_views(prepared)
            x, y, g = support_x.to(self.device), support_y.to(self.device), grid.to(self.device)
            for k in range(max(request.steps, default=0) + 1):
                if k in request.steps:
                    predictions.append(self.model.forward(prepared, g).reshape(-1))
                if x.shape[1] > 0:
                    torch._foreach_add_(params, self.model.gradient(prepared, x, y), alpha=-ev.lr)
        return TaskFit(request.request, self.iteration, tuple(request.steps), grid.reshape(-1).numpy(),
                       truth.reshape(-1).numpy(), torch.stack(predictions).cpu().numpy(),
                       support_x.reshape(-1).numpy(), support_y.reshape(-1).numpy(),
                       {k: float(v[0]) for k, v in sampled.params.items()})

    # Checkpoints.

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write weights, optimizer and RNG state and counters atomically to ``path``."""
        tensors = {"theta": self.theta.detach().cpu(), "rng.generator": self.generator.get_state()}
        optimizer_tensors, optimizer_meta = checkpoint.split_state(self.optimizer.state_dict())
        tensors.update({f"optimizer.{k}": v.cpu() for k, v in optimizer_tensors.items()})
        meta = {"config": self._config.to_dict(), "iteration": self.iteration, "elapsed": self.elapsed,
                "optimizer": optimizer_meta}
        return checkpoint.save(path, tensors, meta)

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str = "state") -> None:
        """Restore a checkpoint's state; all of it is checked first, so a refused one changes nothing."""
        theta = self._check_theta(tensors.get("theta"), self.theta, source)
        generator_state = checkpoint.check_like(tensors.get("rng.generator"), self.generator.get_state(),
                                                "rng.generator", source)
        iteration = checkpoint.counter(meta, "iteration", source)
        elapsed = checkpoint.seconds(meta, "elapsed", source)
        try:
            optimizer_state = checkpoint.join_state(
                {k.removeprefix("optimizer."): v for k, v in tensors.items() if k.startswith("optimizer.")},
                meta["optimizer"])
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
        checkpoint.check_optimizer_state(self.optimizer, optimizer_state, source)
        try:
            self.optimizer.load_state_dict(optimizer_state)
            self.generator.set_state(generator_state)
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
        self.iteration, self.elapsed = iteration, elapsed
        with torch.no_grad():
            self.theta.copy_(theta.to(self.device))


def open_trainer(config: ExperimentConfig, *, checkpoint_path: str | Path | None = None,
                 check_memory: bool = True) -> TrainerBase:
    """The trainer ``config``'s task needs: ``Trainer`` for a task distribution, ``RLTrainer`` for a family.

    With ``check_memory`` a config whose estimated memory exceeds what the machine has available is refused
    (``resources.InsufficientMemory``, a ``ConfigError`` naming the dominant fields) before anything is allocated.
    """
    if check_memory:
        resources.check_memory(config)
    return _trainer_class(config)(config, checkpoint_path=checkpoint_path)


def resume_trainer(path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                   config: ExperimentConfig | None = None, checkpoint_path: str | Path | None = None,
                   check_memory: bool = True) -> TrainerBase:
    """``open_trainer`` for a checkpoint: the stored (or given) config picks the trainer, which continues there."""
    if config is None:
        _, meta = checkpoint.load(path)
        try:
            config = ExperimentConfig.from_dict(meta["config"])
        except (ConfigError, KeyError, TypeError) as exc:
            raise checkpoint.CheckpointError(f"{path}: the stored config is invalid ({exc})") from None
    if check_memory:
        resources.check_memory(config.with_updates(overrides or {}))
    return _trainer_class(config).from_checkpoint(path, overrides=overrides, config=config,
                                                  checkpoint_path=checkpoint_path)


def _trainer_class(config: ExperimentConfig) -> type[TrainerBase]:
    if config.kind == "rl":
        from reptile_engine.rl.trainer import RLTrainer  # late: the RL stack loads gymnasium

        return RLTrainer
    return Trainer
