"""A run's metric columns in bounded memory, and every row on disk: the latest rows at full resolution, the
older rows as min/max pairs per bucket (a spike stays visible however far back it is)."""

from __future__ import annotations

import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

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
