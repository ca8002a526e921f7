"""The GUI-side model of a run: history as growable numpy arrays, the latest curves and fits. No widgets.

The controller feeds events in; plots read arrays out on their redraw timer and compare
``version`` counters to skip work when nothing changed. Everything here is plain numpy, so exports
and sessions write exactly what the plots show.

A run is of one kind, ``"supervised"`` or ``"rl"`` (``ExperimentConfig.kind``), and its history holds that
kind's metric columns (``METRIC_COLUMNS`` or ``RL_METRIC_COLUMNS``). A column of the other kind reads as
empty, so a plot of the other kind simply draws nothing.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from dataclasses import dataclass

import numpy as np

from reptile_engine.events import (
    AdaptationCurve,
    ConfigChanged,
    Diverged,
    IterationMetrics,
    RLIterationMetrics,
    Rollouts,
    TaskFit,
)
from reptile_engine.landscape import LandscapeSlice

METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(IterationMetrics))
"""A supervised run's history columns."""
RL_METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RLIterationMetrics))
"""A meta-RL run's history columns."""
COLUMNS_BY_KIND: dict[str, tuple[str, ...]] = {"supervised": METRIC_COLUMNS, "rl": RL_METRIC_COLUMNS}
_METRIC_TYPES: dict[type, tuple[str, ...]] = {IterationMetrics: METRIC_COLUMNS, RLIterationMetrics: RL_METRIC_COLUMNS}
_EMPTY = np.empty(0)
_EMPTY.setflags(write=False)


class GrowableArray:
    """A 1-D float64 array with amortised O(1) appends; ``view()`` is the filled part, no copy."""

    def __init__(self, capacity: int = 4096):
        self._data = np.empty(capacity, dtype=np.float64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        needed = self._size + len(values)
        if needed > len(self._data):
            grown = np.empty(max(needed, 2 * len(self._data)), dtype=np.float64)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size:needed] = values
        self._size = needed

    def view(self) -> np.ndarray:
        return self._data[: self._size]

    def clear(self) -> None:
        self._size = 0


@dataclass(frozen=True)
class ChangeMarker:
    """Where a hyperparameter change took effect, for the vertical markers on the training curve."""

    iteration: int
    elapsed: float
    text: str


def describe_changes(event: ConfigChanged) -> str:
    return ", ".join(f"{path}: {old:g} → {new:g}" if isinstance(new, float) else f"{path}: {old} → {new}"
                     for path, (old, new) in event.changes.items())


class RunStore:
    """Everything the plots draw, for one run of ``kind`` (``"supervised"`` or ``"rl"``)."""

    CURVES_KEPT = 8

    def __init__(self, kind: str = "supervised") -> None:
        self.kind = self._checked_kind(kind)
        self.columns = {name: GrowableArray() for name in COLUMNS_BY_KIND[kind]}
        self.curves: deque[AdaptationCurve] = deque(maxlen=self.CURVES_KEPT)
        self.markers: list[ChangeMarker] = []
        self.task_fit: TaskFit | None = None
        self.rollouts: Rollouts | None = None
        self.landscape: LandscapeSlice | None = None
        self.divergences: list[Diverged] = []
        self.metrics_version = 0
        self.curves_version = 0
        self.markers_version = 0
        self.task_version = 0
        self.rollouts_version = 0
        self.landscape_version = 0

    @staticmethod
    def _checked_kind(kind: str) -> str:
        if kind not in COLUMNS_BY_KIND:
            raise ValueError(f"a run is one of {', '.join(COLUMNS_BY_KIND)}, not {kind!r}")
        return kind

    @property
    def metric_columns(self) -> tuple[str, ...]:
        """The history columns of this run's kind, in the order of its metrics event's fields."""
        return COLUMNS_BY_KIND[self.kind]

    def set_kind(self, kind: str) -> None:
        """Hold a run of ``kind`` from now on; a change of kind clears everything (the history would not fit)."""
        if self._checked_kind(kind) == self.kind:
            return
        self.kind = kind
        self.columns = {name: GrowableArray() for name in COLUMNS_BY_KIND[kind]}
        self.clear()

    def clear(self) -> None:
        for column in self.columns.values():
            column.clear()
        self.curves.clear()
        self.markers.clear()
        self.task_fit = None
        self.rollouts = None
        self.landscape = None
        self.divergences.clear()
        self.metrics_version += 1
        self.curves_version += 1
        self.markers_version += 1
        self.task_version += 1
        self.rollouts_version += 1
        self.landscape_version += 1

    def __len__(self) -> int:
        return len(self.columns["iteration"])

    def column(self, name: str) -> np.ndarray:
        """The history of ``name``; empty for a column of the other kind of run."""
        column = self.columns.get(name)
        if column is not None:
            return column.view()
        if any(name in columns for columns in COLUMNS_BY_KIND.values()):
            return _EMPTY
        raise KeyError(f"no metric column {name!r}")

    def extend_metrics(self, batch: dict[str, np.ndarray]) -> None:
        """Append a columnar batch (as ``metrics_to_columns`` makes) to the history.

        Raises ``ValueError`` for a batch of the other kind of run (its columns would not line up).
        """
        if not batch or len(batch["iteration"]) == 0:
            return
        missing = [name for name in self.metric_columns if name not in batch]
        if missing:
            raise ValueError(f"a {self.kind} run's metrics need the columns {', '.join(missing)}")
        for name in self.metric_columns:
            self.columns[name].extend(batch[name])
        self.metrics_version += 1

    def add_curve(self, curve: AdaptationCurve) -> None:
        self.curves.append(curve)
        self.curves_version += 1

    def add_change(self, event: ConfigChanged) -> None:
        elapsed = self.column("elapsed")
        self.markers.append(ChangeMarker(event.iteration, float(elapsed[-1]) if len(elapsed) else 0.0,
                                         describe_changes(event)))
        self.markers_version += 1

    def set_task_fit(self, fit: TaskFit) -> None:
        self.task_fit = fit
        self.task_version += 1

    def set_rollouts(self, rollouts: Rollouts) -> None:
        self.rollouts = rollouts
        self.rollouts_version += 1

    def set_landscape(self, landscape: LandscapeSlice) -> None:
        self.landscape = landscape
        self.landscape_version += 1

    @property
    def latest_curve(self) -> AdaptationCurve | None:
        return self.curves[-1] if self.curves else None

    def latest(self, name: str) -> float | None:
        values = self.column(name)
        return float(values[-1]) if len(values) else None


def metrics_to_columns(metrics: list[IterationMetrics] | list[RLIterationMetrics]) -> dict[str, np.ndarray]:
    """Columnar arrays from a list of metrics events of one kind (done off the GUI thread); ``{}`` for none."""
    if not metrics:
        return {}
    names = _METRIC_TYPES[type(metrics[0])]
    return {name: np.fromiter((getattr(m, name) for m in metrics), dtype=np.float64, count=len(metrics))
            for name in names}
