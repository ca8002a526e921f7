"""The trainer: Reptile's outer loop over a ``MetaLearner``, driven by commands and reporting events.

``step()`` runs one meta-iteration. ``run()`` is a generator of events for a GUI worker, a CLI or a
notebook. Other threads talk to a running trainer only through its command queue (``update``,
``pause``, ``resume``, ``request_step``, ``stop``, ``request_checkpoint``, ``request_evaluation``),
which the trainer drains between iterations, coalescing repeated updates and echoing each applied
change as a ``ConfigChanged`` event. Nothing outside the trainer mutates its config.

The learner (``reptile_engine.learners.make_learner`` picks it by ``task.name``) adapts each meta-batch;
the trainer owns everything else once for every task kind: the schedules, the outer step, divergence
rollback, the landscape's trajectory and plane, checkpoints and events.

>>> from reptile_engine.config import ExperimentConfig
>>> cfg = ExperimentConfig().with_updates({"meta.iterations": 3, "evaluation.steps": 2, "evaluation.tasks": 4})
>>> trainer = Trainer(cfg)
>>> [type(e).__name__ for e in trainer.run()]  # doctest: +NORMALIZE_WHITESPACE
['StateChanged', 'AdaptationCurve', 'IterationMetrics', 'IterationMetrics', 'IterationMetrics',
 'AdaptationCurve', 'Finished']
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

from reptile_engine import checkpoint, resources
from reptile_engine.algorithms.reptile import outer_step
from reptile_engine.commands import (
    Command,
    CommandMethods,
    CommandQueue,
    ComputeLandscape,
    Evaluate,
    FitTask,
    Pause,
    Resume,
    SaveCheckpoint,
    Step,
    Stop,
    Update,
)
from reptile_engine.config import (
    ConfigError,
    ExperimentConfig,
    LandscapeConfig,
    applies_to,
    get_value,
    live_fields,
)
from reptile_engine.divergence import DivergenceGuard, capture, restore
from reptile_engine.events import (
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    ConfigChanged,
    Diverged,
    Event,
    Finished,
    IterationProgress,
    LandscapeReady,
    StateChanged,
)
from reptile_engine.landscape import DegeneratePlane, Plane
from reptile_engine.learner import Adaptation, MetaLearner, exhaust
from reptile_engine.learners import make_learner
from reptile_engine.schedules import scheduled_rate

PROGRESS_EVERY = 0.25
"""Seconds between ``IterationProgress`` events within a meta-iteration."""


class Trainer(CommandMethods):
    """Reptile meta-training of one learner (see the module docstring).

    A divergence (``DivergenceMonitor``) rolls theta and the outer optimizer's state back to the last healthy
    snapshot (``HealthySnapshots``), drops the landscape trajectory after it and pauses the run. The iteration
    counter, the schedules and the learner's generators go on from where they were (the next iterations draw
    new tasks), so the history stays in order; ``Diverged.rolled_back_to`` names the iteration restored.

    Within a meta-iteration ``run()`` reports the learner's progress and looks for a queued stop or pause at
    each of its yields; either discards the iteration in progress (theta, the optimizer, the learner's
    generators and the counter are as they were), so a paused run redoes it on resume exactly as an
    uninterrupted run would have. ``step()`` always runs a whole iteration.
    """

    def __init__(self, config: ExperimentConfig | None = None, *, learner: MetaLearner | None = None,
                 checkpoint_path: str | Path | None = None):
        config = (config or ExperimentConfig()).validate()
        self._config = config
        self.learner = learner if learner is not None else make_learner(config)
        self.device = self.learner.device
        self.theta = torch.nn.Parameter(self.learner.initial_theta())
        if config.meta.optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam([self.theta], lr=config.meta.lr, fused=True)
        else:
            self.optimizer = torch.optim.SGD([self.theta], lr=config.meta.lr, foreach=False)
        self.iteration = 0
        self.elapsed = 0.0
        self.iterations_per_second = 0.0
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.commands = CommandQueue()
        self._paused = self._stop_requested = self._step_requested = False
        self._guard = DivergenceGuard(self.learner.monitored_losses)
        self._capture = functools.partial(capture, self.theta, self.optimizer)
        self._trajectory: deque[tuple[int, torch.Tensor]] = deque(maxlen=config.landscape.snapshots)
        self._plane: Plane | None = None
        self._landscape_generator = torch.Generator().manual_seed(config.seed + 1)

    @property
    def config(self) -> ExperimentConfig:
        return self._config

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def plane(self) -> Plane | None:
        """The plane of the last landscape slice (``landscape.freeze`` keeps it), ``None`` before the first."""
        return self._plane

    # Training.

    def current_rates(self) -> tuple[float, float]:
        """The scheduled (meta, inner) learning rates for the next iteration."""
        cfg = self._config
        horizon = cfg.meta.iterations
        inner_base = get_value(cfg, self.learner.inner_rate_field(cfg))
        return (scheduled_rate(cfg.meta.lr, cfg.meta_schedule, self.iteration, horizon),
                scheduled_rate(inner_base, cfg.inner_schedule, self.iteration, horizon))

    def step(self) -> Event:
        """One whole meta-iteration: its event, or ``Diverged`` after rolling back to the last healthy snapshot."""
        return exhaust(self._iteration(interruptible=False))

    def _iteration(self, interruptible: bool) -> Generator[Event, None, Event | None]:
        """One iteration, yielding ``IterationProgress``; ``None`` when a queued stop or pause cut it short."""
        cfg = self._config
        started = time.perf_counter()
        self._guard.before(self.iteration, self.learner.snapshot_every, self._capture)
        rates = self.current_rates()
        for group in self.optimizer.param_groups:
            group["lr"] = rates[0]
        start_state = self.learner.state() if interruptible else None
        ticks = self.learner.adapt(self.theta.detach(), cfg, rates[1])
        reported = started
        while True:
            try:
                progress = next(ticks)
            except StopIteration as done:
                return self._finish(done.value, rates, started)
            if start_state is not None and self.commands.interrupt_pending():
                ticks.close()
                self.learner.load_state(*start_state, "the state before the iteration")
                return None
            now = time.perf_counter()
            if now - reported >= PROGRESS_EVERY:
                reported = now
                yield IterationProgress(self.iteration + 1, progress.tasks_done, cfg.meta.meta_batch,
                                        progress.updates_done, progress.updates_total,
                                        progress.env_steps / (now - started))

    def _finish(self, adaptation: Adaptation, rates: tuple[float, float], started: float) -> Event:
        """Check the adapted meta-batch, take the outer step and count the iteration in (or roll back)."""
        cfg = self._config
        reason = self._guard.monitor.check(self.iteration + 1, adaptation.losses, adaptation.references)
        if reason is None and not adaptation.finite:
            reason = "the adapted parameters became non-finite"
        if reason is not None:
            return self._roll_back(reason, rates)
        outer_step(self.theta, self.optimizer, adaptation.phi, self.learner.outer_mask(cfg))
        if not math.isfinite(self.theta.detach().sum().item()):
            return self._roll_back("meta-parameters became non-finite after the outer step", rates,
                                   only_outer_step=True)
        self.iteration += 1
        self._guard.counted(self.iteration)
        if self.iteration % cfg.landscape.snapshot_every == 0:
            self._trajectory.append((self.iteration, self.theta.detach().cpu().clone()))
        duration = time.perf_counter() - started
        self.elapsed += duration
        rate = 1.0 / max(duration, 1e-9)
        self.iterations_per_second = rate if self.iterations_per_second == 0 else \
            0.95 * self.iterations_per_second + 0.05 * rate
        return self.learner.iteration_event(self.iteration, adaptation, rates, cfg, self.iterations_per_second,
                                            self.elapsed, duration)

    def _roll_back(self, reason: str, rates: tuple[float, float], *, only_outer_step: bool = False) -> Diverged:
        """Restore the last healthy snapshot before the trouble began; the diverging iteration is not counted.

        ``only_outer_step``: only the outer step went wrong, so the parameters this iteration started from are
        still trusted (its losses measured them in range).
        """
        failed = self.iteration + 1
        target, snapshot = self._guard.rollback_target(failed, only_outer_step)
        restore(self.theta, self.optimizer, snapshot)
        while self._trajectory and self._trajectory[-1][0] > target:
            self._trajectory.pop()
        cfg = self._config
        hyper: dict[str, Any] = {path: value for path, value, _ in live_fields(cfg) if applies_to(path, cfg.kind)}
        hyper.update({"meta.lr (scheduled)": rates[0], f"{self.learner.inner_rate_field(cfg)} (scheduled)": rates[1]})
        return Diverged(failed, reason, target, hyper)

    # What the learner shows.

    def evaluate(self) -> AdaptationCurve:
        """The held-out adaptation curve of the meta-parameters and of a fresh initialization."""
        return self.learner.evaluate(self.theta.detach(), self._config, self.iteration)

    def landscape(self, settings: LandscapeConfig | None = None) -> LandscapeReady | CommandRejected:
        """A 2D slice through the meta-parameters.

        ``settings`` default to the config's ``landscape`` section (pass another, e.g. with
        ``dataclasses.replace``, for a one-off slice). Uses its own random generator, so computing
        slices never changes the training run. With ``freeze`` the previous slice's directions are
        kept (re-centred at the current theta).
        """
        lc = settings or self._config.landscape
        theta = self.theta.detach()
        trajectory = torch.stack([*(point for _, point in self._trajectory), theta.cpu()]).to(theta.device)
        frozen = self._plane if lc.freeze and self._plane is not None and self._plane.kind == lc.plane else None
        try:
            result, self._plane = self.learner.landscape(theta, self._config, lc, trajectory, frozen,
                                                         self._landscape_generator, self.iteration)
        except DegeneratePlane as exc:
            return CommandRejected(self.iteration, f"landscape.plane = {lc.plane!r}: {exc}", "landscape.plane")
        return LandscapeReady(self.iteration, result)

    def fit_task(self, request: FitTask) -> Event:
        """Adapt one task (``request``) from the meta-parameters and show the result."""
        return self.learner.fit_task(self.theta.detach(), request, self._config, self.iteration)

    # The run loop.

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
            yield from self._apply(self.commands.drain(block=self._paused and not self._stop_requested))
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
        event = yield from self._iteration(interruptible=True)
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

    def _apply(self, commands: list[Command]) -> Iterator[Event]:
        """Apply drained commands in the queue's order; a stop skips the evaluations, landscapes and task fits
        queued with it (the run's last adaptation curve still comes), not the updates and saves."""
        for command in commands:
            if self._stop_requested and isinstance(command, Evaluate | FitTask | ComputeLandscape):
                continue
            yield from self._apply_one(command)

    def _apply_one(self, command: Command) -> Iterator[Event]:
        if isinstance(command, Update):
            yield from self._apply_update(command.changes)
        elif isinstance(command, Pause | Resume) and self._paused != isinstance(command, Pause):
            self._paused = isinstance(command, Pause)
            yield StateChanged(self.iteration, "paused" if self._paused else "running")
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
        if any(path.startswith(self.learner.level_settings) for path in diff):
            self._guard.monitor.forget(self.learner.level_losses)
        if diff:
            yield ConfigChanged(self.iteration + 1, diff, new)

    # Checkpoints.

    def _save(self, path: Path) -> Iterator[Event]:
        try:
            self.save_checkpoint(path)
        except checkpoint.CheckpointError as exc:
            yield CommandRejected(self.iteration, str(exc), "checkpoint")
            return
        yield CheckpointSaved(self.iteration, str(path))

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write theta, the outer optimizer, the learner's state and the counters atomically to ``path``."""
        tensors, meta = checkpoint.pack(self.theta, self.optimizer, self.learner.state(),
                                        {"config": self._config.to_dict(), "iteration": self.iteration,
                                         "elapsed": self.elapsed})
        return checkpoint.save(path, tensors, meta)

    def load_state(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], source: str = "state") -> None:
        """Restore a checkpoint's state (of any readable format); all of it is checked first, so a refused one
        changes nothing."""
        state = checkpoint.unpack(tensors, meta, self.theta, self.optimizer, source)
        previous = self.learner.state()
        self.learner.load_state(state.learner_tensors, state.learner_meta, source)
        try:
            self.optimizer.load_state_dict(state.optimizer)
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            self.learner.load_state(*previous, source)
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
        self.iteration, self.elapsed = state.iteration, state.elapsed
        with torch.no_grad():
            self.theta.copy_(state.theta.to(self.device))

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                        config: ExperimentConfig | None = None, checkpoint_path: str | Path | None = None,
                        learner: MetaLearner | None = None) -> Trainer:
        """A trainer that continues exactly where the checkpoint at ``path`` left off.

        ``config`` replaces the stored config and ``overrides`` change fields of it (for example
        ``meta.iterations`` to train longer); a change of the model's shape is refused when the
        weights are loaded. ``learner`` replaces the one the config builds.
        """
        tensors, meta = checkpoint.load(path)
        config = (config or checkpoint.stored_config(meta, path)).with_updates(overrides or {})
        trainer = cls(config, learner=learner, checkpoint_path=checkpoint_path)
        trainer.load_state(tensors, meta, source=str(path))
        return trainer


def open_trainer(config: ExperimentConfig, *, checkpoint_path: str | Path | None = None,
                 check_memory: bool = True) -> Trainer:
    """A trainer for ``config``, with the learner its task needs.

    With ``check_memory`` a config whose estimated memory exceeds what the machine has available is refused
    (``resources.InsufficientMemory``, a ``ConfigError`` naming the dominant fields) before anything is allocated.
    """
    if check_memory:
        resources.check_memory(config)
    return Trainer(config, checkpoint_path=checkpoint_path)


def resume_trainer(path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                   config: ExperimentConfig | None = None, checkpoint_path: str | Path | None = None,
                   check_memory: bool = True) -> Trainer:
    """``open_trainer`` for a checkpoint: the stored (or given) config picks the learner, which continues there."""
    if config is None:
        config = checkpoint.stored_config(checkpoint.load(path)[1], path)
    if check_memory:
        resources.check_memory(config.with_updates(overrides or {}))
    return Trainer.from_checkpoint(path, overrides=overrides, config=config, checkpoint_path=checkpoint_path)
