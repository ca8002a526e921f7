"""The GUI-side model of a run: its history, the latest curves and fits. No widgets.

The controller feeds events in; plots read arrays out on their redraw timer and compare
``version`` counters to skip work when nothing changed. Everything here is plain numpy.

A run is of one kind, ``"supervised"`` or ``"rl"`` (``ExperimentConfig.kind``), and its history holds that
kind's metric columns (``METRIC_COLUMNS`` or ``RL_METRIC_COLUMNS``). A column of the other kind reads as
empty, so a plot of the other kind simply draws nothing.

A run at thousands of iterations a second would fill memory within hours, so the history is kept three ways
(:class:`History`): the latest rows at full resolution, the older rows as min/max pairs per bucket (a spike
stays visible however far back it is), and every row on disk. ``column()`` is what the plots draw;
``history()`` and ``history_chunks()`` read the complete history back for exports and sessions.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import weakref
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

METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(IterationMetrics))
"""A supervised run's history columns."""
RL_METRIC_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RLIterationMetrics))
"""A meta-RL run's history columns."""
COLUMNS_BY_KIND: dict[str, tuple[str, ...]] = {"supervised": METRIC_COLUMNS, "rl": RL_METRIC_COLUMNS}
INTEGER_COLUMNS: frozenset[str] = frozenset(f.name for metrics in (IterationMetrics, RLIterationMetrics)
                                            for f in dataclasses.fields(metrics) if f.type in ("int", int))
"""Columns that count (iterations, batch sizes, steps): held as float64, written out as integers."""
_METRIC_TYPES: dict[type, tuple[str, ...]] = {IterationMetrics: METRIC_COLUMNS, RLIterationMetrics: RL_METRIC_COLUMNS}
_EMPTY = np.empty(0)
_EMPTY.setflags(write=False)
_VALUE = np.dtype("<f8")


def _bucket_pairs(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` in buckets of ``rows`` (the last one may be short) as ``[buckets, 2]`` (min, max) pairs.

    NaN is skipped where a bucket holds other values and kept where it holds nothing else.
    """
    buckets = -(-len(values) // rows)
    if buckets * rows != len(values):
        padded = np.full(buckets * rows, np.nan)
        padded[: len(values)] = values
        values = padded
    grid = values.reshape(buckets, rows)
    return np.stack([np.fmin.reduce(grid, axis=1), np.fmax.reduce(grid, axis=1)], axis=1)


def _merge_pairs(pairs: np.ndarray) -> np.ndarray:
    """Adjacent buckets of ``[buckets, 2]`` (min, max) pairs merged two by two (an odd last one stays)."""
    even = len(pairs) // 2 * 2
    pairs_of_pairs = pairs[:even].reshape(-1, 2, 2)
    merged = np.stack([np.fmin(pairs_of_pairs[:, 0, 0], pairs_of_pairs[:, 1, 0]),
                       np.fmax(pairs_of_pairs[:, 0, 1], pairs_of_pairs[:, 1, 1])], axis=1)
    return np.concatenate([merged, pairs[even:]]) if even != len(pairs) else merged


class History:
    """A run's metric columns in bounded memory, and all of them on disk.

    Each column is one contiguous float64 buffer: ``older`` values (a (min, max) pair per bucket of older
    rows) followed by the latest rows at full resolution. Once the full-resolution part reaches
    ``recent_rows + spill_rows`` rows, its oldest whole multiples of ``spill_rows`` are appended to one raw
    little-endian float64 file per column (in a folder of its own under ``spill_parent``, the system's temp
    folder by default) and folded into buckets of ``bucket_rows``; past ``older_buckets`` buckets, adjacent
    ones merge and new ones get twice as wide. So memory stays within about
    ``2 * older_buckets + recent_rows + 2 * spill_rows`` values a column however long the run.

    A spill that fails (a full disk) loses nothing: the rows stay in memory, ``spill_error`` says why, and
    the next spill is tried ``spill_rows`` rows later. Buffers are replaced, never rewritten in place, so an
    array a plot still holds never changes under it.
    """

    def __init__(self, names: tuple[str, ...], spill_parent: Path | None = None, *, recent_rows: int = 98_304,
                 spill_rows: int = 32_768, older_buckets: int = 8_192, bucket_rows: int = 16) -> None:
        if min(recent_rows, spill_rows, older_buckets, bucket_rows) < 1:
            raise ValueError("recent_rows, spill_rows, older_buckets and bucket_rows must each be at least 1")
        self.names = names
        self.recent_rows = recent_rows
        self.spill_rows = spill_rows
        self.older_buckets = older_buckets
        self.first_bucket_rows = bucket_rows
        self.spill_error: str | None = None
        self._spill_parent = spill_parent
        self._folder: Path | None = None
        self._remove_folder: weakref.finalize | None = None
        self._reset()

    def _reset(self) -> None:
        self._buffers = {name: np.empty(min(4096, self.recent_rows + self.spill_rows)) for name in self.names}
        self._older = 0
        self._recent = 0
        self._spilled = 0
        self.bucket_rows = self.first_bucket_rows
        self._spill_at = self.recent_rows + self.spill_rows

    def __len__(self) -> int:
        """Rows recorded, on disk and in memory."""
        return self._spilled + self._recent

    @property
    def shown_rows(self) -> int:
        """Values a column's ``view`` holds: two per older bucket plus the full-resolution rows."""
        return self._older + self._recent

    @property
    def full_resolution_rows(self) -> int:
        return self._recent

    def nbytes(self) -> int:
        """Memory the column buffers take."""
        return sum(buffer.nbytes for buffer in self._buffers.values())

    def view(self, name: str) -> np.ndarray:
        """What a plot draws of ``name``: the older buckets' (min, max) pairs, then the full-resolution rows."""
        return self._buffers[name][: self._older + self._recent]

    def extend(self, batch: Mapping[str, np.ndarray]) -> None:
        """Append the 1-D arrays of equal length in ``batch`` (one per column); a bad batch appends nothing."""
        columns = [batch[name] for name in self.names]
        rows = len(columns[0])
        start = 0
        while start < rows:
            take = min(rows - start, self.spill_rows)
            self._reserve(take)
            end = self._older + self._recent
            for name, values in zip(self.names, columns, strict=True):
                if len(values) != rows:
                    raise ValueError("a batch's metric columns must all have the same length")
                self._buffers[name][end:end + take] = values if take == rows else values[start:start + take]
            self._recent += take
            start += take
            if self._recent >= self._spill_at:
                self._spill()

    def _reserve(self, rows: int) -> None:
        needed = self._older + self._recent + rows
        capacity = len(self._buffers[self.names[0]])
        if needed <= capacity:
            return
        bound = 2 * self.older_buckets + self.recent_rows + 2 * self.spill_rows
        grown = max(needed, min(2 * capacity, bound) if needed <= bound else 2 * capacity)
        for name, buffer in self._buffers.items():
            replacement = np.empty(grown)
            replacement[: self._older + self._recent] = buffer[: self._older + self._recent]
            self._buffers[name] = replacement

    def _spill(self) -> None:
        rows = (self._recent - self.recent_rows) // self.spill_rows * self.spill_rows
        try:
            self._write(rows)
        except OSError as exc:
            self.spill_error = f"cannot keep the complete history in {self._folder}: {exc.strerror or exc}"
            self._spill_at = self._recent + self.spill_rows
            return
        self.spill_error = None
        self._spilled += rows
        self._spill_at = self.recent_rows + self.spill_rows
        new_buckets = -(-rows // self.bucket_rows)
        buckets, merges = self._older // 2 + new_buckets, 0
        while buckets > self.older_buckets:
            buckets, merges = -(-buckets // 2), merges + 1
        kept = self._recent - rows
        for name, buffer in self._buffers.items():
            pairs = np.concatenate([buffer[: self._older].reshape(-1, 2),
                                    _bucket_pairs(buffer[self._older:self._older + rows], self.bucket_rows)])
            for _ in range(merges):
                pairs = _merge_pairs(pairs)
            replacement = np.empty(max(len(buffer), 2 * buckets + kept))
            replacement[: 2 * buckets] = pairs.reshape(-1)
            replacement[2 * buckets:2 * buckets + kept] = buffer[self._older + rows:self._older + self._recent]
            self._buffers[name] = replacement
        self._older, self._recent = 2 * buckets, kept
        self.bucket_rows <<= merges

    def _spill_folder(self) -> Path:
        if self._folder is None:
            if self._spill_parent is not None:
                self._spill_parent.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="history-", dir=self._spill_parent))
            self._remove_folder = weakref.finalize(self, shutil.rmtree, self._folder, True)
        return self._folder

    def _path(self, name: str) -> Path:
        return self._spill_folder() / f"{name}.f8"

    def _write(self, rows: int) -> None:
        """The oldest ``rows`` full-resolution rows onto the end of the files; a failed write is overwritten
        by the next one, since each write starts where the complete rows end."""
        for name, buffer in self._buffers.items():
            path = self._path(name)
            with open(path, "r+b" if path.exists() else "wb") as file:
                file.seek(self._spilled * _VALUE.itemsize)
                buffer[self._older:self._older + rows].astype(_VALUE, copy=False).tofile(file)

    def move_to(self, parent: Path) -> None:
        """Keep the on-disk rows under ``parent`` from now on (a run's folder), moving those written so far."""
        self._spill_parent = Path(parent)
        if self._folder is None:
            return
        self._spill_parent.mkdir(parents=True, exist_ok=True)
        self._remove_folder.detach()
        self._folder = Path(shutil.move(self._folder, self._spill_parent / self._folder.name))
        self._remove_folder = weakref.finalize(self, shutil.rmtree, self._folder, True)

    def _disk_rows(self, name: str, start: int, count: int) -> np.ndarray:
        with open(self._path(name), "rb") as file:
            values = np.fromfile(file, dtype=_VALUE, count=count, offset=start * _VALUE.itemsize)
        if len(values) != count:
            raise OSError(f"the history file {file.name} lost rows ({len(values)} of {count} read)")
        return values.astype(np.float64, copy=False)

    def complete(self, name: str) -> np.ndarray:
        """Every row of ``name``, read back from disk for the spilled part (a new array)."""
        recent = self._buffers[name][self._older:self._older + self._recent]
        if not self._spilled:
            return recent.copy()
        return np.concatenate([self._disk_rows(name, 0, self._spilled), recent])

    def chunks(self, names: tuple[str, ...], rows: int) -> Iterator[dict[str, np.ndarray]]:
        """Every row of ``names`` in order, at most ``rows`` rows at a time, without holding the whole history."""
        for start in range(0, self._spilled, rows):
            count = min(rows, self._spilled - start)
            yield {name: self._disk_rows(name, start, count) for name in names}
        buffers = {name: self._buffers[name] for name in names}
        older, recent = self._older, self._recent
        for start in range(0, recent, rows):
            yield {name: buffer[older + start:older + min(recent, start + rows)] for name, buffer in buffers.items()}

    def clear(self) -> None:
        if self._folder is not None:
            for name in self.names:
                (self._folder / f"{name}.f8").unlink(missing_ok=True)
        self.spill_error = None
        self._reset()


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
    names = _METRIC_TYPES[type(metrics[0])]
    return {name: np.fromiter((getattr(m, name) for m in metrics), dtype=np.float64, count=len(metrics))
            for name in names}
