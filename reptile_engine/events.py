"""What the trainer reports: small frozen dataclasses of Python scalars and small numpy arrays.

No tensor ever crosses a thread or process boundary, so a GUI slot can use an event as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_args

import numpy as np

from reptile_engine.config import ExperimentConfig


@dataclass(frozen=True)
class IterationMetrics:
    """One finished meta-iteration, averaged over the meta-batch.

    ``loss_before``: MSE of the meta-parameters on each task's first inner minibatch (data the
    meta-parameters have not seen). ``loss_after``: MSE of the adapted parameters on the task's
    separate query points.
    """

    iteration: int
    loss_before: float
    loss_after: float
    meta_lr: float
    inner_lr: float
    meta_batch: int
    inner_steps: int
    iterations_per_second: float
    elapsed: float


@dataclass(frozen=True)
class RLIterationMetrics:
    """One finished meta-RL iteration.

    Losses and entropy are means over the meta-batch's tasks and inner gradient steps; ``agent_loss`` is
    ``policy_loss + c_v * critic_loss - c_e * entropy`` (TD3: actor loss + critic loss). ``return_before``
    is the mean episode return of the meta-parameters on the tasks' first episodes, ``return_after`` that
    of the adapted parameters after the K inner updates.
    """

    iteration: int
    policy_loss: float
    critic_loss: float
    agent_loss: float
    entropy: float
    return_before: float
    return_after: float
    meta_lr: float
    inner_lr: float
    meta_batch: int
    inner_updates: int
    env_steps_per_second: float
    iterations_per_second: float
    elapsed: float


@dataclass(frozen=True)
class IterationProgress:
    """How far the meta-iteration ``iteration`` (the one in progress) has come; sent a few times a second.

    The tasks adapt in lockstep, so ``tasks_done`` is 0 until every task's ``updates_total`` inner updates are
    done (while the adapted parameters' own episodes are collected) and ``tasks_total`` then.
    ``env_steps_per_second`` counts this iteration's environment steps so far.
    """

    iteration: int
    tasks_done: int
    tasks_total: int
    updates_done: int
    updates_total: int
    env_steps_per_second: float


@dataclass(frozen=True)
class AdaptationCurve:
    """A held-out quantity after 0..K inner steps, from the meta-parameters and from scratch.

    ``quantity`` is ``"loss"`` (mean query MSE; lower is better) for supervised tasks and ``"return"``
    (mean episode return; higher is better) for meta-RL families.
    """

    iteration: int
    steps: np.ndarray
    meta_init: np.ndarray
    scratch: np.ndarray
    quantity: str = "loss"


@dataclass(frozen=True)
class ConfigChanged:
    """Changes applied between iterations; ``iteration`` is the first iteration that uses them."""

    iteration: int
    changes: dict[str, tuple[Any, Any]]
    config: ExperimentConfig


@dataclass(frozen=True)
class CommandRejected:
    """A command could not be applied; nothing changed."""

    iteration: int
    message: str
    field: str | None = None


@dataclass(frozen=True)
class StateChanged:
    """The run moved to ``running`` or ``paused``."""

    iteration: int
    state: str
    reason: str = ""


@dataclass(frozen=True)
class CheckpointSaved:
    iteration: int
    path: str


@dataclass(frozen=True)
class Diverged:
    """A non-finite loss or parameter appeared; the meta-parameters were rolled back and the run paused."""

    iteration: int
    reason: str
    rolled_back_to: int
    hyperparameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskFit:
    """One task adapted from the current meta-parameters, predicted on a grid after each of ``steps``.

    ``predictions`` is ``[len(steps), grid points]``; ``truth`` the task's noiseless target on the grid.
    """

    request: int
    iteration: int
    steps: tuple[int, ...]
    grid_x: np.ndarray
    truth: np.ndarray
    predictions: np.ndarray
    support_x: np.ndarray
    support_y: np.ndarray
    task: dict[str, float]


@dataclass(frozen=True)
class Rollouts:
    """Episodes of one held-out meta-RL task after each of ``updates`` inner updates from the meta-parameters.

    ``traces[i][e]`` is episode ``e`` after ``updates[i]`` updates as a ``[steps, 2]`` array of the family's
    trace (``TaskFamily.trace``: e.g. the position for navigation, the angle over time for a pendulum),
    labelled by ``labels``; ``target`` is what the trace aims for (``("point", (x, y))``, ``("level", (y,))``
    or ``None``). ``returns`` is ``[len(updates), episodes]``.
    ``mean_traces[i]`` and ``mean_returns[i]`` are the same after acting with the policy's mean action, without
    exploration noise: where the adapted policy heads, which the noisy episodes blur.
    """

    request: int
    iteration: int
    family: str
    updates: tuple[int, ...]
    task: dict[str, Any]
    traces: tuple[tuple[np.ndarray, ...], ...]
    returns: np.ndarray
    labels: tuple[str, str]
    target: tuple[str, tuple[float, ...]] | None
    mean_traces: tuple[np.ndarray, ...] = ()
    mean_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class LandscapeReady:
    """A 2D loss-landscape slice (``reptile_engine.landscape.LandscapeSlice``: numpy arrays only)."""

    iteration: int
    slice: Any


@dataclass(frozen=True)
class Failed:
    """The engine raised; the run is over, the last good state is where it was."""

    iteration: int
    message: str
    traceback: str


@dataclass(frozen=True)
class Finished:
    """``run()`` ended: ``completed`` its iterations or ``stopped`` on request."""

    iteration: int
    reason: str


Event = (IterationMetrics | RLIterationMetrics | IterationProgress | AdaptationCurve | ConfigChanged | CommandRejected
         | StateChanged | CheckpointSaved | Diverged | TaskFit | Rollouts | LandscapeReady | Failed | Finished)

EVENT_TYPES: tuple[type, ...] = get_args(Event)
"""Every kind of event, in the order of ``Event``."""

METRIC_TYPES: tuple[type, ...] = (IterationMetrics, RLIterationMetrics)
"""The per-iteration events of either kind of run: they come by the thousand, so consumers batch them."""

Result = TypeVar("Result")


class Dispatch(Generic[Result]):
    """Calls the handler of an event's type: the one answer to "what kind of event is this".

    Built once per consumer from ``{event type or tuple of types: handler}`` and the types in ``ignore``, which
    together must name every type in ``EVENT_TYPES`` exactly once: a new kind of event stops every consumer that
    has not decided what to do with it, at construction rather than by being dropped. Calling it with an
    event of an unknown type raises ``TypeError``; an ignored one returns ``None``.

    >>> count = Dispatch({Finished: lambda e: e.reason}, ignore=set(EVENT_TYPES) - {Finished})
    >>> count(Finished(3, "completed"))
    'completed'
    """

    def __init__(self, handlers: Mapping[type | tuple[type, ...], Callable[[Any], Result]],
                 ignore: Iterable[type] = ()):
        table: dict[type, Callable[[Any], Result] | None] = {}
        entries = [(kind, handler) for kinds, handler in handlers.items()
                   for kind in (kinds if isinstance(kinds, tuple) else (kinds,))]
        for kind, handler in [*entries, *((kind, None) for kind in ignore)]:
            if kind in table:
                raise TypeError(f"{kind.__name__} is handled twice")
            table[kind] = handler
        unknown = [kind.__name__ for kind in table if kind not in EVENT_TYPES]
        missing = [kind.__name__ for kind in EVENT_TYPES if kind not in table]
        if unknown or missing:
            raise TypeError(f"an event dispatch must handle or ignore every event type: missing {missing}, "
                            f"not events {unknown}")
        self._table = table

    def __call__(self, event: Any) -> Result | None:
        try:
            handler = self._table[type(event)]
        except KeyError:
            raise TypeError(f"no handler for {type(event).__name__}: not an event") from None
        return None if handler is None else handler(event)


def all_but(*handled: type) -> tuple[type, ...]:
    """Every event type except ``handled``: the key of a ``Dispatch`` handler for "any other kind", for a
    consumer that by design treats every kind it does not know alike (a relay passes them all on)."""
    return tuple(kind for kind in EVENT_TYPES if kind not in handled)


def is_metrics(event: Any) -> bool:
    """Whether ``event`` is one iteration's metrics (of either kind of run)."""
    return type(event) in METRIC_TYPES
