"""Where a run's events are written: named scalars and notes, through pluggable writers.

``Logger`` turns each event into named values once (``metric_values``, ``TAGS``) and hands them to its
writers: a ``CSVWriter`` for ``metrics.csv`` (one row per iteration, the columns of the metrics event) and,
with the optional ``tensorboard`` extra installed, a ``TensorBoardWriter`` under TensorBoard's usual tags.

>>> import tempfile, pathlib
>>> from reptile_engine.events import IterationMetrics
>>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.csv"
>>> with Logger([CSVWriter(path, COLUMNS[IterationMetrics])]) as logger:
...     logger.log(IterationMetrics(1, 0.5, 0.25, 1.0, 0.02, 5, 8, 100.0, 0.01))
>>> path.read_text().splitlines()[1]
'1,0.5,0.25,1.0,0.02,5,8,100.0,0.01'
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from reptile_engine.config import ExperimentConfig
from reptile_engine.events import (
    EVENT_TYPES,
    METRIC_TYPES,
    AdaptationCurve,
    ConfigChanged,
    Dispatch,
    Diverged,
    IterationMetrics,
    RLIterationMetrics,
)

COLUMNS: dict[type, tuple[str, ...]] = {kind: tuple(f.name for f in dataclasses.fields(kind)) for kind in METRIC_TYPES}
"""``metrics.csv``'s columns for each kind of run: its metrics event's fields, in order."""

INTEGER_COLUMNS: frozenset[str] = frozenset(f.name for kind in METRIC_TYPES for f in dataclasses.fields(kind)
                                            if f.type in ("int", int))
"""Columns that are counts, written without a decimal point."""

TAGS: dict[str, str] = {
    "loss_before": "loss/before",
    "loss_after": "loss/after",
    "policy_loss": "rl/policy_loss",
    "critic_loss": "rl/critic_loss",
    "agent_loss": "rl/agent_loss",
    "entropy": "rl/entropy",
    "return_before": "return/before",
    "return_after": "return/after",
    "meta_lr": "rate/meta_lr",
    "inner_lr": "rate/inner_lr",
    "meta_batch": "config/meta_batch",
    "inner_steps": "config/inner_steps",
    "inner_updates": "config/inner_updates",
    "iterations_per_second": "speed/iterations_per_second",
    "env_steps_per_second": "speed/env_steps_per_second",
    "elapsed": "time/elapsed",
    "meta_init_mse": "eval/meta_init_mse",
    "scratch_mse": "eval/scratch_mse",
    "meta_init_return": "eval/meta_init_return",
    "scratch_return": "eval/scratch_return",
}
"""The TensorBoard tag of each named value; ``iteration`` is the step, not a value."""

CURVE_UNITS: dict[str, str] = {"loss": "mse", "return": "return"}
"""How an adaptation curve's quantity is named in columns: ``meta_init_mse``, ``scratch_return``."""


def metric_values(event: IterationMetrics | RLIterationMetrics) -> dict[str, Any]:
    """One iteration's metrics by column name (counts as ``int``)."""
    return {name: int(getattr(event, name)) if name in INTEGER_COLUMNS else getattr(event, name)
            for name in COLUMNS[type(event)]}


def curve_columns(curve: AdaptationCurve) -> tuple[str, str, str]:
    """The columns of an adaptation curve's table: the inner step, from the meta-parameters, from scratch."""
    unit = CURVE_UNITS[curve.quantity]
    return "inner_step", f"meta_init_{unit}", f"scratch_{unit}"


class MetricsFileError(OSError):
    """A metrics file cannot be continued or written; the message says why, naming the file."""


class Writer:
    """Where a ``Logger`` sends named values; a writer takes what it can show and lets the rest pass."""

    def write_metrics(self, step: int, values: Mapping[str, Any]) -> None:
        """One iteration's metrics (``metric_values``)."""

    def write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """Other named values at ``step`` (the held-out adaptation curve's end)."""

    def write_text(self, step: int, tag: str, text: str) -> None:
        """A note at ``step``: the config, a change of it, a divergence."""

    def sync(self) -> None:
        """Make everything written so far durable (a checkpoint was just saved)."""

    def close(self) -> None:
        """Write what is pending and release the file."""


class CSVWriter(Writer):
    """A CSV table of fixed ``columns``, one row per iteration.

    ``resume_at`` continues an existing file instead of starting a fresh one: rows past that iteration
    (written after the checkpoint, before a crash), torn and repeated rows are dropped, so that the resumed run
    appends exactly the iterations after it. Raises ``MetricsFileError`` when that is not possible.
    """

    def __init__(self, path: str | os.PathLike[str], columns: Sequence[str], *, resume_at: int | None = None):
        self.path, self.columns = Path(path), tuple(columns)
        kept = self._rows_until(resume_at) if resume_at is not None else None
        try:
            if kept is not None:
                self._replace_with([self.columns, *kept])
                self._file = open(self.path, "a", newline="")  # noqa: SIM115 - closed by close()
            else:
                self._file = open(self.path, "w", newline="")  # noqa: SIM115 - closed by close()
                csv.writer(self._file).writerow(self.columns)
        except OSError as exc:
            raise MetricsFileError(f"{self.path.name} cannot be written ({exc.strerror or exc})") from None
        self._writer = csv.writer(self._file)

    def _rows_until(self, iteration: int) -> list[list[str]]:
        """The existing file's rows up to ``iteration`` (none when there is no file yet)."""
        try:
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise MetricsFileError(f"has a {self.path.name} that cannot be read ({exc})") from None
        if rows and tuple(rows[0]) != self.columns:
            raise MetricsFileError(f"has a {self.path.name} with other columns (from another kind of run); "
                                   "resume into another --out")
        column, kept, last = self.columns.index("iteration"), [], 0
        for row in rows[1:]:
            try:
                number = float(row[column])
            except (ValueError, IndexError):
                continue
            if len(row) == len(self.columns) and number.is_integer() and last < number <= iteration:
                last = int(number)
                kept.append([*row[:column], str(last), *row[column + 1:]])
        return kept

    def _replace_with(self, rows: list[Sequence[str]]) -> None:
        """Rewrite the file as ``rows`` through a renamed temporary file, so a crash leaves either version."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def write_rows(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows of values in the order of ``columns``."""
        self._writer.writerows(rows)

    def write_metrics(self, step: int, values: Mapping[str, Any]) -> None:
        self._writer.writerow([values[name] for name in self.columns])

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def write_table(path: str | os.PathLike[str], columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a whole table (a run's history, an adaptation curve) as CSV, the way ``metrics.csv`` is written."""
    writer = CSVWriter(path, columns)
    try:
        writer.write_rows(rows)
    finally:
        writer.close()


TENSORBOARD_MISSING = "needs TensorBoard, the optional extra: pip install 'reptile-lab[tensorboard]'"
"""Why a ``TensorBoardWriter`` cannot be made when the ``tensorboard`` package is not installed."""


class TensorBoardWriter(Writer):
    """TensorBoard event files in ``log_dir``: each named value under its tag in ``TAGS``, notes as text.

    ``purge_step`` (a resumed run's first new iteration) hides what an earlier run logged from there on.
    Raises ``ImportError`` (``TENSORBOARD_MISSING``) without the ``tensorboard`` extra.
    """

    def __init__(self, log_dir: str | os.PathLike[str], *, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError(f"TensorBoard logging {TENSORBOARD_MISSING}") from exc
        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)

    def write_metrics(self, step: int, values: Mapping[str, Any]) -> None:
        self.write_scalars(step, values)

    def write_scalars(self, step: int, values: Mapping[str, float]) -> None:
        for name, value in values.items():
            if name in TAGS:
                self._writer.add_scalar(TAGS[name], value, step)

    def write_text(self, step: int, tag: str, text: str) -> None:
        self._writer.add_text(tag, text, step)

    def sync(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _change_text(event: ConfigChanged) -> str:
    return "\n".join(f"- `{path}`: {old!r} → {new!r}" for path, (old, new) in event.changes.items())


class Logger:
    """Sends each event's named values to every writer; a context manager that closes them."""

    def __init__(self, writers: Sequence[Writer]):
        self.writers = tuple(writers)
        handled = (*METRIC_TYPES, AdaptationCurve, ConfigChanged, Diverged)
        self._dispatch = Dispatch({METRIC_TYPES: self._metrics, AdaptationCurve: self._curve,
                                   ConfigChanged: self._config_changed, Diverged: self._diverged},
                                  ignore=[kind for kind in EVENT_TYPES if kind not in handled])

    def log(self, event: Any) -> None:
        """Write what ``event`` says to every writer (events that carry no values pass)."""
        self._dispatch(event)

    def log_config(self, step: int, config: ExperimentConfig) -> None:
        """The run's whole config as a note, at the iteration it starts from."""
        self._text(step, "config", f"```toml\n{config.to_toml()}```")

    def _metrics(self, event: IterationMetrics | RLIterationMetrics) -> None:
        values = metric_values(event)
        for writer in self.writers:
            writer.write_metrics(event.iteration, values)

    def _curve(self, curve: AdaptationCurve) -> None:
        _, meta_init, scratch = curve_columns(curve)
        values = {meta_init: float(curve.meta_init[-1]), scratch: float(curve.scratch[-1])}
        for writer in self.writers:
            writer.write_scalars(curve.iteration, values)

    def _config_changed(self, event: ConfigChanged) -> None:
        self._text(event.iteration, "config/changes", _change_text(event))

    def _diverged(self, event: Diverged) -> None:
        self._text(event.iteration, "run/diverged",
                   f"{event.reason}; rolled back to iteration {event.rolled_back_to}")

    def _text(self, step: int, tag: str, text: str) -> None:
        for writer in self.writers:
            writer.write_text(step, tag, text)

    def sync(self) -> None:
        for writer in self.writers:
            writer.sync()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
