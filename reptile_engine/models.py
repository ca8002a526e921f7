"""Models that run a whole meta-batch at once over flat parameter vectors.

Parameters live in one flat tensor, ``[P]`` for the meta-parameters and ``[tasks, P]`` for the
adapted copies, so that Reptile's pseudo-gradient, the divergence check, snapshots and an all-reduce
are each a single tensor operation. A model turns a flat buffer into per-parameter views with
``prepare`` and returns per-task losses and gradients for stacked inputs ``[tasks, points, features]``.

Two implementations:

* ``BatchedMLP``: batched matmuls with a hand-written backward pass. Fastest on CPU for the small
  networks of few-shot regression (measured in ``benchmarks/bench_meta_step.py``).
* ``FunctionalModel``: any ``nn.Module`` through ``torch.func`` (``functional_call`` + ``vmap`` +
  ``grad``); the general fallback.

>>> mlp = BatchedMLP([1, 64, 64, 1])
>>> theta = mlp.init(torch.Generator().manual_seed(0))
>>> phi = theta.expand(3, -1).clone()
>>> loss, grads = mlp.loss_and_grad(mlp.prepare(phi), torch.zeros(3, 5, 1), torch.ones(3, 5, 1))
>>> tuple(loss.shape), len(grads)
((3,), 6)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of the parameters packed into one flat vector, in ``nn.Module`` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @property
    def numels(self) -> list[int]:
        return [math.prod(s) for s in self.shapes]

    @property
    def size(self) -> int:
        return sum(self.numels)

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views into ``flat`` (``[..., P]``); writing to a view writes to ``flat``."""
        lead = flat.shape[:-1]
        out, offset = [], 0
        for shape, n in zip(self.shapes, self.numels, strict=True):
            out.append(flat[..., offset:offset + n].view(*lead, *shape))
            offset += n
        return out



class MLPViews(NamedTuple):
    """A flat buffer seen as layers ``(weight, weightᵀ, bias row)`` and as the parameter list."""

    layers: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]
    params: list[torch.Tensor]


class BatchedModel(Protocol):
    """What the vectorized inner loop needs from a model."""

    layout: ParamLayout

    def init(self, generator: torch.Generator) -> torch.Tensor: ...

    def prepare(self, flat: torch.Tensor) -> Any: ...

    def forward(self, prepared: Any, x: torch.Tensor) -> torch.Tensor: ...

    def loss_and_grad(self, prepared: Any, x: torch.Tensor, y: torch.Tensor,
                      ) -> tuple[torch.Tensor, list[torch.Tensor]]: ...

    def gradient(self, prepared: Any, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]: ...

    def param_views(self, prepared: Any) -> list[torch.Tensor]: ...


_ACTIVATIONS = {"tanh": (nn.Tanh, torch.tanh), "relu": (nn.ReLU, torch.relu)}


_tanh_backward = torch.ops.aten.tanh_backward.default


@functools.lru_cache(maxsize=64)
def _mse_scale(count: int, device: torch.device) -> torch.Tensor:
    """d(mean of squares)/d(difference) = 2 / count, as a 0-dim tensor: a Python scalar costs a conversion
    on every multiply in the hot loop."""
    return torch.tensor(2.0 / count, device=device)


def _relu_backward(grad: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    return torch.ops.aten.threshold_backward.default(grad, output, 0.0)


class BatchedMLP:
    """A fully connected network evaluated for many parameter sets at once with batched matmuls."""

    def __init__(self, sizes: Sequence[int], activation: str = "tanh"):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}")
        self.sizes = tuple(sizes)
        self.activation = activation
        names, shapes = [], []
        for i, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:], strict=True)):
            names += [f"{2 * i}.weight", f"{2 * i}.bias"]
            shapes += [(fan_out, fan_in), (fan_out,)]
        self.layout = ParamLayout(tuple(names), tuple(shapes))
        self._act = _ACTIVATIONS[activation][1]

    def module(self) -> nn.Sequential:
        """The same network as an ``nn.Module``, parameters in the same order as the flat layout."""
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            layers += [nn.Linear(fan_in, fan_out), _ACTIVATIONS[self.activation][0]()]
        return nn.Sequential(*layers[:-1])

    def init(self, generator: torch.Generator) -> torch.Tensor:
        """``nn.Linear``'s default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), from ``generator``."""
        flat = torch.empty(self.layout.size)
        views = self.layout.views(flat)
        for w, b in zip(views[0::2], views[1::2], strict=True):
            bound = 1.0 / math.sqrt(w.shape[1])
            w.uniform_(-bound, bound, generator=generator)
            b.uniform_(-bound, bound, generator=generator)
        return flat

    def prepare(self, flat: torch.Tensor) -> MLPViews:
        """Views into ``flat`` (``[tasks, P]``) for the hot loop, made once per buffer."""
        params = self.layout.views(flat)
        layers = tuple((w, w.transpose(-1, -2), b.unsqueeze(-2)) for w, b in zip(params[0::2], params[1::2],
                                                                                 strict=True))
        return MLPViews(layers, params)

    def param_views(self, prepared: MLPViews) -> list[torch.Tensor]:
        return prepared.params

    def forward(self, prepared: MLPViews, x: torch.Tensor) -> torch.Tensor:
        h = x
        act = self._act
        *hidden, (_, wt, b) = prepared.layers
        for _, hidden_wt, hidden_b in hidden:
            h = act(torch.baddbmm(hidden_b, h, hidden_wt))
        return torch.baddbmm(b, h, wt)

    def loss_and_grad(self, prepared: MLPViews, x: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Per-task MSE ``[tasks]`` and its gradient, one tensor per parameter ``[tasks, *shape]``."""
        return self._backward(prepared, x, y, with_loss=True)

    def gradient(self, prepared: MLPViews, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        """The per-task MSE gradient alone (the inner loop's hot path)."""
        return self._backward(prepared, x, y, with_loss=False)[1]

    def _backward(self, prepared: MLPViews, x: torch.Tensor, y: torch.Tensor,
                  with_loss: bool) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        bmm, baddbmm, act = torch.bmm, torch.baddbmm, self._act
        *hidden, (_, wt, b) = prepared.layers
        inputs = [x]
        h = x
        for _, hidden_wt, hidden_b in hidden:
            h = act(baddbmm(hidden_b, h, hidden_wt))
            inputs.append(h)
        g = baddbmm(b, h, wt).sub_(y)
        loss = g.square().mean(dim=(-2, -1)) if with_loss else None
        g.mul_(_mse_scale(g.shape[-2] * g.shape[-1], g.device))
        backward = _tanh_backward if self.activation == "tanh" else _relu_backward
        grads: list[torch.Tensor] = []
        layers = prepared.layers
        for i in range(len(layers) - 1, -1, -1):
            a = inputs[i]
            grads.append(g.sum(dim=-2))
            grads.append(bmm(g.transpose(-1, -2), a))
            if i:
                g = backward(bmm(g, layers[i][0]), a)
        grads.reverse()
        return loss, grads


class FunctionalModel:
    """Any ``nn.Module`` regression model, vectorized over tasks with ``torch.func``."""

    def __init__(self, module: nn.Module, init: Callable[[torch.Generator], torch.Tensor] | None = None):
        self.module = module
        self._init = init
        params = dict(module.named_parameters())
        self.layout = ParamLayout(tuple(params), tuple(tuple(p.shape) for p in params.values()))
        self._names = self.layout.names

        def task_loss(param_list: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            pred = functional_call(self.module, dict(zip(self._names, param_list, strict=True)), (x,))
            return (pred - y).square().mean()

        self._loss_and_grad = vmap(grad_and_value(task_loss))
        self._gradient = vmap(grad(task_loss))
        self._forward = vmap(lambda ps, x: functional_call(self.module, dict(zip(self._names, ps, strict=True)),
                                                             (x,)))

    def init(self, generator: torch.Generator) -> torch.Tensor:
        """Flat initial parameters: the given ``init``, else the modules' own ``reset_parameters``
        run under a seed drawn from ``generator`` (the global RNG is restored afterwards)."""
        if self._init is not None:
            return self._init(generator)
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for m in self.module.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        return torch.cat([p.detach().reshape(-1) for p in self.module.parameters()])

    def prepare(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return self.layout.views(flat)

    def param_views(self, prepared: list[torch.Tensor]) -> list[torch.Tensor]:
        return prepared

    def forward(self, prepared: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return self._forward(prepared, x)

    def loss_and_grad(self, prepared: list[torch.Tensor], x: torch.Tensor,
                      y: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        grads, loss = self._loss_and_grad(prepared, x, y)
        return loss, list(grads)

    def gradient(self, prepared: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
        return list(self._gradient(prepared, x, y))


def build_model(sizes: Sequence[int], activation: str, backend: str) -> BatchedModel:
    """The MLP of the given sizes on the requested backend; ``auto`` picks the batched matmuls."""
    mlp = BatchedMLP(sizes, activation)
    if backend == "func":
        return FunctionalModel(mlp.module(), init=mlp.init)
    return mlp
