"""The meta-RL trainer: ``RLMetaLearner`` behind the same commands, events and checkpoints as ``Trainer``.

The experiment config's ``task.name`` names the family, ``meta`` is Reptile's outer loop (``meta_batch`` tasks
per iteration, ``lr`` epsilon, the optimizer and ``meta_schedule``), ``rl`` the agent and its inner loop
(``inner_schedule`` scales ``rl.lr``), and ``evaluation`` the held-out adaptation curve in returns
(``evaluation.tasks`` tasks drawn from ``evaluation.seed``, ``evaluation.steps`` inner updates). Live changes
reach the learner between iterations, like every other trainer's.

A checkpoint holds the meta-parameters theta (actor, ``log_std`` and critic; for TD3 actor and both critics;
the target networks start equal to theta in every inner loop, so they are part of theta's state), the outer
optimizer, every random generator and the counters. Replay and rollout buffers live within one inner loop
and are not part of the state. Resuming on CPU continues bit for bit.

>>> from reptile_engine.presets import preset
>>> cfg = preset("meta-rl").with_updates({"meta.iterations": 2, "meta.meta_batch": 2, "rl.episodes": 2,
...     "rl.updates": 1, "rl.hidden": 8, "evaluation.tasks": 2, "evaluation.steps": 1, "landscape.every": 0})
>>> [type(e).__name__ for e in RLTrainer(cfg).run()]  # doctest: +NORMALIZE_WHITESPACE
['StateChanged', 'AdaptationCurve', 'RLIterationMetrics', 'RLIterationMetrics', 'AdaptationCurve', 'Finished']
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reptile_engine import checkpoint
from reptile_engine.config import ConfigError, ExperimentConfig, LandscapeConfig, live_fields
from reptile_engine.events import (
    AdaptationCurve,
    CommandRejected,
    Diverged,
    Event,
    IterationProgress,
    LandscapeReady,
    RLIterationMetrics,
    Rollouts,
)
from reptile_engine.landscape import DegeneratePlane, Plane
from reptile_engine.rl import landscape as rl_landscape
from reptile_engine.rl.families.base import TaskFamily
from reptile_engine.rl.onpolicy import OnPolicyConfig, prepare_advantages
from reptile_engine.rl.reptile_rl import SEED_HIGH, RLMetaConfig, RLMetaLearner
from reptile_engine.rl.runner import exhaust
from reptile_engine.schedules import scheduled_rate
from reptile_engine.trainer import FitTask, TrainerBase, configure_threads, resolve_device

ROLLOUT_EPISODES = 3
"""Episodes the rollout view shows after each number of updates."""
PROGRESS_EVERY = 0.25
"""Seconds between ``IterationProgress`` events within a meta-iteration."""


def learner_config(config: ExperimentConfig, inner_lr: float | None = None) -> RLMetaConfig:
    """The ``RLMetaConfig`` an experiment config describes (``inner_lr`` replaces the inner loop's base rate, ``rl.lr``
    or TD3's ``rl.actor_lr``: the scheduled rate)."""
    rl = config.rl
    hidden = (rl.hidden,) * rl.depth
    if rl.algorithm == "td3":
        lr = rl.actor_lr if inner_lr is None else inner_lr
        from reptile_engine.rl.offpolicy import OffPolicyConfig

        inner: Any = OffPolicyConfig(
            updates=rl.updates, episodes=rl.episodes, gradient_steps=rl.gradient_steps, batch_size=rl.batch_size,
            actor_lr=lr, critic_lr=rl.critic_lr, gamma=rl.gamma, tau=rl.tau, policy_noise=rl.policy_noise,
            noise_clip=rl.noise_clip, policy_delay=rl.policy_delay, exploration_noise=rl.exploration_noise,
            buffer_size=rl.buffer_size, max_grad_norm=rl.max_grad_norm or None)
    else:
        lr = rl.lr if inner_lr is None else inner_lr
        inner = OnPolicyConfig(
            algorithm=rl.algorithm, updates=rl.updates, episodes=rl.episodes, lr=lr, optimizer=rl.optimizer,
            gamma=rl.gamma, gae_lambda=rl.gae_lambda, clip_ratio=rl.clip_ratio, epochs=rl.epochs,
            minibatches=rl.minibatches, value_coef=rl.value_coef, entropy_coef=rl.entropy_coef,
            max_grad_norm=rl.max_grad_norm or None)
    return RLMetaConfig(family=config.task.name, meta_batch=config.meta.meta_batch, meta_lr=config.meta.lr,
                        meta_optimizer=config.meta.optimizer, actor_hidden=hidden, critic_hidden=hidden,
                        init_log_std=rl.init_log_std, meta_log_std=rl.meta_log_std, horizon=rl.horizon or None,
                        backend=rl.backend, inner=inner, seed=config.seed)


class RLTrainer(TrainerBase):
    """Reptile over an actor-critic agent on a meta-RL task family (see the module docstring).

    Within a meta-iteration ``run()`` reports ``IterationProgress`` and looks for a queued stop or pause
    between environment and gradient steps. Either discards the iteration in progress: theta, the optimizer,
    every generator and the counter are as they were before it, so a paused run redoes it on resume exactly
    as an uninterrupted run would have run it. ``step()`` always runs a whole iteration.

    Divergence is told by non-finite values and by the inner loop's critic loss against its recent level (a
    live change of ``rl.*`` resets that level); the healthy snapshots are the learner's whole state, its
    generators included, taken every ``SNAPSHOT_EVERY`` iterations.
    """

    MONITORED_LOSSES = ("critic loss",)
    LEVEL_SETTINGS = ("rl.",)
    LEVEL_LOSSES = ("critic loss",)
    SNAPSHOT_EVERY = 1

    def __init__(self, config: ExperimentConfig | None = None, *, family: TaskFamily | None = None,
                 checkpoint_path: str | Path | None = None):
        if config is None:
            from reptile_engine.presets import preset

            config = preset("meta-rl")
        config = config.validate()
        if config.kind != "rl":
            raise ConfigError("task.name", config.task.name, "must name a meta-RL family for the RL trainer")
        super().__init__(config, checkpoint_path)
        self.device = resolve_device(config.device)
        self.learner = RLMetaLearner(learner_config(config), family=family, device=self.device)
        configure_threads(config.threads, self.learner.agent.size, self.device)
        self.family = self.learner.family
        self._plane: Plane | None = None
        self._landscape_generator = torch.Generator().manual_seed(config.seed + 1)
        self._scratch_cache: dict[tuple, np.ndarray] = {}

    @property
    def theta(self) -> torch.Tensor:
        return self.learner.theta

    def current_rates(self) -> tuple[float, float]:
        """The scheduled (meta, inner) learning rates for the next iteration."""
        cfg = self._config
        horizon = cfg.meta.iterations
        base = cfg.rl.actor_lr if cfg.rl.algorithm == "td3" else cfg.rl.lr
        return (scheduled_rate(cfg.meta.lr, cfg.meta_schedule, self.iteration, horizon),
                scheduled_rate(base, cfg.inner_schedule, self.iteration, horizon))

    def step(self) -> RLIterationMetrics | Diverged:
        """One whole meta-iteration; on a divergence roll back to the last healthy snapshot and return ``Diverged``."""
        return exhaust(self._iteration_ticks(interruptible=False))

    def _iteration(self) -> Generator[Event, None, Event | None]:
        return (yield from self._iteration_ticks(interruptible=True))

    def _iteration_ticks(self, interruptible: bool) -> Generator[Event, None, RLIterationMetrics | Diverged | None]:
        """The iteration, yielding ``IterationProgress``; ``None`` when a queued stop or pause cut it short."""
        cfg = self._config
        started = time.perf_counter()
        self._before_iteration()
        meta_lr, inner_lr = self.current_rates()
        learner = self.learner
        learner.config = learner_config(cfg, inner_lr).validate()
        for group in learner.optimizer.param_groups:
            group["lr"] = meta_lr
        start_state = learner.state_dict()
        steps_before = learner.runner.env_steps
        ticks = learner.step_ticks()
        reported = started
        while True:
            try:
                updates_done = next(ticks)
            except StopIteration as done:
                metrics = done.value
                break
            if interruptible and self._commands.interrupt_pending():
                ticks.close()
                learner.load_state_dict(start_state)
                return None
            now = time.perf_counter()
            if now - reported >= PROGRESS_EVERY:
                reported = now
                tasks = cfg.meta.meta_batch if updates_done >= cfg.rl.updates else 0
                yield IterationProgress(self.iteration + 1, tasks, cfg.meta.meta_batch, updates_done, cfg.rl.updates,
                                        (learner.runner.env_steps - steps_before) / (now - started))
        reason, outer_step = self._divergence(metrics)
        if reason is not None:
            learner.load_state_dict(start_state)
            hyper = {path: value for path, value, _ in live_fields(cfg) if path.startswith(("rl.", "meta."))}
            inner_field = "rl.actor_lr" if cfg.rl.algorithm == "td3" else "rl.lr"
            hyper.update({"meta.lr (scheduled)": meta_lr, f"{inner_field} (scheduled)": inner_lr})
            return self._roll_back(reason, hyper, outer_step=outer_step)
        self.iteration = learner.iteration
        self._after_iteration(learner.theta)
        duration = time.perf_counter() - started
        self._record_duration(duration)
        env_steps = learner.runner.env_steps - steps_before
        return RLIterationMetrics(
            self.iteration, metrics.get("policy_loss", math.nan), metrics.get("critic_loss", math.nan),
            metrics.get("agent_loss", math.nan), metrics.get("entropy", math.nan),
            metrics.get("return_before", math.nan), metrics.get("return_after", math.nan), meta_lr, inner_lr,
            cfg.meta.meta_batch, cfg.rl.updates, env_steps / max(duration, 1e-9), self.iterations_per_second,
            self.elapsed)

    def _divergence(self, metrics: dict[str, float]) -> tuple[str | None, bool]:
        """Why the finished learner step ``metrics`` is a divergence (``None`` if it is not), and whether only
        the outer step went wrong."""
        values = [metrics.get(name, 0.0) for name in ("agent_loss", "policy_loss", "critic_loss", "return_after")]
        if not metrics["finite"] or not all(math.isfinite(v) for v in values):
            return "the adapted parameters or their losses became non-finite", False
        if "critic_loss" in metrics:
            reason = self._monitor.check(self.iteration + 1, {"critic loss": metrics["critic_loss"]})
            if reason is not None:
                return reason, False
        if not bool(torch.isfinite(self.learner.theta.detach()).all()):
            return "meta-parameters became non-finite after the outer step", True
        return None, False

    def _capture(self, reused: dict[str, Any] | None) -> dict[str, Any]:
        """The learner's whole state (theta, optimizer, generators, counter): small next to an RL iteration."""
        return self.learner.state_dict()

    def _restore(self, snapshot: dict[str, Any]) -> None:
        self.learner.load_state_dict(snapshot)
        self.learner.iteration = self.iteration

    def held_out_tasks(self) -> list[dict[str, Any]]:
        """The evaluation tasks: ``evaluation.tasks`` drawn from ``evaluation.seed``, the same every time."""
        ev = self._config.evaluation
        return self.family.sample_tasks(np.random.default_rng(ev.seed), ev.tasks)

    def evaluate(self) -> AdaptationCurve:
        """Mean held-out return after 0..``evaluation.steps`` updates, from theta and from a fresh init.

        The fresh init's curve depends only on the settings, so it is computed once per setting.
        """
        cfg = self._config
        ev = cfg.evaluation
        self.learner.config = learner_config(cfg).validate()
        tasks = self.held_out_tasks()
        key = (ev.seed, ev.tasks, ev.steps, dataclasses.astuple(cfg.rl))
        scratch = self._scratch_cache.get(key)
        meta, scratch_now = self.learner.adaptation_curve(tasks, ev.steps, seed=ev.seed, scratch=scratch is None)
        if scratch is None:
            scratch = scratch_now
            self._scratch_cache = {key: scratch}
        return AdaptationCurve(self.iteration, np.arange(ev.steps + 1), meta, scratch, quantity="return")

    def fit_task(self, request: FitTask) -> Rollouts:
        """Episodes of a held-out task (drawn from ``request.seed``) after each of ``request.steps`` updates."""
        self.learner.config = learner_config(self._config).validate()
        task = self.family.sample_tasks(np.random.default_rng(request.seed), 1)[0]
        rng = np.random.default_rng(request.seed)
        episode_seed = int(rng.integers(0, SEED_HIGH))
        traces, returns, mean_traces, mean_returns = [], [], [], []
        for updates in request.steps:
            phi = self.learner.adapt_from(self.learner.theta, [task], updates, seed=request.seed).phi
            noisy = self.learner.runner.collect(phi, [task], [episode_seed], ROLLOUT_EPISODES)
            traces.append(self._traces(noisy))
            returns.append(noisy.episode_returns[0])
            mean = self.learner.runner.collect(phi, [task], [episode_seed], 1, deterministic=True)
            mean_traces.append(self._traces(mean)[0])
            mean_returns.append(mean.episode_returns[0, 0])
        return Rollouts(request.request, self.iteration, self._config.task.name, tuple(request.steps), task,
                        tuple(traces), np.stack(returns), tuple(self.family.trace_labels),
                        self.family.trace_target(task), tuple(mean_traces), np.asarray(mean_returns))

    def _traces(self, rollout) -> tuple[np.ndarray, ...]:
        """Each episode of a one-task rollout as the family's trace, its first observation included."""
        obs = rollout.buffer.obs[0].cpu().numpy()
        lengths = rollout.episode_lengths[0]
        return tuple(self.family.trace(obs[e, :lengths[e]]) for e in range(len(lengths)))

    def landscape(self, settings: LandscapeConfig | None = None) -> LandscapeReady | CommandRejected:
        """A slice of the ``landscape.loss`` surrogate (``reptile_engine.rl.landscape``) through theta.

        The fixed batch is ``rl.episodes`` episodes of theta on the first ``landscape.tasks`` held-out tasks.
        """
        lc, cfg = settings or self._config.landscape, self._config
        learner = self.learner
        learner.config = learner_config(cfg).validate()
        tasks = self.held_out_tasks()[:max(2, lc.tasks)]
        theta = learner.theta.detach()
        seed = int(torch.randint(0, 2**62, (1,), generator=self._landscape_generator))
        seeds = np.random.default_rng(seed).integers(0, SEED_HIGH, size=(len(tasks),))
        try:
            losses, transitions = self._surrogate(theta, tasks, seeds, lc.loss)
            phis = learner.adapt_from(theta, tasks[:2], cfg.rl.updates, seed=seed).phi if cfg.rl.updates else None
            snapshots = self._trajectory_points(theta)
            frozen = self._plane if lc.freeze and self._plane is not None and self._plane.kind == lc.plane else None
            result, self._plane = rl_landscape.compute_rl_slice(
                losses, learner.agent.layout, theta, loss_kind=lc.loss, plane_kind=lc.plane,
                resolution=lc.resolution, span=lc.span, width=max(cfg.rl.hidden, learner.agent.obs_dim),
                transitions=transitions, generator=self._landscape_generator, snapshots=snapshots, phis=phis,
                frozen=frozen, iteration=self.iteration)
        except DegeneratePlane as exc:
            return CommandRejected(self.iteration, f"landscape.plane = {lc.plane!r}: {exc}", "landscape.plane")
        return LandscapeReady(self.iteration, result)

    def _surrogate(self, theta: torch.Tensor, tasks: list[dict[str, Any]], seeds: np.ndarray, kind: str):
        """The ``kind`` surrogate ``params [G, P] -> [G]`` on theta's episodes of ``tasks``, and its batch size."""
        learner = self.learner
        inner = learner.config.inner
        rollout = learner.runner.collect(theta.expand(len(tasks), -1), tasks, seeds, inner.episodes)
        if isinstance(inner, OnPolicyConfig):
            prepare_advantages(rollout.buffer, inner)
            batch = rl_landscape.onpolicy_batch(rollout.buffer.samples(), self._landscape_generator)
            clip = inner.clip_ratio if inner.algorithm == "ppo" else None
            return rl_landscape.onpolicy_losses(learner.agent, batch, kind, clip), batch.obs.shape[0]
        batch = rl_landscape.offpolicy_batch(learner.agent, theta, rollout, inner.gamma, self._landscape_generator)
        return rl_landscape.offpolicy_losses(learner.agent, batch, kind), batch.obs.shape[0]

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write theta, the outer optimizer, every generator and the counters atomically to ``path``."""
        state = self.learner.state_dict()
        tensors = {f"learner.{k}": v.detach().cpu() for k, v in state["tensors"].items()}
        meta = {"config": self._config.to_dict(), "iteration": self.iteration, "elapsed": self.elapsed,
                "learner": state["meta"]}
        return checkpoint.save(path, tensors, meta)

    def load_state(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], source: str = "state") -> None:
        """Restore a checkpoint's state; all of it is checked first, so a refused one changes nothing."""
        learner = self.learner
        learner_tensors = {k.removeprefix("learner."): v for k, v in tensors.items() if k.startswith("learner.")}
        self._check_theta(learner_tensors.get("theta"), learner.theta, source)
        checkpoint.check_like(learner_tensors.get("generator"), learner.generator.get_state(), "learner.generator",
                              source)
        iteration = checkpoint.counter(meta, "iteration", source)
        elapsed = checkpoint.seconds(meta, "elapsed", source)
        learner_meta = meta.get("learner")
        if not isinstance(learner_meta, dict):
            raise checkpoint.CheckpointError(f"{source}: the learner's state is missing")
        if checkpoint.counter(learner_meta, "iteration", source) != iteration:
            raise checkpoint.CheckpointError(f"{source}: the learner's iteration does not match the trainer's")
        try:
            type(learner.rng.bit_generator)().state = learner_meta["rng"]
            optimizer_state = checkpoint.join_state(
                {k.removeprefix("optimizer."): v for k, v in learner_tensors.items() if k.startswith("optimizer.")},
                learner_meta["optimizer"])
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
        checkpoint.check_optimizer_state(learner.optimizer, optimizer_state, source)
        try:
            learner.load_state_dict({"tensors": learner_tensors, "meta": learner_meta})
        except (KeyError, ValueError, TypeError, AttributeError, RuntimeError, OverflowError) as exc:
            raise checkpoint.CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
        self.iteration, self.elapsed = iteration, elapsed

