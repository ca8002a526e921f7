"""Reptile on a task distribution (sine regression and its kin): the supervised ``MetaLearner``.

A meta-batch is one stacked ``TaskBatch``; every task adapts from theta in one vectorized pass over a reused
``[tasks, P]`` buffer, and the losses before and after adaptation and the finiteness of the adapted
parameters come back to Python in one device sync per iteration.

>>> from reptile_engine.config import ExperimentConfig
>>> from reptile_engine.learner import exhaust
>>> cfg = ExperimentConfig().with_updates({"meta.meta_batch": 3})
>>> learner = SupervisedLearner(cfg)
>>> theta = learner.initial_theta()
>>> adaptation = exhaust(learner.adapt(theta, cfg, cfg.inner.lr))
>>> tuple(adaptation.phi.shape) == (3, learner.size), adaptation.finite
(True, True)
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn.functional import mse_loss

from reptile_engine import checkpoint
from reptile_engine.algorithms.inner import InnerLoop, adapt_, minibatches
from reptile_engine.commands import FitTask
from reptile_engine.config import ExperimentConfig, LandscapeConfig
from reptile_engine.divergence import SNAPSHOT_EVERY
from reptile_engine.evaluation import adaptation_curve
from reptile_engine.events import AdaptationCurve, IterationMetrics, TaskFit
from reptile_engine.landscape import LandscapeSlice, Plane
from reptile_engine.landscape_grid import compute_slice
from reptile_engine.learner import Adaptation, Progress
from reptile_engine.models import BatchedModel, build_model
from reptile_engine.runtime import configure_threads, resolve_device, tune_allocator
from reptile_engine.tasks import TaskBatch, TaskDistribution, registry

LOSS_BEFORE, LOSS_AFTER = "loss before adaptation", "loss after adaptation"


class SupervisedLearner:
    """One model on one task distribution (see the module docstring).

    Divergence is told by the loss before adaptation (theta on unseen data) and the loss after it, each against
    its recent level; a live change of the inner loop resets the level of the loss after adaptation, which is
    then compared with the loss before it until the new level is known.
    """

    monitored_losses: ClassVar[tuple[str, ...]] = (LOSS_BEFORE, LOSS_AFTER)
    level_settings: ClassVar[tuple[str, ...]] = ("inner.",)
    level_losses: ClassVar[tuple[str, ...]] = (LOSS_AFTER,)
    snapshot_every: ClassVar[int] = SNAPSHOT_EVERY

    def __init__(self, config: ExperimentConfig, *, tasks: TaskDistribution | None = None):
        self.tasks = tasks if tasks is not None else registry.make(config.task.name)
        self._device = resolve_device(config.device)
        sizes = [self.tasks.input_dim] + [config.model.hidden] * config.model.depth + [self.tasks.output_dim]
        self.model: BatchedModel = build_model(sizes, config.model.activation, config.inner.backend)
        configure_threads(config.threads, self.model.layout.size, self._device)
        tune_allocator()
        self.generator = torch.Generator().manual_seed(config.seed)
        self._eval_cache: dict[tuple, tuple[TaskBatch, np.ndarray]] = {}
        self._phi: torch.Tensor | None = None
        self._phi_prepared: Any = None

    @property
    def size(self) -> int:
        return self.model.layout.size

    @property
    def device(self) -> torch.device:
        return self._device

    def initial_theta(self) -> torch.Tensor:
        return self.model.init(self.generator).to(self._device)

    def inner_rate_field(self, config: ExperimentConfig) -> str:
        return "inner.lr"

    def outer_mask(self, config: ExperimentConfig) -> slice | None:
        return None

    def adapt(self, theta: torch.Tensor, config: ExperimentConfig, inner_lr: float
              ) -> Generator[Progress, None, Adaptation]:
        """One vectorized pass over the meta-batch; too quick to report progress on, so it yields nothing."""
        yield from ()
        batch = self.tasks.sample(self.generator, config.meta.meta_batch, config.task.support, config.task.query)
        if batch.support_x.device != self._device:
            batch = batch.to(self._device)
        inner_cfg = config.inner
        xs, ys = minibatches(self.generator, batch.support_x, batch.support_y, inner_cfg.steps, inner_cfg.batch_size)
        inner = InnerLoop(inner_cfg.steps, inner_lr, inner_cfg.optimizer, inner_cfg.adam_beta2, inner_cfg.adam_eps)
        phi, prepared = self._adaptation_buffer(batch.num_tasks)
        with torch.no_grad():
            phi.copy_(theta)
            before = adapt_(self.model, prepared, xs, ys, inner).mean()
            after = mse_loss(self.model.forward(prepared, batch.query_x), batch.query_y)
            loss_before, loss_after, phi_sum = torch.stack([before, after, phi.sum()]).tolist()
        return Adaptation(phi, {LOSS_BEFORE: loss_before, LOSS_AFTER: loss_after}, {LOSS_AFTER: loss_before},
                          {"loss_before": loss_before, "loss_after": loss_after}, math.isfinite(phi_sum))

    def _adaptation_buffer(self, tasks: int) -> tuple[torch.Tensor, Any]:
        """The reused ``[tasks, P]`` buffer for the adapted parameters and its prepared views."""
        if self._phi is None or self._phi.shape[0] != tasks:
            self._phi = torch.empty(tasks, self.model.layout.size, device=self._device)
            self._phi_prepared = self.model.prepare(self._phi)
        return self._phi, self._phi_prepared

    def iteration_event(self, iteration: int, adaptation: Adaptation, rates: tuple[float, float],
                        config: ExperimentConfig, iterations_per_second: float, elapsed: float,
                        seconds: float) -> IterationMetrics:
        metrics = adaptation.metrics
        return IterationMetrics(iteration, metrics["loss_before"], metrics["loss_after"], rates[0], rates[1],
                                config.meta.meta_batch, config.inner.steps, iterations_per_second, elapsed)

    def _held_out(self, config: ExperimentConfig) -> tuple[TaskBatch, np.ndarray]:
        """The held-out tasks (drawn once from their own seed) and the scratch network's curve on them."""
        ev = config.evaluation
        key = (ev.tasks, ev.support, ev.query, ev.seed, ev.steps, ev.lr)
        if key not in self._eval_cache:
            generator = torch.Generator().manual_seed(ev.seed)
            held_out = self.tasks.sample(generator, ev.tasks, ev.support, ev.query, query_grid=True).to(self._device)
            scratch_theta = self.model.init(generator).to(self._device)
            scratch = adaptation_curve(self.model, scratch_theta, held_out, ev.steps, ev.lr)
            self._eval_cache = {key: (held_out, scratch)}
        return self._eval_cache[key]

    def evaluate(self, theta: torch.Tensor, config: ExperimentConfig, iteration: int) -> AdaptationCurve:
        ev = config.evaluation
        held_out, scratch = self._held_out(config)
        meta = adaptation_curve(self.model, theta, held_out, ev.steps, ev.lr)
        return AdaptationCurve(iteration, np.arange(ev.steps + 1), meta, scratch)

    def landscape(self, theta: torch.Tensor, config: ExperimentConfig, settings: LandscapeConfig,
                  trajectory: torch.Tensor, frozen: Plane | None, generator: torch.Generator,
                  iteration: int) -> tuple[LandscapeSlice, Plane]:
        """A slice on the held-out tasks (the first ``settings.tasks`` of them for the adapted loss)."""
        held_out, _ = self._held_out(config)
        tasks = held_out.head(min(settings.tasks, held_out.num_tasks)) if settings.loss == "adapted" else held_out
        return compute_slice(
            self.model, theta, tasks, plane_kind=settings.plane, loss_kind=settings.loss,
            resolution=settings.resolution, span=settings.span, snapshots=trajectory, generator=generator,
            directions=frozen, steps=settings.steps, lr=config.evaluation.lr, iteration=iteration)

    def fit_task(self, theta: torch.Tensor, request: FitTask, config: ExperimentConfig, iteration: int) -> TaskFit:
        """Adapt a single one-dimensional-input task from ``theta`` (the task view).

        The task comes from ``request.seed`` with ``evaluation.support`` points; given support points replace
        the drawn ones (for points a user placed). Adaptation is full-batch SGD at ``evaluation.lr``, as on the
        adaptation curve.
        """
        ev = config.evaluation
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
            prepared = self.model.prepare(theta.expand(1, -1).clone())
            params = self.model.param_views(prepared)
            x, y, g = support_x.to(self._device), support_y.to(self._device), grid.to(self._device)
            for k in range(max(request.steps, default=0) + 1):
                if k in request.steps:
                    predictions.append(self.model.forward(prepared, g).reshape(-1))
                if x.shape[1] > 0:
                    torch._foreach_add_(params, self.model.gradient(prepared, x, y), alpha=-ev.lr)
        return TaskFit(request.request, iteration, tuple(request.steps), grid.reshape(-1).numpy(),
                       truth.reshape(-1).numpy(), torch.stack(predictions).cpu().numpy(),
                       support_x.reshape(-1).numpy(), support_y.reshape(-1).numpy(),
                       {k: float(v[0]) for k, v in sampled.params.items()})

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {"generator": self.generator.get_state()}, {}

    def load_state(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], source: str) -> None:
        generator_state = checkpoint.check_like(tensors.get("generator"), self.generator.get_state(),
                                                "learner.generator", source)
        try:
            self.generator.set_state(generator_state)
        except RuntimeError as exc:
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
