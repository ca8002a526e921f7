"""Experience buffers for a whole meta-batch of tasks at once (after Stable-Baselines3's ``buffers.py``).

* ``RolloutBuffer``: on-policy experience of ``T`` tasks, each running ``E`` episodes side by side for up to
  ``S`` steps. Filled one time step at a time (``add``), then ``compute_gae`` turns rewards and values into
  advantages and returns, and ``batches`` hands out ``RolloutSamples`` shaped ``[T, N, ...]`` so that one
  update adapts every task of the meta-batch at once. The buffer is discarded after the update.
* ``ReplayBuffer``: an off-policy circular buffer per task, sampled uniformly from its filled slots. Tasks
  can hold different numbers of transitions (``extend`` keeps only each task's real steps of a rollout).

Termination and truncation are kept apart, as gymnasium does: a *terminated* step has no future, a
*truncated* one (a time limit, or the end of the buffer) is bootstrapped with the value of the true next
observation, which the caller passes as ``next_values_for_truncation``. The rollout buffer can also keep
that true next observation of every step (``next_obs``), so that its transitions can go into a replay buffer.

>>> buffer = RolloutBuffer(tasks=1, steps=2, obs_dim=1, act_dim=1)
>>> for step in range(2):
...     buffer.add(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.zeros(1, dtype=torch.bool),
...                torch.tensor([step == 1]), torch.zeros(1), torch.zeros(1), torch.full((1,), 10.0))
>>> advantages, returns = buffer.compute_gae(gamma=0.5, lam=1.0)
>>> returns.tolist()  # 1 + 0.5 * (1 + 0.5 * 10): the truncated episode is bootstrapped with V = 10
[[4.0, 6.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

ArrayLike = torch.Tensor | np.ndarray


class RolloutSamples(NamedTuple):
    """One (mini)batch of on-policy experience for every task, each field ``[T, N, ...]``.

    ``mask`` is 1 for real transitions and 0 for padding (the steps after an episode ended, while other
    episodes of the meta-batch were still running); losses are means over the masked entries.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    old_log_probs: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    values: torch.Tensor
    mask: torch.Tensor


class ReplaySamples(NamedTuple):
    """Transitions sampled per task, each field ``[T, B, ...]``."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


def _as_tensor(value: ArrayLike, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``value`` as a tensor of ``shape``: numpy input is copied, a tensor is used as it is (no copy)."""
    if isinstance(value, torch.Tensor):
        if value.shape == shape and value.dtype == dtype and value.device == device and not value.requires_grad:
            return value
        tensor = value.detach().to(device=device, dtype=dtype)
    else:
        tensor = torch.tensor(np.asarray(value), dtype=dtype, device=device)
    if tensor.shape != shape:
        if tensor.numel() != math.prod(shape):
            raise ValueError(f"expected {math.prod(shape)} values shaped {shape}, got shape {tuple(tensor.shape)}")
        tensor = tensor.reshape(shape)
    return tensor


_FIELDS = ("obs", "actions", "rewards", "terminated", "truncated", "values", "log_probs", "next_values", "valid",
           "next_obs")
_BOOL_FIELDS = frozenset({"terminated", "truncated", "valid"})


class RolloutBuffer:
    """On-policy experience of ``tasks`` x ``envs`` episodes of up to ``steps`` steps (stored ``[T, E, S, ...]``).

    ``add`` takes one time step for every task and episode slot: arrays shaped ``[T, E, ...]`` (or ``[T, ...]``
    when ``envs == 1``), numpy or torch. ``valid`` (default: all) marks the slots whose episode is still
    running; steps a slot takes after its episode ended are padding and never reach a loss.

    Steps are kept as a list of small tensors and written into the ``[T, E, S, ...]`` storage in one go when it
    is first read (``obs``, ``compute_gae``, ...): per-step indexing into ten tensors would cost more than the
    batched policy forward. Numpy inputs are copied; tensors are kept by reference until then, so do not
    modify them in place after ``add``.
    """

    def __init__(self, tasks: int, steps: int, obs_dim: int, act_dim: int, *, envs: int = 1,
                 device: torch.device | str = "cpu"):
        if min(tasks, steps, obs_dim, act_dim, envs) < 1:
            raise ValueError("tasks, steps, obs_dim, act_dim and envs must all be positive")
        self.tasks, self.envs, self.steps = tasks, envs, steps
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        lead = (tasks, envs)
        self._shapes = {name: lead for name in _FIELDS}
        self._shapes.update(obs=(*lead, obs_dim), actions=(*lead, act_dim), next_obs=(*lead, obs_dim))
        self._dtypes = {name: torch.bool if name in _BOOL_FIELDS else torch.float32 for name in _FIELDS}
        self._storage = {name: torch.zeros(*self._shapes[name][:2], steps, *self._shapes[name][2:],
                                           dtype=self._dtypes[name], device=self.device) for name in _FIELDS}
        self._pending: list[tuple[torch.Tensor, ...]] = []
        self._flushed = 0
        self._no_bootstrap = torch.zeros(lead, device=self.device)
        self._all_valid = torch.ones(lead, dtype=torch.bool, device=self.device)
        self._no_next_obs = torch.zeros(*lead, obs_dim, device=self.device)
        self.advantages: torch.Tensor | None = None
        self.returns: torch.Tensor | None = None
        self.pos = 0

    @property
    def full(self) -> bool:
        return self.pos == self.steps

    def add(self, obs: ArrayLike, actions: ArrayLike, rewards: ArrayLike, terminated: ArrayLike,
            truncated: ArrayLike, values: ArrayLike, log_probs: ArrayLike,
            next_values_for_truncation: ArrayLike | None = None, valid: ArrayLike | None = None,
            next_obs: ArrayLike | None = None) -> None:
        """Store one time step.

        ``next_values_for_truncation``: ``V(s')`` of the true next observation, read where the episode was
        truncated (or where the buffer ends mid-episode); elsewhere it is ignored and may be anything.
        ``next_obs``: the true next observation (the last one of an episode that ended, not a reset one), for
        off-policy learners; zeros if not given.
        """
        if self.full:
            raise RuntimeError(f"the buffer holds {self.steps} steps; it is full")
        given = (obs, actions, rewards, terminated, truncated, values, log_probs,
                 self._no_bootstrap if next_values_for_truncation is None else next_values_for_truncation,
                 self._all_valid if valid is None else valid, self._no_next_obs if next_obs is None else next_obs)
        self._pending.append(tuple(_as_tensor(value, self._shapes[name], self._dtypes[name], self.device)
                                   for name, value in zip(_FIELDS, given, strict=True)))
        self.pos += 1
        self.advantages = self.returns = None

    def _field(self, name: str) -> torch.Tensor:
        if self._pending:
            start, stop = self._flushed, self._flushed + len(self._pending)
            for i, field in enumerate(_FIELDS):
                self._storage[field][:, :, start:stop] = torch.stack([step[i] for step in self._pending], dim=2)
            self._pending.clear()
            self._flushed = stop
        return self._storage[name]

    obs = property(lambda self: self._field("obs"), doc="Observations ``[T, E, S, obs_dim]``.")
    actions = property(lambda self: self._field("actions"), doc="Actions as sampled ``[T, E, S, act_dim]``.")
    rewards = property(lambda self: self._field("rewards"), doc="``[T, E, S]``")
    terminated = property(lambda self: self._field("terminated"), doc="``[T, E, S]`` (bool)")
    truncated = property(lambda self: self._field("truncated"), doc="``[T, E, S]`` (bool)")
    values = property(lambda self: self._field("values"), doc="``V(s_t)`` ``[T, E, S]``")
    log_probs = property(lambda self: self._field("log_probs"), doc="``[T, E, S]``")
    next_values = property(lambda self: self._field("next_values"), doc="The bootstrap values ``[T, E, S]``.")
    valid = property(lambda self: self._field("valid"), doc="``[T, E, S]`` (bool): real steps, not padding.")
    next_obs = property(lambda self: self._field("next_obs"), doc="True next observations ``[T, E, S, obs_dim]``.")

    def compute_gae(self, gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
        """Generalized advantage estimation (Schulman et al. 2016) over the stored steps.

        ``delta_t = r_t + gamma * V(s_{t+1}) * (1 - terminated_t) - V(s_t)`` where ``V(s_{t+1})`` is the next
        stored value inside an episode and ``next_values_for_truncation`` where the episode was cut (truncated,
        or the last stored step); ``A_t = delta_t + gamma * lam * A_{t+1}`` inside an episode. So a terminated
        episode is not bootstrapped and a truncated one is. Returns ``(advantages, returns)`` shaped
        ``[T, E * S]`` (zero on padding), ``returns = advantages + values``; both are also kept for ``batches``.
        """
        n = self.pos
        if n == 0:
            raise RuntimeError("the buffer is empty")
        rewards, values, valid = self.rewards[..., :n], self.values[..., :n], self.valid[..., :n]
        terminated = self.terminated[..., :n]
        cut = terminated | self.truncated[..., :n]
        cut[..., -1] = True
        following = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)
        next_value = torch.where(cut, self.next_values[..., :n], following)
        deltas = rewards + gamma * next_value * (~terminated) - values
        carry = gamma * lam * (~cut)
        advantages = torch.zeros_like(self.values)
        running = torch.zeros_like(deltas[..., 0])
        for t in range(n - 1, -1, -1):
            running = deltas[..., t] + carry[..., t] * running
            advantages[..., t] = running
        advantages[..., :n] = torch.where(valid, advantages[..., :n], 0.0)
        self.advantages = advantages
        self.returns = torch.where(self.valid, advantages + self.values, 0.0)
        return self.advantages.flatten(1, 2), self.returns.flatten(1, 2)

    def normalize_advantages(self, eps: float = 1e-8) -> None:
        """Standardize each task's advantages over its valid steps (zero mean, unit std), in place."""
        if self.advantages is None:
            raise RuntimeError("call compute_gae() first")
        valid = self.valid.flatten(1, 2).to(self.advantages.dtype)
        flat = self.advantages.flatten(1, 2)
        count = valid.sum(-1, keepdim=True).clamp_min(1.0)
        mean = (flat * valid).sum(-1, keepdim=True) / count
        std = (((flat - mean) * valid).square().sum(-1, keepdim=True) / count).sqrt()
        normalized = (flat - mean) / (std + eps) * valid
        self.advantages = normalized.view_as(self.advantages)

    def samples(self) -> RolloutSamples:
        """Everything stored, flattened to ``[T, N = E * S, ...]`` (episode-major)."""
        if self.advantages is None or self.returns is None:
            raise RuntimeError("call compute_gae() before sampling")
        return RolloutSamples(self.obs.flatten(1, 2), self.actions.flatten(1, 2), self.log_probs.flatten(1, 2),
                              self.advantages.flatten(1, 2), self.returns.flatten(1, 2), self.values.flatten(1, 2),
                              self.valid.flatten(1, 2).to(torch.float32))

    def batches(self, minibatches: int = 1, generator: torch.Generator | None = None) -> Iterator[RolloutSamples]:
        """``minibatches`` disjoint minibatches covering the buffer, each ``[T, N / minibatches, ...]``.

        With a ``generator`` the steps are shuffled first. One permutation serves every task: tasks have
        their own data, so a shared order is as random as one per task and costs one ``randperm``.
        """
        everything = self.samples()
        total = everything.obs.shape[1]
        if not 1 <= minibatches <= total:
            raise ValueError(f"minibatches must be in [1, {total}], got {minibatches}")
        if minibatches == 1 and generator is None:
            yield everything
            return
        order = torch.randperm(total, generator=generator) if generator is not None else torch.arange(total)
        for index in order.to(self.device).tensor_split(minibatches):
            yield RolloutSamples(*(field[:, index] for field in everything))


class ReplayBuffer:
    """A circular buffer of ``capacity`` transitions per task, each task sampled from its own filled slots.

    ``add`` writes one transition for every task (lockstep); ``extend`` writes each task's real steps of a
    rollout, so tasks whose episodes ended sooner hold fewer transitions: ``sizes`` and ``positions`` count per
    task (``size`` and ``pos`` while all tasks agree).

    >>> replay = ReplayBuffer(capacity=3, obs_dim=1, act_dim=1, tasks=2)
    >>> for i in range(4):
    ...     replay.add(torch.full((2, 1), float(i)), torch.zeros(2, 1), torch.zeros(2), torch.zeros(2, 1),
    ...                torch.zeros(2, dtype=torch.bool))
    >>> replay.size, sorted(replay.obs[0, :, 0].tolist())  # the oldest transition (0) was overwritten
    (3, [1.0, 2.0, 3.0])
    >>> replay.sample(torch.Generator().manual_seed(0), batch=5).obs.shape
    torch.Size([2, 5, 1])
    >>> replay.extend(torch.ones(2, 2, 1), torch.zeros(2, 2, 1), torch.zeros(2, 2), torch.zeros(2, 2, 1),
    ...               torch.zeros(2, 2, dtype=torch.bool), valid=torch.tensor([[True, True], [True, False]]))
    >>> replay.positions.tolist(), replay.sizes.tolist()
    ([0, 2], [3, 3])
    """

    def __init__(self, capacity: int, obs_dim: int, act_dim: int, tasks: int, *, device: torch.device | str = "cpu"):
        if min(capacity, obs_dim, act_dim, tasks) < 1:
            raise ValueError("capacity, obs_dim, act_dim and tasks must all be positive")
        self.capacity, self.tasks = capacity, tasks
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        self.obs = torch.zeros(tasks, capacity, obs_dim, device=self.device)
        self.actions = torch.zeros(tasks, capacity, act_dim, device=self.device)
        self.rewards = torch.zeros(tasks, capacity, device=self.device)
        self.next_obs = torch.zeros(tasks, capacity, obs_dim, device=self.device)
        self.terminated = torch.zeros(tasks, capacity, dtype=torch.bool, device=self.device)
        self.positions = torch.zeros(tasks, dtype=torch.long, device=self.device)  # each task's next slot
        self.sizes = torch.zeros(tasks, dtype=torch.long, device=self.device)  # each task's filled slots

    @staticmethod
    def _common(counts: torch.Tensor, name: str) -> int:
        first = int(counts[0])
        if not bool((counts == first).all()):
            raise RuntimeError(f"the tasks' {name} differ ({counts.tolist()}): read .{name}")
        return first

    @property
    def pos(self) -> int:
        """The next slot to write, shared by all tasks (as after ``add``)."""
        return self._common(self.positions, "positions")

    @property
    def size(self) -> int:
        """Filled slots, shared by all tasks (as after ``add``)."""
        return self._common(self.sizes, "sizes")

    def add(self, obs: ArrayLike, actions: ArrayLike, rewards: ArrayLike, next_obs: ArrayLike,
            terminated: ArrayLike) -> None:
        """One transition per task (``[T, ...]``), written over the task's oldest one once its buffer is full.

        Store only ``terminated`` here, not truncation: a time-limit cut is not the end of the task, so the
        target still bootstraps from ``next_obs`` (which must be the true next observation, not a reset one).
        """
        t, dev = self.tasks, self.device
        self.extend(_as_tensor(obs, (t, 1, self.obs_dim), torch.float32, dev),
                    _as_tensor(actions, (t, 1, self.act_dim), torch.float32, dev),
                    _as_tensor(rewards, (t, 1), torch.float32, dev),
                    _as_tensor(next_obs, (t, 1, self.obs_dim), torch.float32, dev),
                    _as_tensor(terminated, (t, 1), torch.bool, dev))

    def extend(self, obs: ArrayLike, actions: ArrayLike, rewards: ArrayLike, next_obs: ArrayLike,
               terminated: ArrayLike, valid: ArrayLike | None = None) -> None:
        """``N`` transitions per task (``[T, N, ...]``), in order; where ``valid`` ``[T, N]`` is given, only its set
        entries (a rollout's real steps, not its padding). Same result as ``add``-ing them one by one per task.
        """
        t, n, dev = self.tasks, int(np.shape(rewards)[1]), self.device
        valid = torch.ones(t, n, dtype=torch.bool, device=dev) if valid is None else \
            _as_tensor(valid, (t, n), torch.bool, dev)
        rank = valid.long().cumsum(-1) - 1  # each valid transition's place among its task's new ones
        count = rank[:, -1] + 1
        # Beyond capacity only a task's last `capacity` transitions survive: write just those (no slot twice).
        keep = valid & (rank >= (count - self.capacity).unsqueeze(1))
        rows, cols = keep.nonzero(as_tuple=True)
        slots = (self.positions[rows] + rank[rows, cols]) % self.capacity
        self.obs[rows, slots] = _as_tensor(obs, (t, n, self.obs_dim), torch.float32, dev)[rows, cols]
        self.actions[rows, slots] = _as_tensor(actions, (t, n, self.act_dim), torch.float32, dev)[rows, cols]
        self.rewards[rows, slots] = _as_tensor(rewards, (t, n), torch.float32, dev)[rows, cols]
        self.next_obs[rows, slots] = _as_tensor(next_obs, (t, n, self.obs_dim), torch.float32, dev)[rows, cols]
        self.terminated[rows, slots] = _as_tensor(terminated, (t, n), torch.bool, dev)[rows, cols]
        self.positions = (self.positions + count) % self.capacity
        self.sizes = torch.clamp(self.sizes + count, max=self.capacity)

    def sample(self, generator: torch.Generator, batch: int) -> ReplaySamples:
        """``batch`` transitions per task, drawn uniformly with replacement from that task's filled slots.

        A slot is a draw from ``[0, 2**62)`` modulo the task's size: uniform up to a bias below ``capacity / 2**62``.
        """
        if not bool((self.sizes > 0).all()):
            raise RuntimeError(f"a task's replay buffer is empty (sizes {self.sizes.tolist()})")
        draws = torch.randint(0, 2**62, (self.tasks, batch), generator=generator).to(self.device)
        index = draws % self.sizes.unsqueeze(1)
        rows = torch.arange(self.tasks, device=self.device).unsqueeze(1)
        return ReplaySamples(self.obs[rows, index], self.actions[rows, index], self.rewards[rows, index],
                             self.next_obs[rows, index], self.terminated[rows, index])
