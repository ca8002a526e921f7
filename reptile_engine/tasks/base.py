"""The small protocol every task distribution implements."""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

import torch


class TaskBatch(NamedTuple):
    """A meta-batch of tasks, stacked so that all of them train in one vectorized pass.

    Point tensors are shaped ``[tasks, points, features]``; ``params`` holds each task's defining
    parameters, shaped ``[tasks]``, so that a view can draw the true function.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    params: dict[str, torch.Tensor]

    @property
    def num_tasks(self) -> int:
        return self.support_x.shape[0]

    def head(self, n: int) -> TaskBatch:
        """The first ``n`` tasks (views, no copy)."""
        return TaskBatch(*(t[:n] for t in self[:4]), {k: v[:n] for k, v in self.params.items()})

    def to(self, device: torch.device | str) -> TaskBatch:
        return TaskBatch(*(t.to(device) for t in self[:4]), {k: v.to(device) for k, v in self.params.items()})


@runtime_checkable
class TaskDistribution(Protocol):
    """A distribution over regression tasks.

    ``sample`` draws ``n_tasks`` tasks from ``generator`` only (no global random state).
    ``query_grid=True`` asks for query inputs evenly spread over the input domain where that makes sense.
    """

    name: str
    input_dim: int
    output_dim: int

    def sample(self, generator: torch.Generator, n_tasks: int, n_support: int, n_query: int,
               *, query_grid: bool = False) -> TaskBatch: ...

    def target(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The noiseless target of each task at inputs ``x`` shaped ``[tasks, points, input_dim]``."""
        ...
