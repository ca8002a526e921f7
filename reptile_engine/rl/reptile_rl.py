"""Reptile for reinforcement learning: the outer step over the actor AND the critic(s).

One meta-iteration samples ``T`` tasks, adapts the meta-parameters theta to each with the inner loop, and
hands Reptile's pseudo-gradient ``theta - mean(phi)`` to a stock ``torch.optim`` optimizer as the ``.grad`` of
one ``nn.Parameter``. With ``SGD(lr=epsilon)`` that is exactly the paper's interpolation
``theta <- theta + epsilon * (mean(phi) - theta)``.

The type of ``RLMetaConfig.inner`` picks the inner loop and the agent: an ``OnPolicyConfig`` (PPO or A2C,
``onpolicy.adapt``) adapts an ``ActorCritic`` (actor, ``log_std`` and critic), an ``OffPolicyConfig`` (TD3,
``offpolicy.adapt``) a ``TD3Agent`` (actor and twin critics, whose target networks start at theta too). Every
task starts from theta, every part of the agent.

``RLMetaLearner`` owns its randomness (a ``torch.Generator`` for initialization, minibatch order, replay
sampling and target noise, a ``numpy.random.Generator`` for tasks and episode seeds) and checkpoints as
tensors plus JSON (nothing pickled); a learner restored from ``state_dict`` continues bit for bit on CPU.

>>> config = RLMetaConfig(meta_batch=2, horizon=10, actor_hidden=(8,), critic_hidden=(8,),
...                       inner=OnPolicyConfig(updates=1, episodes=2, epochs=1, minibatches=2))
>>> learner = RLMetaLearner(config)
>>> metrics = learner.step()
>>> metrics["iteration"], sorted(metrics)[:4]
(1, ['agent_loss', 'critic_loss', 'entropy', 'finite'])
>>> meta, scratch = learner.adaptation_curve(learner.family.sample_tasks(np.random.default_rng(9), 2), updates=1)
>>> meta.shape, scratch.shape
((2,), (2,))
>>> td3 = RLMetaConfig.from_dict({**config.to_dict(), "inner": {"algorithm": "td3", "updates": 1, "episodes": 2,
...                                                               "gradient_steps": 2, "batch_size": 8}})
>>> learner = RLMetaLearner(td3)
>>> type(learner.agent).__name__, sorted(learner.step())[:3]
('TD3Agent', ['agent_loss', 'critic_loss', 'entropy'])
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from reptile_engine import checkpoint
from reptile_engine.algorithms.reptile import pseudo_gradient
from reptile_engine.rl import offpolicy, onpolicy
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.families.base import TaskFamily
from reptile_engine.rl.offpolicy import OffPolicyConfig, TD3Agent
from reptile_engine.rl.onpolicy import InnerResult, OnPolicyConfig
from reptile_engine.rl.runner import MetaEpisodeRunner, Task, Ticks, exhaust

SEED_HIGH = 2**62
"""Episode seeds are drawn from ``[0, SEED_HIGH)``."""


@dataclass(frozen=True)
class RLMetaConfig:
    """One meta-RL experiment: family, agent, Reptile's outer loop and the inner loop."""

    family: str = "point-nav-2d"
    """Registry name of the task family (``reptile_engine.rl.families.available()``)."""
    meta_batch: int = 20
    """Tasks per meta-iteration."""
    meta_lr: float = 0.1
    """Outer learning rate; with ``meta_optimizer="sgd"`` it is Reptile's interpolation epsilon."""
    meta_optimizer: str = "sgd"
    """``"sgd"`` (the paper's interpolation) or ``"adam"``."""
    actor_hidden: tuple[int, ...] = (64, 64)
    critic_hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = -0.5
    """Initial log standard deviation of the Gaussian policy (in the policy's [-1, 1] action units); TD3's
    deterministic actor has none (it explores with ``inner.exploration_noise``)."""
    meta_log_std: bool = True
    """Whether the outer step moves ``log_std`` too. Each inner loop lowers its task's policy spread, so their
    mean keeps shrinking theta's exploration; ``False`` keeps theta's ``log_std`` at ``init_log_std`` (the inner
    loop still adapts it per task). No effect with TD3 (no ``log_std``)."""
    horizon: int | None = None
    """Cut episodes after this many steps (bootstrapped as truncations); ``None``: the family's horizon."""
    backend: str = "auto"
    """Environment stepping: ``"native"`` batch, ``"vector"`` (SyncVectorEnv) or ``"auto"``."""
    inner: OnPolicyConfig | OffPolicyConfig = field(default_factory=OnPolicyConfig)
    """The inner loop: on-policy (PPO, A2C) or off-policy (TD3); its type also picks the agent."""
    seed: int = 0

    def validate(self) -> RLMetaConfig:
        def check(name: str, ok: bool, allowed: str) -> None:
            if not ok:
                raise ValueError(f"{name} = {getattr(self, name)!r}: must be {allowed}")

        check("meta_batch", isinstance(self.meta_batch, int) and self.meta_batch >= 1, "a positive integer")
        check("meta_lr", isinstance(self.meta_lr, int | float) and math.isfinite(self.meta_lr) and self.meta_lr >= 0,
              "a non-negative finite number")
        check("meta_optimizer", self.meta_optimizer in ("sgd", "adam"), "sgd or adam")
        for name in ("actor_hidden", "critic_hidden"):
            sizes = getattr(self, name)
            check(name, len(sizes) >= 1 and all(isinstance(s, int) and s >= 1 for s in sizes),
                  "one or more positive layer widths")
        check("init_log_std", math.isfinite(self.init_log_std), "finite")
        check("horizon", self.horizon is None or (isinstance(self.horizon, int) and self.horizon >= 1),
              "None or a positive integer")
        check("backend", self.backend in ("auto", "native", "vector"), "auto, native or vector")
        check("seed", isinstance(self.seed, int) and self.seed >= 0, "a non-negative integer")
        check("inner", isinstance(self.inner, OnPolicyConfig | OffPolicyConfig),
              "an OnPolicyConfig or an OffPolicyConfig")
        self.inner.validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RLMetaConfig:
        """The inverse of ``to_dict``; ``inner["algorithm"]`` picks the inner config's class."""
        values = dict(data)
        inner = dict(values.get("inner", {}))
        off_policy = inner.get("algorithm") in offpolicy.ALGORITHMS
        values["inner"] = OffPolicyConfig(**inner) if off_policy else OnPolicyConfig(**inner)
        for name in ("actor_hidden", "critic_hidden"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


class RLMetaLearner:
    """Reptile over an actor-critic (on-policy) or a TD3 agent on a meta-RL task family: ``step()`` is one
    meta-iteration."""

    def __init__(self, config: RLMetaConfig | None = None, *, family: TaskFamily | None = None,
                 device: torch.device | str = "cpu"):
        self.config = (config or RLMetaConfig()).validate()
        cfg = self.config
        self.family = family if family is not None else make_family(cfg.family)
        self.device = torch.device(device)
        dims = (self.family.observation_dim, self.family.action_dim)
        self.agent: ActorCritic | TD3Agent
        if isinstance(cfg.inner, OffPolicyConfig):
            self.agent = TD3Agent(*dims, actor_hidden=cfg.actor_hidden, critic_hidden=cfg.critic_hidden,
                                  exploration_std=cfg.inner.exploration_noise)
            self._adapt, self._adapt_ticks = offpolicy.adapt, offpolicy.adapt_ticks
        else:
            self.agent = ActorCritic(*dims, actor_hidden=cfg.actor_hidden, critic_hidden=cfg.critic_hidden,
                                     init_log_std=cfg.init_log_std)
            self._adapt, self._adapt_ticks = onpolicy.adapt, onpolicy.adapt_ticks
        self.runner = MetaEpisodeRunner(self.family, self.agent, horizon=cfg.horizon, backend=cfg.backend,
                                        device=self.device)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.theta = torch.nn.Parameter(self.agent.init(self.generator).to(self.device))
        if cfg.meta_optimizer == "adam":
            self.optimizer: torch.optim.Optimizer = torch.optim.Adam([self.theta], lr=cfg.meta_lr)
        else:
            self.optimizer = torch.optim.SGD([self.theta], lr=cfg.meta_lr)
        self.iteration = 0
        self.last_tasks: list[Task] = []
        self.last_result: InnerResult | None = None

    def sample_meta_batch(self) -> tuple[list[Task], np.ndarray]:
        """The next meta-batch's tasks and episode seeds ``[inner.collections, T]``, from the learner's rng."""
        cfg = self.config
        tasks = self.family.sample_tasks(self.rng, cfg.meta_batch)
        seeds = self.rng.integers(0, SEED_HIGH, size=(cfg.inner.collections, cfg.meta_batch))
        return tasks, seeds

    def step(self) -> dict[str, float]:
        """One meta-iteration: adapt every task from theta, then the outer step on the pseudo-gradient.

        A non-finite pseudo-gradient skips the outer step (``finite`` is 0.0 in the metrics); theta is untouched.
        """
        return exhaust(self.step_ticks())

    def step_ticks(self) -> Ticks[dict[str, float]]:
        """``step`` as ``Ticks``: yields the inner updates done so far while the tasks adapt.

        Closed before it returns, it leaves theta, the optimizer and the iteration counter untouched, and the
        random generators advanced (``state_dict`` taken before restores them).
        """
        started = time.perf_counter()
        tasks, seeds = self.sample_meta_batch()
        theta = self.theta.detach()
        result = yield from self._adapt_ticks(self.agent, self.runner, theta, tasks, seeds, self.config.inner,
                                              self.generator)
        grad = pseudo_gradient(theta, result.phi)
        if not self.config.meta_log_std:
            grad[self.agent.log_std_slice] = 0.0
        finite = bool(torch.isfinite(grad).all())
        if finite:
            self.theta.grad = grad
            self.optimizer.step()
            self.theta.grad = None
        self.iteration += 1
        self.last_tasks, self.last_result = tasks, result
        agent = self.agent
        metrics = {
            "iteration": self.iteration,
            **result.metrics,
            "meta_lr": float(self.optimizer.param_groups[0]["lr"]),
            "pseudo_grad_norm_actor": float(torch.linalg.vector_norm(grad[agent.actor_slice])),
            "pseudo_grad_norm_critic": float(torch.linalg.vector_norm(grad[agent.critic_slice])),
        }
        if isinstance(agent, ActorCritic):
            metrics["log_std"] = float(self.theta.detach()[agent.log_std_slice].mean())
        return {**metrics, "finite": float(finite), "seconds": time.perf_counter() - started}

    def adapt_from(self, start: torch.Tensor, tasks: Sequence[Task], updates: int, *, seed: int = 0,
                   episodes: int | None = None) -> InnerResult:
        """The configured inner loop from ``start`` on ``tasks`` with ``updates`` updates, seeded by ``seed`` alone.

        The episode seeds and the minibatch, replay and noise draws all come from ``seed``, so two calls with the
        same arguments agree and the learner's own random state is untouched; ``returns`` has a row per update
        and one for the episodes after the last.
        """
        inner = dataclasses.replace(self.config.inner, updates=int(updates), evaluate_after=True,
                                    episodes=episodes or self.config.inner.episodes)
        tasks = list(tasks)
        seeds = np.random.default_rng(seed).integers(0, SEED_HIGH, size=(inner.collections, len(tasks)))
        return self._adapt(self.agent, self.runner, start.detach(), tasks, seeds, inner,
                           torch.Generator().manual_seed(seed))

    def adaptation_curve(self, tasks: Sequence[Task], updates: int, *, episodes: int | None = None,
                         seed: int = 0, scratch: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean return over ``tasks`` after 0..``updates`` inner updates: ``(from theta, from a fresh init)``.

        Both runs use the same episode seeds and minibatch order (``adapt_from``), and the fresh initialization
        comes from ``seed``: the curves are comparable and repeatable. Each is a float64 array ``[updates + 1]``;
        with ``scratch=False`` the fresh init's curve (which does not change during training) is skipped and
        ``None``.
        """
        meta = self.adapt_from(self.theta, tasks, updates, seed=seed, episodes=episodes).returns.mean(axis=1)
        if not scratch:
            return meta, None
        fresh = self.agent.init(torch.Generator().manual_seed(seed)).to(self.device)
        return meta, self.adapt_from(fresh, tasks, updates, seed=seed, episodes=episodes).returns.mean(axis=1)

    def state_dict(self) -> dict[str, Any]:
        """``{"tensors": {name: tensor}, "meta": JSON-serialisable dict}``, as ``checkpoint.save`` takes them."""
        opt_tensors, opt_meta = checkpoint.split_state(self.optimizer.state_dict())
        tensors = {"theta": self.theta.detach().clone(), "generator": self.generator.get_state()}
        tensors.update({f"optimizer.{k}": v.clone() for k, v in opt_tensors.items()})
        meta = {"iteration": self.iteration, "rng": self.rng.bit_generator.state, "optimizer": opt_meta,
                "config": self.config.to_dict(), "layout": list(self.agent.layout.names)}
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned (possibly through ``checkpoint.save``/``load``)."""
        tensors, meta = state["tensors"], state["meta"]
        if list(meta["layout"]) != list(self.agent.layout.names) or tensors["theta"].shape != self.theta.shape:
            raise checkpoint.CheckpointError("the checkpoint's agent does not match this learner's")
        with torch.no_grad():
            self.theta.copy_(tensors["theta"])
        self.generator.set_state(tensors["generator"])
        self.rng.bit_generator.state = meta["rng"]
        opt_tensors = {k.removeprefix("optimizer."): v for k, v in tensors.items() if k.startswith("optimizer.")}
        self.optimizer.load_state_dict(checkpoint.join_state(opt_tensors, meta["optimizer"]))
        self.iteration = int(meta["iteration"])
        self.last_tasks, self.last_result = [], None
