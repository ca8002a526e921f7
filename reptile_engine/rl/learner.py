"""Meta-RL as a ``MetaLearner``: Reptile over an actor-critic (PPO, A2C) or a TD3 agent on a task family.

The experiment config's ``task.name`` names the family, ``rl`` the agent and its inner loop (read as it is by
``onpolicy``/``offpolicy``; ``inner_schedule`` scales ``rl.lr``, or TD3's ``rl.actor_lr``), ``meta.meta_batch``
the tasks of an iteration and ``evaluation`` the held-out adaptation curve in returns (``evaluation.tasks``
tasks drawn from ``evaluation.seed``, ``evaluation.steps`` inner updates). The outer step, snapshots,
checkpoints and events are ``reptile_engine.trainer.Trainer``'s.

Every task starts from theta, every part of the agent: actor, ``log_std`` and critic, or for TD3 actor and both
critics (whose target networks start equal to theta too, so they are part of theta's state). Replay and rollout
buffers live within one inner loop. The learner's own state is its two generators, both seeded with
``config.seed``: a ``torch.Generator`` (theta's initialization first, then minibatch order, replay sampling and
target noise) and a ``numpy.random.Generator`` (tasks and episode seeds).

>>> from reptile_engine.presets import preset
>>> from reptile_engine.learner import exhaust
>>> cfg = preset("meta-rl").with_updates({"meta.meta_batch": 2, "rl.episodes": 2, "rl.updates": 1, "rl.hidden": 8})
>>> learner = RLLearner(cfg)
>>> adapted = exhaust(learner.adapt(learner.initial_theta(), cfg, cfg.rl.lr))
>>> tuple(adapted.phi.shape), sorted(adapted.losses), adapted.finite
((2, 221), ['critic loss'], True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Generator, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from reptile_engine import checkpoint
from reptile_engine.config import ExperimentConfig, LandscapeConfig, RLConfig
from reptile_engine.events import AdaptationCurve, RLIterationMetrics, Rollouts
from reptile_engine.landscape import LandscapeSlice, Plane
from reptile_engine.learner import Adaptation, Progress
from reptile_engine.rl import landscape as rl_landscape
from reptile_engine.rl import offpolicy, onpolicy
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.families.base import TaskFamily
from reptile_engine.rl.offpolicy import TD3Agent
from reptile_engine.rl.onpolicy import InnerResult, collections
from reptile_engine.rl.runner import SEED_HIGH, MetaEpisodeRunner, Rollout, Task
from reptile_engine.runtime import configure_threads, resolve_device

ROLLOUT_EPISODES = 3
"""Episodes the rollout view shows after each number of updates."""
WATCHED = ("agent_loss", "policy_loss", "critic_loss", "return_after")
"""Metrics that must stay finite for an iteration to count."""


def make_agent(family: TaskFamily, rl: RLConfig) -> ActorCritic | TD3Agent:
    """The agent ``rl.algorithm`` trains, sized for ``family``: ``rl.depth`` hidden layers of ``rl.hidden``."""
    dims, hidden = (family.observation_dim, family.action_dim), (rl.hidden,) * rl.depth
    if rl.algorithm == "td3":
        return TD3Agent(*dims, actor_hidden=hidden, critic_hidden=hidden, exploration_std=rl.exploration_noise)
    return ActorCritic(*dims, actor_hidden=hidden, critic_hidden=hidden, init_log_std=rl.init_log_std)


class RLLearner:
    """Reptile on a meta-RL task family (see the module docstring); ``family`` replaces ``task.name``'s and
    ``device`` the config's.

    Divergence is told by non-finite values and by the inner loop's critic loss against its recent level (a
    live change of ``rl.*`` resets that level); iterations are slow next to a snapshot, so every one is kept.
    """

    monitored_losses: ClassVar[tuple[str, ...]] = ("critic loss",)
    level_settings: ClassVar[tuple[str, ...]] = ("rl.",)
    level_losses: ClassVar[tuple[str, ...]] = ("critic loss",)
    snapshot_every: ClassVar[int] = 1

    def __init__(self, config: ExperimentConfig, *, family: TaskFamily | None = None,
                 device: torch.device | str | None = None):
        rl = config.rl
        self.family = family if family is not None else make_family(config.task.name)
        self._device = resolve_device(config.device) if device is None else torch.device(device)
        self.agent = make_agent(self.family, rl)
        configure_threads(config.threads, self.agent.size, self._device)
        self.inner = offpolicy if isinstance(self.agent, TD3Agent) else onpolicy
        self.runner = MetaEpisodeRunner(self.family, self.agent, horizon=rl.horizon or None, backend=rl.backend,
                                        device=self._device, noise=rl.noise, noise_correlation=rl.noise_correlation)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self._initial_theta = self.agent.init(self.generator).to(self._device)
        self._scratch_cache: dict[tuple, np.ndarray] = {}

    @property
    def size(self) -> int:
        return self.agent.size

    @property
    def device(self) -> torch.device:
        return self._device

    def initial_theta(self) -> torch.Tensor:
        """The agent's initialization, the torch generator's first draw (made when the learner was built)."""
        return self._initial_theta.clone()

    def inner_rate_field(self, config: ExperimentConfig) -> str:
        return "rl.actor_lr" if config.rl.algorithm == "td3" else "rl.lr"

    def _explore_as(self, rl: RLConfig) -> None:
        """Collect with the exploration noise ``rl`` names now (``rl.noise`` may change while the run goes)."""
        self.runner.noise, self.runner.noise_correlation = rl.noise, rl.noise_correlation

    def adapt(self, theta: torch.Tensor, config: ExperimentConfig, inner_lr: float
              ) -> Generator[Progress, None, Adaptation]:
        """The next meta-batch's tasks and episode seeds from the numpy generator, adapted from ``theta`` by the
        inner loop at ``inner_lr``; yields ``Progress`` after every environment and gradient step."""
        rl, count = config.rl, config.meta.meta_batch
        self._explore_as(rl)
        tasks = self.family.sample_tasks(self.rng, count)
        seeds = self.rng.integers(0, SEED_HIGH, size=(collections(rl.updates), count))
        steps_before = self.runner.env_steps
        ticks = self.inner.adapt_ticks(self.agent, self.runner, theta.detach(), tasks, seeds, rl, self.generator,
                                       lr=inner_lr)
        with contextlib.closing(ticks):
            while True:
                try:
                    updates_done = next(ticks)
                except StopIteration as done:
                    result: InnerResult = done.value
                    break
                yield Progress(count if updates_done >= rl.updates else 0, updates_done, rl.updates,
                               self.runner.env_steps - steps_before)
        metrics = {**result.metrics, "env_steps": float(self.runner.env_steps - steps_before)}
        finite = bool(torch.isfinite(result.phi).all()) and all(math.isfinite(metrics.get(name, 0.0))
                                                                for name in WATCHED)
        losses = {"critic loss": metrics["critic_loss"]} if "critic_loss" in metrics else {}
        return Adaptation(result.phi, losses, None, metrics, finite)

    def outer_mask(self, config: ExperimentConfig) -> slice | None:
        """``log_std`` unless ``rl.meta_log_std``: each inner loop narrows its task's policy, so their mean would
        keep shrinking theta's exploration. TD3 has no ``log_std``."""
        if isinstance(self.agent, ActorCritic) and not config.rl.meta_log_std:
            return self.agent.log_std_slice
        return None

    def iteration_event(self, iteration: int, adaptation: Adaptation, rates: tuple[float, float],
                        config: ExperimentConfig, iterations_per_second: float, elapsed: float,
                        seconds: float) -> RLIterationMetrics:
        metrics = adaptation.metrics
        losses = (metrics.get(name, math.nan) for name in ("policy_loss", "critic_loss", "agent_loss", "entropy",
                                                             "return_before", "return_after"))
        return RLIterationMetrics(iteration, *losses, *rates, config.meta.meta_batch, config.rl.updates,
                                  metrics["env_steps"] / max(seconds, 1e-9), iterations_per_second, elapsed)

    def held_out_tasks(self, config: ExperimentConfig) -> list[Task]:
        """The evaluation tasks: ``evaluation.tasks`` drawn from ``evaluation.seed``, the same every time."""
        ev = config.evaluation
        return self.family.sample_tasks(np.random.default_rng(ev.seed), ev.tasks)

    def adapt_from(self, start: torch.Tensor, tasks: Sequence[Task], updates: int, config: ExperimentConfig, *,
                   seed: int, episodes: int | None = None) -> InnerResult:
        """The inner loop at ``rl``'s base rate from ``start`` with ``updates`` updates, seeded by ``seed`` alone.

        The episode seeds and the minibatch, replay and noise draws all come from ``seed``, so two calls with the
        same arguments agree and the learner's own generators are untouched; ``returns`` has a row per update
        and one for the episodes after the last.
        """
        tasks = list(tasks)
        self._explore_as(config.rl)
        seeds = np.random.default_rng(seed).integers(0, SEED_HIGH, size=(collections(updates), len(tasks)))
        return self.inner.adapt(self.agent, self.runner, start.detach(), tasks, seeds, config.rl,
                                torch.Generator().manual_seed(seed), updates=updates, episodes=episodes)

    def return_curve(self, start: torch.Tensor, tasks: Sequence[Task], updates: int, config: ExperimentConfig, *,
                     seed: int, episodes: int | None = None) -> np.ndarray:
        """Mean return over ``tasks`` after 0..``updates`` inner updates from ``start``, float64 ``[updates + 1]``."""
        return self.adapt_from(start, tasks, updates, config, seed=seed, episodes=episodes).returns.mean(axis=1)

    def fresh_theta(self, seed: int) -> torch.Tensor:
        """A fresh initialization from ``seed`` (the scratch curve's start)."""
        return self.agent.init(torch.Generator().manual_seed(seed)).to(self._device)

    def evaluate(self, theta: torch.Tensor, config: ExperimentConfig, iteration: int) -> AdaptationCurve:
        """Mean held-out return after 0..``evaluation.steps`` updates, from theta and from a fresh init; both use
        the same episode seeds and minibatch order. The fresh init's curve depends only on the settings, so it is
        computed once per setting."""
        ev = config.evaluation
        tasks = self.held_out_tasks(config)
        meta = self.return_curve(theta, tasks, ev.steps, config, seed=ev.seed)
        key = (ev.seed, ev.tasks, ev.steps, dataclasses.astuple(config.rl))
        if key not in self._scratch_cache:
            self._scratch_cache = {key: self.return_curve(self.fresh_theta(ev.seed), tasks, ev.steps, config,
                                                          seed=ev.seed)}
        return AdaptationCurve(iteration, np.arange(ev.steps + 1), meta, self._scratch_cache[key], quantity="return")

    def landscape(self, theta: torch.Tensor, config: ExperimentConfig, settings: LandscapeConfig,
                  trajectory: torch.Tensor, frozen: Plane | None, generator: torch.Generator,
                  iteration: int) -> tuple[LandscapeSlice, Plane]:
        """A slice of the ``settings.loss`` surrogate (``reptile_engine.rl.landscape``) through theta.

        The fixed batch is ``rl.episodes`` episodes of theta on the first ``settings.tasks`` held-out tasks; the
        first two of them, adapted, draw the inner paths (and span the task plane).
        """
        rl, theta = config.rl, theta.detach()
        self._explore_as(rl)
        tasks = self.held_out_tasks(config)[:max(2, settings.tasks)]
        seed = int(torch.randint(0, SEED_HIGH, (1,), generator=generator))
        seeds = np.random.default_rng(seed).integers(0, SEED_HIGH, size=(len(tasks),))
        rollout = self.runner.collect(theta.expand(len(tasks), -1), tasks, seeds, rl.episodes)
        losses, transitions = rl_landscape.surrogate(self.agent, rl, theta, rollout, settings.loss, generator)
        phis = self.adapt_from(theta, tasks[:2], rl.updates, config, seed=seed).phi if rl.updates else None
        return rl_landscape.compute_rl_slice(
            losses, self.agent.layout, theta, loss_kind=settings.loss, plane_kind=settings.plane,
            resolution=settings.resolution, span=settings.span, width=max(rl.hidden, self.agent.obs_dim),
            transitions=transitions, generator=generator, snapshots=trajectory, phis=phis, frozen=frozen,
            iteration=iteration)

    def fit_task(self, theta: torch.Tensor, request: Any, config: ExperimentConfig, iteration: int) -> Rollouts:
        """Episodes of a held-out task (drawn from ``request.seed``) after each of ``request.steps`` updates, with
        exploration noise and with the mean action."""
        self._explore_as(config.rl)
        task = self.family.sample_tasks(np.random.default_rng(request.seed), 1)[0]
        episode_seed = int(np.random.default_rng(request.seed).integers(0, SEED_HIGH))
        traces, returns, mean_traces, mean_returns = [], [], [], []
        for updates in request.steps:
            phi = self.adapt_from(theta, [task], updates, config, seed=request.seed).phi
            noisy = self.runner.collect(phi, [task], [episode_seed], ROLLOUT_EPISODES)
            traces.append(self._traces(noisy))
            returns.append(noisy.episode_returns[0])
            mean = self.runner.collect(phi, [task], [episode_seed], 1, deterministic=True)
            mean_traces.append(self._traces(mean)[0])
            mean_returns.append(mean.episode_returns[0, 0])
        return Rollouts(request.request, iteration, config.task.name, tuple(request.steps), task, tuple(traces),
                        np.stack(returns), tuple(self.family.trace_labels), self.family.trace_target(task),
                        tuple(mean_traces), np.asarray(mean_returns))

    def _traces(self, rollout: Rollout) -> tuple[np.ndarray, ...]:
        """Each episode of a one-task rollout as the family's trace, its first observation included."""
        obs = rollout.buffer.obs[0].cpu().numpy()
        lengths = rollout.episode_lengths[0]
        return tuple(self.family.trace(obs[e, :lengths[e]]) for e in range(len(lengths)))

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Both generators: the torch one's state as a tensor, the numpy one's as JSON-ready data."""
        return {"generator": self.generator.get_state()}, {"rng": self.rng.bit_generator.state}

    def load_state(self, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], source: str) -> None:
        """Restore ``state()``; all of it is checked first, so a refused state changes nothing."""
        generator = checkpoint.check_like(tensors.get("generator"), self.generator.get_state(), "learner.generator",
                                          source)
        try:
            type(self.rng.bit_generator)().state = meta["rng"]
        except (KeyError, ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise checkpoint.CheckpointError(f"{source}: the learner's random state is invalid ({exc})") from None
        self.generator.set_state(generator)
        self.rng.bit_generator.state = meta["rng"]
