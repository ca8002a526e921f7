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
import queue
import time
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.functional import mse_loss

from reptile_engine import checkpoint
from reptile_engine.algorithms.inner import InnerLoop, adapt_, minibatches
from reptile_engine.algorithms.reptile import pseudo_gradient
from reptile_engine.config import ConfigError, ExperimentConfig, LandscapeConfig, field_info, live_fields
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


class CommandQueue:
    """A thread-safe FIFO of commands, drained by the trainer between iterations only."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()

    def put(self, command: Command) -> None:
        self._queue.put(command)

    def drain(self, block: bool) -> list[Command]:
        """All queued commands; with ``block`` wait (without spinning) until there is at least one."""
        commands = [self._queue.get()] if block else []
        while True:
            try:
                commands.append(self._queue.get_nowait())
            except queue.Empty:
                return commands


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


class TrainerBase(abc.ABC):
    """The command queue, the run loop and checkpoint plumbing that every trainer shares.

    A subclass provides the learning: ``step()`` (one iteration, or ``Diverged`` after a rollback),
    ``evaluate()``, ``landscape()``, ``fit_task()``, ``save_checkpoint()`` and ``load_state()``.
    """

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

    @staticmethod
    def _check_theta(theta: torch.Tensor | None, shape: torch.Size, source: str) -> torch.Tensor:
        """A checkpoint's meta-parameters, refused with a ``CheckpointError`` if missing, misshapen or non-finite."""
        if theta is None or theta.shape != shape:
            raise checkpoint.CheckpointError(
                f"{source}: theta has shape {None if theta is None else tuple(theta.shape)}, "
                f"the model needs {tuple(shape)}")
        if not torch.isfinite(theta).all():
            raise checkpoint.CheckpointError(f"{source}: theta holds non-finite values")
        return theta

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
        event = self.step()
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
        pending: dict[str, Any] = {}
        for command in commands:
            if isinstance(command, Update):
                pending.update(command.changes)
                continue
            if pending:
                yield from self._apply_update(pending)
                pending = {}
            if isinstance(command, Pause) and not self._paused:
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
        if pending:
            yield from self._apply_update(pending)

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
    """Reptile meta-training of one model on one task distribution."""

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
        self._good_theta = self.theta.detach().clone()
        self._eval_cache: dict[tuple, tuple[TaskBatch, np.ndarray]] = {}
        self._phi: torch.Tensor | None = None
        self._optimizer_backup: list[torch.Tensor] | None = None
        self._snapshots: deque[torch.Tensor] = deque(maxlen=config.landscape.snapshots)
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
        """One meta-iteration; on a non-finite loss or parameter, roll back and return ``Diverged``."""
        cfg = self._config
        started = time.perf_counter()
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
        if not math.isfinite(loss_after):
            return self._diverged(f"the loss after adaptation became {loss_after}", meta_lr, inner_lr)
        if not math.isfinite(grad_sum):
            return self._diverged("the adapted parameters became non-finite", meta_lr, inner_lr)
        optimizer_backup = self._backup_optimizer_state()
        self._good_theta.copy_(theta)
        self.theta.grad = grad
        self.optimizer.step()
        if not math.isfinite(theta.sum().item()):
            with torch.no_grad():
                self.theta.copy_(self._good_theta)
            self._restore_optimizer_state(optimizer_backup)
            return self._diverged("meta-parameters became non-finite after the outer step", meta_lr, inner_lr)
        self.iteration += 1
        if self.iteration % cfg.landscape.snapshot_every == 0:
            self._snapshots.append(theta.cpu().clone())
        self._record_duration(time.perf_counter() - started)
        return IterationMetrics(self.iteration, loss_before, loss_after, meta_lr, inner_lr, cfg.meta.meta_batch,
                                cfg.inner.steps, self.iterations_per_second, self.elapsed)

    def _backup_optimizer_state(self) -> list[str] | None:
        """Copy the outer optimizer's state tensors into reused buffers (a rollback needs them)."""
        state = self.optimizer.state.get(self.theta)
        if not state:
            return None
        names = sorted(k for k, v in state.items() if isinstance(v, torch.Tensor))
        tensors = [state[k] for k in names]
        if self._optimizer_backup is None or [b.shape for b in self._optimizer_backup] != [t.shape for t in tensors]:
            self._optimizer_backup = [t.clone() for t in tensors]
        else:
            torch._foreach_copy_(self._optimizer_backup, tensors)
        return names

    def _restore_optimizer_state(self, names: list[str] | None) -> None:
        if names is None:
            self.optimizer.state.pop(self.theta, None)
            return
        state = self.optimizer.state[self.theta]
        for name, saved in zip(names, self._optimizer_backup, strict=True):
            state[name].copy_(saved)

    def _adaptation_buffer(self, tasks: int) -> tuple[torch.Tensor, Any]:
        """The reused ``[tasks, P]`` buffer for the adapted parameters and its prepared views."""
        if self._phi is None or self._phi.shape[0] != tasks:
            self._phi = torch.empty(tasks, self.model.layout.size, device=self.device)
            self._phi_prepared = self.model.prepare(self._phi)
        return self._phi, self._phi_prepared

    def _diverged(self, reason: str, meta_lr: float, inner_lr: float) -> Diverged:
        hyper = {path: value for path, value, _ in live_fields(self._config)}
        hyper.update({"meta.lr (scheduled)": meta_lr, "inner.lr (scheduled)": inner_lr})
        return Diverged(self.iteration + 1, reason, self.iteration, hyper)

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
        snapshots = torch.stack([*self._snapshots, theta.cpu()]).to(self.device)
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
        theta = self._check_theta(tensors.get("theta"), self.theta.shape, source)
        try:
            optimizer_state = checkpoint.join_state(
                {k.removeprefix("optimizer."): v for k, v in tensors.items() if k.startswith("optimizer.")},
                meta["optimizer"])
            self.optimizer.load_state_dict(optimizer_state)
            self.generator.set_state(tensors["rng.generator"])
            self.iteration = int(meta["iteration"])
            self.elapsed = float(meta["elapsed"])
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
        with torch.no_grad():
            self.theta.copy_(theta.to(self.device))
            self._good_theta.copy_(self.theta)


def open_trainer(config: ExperimentConfig, *, checkpoint_path: str | Path | None = None) -> TrainerBase:
    """The trainer ``config``'s task needs: ``Trainer`` for a task distribution, ``RLTrainer`` for a family."""
    return _trainer_class(config)(config, checkpoint_path=checkpoint_path)


def resume_trainer(path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                   config: ExperimentConfig | None = None,
                   checkpoint_path: str | Path | None = None) -> TrainerBase:
    """``open_trainer`` for a checkpoint: the stored (or given) config picks the trainer, which continues there."""
    if config is None:
        _, meta = checkpoint.load(path)
        try:
            config = ExperimentConfig.from_dict(meta["config"])
        except (ConfigError, KeyError, TypeError) as exc:
            raise checkpoint.CheckpointError(f"{path}: the stored config is invalid ({exc})") from None
    return _trainer_class(config).from_checkpoint(path, overrides=overrides, config=config,
                                                  checkpoint_path=checkpoint_path)


def _trainer_class(config: ExperimentConfig) -> type[TrainerBase]:
    if config.kind == "rl":
        from reptile_engine.rl.trainer import RLTrainer  # late: the RL stack loads gymnasium

        return RLTrainer
    return Trainer
