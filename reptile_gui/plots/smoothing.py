"""TensorBoard's debiased exponential moving average, vectorized, with an incremental cache.

TensorBoard smooths a scalar series with::

    last, n = 0.0, 0
    for y in values:
        if not isfinite(y):
            out.append(y); continue           # non-finite values pass through, state unchanged
        last = last * weight + (1 - weight) * y
        n += 1
        out.append(last / (1 - weight ** n))  # debiasing: the zero start would drag early values down

:func:`debiased_ema` computes exactly that without a Python loop, and :class:`IncrementalEma`
extends a cached result when only new values were appended (a training history grows at the end).
"""

from __future__ import annotations

import math

import numpy as np

#: Blocks are sized so that ``weight ** block <= 10 ** -_BLOCK_DECADES``: the state carried from two
#: blocks back is then far below float64 precision, and ``weight ** -j`` inside a block stays finite.
_BLOCK_DECADES = 40


def _check_weight(weight: float) -> float:
    weight = float(weight)
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), not {weight!r}")
    return weight


def _accumulate(y: np.ndarray, weight: float, start: float) -> np.ndarray:
    """The un-debiased state ``a[k] = weight * a[k-1] + (1 - weight) * y[k]`` with ``a[-1] = start``.

    Within a block of ``m`` values ``a[k] = (1-w) w^k cumsum(y[j] w^-j)[k] + w^(k+1) a[-1]``; all blocks
    are computed at once as rows of a matrix, then each row gets the state its previous block ended in.
    """
    n = len(y)
    if n == 0:
        return np.empty(0)
    block = max(1, math.ceil(_BLOCK_DECADES / -math.log10(weight)))
    if block >= n:
        block, blocks = n, 1
    else:
        blocks = -(-n // block)
    padded = np.zeros(blocks * block)
    padded[:n] = y
    rows = padded.reshape(blocks, block)
    j = np.arange(block, dtype=np.float64)
    decay = weight ** j            # w^j: 1 .. >= 1e-40
    growth = weight ** -j          # w^-j: 1 .. <= 1e40
    local = (1.0 - weight) * decay * np.cumsum(rows * growth, axis=1)
    carry = np.empty(blocks)
    carry[0] = start
    if blocks > 1:
        ends = local[:, -1]
        tail = weight ** block     # <= 1e-40, so the state from two blocks back is negligible
        carry[1] = ends[0] + tail * start
        carry[2:] = ends[1:-1] + tail * ends[:-2]
    local += carry[:, None] * (weight * decay)[None, :]
    return local.reshape(-1)[:n]


def ema_continue(values: np.ndarray, weight: float, state: float = 0.0, count: int = 0
                 ) -> tuple[np.ndarray, float, int]:
    """Smooth ``values`` continuing from an EMA ``state`` after ``count`` finite values.

    Returns ``(smoothed, state, count)`` after the last value, to continue with the next batch.
    """
    weight = _check_weight(weight)
    y = np.asarray(values, dtype=np.float64).reshape(-1)
    if weight == 0.0 or len(y) == 0:
        finite = np.isfinite(y)
        last = float(y[finite][-1]) if finite.any() else state
        return y.copy(), last, count + int(finite.sum())
    finite = np.isfinite(y)
    all_finite = bool(finite.all())
    ys = y if all_finite else y[finite]
    acc = _accumulate(ys, weight, state)
    counts = np.arange(count + 1, count + len(ys) + 1, dtype=np.float64)
    smoothed = acc / -np.expm1(counts * math.log(weight))  # 1 - w^n, accurate for small n
    if all_finite:
        out = smoothed
    else:
        out = y.copy()
        out[finite] = smoothed
    new_state = float(acc[-1]) if len(acc) else state
    return out, new_state, count + len(ys)


def debiased_ema(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased EMA of ``values`` with smoothing ``weight`` in [0, 1).

    ``weight == 0`` returns a copy; non-finite values are passed through and skipped.

    >>> debiased_ema(np.array([1.0, 2.0, 3.0]), 0.5).round(6).tolist()
    [1.0, 1.666667, 2.428571]
    """
    return ema_continue(values, weight)[0]


def _same(a: float, b: float) -> bool:
    return a == b or (a != a and b != b)  # NaN equals NaN here


class IncrementalEma:
    """A cached :func:`debiased_ema` of a growing column; appending costs only the new values.

    The cache is recomputed in full when the weight changes, the column got shorter, or its first or
    last cached values changed (the store was cleared and refilled).
    """

    def __init__(self) -> None:
        self._buffer = np.empty(0)
        self._n = 0
        self._weight: float | None = None
        self._state = 0.0
        self._count = 0
        self._first = math.nan
        self._last = math.nan

    def reset(self) -> None:
        self._n = 0
        self._weight = None

    def update(self, values: np.ndarray, weight: float) -> np.ndarray:
        """The smoothed ``values`` (a view into the cache: copy it before keeping it past the next call)."""
        values = np.asarray(values, dtype=np.float64)
        n = len(values)
        reusable = (self._weight == weight and 0 < self._n <= n
                    and _same(float(values[0]), self._first) and _same(float(values[self._n - 1]), self._last))
        if not reusable:
            self._n, self._state, self._count, self._weight = 0, 0.0, 0, weight
        if n > len(self._buffer):
            grown = np.empty(max(n, 2 * len(self._buffer), 1024))
            grown[: self._n] = self._buffer[: self._n]
            self._buffer = grown
        if n > self._n:
            tail, self._state, self._count = ema_continue(values[self._n:], weight, self._state, self._count)
            self._buffer[self._n:n] = tail
            self._n = n
            self._first, self._last = float(values[0]), float(values[n - 1])
        return self._buffer[:n]
