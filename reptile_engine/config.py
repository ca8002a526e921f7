"""Experiment configuration: frozen dataclasses, validation with named ranges, TOML in and out.

Every field carries its docstring and allowed range in ``metadata``. Fields a running session may
change carry ``live=True``; the GUI builds its sliders from that metadata, and the trainer accepts
updates only for them.

>>> cfg = ExperimentConfig().with_updates({"inner.lr": 0.01})
>>> cfg.inner.lr
0.01
"""

from __future__ import annotations

import dataclasses
import functools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from reptile_engine import catalog
from reptile_engine.errors import ConfigError
from reptile_engine.fieldpaths import (
    build,
    check_value,
    describe_range,
    get_value,
    iter_fields,
    nest,
    parse_text,
    python_type,
)
from reptile_engine.files import RefusedFile, read_bounded

__all__ = [
    "MAX_FILE_BYTES", "NOT_LIVE", "ON_POLICY_ONLY", "RL_LANDSCAPE_LOSSES", "RL_ONLY", "SUPERVISED_LANDSCAPE_LOSSES",
    "SUPERVISED_ONLY", "TD3_ONLY", "ConfigError", "EvalConfig", "ExperimentConfig", "InnerConfig", "LandscapeConfig",
    "MetaConfig", "ModelConfig", "RLConfig", "ScheduleConfig", "TaskConfig", "applies_to", "describe_range",
    "field_info", "field_type", "get_value", "is_live", "iter_fields", "live_fields", "parse_value", "require_live",
]

MAX_FILE_BYTES = 1 << 20
"""Largest config file ``load`` reads; a saved config is a few kilobytes."""

NOT_LIVE = "cannot change during a run; build a new trainer"


def _field(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
           live: bool = False, log: bool = False, choices: tuple[str, ...] | None = None,
           slider_min: float | None = None) -> Any:
    meta = {"doc": doc, "live": live, "log": log, "min": min, "max": max, "choices": choices,
            "slider_min": slider_min}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TaskConfig:
    """Which task distribution to meta-train on and how many points each task shows."""

    name: str = _field("sine", "Registered task distribution or meta-RL family (built-in, entry point, "
                       "or a module:attr trusted with --plugin).")
    support: int = _field(10, "Support (training) points per task in meta-training.", min=1, max=10_000)
    query: int = _field(10, "Query points per task for the post-adaptation metric.", min=1, max=10_000)


@dataclass(frozen=True)
class ModelConfig:
    """The network whose initialisation Reptile meta-learns."""

    hidden: int = _field(64, "Width of each hidden layer.", min=1, max=4096)
    depth: int = _field(2, "Number of hidden layers.", min=1, max=16)
    activation: str = _field("tanh", "Hidden-layer nonlinearity.", choices=("tanh", "relu"))


@dataclass(frozen=True)
class InnerConfig:
    """The task-specific adaptation loop run from the meta-parameters for every task."""

    optimizer: str = _field("sgd", "Inner optimizer; Adam runs with beta1 = 0 as in the paper.",
                            choices=("sgd", "adam"), live=True)
    steps: int = _field(5, "Inner steps K per task.", min=1, max=1000, live=True)
    lr: float = _field(0.02, "Inner learning rate.", min=1e-6, max=10.0, live=True, log=True)
    batch_size: int = _field(10, "Support points per inner minibatch (at most task.support).",
                             min=1, max=10_000, live=True)
    adam_beta2: float = _field(0.999, "Inner Adam's second-moment decay.", min=0.0, max=0.99999)
    adam_eps: float = _field(1e-8, "Inner Adam's denominator epsilon.", min=1e-12, max=1.0)
    backend: str = _field("auto", "Vectorized inner loop: batched matmuls, torch.func, or auto.",
                          choices=("auto", "matmul", "func"))


@dataclass(frozen=True)
class MetaConfig:
    """Reptile's outer loop."""

    iterations: int = _field(10_000, "Meta-iterations to train.", min=1, max=1_000_000_000)
    meta_batch: int = _field(5, "Tasks per meta-iteration (1 is the serial variant).",
                             min=1, max=4096, live=True)
    lr: float = _field(1.0, "Meta step size epsilon: theta += epsilon * (mean(phi) - theta) with SGD.",
                       min=0.0, max=10.0, live=True, log=True, slider_min=1e-4)
    optimizer: str = _field("sgd", "Outer optimizer fed the pseudo-gradient theta - mean(phi).",
                            choices=("sgd", "adam"))


@dataclass(frozen=True)
class ScheduleConfig:
    """A learning-rate schedule over meta-iterations, scaling a base rate."""

    kind: str = _field("constant", "Shape after warm-up.", choices=("constant", "linear", "cosine", "step"),
                       live=True)
    final_fraction: float = _field(0.0, "Final rate as a fraction of the base (linear, cosine).",
                                   min=0.0, max=1.0)
    warmup: int = _field(0, "Linear warm-up iterations from zero.", min=0, max=1_000_000_000)
    step_every: int = _field(1000, "Iterations between decays (step).", min=1, max=1_000_000_000)
    gamma: float = _field(0.5, "Decay factor per step (step).", min=0.0, max=1.0)


@dataclass(frozen=True)
class EvalConfig:
    """The held-out adaptation curve: query loss after 0..steps inner steps."""

    tasks: int = _field(100, "Held-out tasks, drawn once from their own seed.", min=1, max=100_000)
    support: int = _field(10, "Support points per held-out task.", min=1, max=10_000)
    query: int = _field(100, "Query points per held-out task (a grid where the task allows).",
                        min=1, max=100_000)
    steps: int = _field(32, "Inner steps on the curve.", min=0, max=10_000)
    lr: float = _field(0.02, "Full-batch SGD learning rate on held-out tasks.", min=1e-6, max=10.0, log=True)
    every: int = _field(500, "Meta-iterations between adaptation curves.", min=1, max=1_000_000, live=True)
    seed: int = _field(20_181_231, "Seed of the held-out tasks and the scratch network.", min=0, max=2**63 - 1)


SUPERVISED_LANDSCAPE_LOSSES = ("task", "mean", "adapted")
RL_LANDSCAPE_LOSSES = ("policy", "critic")


@dataclass(frozen=True)
class LandscapeConfig:
    """The 2D loss-landscape slice computed in the worker (see ``reptile_engine.landscape``)."""

    plane: str = _field("random", "Plane of the slice: filter-normalized random directions, PCA of the "
                        "meta-trajectory, or the plane through theta and two tasks' adapted parameters.",
                        choices=("random", "pca", "task"), live=True)
    loss: str = _field("mean", "Loss on the plane: one task's query loss, the mean over held-out tasks, or the "
                       "loss after adapting from each grid point; for a meta-RL family a surrogate on a fixed batch "
                       "of transitions, the actor's policy loss or the critic's TD loss (not the expected return).",
                       choices=SUPERVISED_LANDSCAPE_LOSSES + RL_LANDSCAPE_LOSSES, live=True)
    resolution: int = _field(41, "Grid points per axis.", min=11, max=101, live=True)
    span: float = _field(1.0, "Half-width of the grid in units of the directions.", min=0.01, max=100.0,
                         live=True, log=True)
    every: int = _field(2000, "Meta-iterations between automatic slices (0: on request only).",
                        min=0, max=1_000_000, live=True)
    steps: int = _field(5, "Inner steps from each grid point for the adapted loss.", min=1, max=100, live=True)
    freeze: bool = _field(False, "Keep the plane's directions across refreshes so slices are comparable.",
                          live=True)
    tasks: int = _field(5, "Held-out tasks averaged on the adapted surface (each adapts from every grid point, "
                        "so its cost grows with them); the other surfaces use every held-out task at the "
                        "cost of one.", min=1, max=1000)
    snapshots: int = _field(200, "Meta-parameter snapshots kept for the trajectory and the PCA plane.",
                            min=3, max=10_000)
    snapshot_every: int = _field(20, "Meta-iterations between trajectory snapshots.", min=1, max=1_000_000)


NOISE_PROCESSES = ("gaussian", "ou", "pink")
"""The exploration noise processes of ``rl.noise`` (``reptile_engine.rl.noise``)."""


@dataclass(frozen=True)
class RLConfig:
    """Meta-RL on a gymnasium task family: the agent and its inner loop (the outer loop is ``meta``)."""

    algorithm: str = _field("ppo", "Inner loop: PPO's clipped surrogate, A2C's single full-batch step, or TD3 "
                            "(off-policy: twin critics, target networks, a replay buffer per task).",
                            choices=("ppo", "a2c", "td3"))
    updates: int = _field(3, "Inner updates K per task, each on freshly collected episodes.", min=0, max=100,
                          live=True)
    episodes: int = _field(20, "Episodes collected per task for each inner update.", min=1, max=1000, live=True)
    lr: float = _field(1.0, "Inner learning rate of PPO and A2C (plain SGD takes large steps on clipped "
                       "gradients).", min=1e-6, max=10.0, live=True, log=True)
    actor_lr: float = _field(0.001, "TD3: the actor's inner learning rate.", min=1e-6, max=1.0, live=True,
                             log=True)
    critic_lr: float = _field(0.001, "TD3: the critics' inner learning rate.", min=1e-6, max=1.0, live=True,
                              log=True)
    optimizer: str = _field("sgd", "Inner optimizer of PPO and A2C, fresh for every task.", choices=("sgd", "adam"))
    gamma: float = _field(0.99, "Discount factor.", min=0.0, max=1.0)
    gae_lambda: float = _field(0.95, "GAE lambda: 0 is one-step TD, 1 is Monte Carlo.", min=0.0, max=1.0)
    clip_ratio: float = _field(0.4, "PPO's probability-ratio clip range (wide: a few updates must move far).",
                               min=0.01, max=0.99)
    epochs: int = _field(4, "PPO: passes over each rollout.", min=1, max=100)
    minibatches: int = _field(4, "PPO: minibatches per pass.", min=1, max=1000)
    value_coef: float = _field(0.5, "Weight c_v of the critic loss in the agent loss.", min=0.0, max=100.0)
    entropy_coef: float = _field(0.0, "Weight c_e of the entropy bonus in the agent loss.", min=0.0, max=1.0,
                                 live=True)
    max_grad_norm: float = _field(0.5, "Clip each task's inner gradient to this norm (0: no clipping).",
                                  min=0.0, max=1000.0)
    hidden: int = _field(64, "Width of the actor's and the critic's hidden layers.", min=1, max=1024)
    depth: int = _field(2, "Hidden layers of the actor and of the critic.", min=1, max=8)
    init_log_std: float = _field(-1.0, "Initial log standard deviation of the Gaussian policy.", min=-5.0, max=2.0)
    meta_log_std: bool = _field(False, "Let the outer step move the policy's log_std (each inner loop narrows "
                                "its task's policy, so their mean keeps shrinking exploration).")
    horizon: int = _field(0, "Cut episodes after this many steps (0: the family's own horizon).", min=0,
                          max=100_000)
    backend: str = _field("auto", "Environment stepping: the family's native batch, gymnasium's SyncVectorEnv, "
                          "or auto.", choices=("auto", "native", "vector"))
    gradient_steps: int = _field(64, "TD3: gradient steps per inner update.", min=1, max=10_000)
    batch_size: int = _field(128, "TD3: transitions per task in each gradient step.", min=1, max=100_000)
    tau: float = _field(0.05, "TD3: Polyak rate of the target networks.", min=1e-4, max=1.0)
    policy_noise: float = _field(0.2, "TD3: target policy smoothing noise (action units).", min=0.0, max=10.0)
    noise_clip: float = _field(0.5, "TD3: clip of the target policy noise.", min=0.0, max=10.0)
    policy_delay: int = _field(2, "TD3: critic steps per actor step.", min=1, max=100)
    exploration_noise: float = _field(0.1, "TD3: Gaussian exploration noise while collecting.", min=1e-4, max=10.0)
    noise: str = _field("gaussian", "Action noise while collecting: independent per step (gaussian), "
                        "Ornstein-Uhlenbeck (ou, correlated across steps) or pink (power ~ 1/f).",
                        choices=NOISE_PROCESSES, live=True)
    noise_correlation: float = _field(0.95, "Ornstein-Uhlenbeck noise: correlation between consecutive steps.",
                                      min=0.0, max=0.999, live=True)
    buffer_size: int = _field(100_000, "TD3: replay capacity per task.", min=1, max=10_000_000)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole Reptile experiment."""

    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    inner: InnerConfig = field(default_factory=InnerConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    meta_schedule: ScheduleConfig = field(default_factory=lambda: ScheduleConfig(kind="linear"))
    inner_schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    landscape: LandscapeConfig = field(default_factory=LandscapeConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    seed: int = _field(0, "Seed of the meta-parameters, task sampling and minibatches.", min=0, max=2**63 - 1)
    device: str = _field("cpu", "Torch device.", choices=("cpu", "cuda", "auto"))
    threads: int = _field(0, "Torch intra-op threads; 0 picks one for small models.", min=0, max=256)
    checkpoint_every: int = _field(0, "Meta-iterations between automatic checkpoints (0: never).",
                                   min=0, max=1_000_000_000)

    def validate(self) -> ExperimentConfig:
        """Check every field; raise ``ConfigError`` naming the first bad one. Returns ``self``."""
        for path, value, f in iter_fields(self):
            check_value(path, value, f)
        if self.kind == "rl":
            catalog.resolve(self.task.name)
            if self.landscape.loss not in RL_LANDSCAPE_LOSSES:
                raise ConfigError("landscape.loss", self.landscape.loss, "a meta-RL family's landscape is a "
                                  "surrogate: one of " + ", ".join(RL_LANDSCAPE_LOSSES))
            return self
        if self.inner.batch_size > self.task.support:
            raise ConfigError("inner.batch_size", self.inner.batch_size,
                              f"must be at most task.support = {self.task.support}")
        if self.landscape.loss not in SUPERVISED_LANDSCAPE_LOSSES:
            raise ConfigError("landscape.loss", self.landscape.loss,
                              "a supervised task's landscape: one of " + ", ".join(SUPERVISED_LANDSCAPE_LOSSES))
        catalog.resolve(self.task.name)
        return self

    @property
    def kind(self) -> str:
        """``"rl"`` for a meta-RL family, ``"supervised"`` for a task distribution."""
        return catalog.kind_of(self.task.name)

    def with_updates(self, changes: Mapping[str, Any]) -> ExperimentConfig:
        """A validated copy with dotted-path fields replaced, e.g. ``{"inner.lr": 0.01}``."""
        for path, value in changes.items():
            if path not in _fields_by_path():
                raise ConfigError(path, value, "unknown field")
        return build(ExperimentConfig, nest(changes), "", self).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """Build and validate from nested plain data; unknown keys and wrong types raise ``ConfigError``."""
        if not isinstance(data, Mapping):
            raise ConfigError("<config>", data, "must be a table of sections")
        try:
            return build(cls, data, "").validate()
        except RecursionError:
            raise ConfigError("<config>", "...", "is nested too deeply") from None

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    @classmethod
    def from_toml(cls, text: str) -> ExperimentConfig:
        """Parse and validate TOML text; any failure to parse is a ``ConfigError``."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<toml>", "...", f"is not valid TOML ({exc})") from None
        except RecursionError:
            raise ConfigError("<toml>", "...", "is not valid TOML (nested too deeply)") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml(), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ExperimentConfig:
        """Read a TOML config file; a FIFO, a device or a file over ``MAX_FILE_BYTES`` is refused unread."""
        try:
            text = read_bounded(path, MAX_FILE_BYTES).decode("utf-8")
        except RefusedFile as exc:
            raise ConfigError("<file>", str(path), f"is {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("<file>", str(path), f"cannot be read ({exc})") from None
        return cls.from_toml(text)


def live_fields(config: ExperimentConfig) -> list[tuple[str, Any, dataclasses.Field]]:
    """The fields a running session may change, in declaration order."""
    return [item for item in iter_fields(config) if item[2].metadata.get("live")]


SUPERVISED_ONLY = ("task.support", "task.query", "model.", "inner.", "evaluation.support", "evaluation.query",
                   "evaluation.lr", "landscape.steps")
RL_ONLY = ("rl.",)
TD3_ONLY = ("rl.actor_lr", "rl.critic_lr", "rl.gradient_steps", "rl.batch_size", "rl.tau", "rl.policy_noise",
            "rl.noise_clip", "rl.policy_delay", "rl.exploration_noise", "rl.buffer_size")
ON_POLICY_ONLY = ("rl.lr", "rl.optimizer", "rl.gae_lambda", "rl.clip_ratio", "rl.epochs", "rl.minibatches",
                  "rl.value_coef", "rl.entropy_coef", "rl.init_log_std", "rl.meta_log_std")


def applies_to(path: str, kind: str, algorithm: str | None = None) -> bool:
    """Whether the field at ``path`` matters for a run of ``kind`` (``"supervised"`` or ``"rl"``) and, given
    the meta-RL inner loop's ``algorithm``, for that loop (TD3's fields for TD3, PPO's and A2C's for them)."""
    if path.startswith(RL_ONLY if kind == "supervised" else SUPERVISED_ONLY):
        return False
    if kind == "rl" and algorithm is not None:
        return path not in (ON_POLICY_ONLY if algorithm == "td3" else TD3_ONLY)
    return True


def field_info(path: str) -> dataclasses.Field:
    """The dataclass field behind a dotted path."""
    try:
        return _fields_by_path()[path]
    except KeyError:
        raise ConfigError(path, None, "unknown field") from None


@functools.cache
def _fields_by_path() -> dict[str, dataclasses.Field]:
    return {path: f for path, _, f in iter_fields(ExperimentConfig())}


def field_type(path: str) -> type:
    """The Python type of the field at a dotted path.

    >>> field_type("inner.lr"), field_type("inner.steps"), field_type("landscape.freeze")
    (<class 'float'>, <class 'int'>, <class 'bool'>)
    """
    return python_type(field_info(path))


def parse_value(path: str, text: str) -> Any:
    """A value typed as text (a flag, a text box) as the field's type, checked against its range.

    >>> parse_value("inner.steps", "7"), parse_value("landscape.freeze", "yes")
    (7, True)
    >>> parse_value("inner.lr", "-1")
    Traceback (most recent call last):
    ...
    reptile_engine.errors.ConfigError: inner.lr = -1.0: must be a finite number in [1e-06, 10]
    """
    return parse_text(path, text, field_info(path))


def is_live(path: str) -> bool:
    """Whether a running session may change the field at ``path``; ``ConfigError`` for an unknown path.

    >>> is_live("inner.lr"), is_live("model.hidden")
    (True, False)
    """
    return bool(field_info(path).metadata.get("live"))


def require_live(changes: Mapping[str, Any], *, allowed: str = NOT_LIVE) -> None:
    """Raise ``ConfigError`` naming the first unknown or non-live field of ``changes``, with ``allowed`` as the
    reason for a non-live one.

    >>> require_live({"inner.lr": 0.01})
    >>> require_live({"model.hidden": 8})
    Traceback (most recent call last):
    ...
    reptile_engine.errors.ConfigError: model.hidden = 8: cannot change during a run; build a new trainer
    """
    for path, value in changes.items():
        f = _fields_by_path().get(path)
        if f is None:
            raise ConfigError(path, value, "unknown field")
        if not f.metadata.get("live"):
            raise ConfigError(path, value, allowed)
