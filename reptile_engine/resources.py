"""The memory a run will need, estimated from its config before anything is allocated.

A config can ask for far more memory than a machine has (4096 tasks of 1000 episodes each, or a
meta-batch of 4096 copies of a network with 15 million parameters). Such a run would grow for
minutes and then be killed; ``check_memory`` refuses it up front instead, naming the fields that
dominate. ``estimate_memory`` follows the buffers the engine keeps: the batched ``[tasks, P]``
parameters and their optimizer state, inner-loop activations, evaluation tasks, trajectory snapshots
and landscape chunks for a supervised run; rollout and replay buffers, batched actor-critic
parameters, their activations and the environments for a meta-RL run. It aims at the peak growth of
the process within a factor of two; at the sizes a laptop handles it errs on the high side.

>>> from reptile_engine.config import ExperimentConfig
>>> estimate = estimate_memory(ExperimentConfig().with_updates({"meta.meta_batch": 4096, "model.hidden": 1024}))
>>> estimate.largest.label, format_bytes(estimate.largest.bytes)
('adapted parameters', '32.1 GiB')
>>> [part.label for part in estimate.dominant()]
['adapted parameters']
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from reptile_engine.config import ConfigError, ExperimentConfig

FLOAT = 4
"""Bytes per float32 element: every tensor of a run is float32."""

LANDSCAPE_CHUNK = 16 * 2**20
"""Working memory of one landscape chunk (``reptile_engine.landscape_grid.DEFAULT_MEMORY_BUDGET``)."""

NATIVE_ENV_BYTES = 256
"""One environment of a family's native vectorized batch: a few numpy rows."""

VECTOR_ENV_BYTES = 4 * 2**10
"""One gymnasium environment of a classic-control family (measured: about 4 KiB each)."""

MUJOCO_ENV_BYTES = 1_150_000
"""One MuJoCo environment: its model and data (measured: about 1.1 MB each)."""

RUNTIME_BYTES = 64 * 2**20
"""What any run adds to the process on its first iterations, whatever its size: torch's kernels and thread pools,
the allocator's caches (measured: 55 to 90 MiB)."""

DOMINANT_SHARE = 0.8
"""The message names the largest parts until they make up this share of the estimate."""


@dataclass(frozen=True)
class Part:
    """One kind of buffer, the config fields its size grows with, and its size in bytes."""

    label: str
    fields: tuple[str, ...]
    bytes: int
    host: bool = False
    """Lives in host memory even on a GPU run (environments)."""


@dataclass(frozen=True)
class MemoryEstimate:
    """Every part of a run's working memory, as far as its config decides it."""

    parts: tuple[Part, ...]

    @property
    def total(self) -> int:
        return sum(part.bytes for part in self.parts)

    @property
    def largest(self) -> Part:
        return max(self.parts, key=lambda part: part.bytes)

    def dominant(self) -> list[Part]:
        """The largest parts, biggest first, that together make up ``DOMINANT_SHARE`` of the total."""
        chosen, covered = [], 0
        for part in sorted(self.parts, key=lambda p: p.bytes, reverse=True):
            chosen.append(part)
            covered += part.bytes
            if covered >= DOMINANT_SHARE * self.total or len(chosen) == 3:
                break
        return chosen


class InsufficientMemory(ConfigError):
    """A run's estimated memory exceeds what the machine has available; names the fields that dominate."""

    def __init__(self, config: ExperimentConfig, estimate: MemoryEstimate, needed: int, available: int, where: str):
        self.estimate, self.needed, self.available = estimate, needed, available
        dominant = estimate.dominant()
        fields = list(dict.fromkeys(name for part in dominant for name in part.fields)) or ["meta.meta_batch"]
        values = _values(config, fields)
        parts = ", ".join(f"{part.label} {format_bytes(part.bytes)}" for part in dominant)
        super().__init__(fields[0], values[fields[0]],
                         f"the run needs about {format_bytes(needed)} of {where} memory, more than the "
                         f"{format_bytes(available)} this machine has available (mostly {parts}); lower "
                         f"{', '.join(f'{name} = {values[name]!r}' for name in fields)}, or override the check "
                         f"(--allow-large on the command line, check_memory=False in Python)")


def format_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def _values(config: ExperimentConfig, paths: Sequence[str]) -> dict[str, Any]:
    data = config.to_dict()
    values = {}
    for path in paths:
        section, _, name = path.rpartition(".")
        values[path] = (data[section] if section else data)[name]
    return values


def mlp_parameters(sizes: Sequence[int]) -> int:
    """Weights and biases of a fully connected network with these layer sizes."""
    return sum(fan_in * fan_out + fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=False))


def estimate_memory(config: ExperimentConfig) -> MemoryEstimate:
    """The working memory ``config`` needs, by part (see the module docstring); allocates nothing."""
    if config.kind == "rl":
        return _rl_estimate(config)
    return _supervised_estimate(config)


def _supervised_estimate(config: ExperimentConfig) -> MemoryEstimate:
    from reptile_engine import catalog

    tasks = catalog.resolve(config.task.name)()
    d_in, d_out = tasks.input_dim, tasks.output_dim
    m, inner, ev, lc = config.model, config.inner, config.evaluation, config.landscape
    p = mlp_parameters([d_in] + [m.hidden] * m.depth + [d_out])
    width = m.hidden * m.depth + d_out
    model = ("model.hidden", "model.depth")
    batch = config.meta.meta_batch
    # phi and the gradients of every task; inner Adam adds its second moments and their square roots.
    copies = 4 if inner.optimizer == "adam" else 2
    points = max(inner.batch_size, config.task.query)
    minibatch_copy = inner.steps * inner.batch_size if inner.batch_size < config.task.support else 0
    data = batch * (config.task.support + config.task.query + minibatch_copy) * (d_in + d_out) * 2
    eval_points = max(ev.support, ev.query)
    # Each landscape chunk holds its parameter sets and activations; one set is always evaluated.
    per_set = FLOAT * (2 * p + 3 * ev.query * width)
    parts = (
        Part("runtime", (), RUNTIME_BYTES),
        Part("meta-parameters, outer optimizer and rollback copies", model, 8 * p * FLOAT),
        Part("adapted parameters", ("meta.meta_batch", *model), batch * p * copies * FLOAT),
        Part("inner-loop activations", ("meta.meta_batch", "inner.batch_size", "task.query", *model),
             (batch * points * width * 3 + data) * FLOAT),
        # The scratch curve and theta's curve each adapt every held-out task (parameters, gradients, activations).
        Part("evaluation tasks", ("evaluation.tasks", "evaluation.query", *model),
             ev.tasks * (2 * p + 3 * eval_points * width + 2 * (ev.support + ev.query) * (d_in + d_out)) * FLOAT),
        Part("trajectory snapshots", ("landscape.snapshots", *model), 2 * lc.snapshots * p * FLOAT),
        Part("landscape grid", ("landscape.resolution", *model),
             2 * max(LANDSCAPE_CHUNK, per_set) + 4 * p * FLOAT + lc.resolution**2 * 8 * FLOAT),
    )
    return MemoryEstimate(parts)


def _env_bytes(family: Any) -> int:
    if hasattr(family, "make_batch"):
        return NATIVE_ENV_BYTES
    import gymnasium
    from gymnasium.envs.registration import load_env_creator

    try:
        entry_point = gymnasium.spec(family.env_id).entry_point
        env_class = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    except (gymnasium.error.Error, ImportError, AttributeError, ValueError):
        return VECTOR_ENV_BYTES
    mro = getattr(env_class, "__mro__", ())
    return MUJOCO_ENV_BYTES if any("mujoco" in klass.__module__.lower() for klass in mro) else VECTOR_ENV_BYTES


def _rl_estimate(config: ExperimentConfig) -> MemoryEstimate:
    from reptile_engine.rl import families

    factory = families.resolve(config.task.name)
    family = factory if isinstance(factory, type) else factory()  # a class carries its sizes without building
    rl, lc = config.rl, config.landscape
    d, a = family.observation_dim, family.action_dim
    steps = min(rl.horizon, family.horizon) if rl.horizon else family.horizon
    hidden = [rl.hidden] * rl.depth
    td3 = rl.algorithm == "td3"
    if td3:
        p = mlp_parameters([d, *hidden, a]) + 2 * mlp_parameters([d + a, *hidden, 1])
    else:
        p = mlp_parameters([d, *hidden, a]) + a + mlp_parameters([d, *hidden, 1])
    model = ("rl.hidden", "rl.depth")
    episodes = rl.episodes
    # The most tasks adapted at once: the meta-batch, or the held-out tasks of the adaptation curve.
    if config.evaluation.tasks > config.meta.meta_batch:
        tasks, task_field = config.evaluation.tasks, "evaluation.tasks"
    else:
        tasks, task_field = config.meta.meta_batch, "meta.meta_batch"
    slots = tasks * episodes * steps
    # A rollout step: the stored floats (obs, next obs, actions, reward, value, log-prob, bootstrap value), the
    # same again while steps wait to be written, the action noise, and GAE's temporaries.
    slot_bytes = (2 * d + a + 4) * FLOAT * 2 + a * FLOAT + 6 + 12 * FLOAT
    layers = rl.depth * rl.hidden
    parts = [
        Part("runtime", (), RUNTIME_BYTES),
        Part("meta-parameters, outer optimizer and rollback copies", model, 8 * p * FLOAT),
        Part("trajectory snapshots", ("landscape.snapshots", *model), 2 * lc.snapshots * p * FLOAT),
        Part("landscape grid", ("landscape.resolution", *model),
             2 * LANDSCAPE_CHUNK + 4 * p * FLOAT + lc.resolution**2 * 8 * FLOAT),
        # One environment per episode slot, kept per meta-batch shape (training and evaluation both).
        Part("environments", ("meta.meta_batch", "evaluation.tasks", "rl.episodes"),
             (config.meta.meta_batch + config.evaluation.tasks) * episodes * _env_bytes(family), host=True),
    ]
    shape = _RolloutShape(task_field, tasks, slots, slot_bytes, p, layers, steps, d, a)
    parts += _td3_parts(rl, shape) if td3 else _on_policy_parts(rl, shape)
    return MemoryEstimate(tuple(parts))


class _RolloutShape(NamedTuple):
    """The sizes the algorithm-specific parts of an RL estimate are made of."""

    task_field: str
    tasks: int
    slots: int
    slot_bytes: int
    parameters: int
    layers: int
    steps: int
    observation_dim: int
    action_dim: int


def _td3_parts(rl: Any, shape: _RolloutShape) -> list[Part]:
    d, a, model = shape.observation_dim, shape.action_dim, ("rl.hidden", "rl.depth")
    capacity = max(1, min(rl.buffer_size, rl.updates * rl.episodes * shape.steps))
    transition = (2 * d + a + 1) * FLOAT + 1
    return [
        Part("rollout buffers", (shape.task_field, "rl.episodes", "rl.horizon"), shape.slots * shape.slot_bytes),
        Part("replay buffers", (shape.task_field, "rl.buffer_size", "rl.episodes", "rl.horizon"),
             shape.tasks * capacity * transition * 2),
        # start, target, actor and critic copies, their gradients and Adam's two moments.
        Part("adapted parameters", (shape.task_field, *model), shape.tasks * shape.parameters * 8 * FLOAT),
        Part("gradient-step activations", (shape.task_field, "rl.batch_size", *model),
             shape.tasks * rl.batch_size * (3 * shape.layers * 3 + 2 * (2 * d + a + 2)) * FLOAT),
    ]


def _on_policy_parts(rl: Any, shape: _RolloutShape) -> list[Part]:
    d, a, model = shape.observation_dim, shape.action_dim, ("rl.hidden", "rl.depth")
    copies = 5 if rl.optimizer == "adam" else 3
    minibatches = 1 if rl.algorithm == "a2c" else rl.minibatches
    epochs = 1 if rl.algorithm == "a2c" else rl.epochs
    per_update = math.ceil(rl.episodes * shape.steps / minibatches)
    layers = shape.layers
    return [
        # PPO materialises every epoch's shuffled minibatches before the first gradient step.
        Part("rollout buffers", (shape.task_field, "rl.episodes", "rl.horizon"),
             shape.slots * (shape.slot_bytes + epochs * (d + a + 5) * FLOAT)),
        Part("adapted parameters", (shape.task_field, *model), shape.tasks * shape.parameters * copies * FLOAT),
        Part("agent activations", (shape.task_field, "rl.episodes", "rl.minibatches", *model),
             shape.tasks * (per_update * 2 * layers * 3 + rl.episodes * 2 * layers * 2) * FLOAT),
    ]


def available_host_memory() -> int | None:
    """Bytes this process may still allocate: ``MemAvailable``, capped by a cgroup limit; ``None`` if unknown."""
    candidates = []
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
    if not candidates:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            candidates.append(max(0, int(limit) - usage))
    return min(candidates) if candidates else None


def check_memory(config: ExperimentConfig) -> MemoryEstimate:
    """``config``'s estimate; ``InsufficientMemory`` if it exceeds the host's (or the GPU's) available memory."""
    estimate = estimate_memory(config)
    host = available_host_memory()
    device_bytes = sum(part.bytes for part in estimate.parts if not part.host)
    on_gpu = config.device == "cuda" or (config.device == "auto" and _cuda_available())
    if on_gpu:
        import torch

        free, _ = torch.cuda.mem_get_info()
        if device_bytes > free:
            raise InsufficientMemory(config, estimate, device_bytes, free, "GPU")
        host_bytes = estimate.total - device_bytes
    else:
        host_bytes = estimate.total
    if host is not None and host_bytes > host:
        raise InsufficientMemory(config, estimate, host_bytes, host, "host")
    return estimate


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
