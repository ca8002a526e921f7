"""Sine-wave regression, the Reptile paper's toy problem.

y = A * sin(x + b) with A ~ U[0.1, 5], b ~ U[0, 2*pi] and x ~ U[-5, 5].

>>> g = torch.Generator().manual_seed(0)
>>> batch = SineTasks().sample(g, n_tasks=4, n_support=10, n_query=50)
>>> tuple(batch.support_x.shape), tuple(batch.query_y.shape)
((4, 10, 1), (4, 50, 1))
"""

from __future__ import annotations

import functools
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
        n_random = n_support + (0 if query_grid else n_query)
        low, width = _affine(self.amplitude, self.phase, self.x_range, n_random)
        values = torch.addcmul(low, torch.rand(n_tasks, 2 + n_random, generator=generator), width)
        params = {"amplitude": values[:, 0], "phase": values[:, 1]}
        x = values[:, 2:].unsqueeze(-1)
        if query_grid:
            grid = torch.linspace(*self.x_range, n_query).expand(n_tasks, n_query).unsqueeze(-1)
            x = torch.cat([x, grid], dim=1)
        y = self.target(params, x)
        return TaskBatch(x[:, :n_support], y[:, :n_support], x[:, n_support:], y[:, n_support:], params)

    def target(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        amplitude = params["amplitude"].view(-1, 1, 1)
        phase = params["phase"].view(-1, 1, 1)
        return amplitude * torch.sin(x + phase)


@functools.lru_cache(maxsize=32)
def _affine(amplitude: tuple[float, float], phase: tuple[float, float], x_range: tuple[float, float],
            n_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets and widths that map one uniform draw per column to (A, b, x_1..x_n) in a single op."""
    bounds = [amplitude, phase] + [x_range] * n_points
    low = torch.tensor([lo for lo, _ in bounds])
    return low, torch.tensor([hi for _, hi in bounds]) - low
