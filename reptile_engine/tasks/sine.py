"""Sine-wave regression, the Reptile paper's toy problem.

y = A * sin(x + b) with A ~ U[0.1, 5], b ~ U[0, 2*pi] and x ~ U[-5, 5].

>>> g = torch.Generator().manual_seed(0)
>>> batch = SineTasks().sample(g, n_tasks=4, n_support=10, n_query=50)
>>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
((4, 10, 1), (4, 50, 1))
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reptile_engine.tasks.base import TaskBatch


@dataclass(frozen=True)
class SineTasks:
    """Sine waves of random amplitude and phase."""

    amplitude: tuple[float, float] = (0.1, 5.0)
    phase: tuple[float, float] = (0.0, 2 * math.pi)
    x_range: tuple[float, float] = (-5.0, 5.0)
    name: str = "sine"
    input_dim: int = 1
    output_dim: int = 1

    def sample(self, generator: torch.Generator, n_tasks: int, n_support: int, n_query: int,
               *, query_grid: bool = False) -> TaskBatch:
        n_random_query = 0 if query_grid else n_query
        u = torch.rand(n_tasks, 2 + n_support + n_random_query, generator=generator)
        params = {
            "amplitude": self.amplitude[0] + (self.amplitude[1] - self.amplitude[0]) * u[:, 0],
            "phase": self.phase[0] + (self.phase[1] - self.phase[0]) * u[:, 1],
        }
        lo, hi = self.x_range
        x = (lo + (hi - lo) * u[:, 2:]).unsqueeze(-1)
        support_x = x[:, :n_support]
        if query_grid:
            query_x = torch.linspace(lo, hi, n_query).expand(n_tasks, n_query).unsqueeze(-1)
        else:
            query_x = x[:, n_support:]
        return TaskBatch(support_x, self.target(params, support_x), query_x, self.target(params, query_x), params)

    def target(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        amplitude = params["amplitude"].view(-1, 1, 1)
        phase = params["phase"].view(-1, 1, 1)
        return amplitude * torch.sin(x + phase)
