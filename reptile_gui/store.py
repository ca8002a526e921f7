"""The GUI-side model of a run: its history, the latest curves and fits. No widgets.

The controller feeds events in; plots read arrays out on their redraw timer and compare
``version`` counters to skip work when nothing changed. Everything here is plain numpy.

A run is of one kind, ``"supervised"`` or ``"rl"`` (``ExperimentConfig.kind``), and its history holds that
kind's metric columns (``METRIC_COLUMNS`` or ``RL_METRIC_COLUMNS``). A column of the other kind reads as
empty, so a plot of the other kind simply draws nothing.

A run at thousands of iterations a second would fill memory within hours, so the history is kept three ways
(:class:`reptile_gui.history.History`): the latest rows at full resolution, the older rows as min/max pairs
per bucket (a spike stays visible however far back it is), and every row on disk. ``column()`` is what the plots draw;
``history()`` and ``history_chunks()`` read the complete history back for exports and sessions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

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
from reptile_engine.logger import COLUMNS, INTEGER_COLUMNS
from reptile_gui.history import History

METRIC_COLUMNS: tuple[str, ...] = COLUMNS[IterationMetrics]
"""A supervised run's history columns."""
RL_METRIC_COLUMNS: tuple[str, ...] = COLUMNS[RLIterationMetrics]
"""A meta-RL run's history columns."""
COLUMNS_BY_KIND: dict[str, tuple[str, ...]] = {"supervised": METRIC_COLUMNS, "rl": RL_METRIC_COLUMNS}
_EMPTY = np.empty(0)
_EMPTY.setflags(write=False)


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
    """Everything the plots draw, for one run of ``kind`` (``"supervised"`` or ``"rl"``).

    ``spill_dir`` is where the complete history goes on disk (a folder of its own is made inside it; the
    system's temp folder by default); ``history_limits`` passes ``recent_rows``, ``spill_rows``,
    ``older_buckets`` and ``bucket_rows`` on to :class:`History`.
    """

    CURVES_KEPT = 8
    CHUNK_ROWS = 65_536
    """Rows per chunk when the complete history is read back."""

    def __init__(self, kind: str = "supervised", spill_dir: str | Path | None = None, **history_limits: int) -> None:
        self.kind = self._checked_kind(kind)
        self._spill_dir = Path(spill_dir) if spill_dir is not None else None
        self._history_limits = history_limits
        self.history_store = self._new_history()
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

    def _new_history(self) -> History:
        return History(COLUMNS_BY_KIND[self.kind], self._spill_dir, **self._history_limits)

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
        self.history_store.clear()
        self.kind = kind
        self.history_store = self._new_history()
        self.clear()

    def spill_to(self, folder: str | Path) -> None:
        """Keep the complete history on disk under ``folder`` (the run's folder) from now on."""
        self._spill_dir = Path(folder)
        self.history_store.move_to(self._spill_dir)

    def clear(self) -> None:
        self.history_store.clear()
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
        """Iterations in the history (all of them, not only those drawn at full resolution)."""
        return len(self.history_store)

    def _known(self, name: str) -> bool:
        if any(name in columns for columns in COLUMNS_BY_KIND.values()):
            return name in self.metric_columns
        raise KeyError(f"no metric column {name!r}")

    def column(self, name: str) -> np.ndarray:
        """``name`` as the plots draw it: (min, max) pairs of older buckets, then the latest iterations in full.

        Every column of the run has the same length, so any two line up as x and y. Empty for a column of
        the other kind of run. Use ``history`` for every iteration.
        """
        return self.history_store.view(name) if self._known(name) else _EMPTY

    def history(self, name: str) -> np.ndarray:
        """Every iteration's value of ``name`` (read back from disk where needed); empty for the other kind."""
        return self.history_store.complete(name) if self._known(name) else _EMPTY.copy()

    def history_chunks(self, names: tuple[str, ...] | None = None) -> Iterator[dict[str, np.ndarray]]:
        """The complete history of ``names`` (the run's metric columns by default), ``CHUNK_ROWS`` rows at a
        time: for writing it out without holding all of it in memory."""
        names = self.metric_columns if names is None else tuple(names)
        for name in names:
            if not self._known(name):
                raise KeyError(f"a {self.kind} run has no metric column {name!r}")
        return self.history_store.chunks(names, self.CHUNK_ROWS)

    def history_rows(self) -> Iterator[tuple[float | int, ...]]:
        """Every iteration as a row of the run's metric columns (counts as ``int``), read a chunk at a time:
        what ``csv.writer.writerows`` takes."""
        names = self.metric_columns
        for chunk in self.history_chunks(names):
            yield from zip(*(chunk[name].astype(np.int64).tolist() if name in INTEGER_COLUMNS
                             else chunk[name].tolist() for name in names), strict=True)

    def extend_metrics(self, batch: Mapping[str, np.ndarray]) -> None:
        """Append a columnar batch (as ``metrics_to_columns`` makes) to the history.

        Raises ``ValueError`` for a batch of the other kind of run (its columns would not line up).
        """
        if not batch or len(batch["iteration"]) == 0:
            return
        missing = [name for name in self.metric_columns if name not in batch]
        if missing:
            raise ValueError(f"a {self.kind} run's metrics need the columns {', '.join(missing)}")
        self.history_store.extend(batch)
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
    names = COLUMNS[type(metrics[0])]
    return {name: np.fromiter((getattr(m, name) for m in metrics), dtype=np.float64, count=len(metrics))
            for name in names}
