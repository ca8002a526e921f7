"""``reptile-train``: headless Reptile training from presets, config files and flags.

Every config field is a flag named by its dotted path (``--inner.lr 0.01``); flags override
``--config``, which overrides ``--preset``. Writes ``metrics.csv`` (one row per iteration),
``adaptation.csv`` (the last adaptation curve), ``config.toml`` and ``checkpoint.safetensors`` into
``--out``, and prints the adaptation curve at the end.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import math
import os
import re
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from reptile_engine import plugins
from reptile_engine.checkpoint import CheckpointError
from reptile_engine.checkpoint import load as load_checkpoint
from reptile_engine.config import ConfigError, ExperimentConfig, describe_range, iter_fields
from reptile_engine.events import (
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    Diverged,
    Finished,
    IterationMetrics,
    RLIterationMetrics,
)
from reptile_engine.presets import PRESETS, preset
from reptile_engine.schedules import scheduled_rate
from reptile_engine.trainer import TrainerBase, open_trainer, resume_trainer

CHECKPOINT_NAME = "checkpoint.safetensors"
EXIT_OUTPUT_FAILED = 1
"""Exit status when the final checkpoint or the metrics could not be written."""
EXIT_USAGE = 2
"""Exit status for a bad flag, config, checkpoint or output folder."""
EXIT_DIVERGED = 3
"""Exit status after a divergence the rollbacks did not cure: the last good state is saved."""
RECOVERY_ITERATIONS = 500
"""Iterations without a divergence after which a rolled-back run counts as recovered."""

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class _FieldValue:
    """A config field's flag value: converted to the field's type and checked against its range, so that a
    bad value is refused naming the flag, the value and what is allowed."""

    def __init__(self, field: dataclasses.Field):
        self.field = field
        self.kind = field.type if isinstance(field.type, str) else field.type.__name__
        self.__name__ = self.kind

    def __call__(self, text: str) -> Any:
        meta = self.field.metadata
        try:
            value = self._convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"= {text!r}: {describe_range(self.field)}") from None
        out_of_range = (
            (meta.get("choices") is not None and value not in meta["choices"])
            or (isinstance(value, float) and not math.isfinite(value))
            or (not isinstance(value, str | bool) and ((meta.get("min") is not None and value < meta["min"])
                                                       or (meta.get("max") is not None and value > meta["max"]))))
        if out_of_range:
            raise argparse.ArgumentTypeError(f"= {text!r}: {describe_range(self.field)}")
        return value

    def _convert(self, text: str) -> Any:
        if self.kind == "bool":
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError(text)
        return {"int": int, "float": float, "str": str}[self.kind](text)


class _Parser(argparse.ArgumentParser):
    """One-line errors that name the flag and its range (no usage block), and field values that start with a
    dash (``--inner.lr -inf``, ``--inner.lr -1e-3``) read as values rather than as unknown flags."""

    field_flags: frozenset[str] = frozenset()

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        joined: list[str] = []
        for token in args:
            if joined and joined[-1] in self.field_flags and token.startswith("-") and not token.startswith("--"):
                joined[-1] = f"{joined[-1]}={token}"
            else:
                joined.append(token)
        return super().parse_known_args(joined, namespace)

    def error(self, message: str) -> NoReturn:
        named = re.match(r"argument ([^:]+): (= )?(.*)", message, re.DOTALL)
        if named:
            message = f"{named[1]}{' = ' if named[2] else ': '}{named[3]}"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="reptile-train", description="Headless Reptile meta-training.")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="starting config")
    parser.add_argument("--config", type=Path, help="a TOML config file (as the app saves them)")
    parser.add_argument("--out", type=Path, default=Path("runs/latest"), help="output directory")
    parser.add_argument("--resume", type=Path,
                        help="continue from this checkpoint; a linear or cosine schedule runs to meta.iterations, so "
                             "changing --meta.iterations rescales the rest of that schedule")
    parser.add_argument("--allow-large", action="store_true",
                        help="start even when the run's estimated memory exceeds what this machine has available")
    parser.add_argument("--max-rollbacks", type=int, default=3, metavar="N",
                        help="after a divergence the run rolls back to its last healthy state and goes on; stop "
                             f"(exit {EXIT_DIVERGED}) after N rollbacks without {RECOVERY_ITERATIONS} healthy "
                             "iterations between them (default 3; 0 stops at the first)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:ATTR",
                        help="trust this module:attr as a task.name (it imports and runs that code); repeatable")
    fields = parser.add_argument_group("config fields", "override any field of the config")
    for path, value, f in iter_fields(ExperimentConfig()):
        convert = _FieldValue(f)
        fields.add_argument(f"--{path}", dest=path, type=convert, metavar=convert.kind.upper(),
                            help=f"{f.metadata['doc']} ({describe_range(f)}; default {value!r})")
    parser.field_flags = frozenset(f"--{path}" for path, _, _ in iter_fields(ExperimentConfig()))
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {path: vars(args)[path] for path, _, _ in iter_fields(ExperimentConfig())
            if vars(args).get(path) is not None}


class _Progress:
    """A tqdm bar on a terminal, a plain line every few percent otherwise."""

    def __init__(self, total: int, start: int, quiet: bool, stream: TextIO):
        self.total, self.quiet, self.stream = total, quiet, stream
        self.every = max(1, total // 20)
        self.bar = None
        if not quiet and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, file=stream)

    def update(self, m: IterationMetrics | RLIterationMetrics) -> None:
        if isinstance(m, RLIterationMetrics):
            name, before, after = "return", m.return_before, m.return_after
        else:
            name, before, after = "loss", m.loss_before, m.loss_after
        if self.bar is not None:
            self.bar.update(1)
            if m.iteration % 50 == 0 or isinstance(m, RLIterationMetrics):
                self.bar.set_postfix(before=f"{before:.3f}", after=f"{after:.3f}")
        elif not self.quiet and (m.iteration % self.every == 0 or m.iteration == self.total):
            print(f"iteration {m.iteration}/{self.total}  {name} before {before:.4f}  "
                  f"after {after:.4f}  meta lr {m.meta_lr:.4g}  {m.iterations_per_second:.3g} it/s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _curve_unit(curve: AdaptationCurve) -> str:
    return "return" if curve.quantity == "return" else "mse"


def _write_curve(path: Path, curve: AdaptationCurve) -> None:
    unit = _curve_unit(curve)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["inner_step", f"meta_init_{unit}", f"scratch_{unit}"])
        for row in zip(curve.steps.tolist(), curve.meta_init.tolist(), curve.scratch.tolist(), strict=True):
            writer.writerow(row)


def format_curve(curve: AdaptationCurve) -> str:
    what = "held-out mean return" if curve.quantity == "return" else "held-out query MSE"
    lines = [f"Adaptation curve after {curve.iteration} meta-iterations ({what})",
             f"{'inner step':>10}  {'meta-init':>10}  {'scratch':>10}"]
    lines += [f"{s:>10d}  {m:>10.4f}  {r:>10.4f}"
              for s, m, r in zip(curve.steps.tolist(), curve.meta_init.tolist(), curve.scratch.tolist(), strict=True)]
    return "\n".join(lines)


def _prepare_out(out: Path) -> None:
    """Create ``--out`` and make sure files can be written there, before any training starts."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--out", str(out), f"cannot be created ({exc.strerror or exc})") from None
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise ConfigError("--out", str(out), f"is not writable ({exc.strerror or exc})") from None


def _metrics_rows(path: Path, fields: list[str], iteration: int) -> list[list[str]] | None:
    """The rows of an existing ``metrics.csv`` that the checkpoint at ``iteration`` covers, or ``None`` if there
    is no such file to continue. Rows past the checkpoint (written after it, before a crash), torn or repeated
    rows are dropped, so that the resumed run appends exactly the iterations after the checkpoint."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError("--out", str(path.parent), f"has a metrics.csv that cannot be read ({exc})") from None
    if not rows:
        return []
    if rows[0] != fields:
        raise ConfigError("--out", str(path.parent), "has a metrics.csv with other columns (from another kind of "
                          "run); resume into another --out")
    column, kept, last = fields.index("iteration"), [], 0
    for row in rows[1:]:
        try:
            number = float(row[column])
        except (ValueError, IndexError):
            continue
        if len(row) == len(fields) and number.is_integer() and last < number <= iteration:
            last = int(number)
            kept.append([str(last), *row[column + 1:]] if column == 0 else row)
    return kept


def _open_metrics(path: Path, fields: list[str], resume_at: int | None) -> TextIO:
    """``metrics.csv`` ready for appending rows: fresh, or (resuming) cut back to the checkpoint's iteration."""
    kept = _metrics_rows(path, fields, resume_at) if resume_at is not None else None
    try:
        if kept is None:
            f = open(path, "w", newline="")  # noqa: SIM115 - the caller closes it
            csv.writer(f).writerow(fields)
            return f
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows([fields, *kept])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return open(path, "a", newline="")  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise ConfigError("--out", str(path.parent), f"metrics.csv cannot be written ({exc.strerror or exc})") \
            from None


def _sync(f: TextIO) -> None:
    """Flush ``f`` to disk, so that it holds every row up to the checkpoint just written."""
    f.flush()
    os.fsync(f.fileno())


def _stored_config(path: Path) -> ExperimentConfig:
    _, meta = load_checkpoint(path)
    try:
        return ExperimentConfig.from_dict(meta["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: the stored config is invalid ({exc})") from None


def schedule_notice(stored: ExperimentConfig, resumed: ExperimentConfig, iteration: int) -> str | None:
    """A note when a resume changes ``meta.iterations`` under a schedule that runs to it (linear, cosine): the
    rest of that schedule is stretched or squeezed to the new horizon, so its rates change at once."""
    old, new = stored.meta.iterations, resumed.meta.iterations
    if old == new:
        return None
    changes = []
    for name, base in (("meta_schedule", resumed.meta.lr), ("inner_schedule", resumed.inner.lr)):
        schedule = getattr(resumed, name)
        if schedule.kind in ("linear", "cosine"):
            before = scheduled_rate(base, getattr(stored, name), iteration, old)
            after = scheduled_rate(base, schedule, iteration, new)
            changes.append(f"the {schedule.kind} {name} now runs to {new}: its rate at iteration {iteration} "
                           f"goes from {before:.4g} to {after:.4g}")
    if not changes:
        return None
    return f"note: meta.iterations changed from {old} to {new}; " + "; ".join(changes)


def _make_trainer(args: argparse.Namespace, checkpoint: Path) -> TrainerBase:
    overrides = _overrides(args)
    check = not args.allow_large
    if args.resume is not None:
        stored = _stored_config(args.resume)
        trainer = resume_trainer(args.resume, overrides=overrides, config=stored, checkpoint_path=checkpoint,
                                 check_memory=check)
        notice = schedule_notice(stored, trainer.config, trainer.iteration)
        if notice:
            print(f"reptile-train: {notice}", file=sys.stderr)
        return trainer
    base = ExperimentConfig.load(args.config) if args.config else preset(args.preset)
    return open_trainer(base.with_updates(overrides), checkpoint_path=checkpoint, check_memory=check)


def train(args: argparse.Namespace) -> int:
    """Train until done, a stop or a divergence; returns the exit status (see the ``EXIT_*`` constants)."""
    out: Path = args.out
    _prepare_out(out)
    checkpoint = out / CHECKPOINT_NAME
    trainer = _make_trainer(args, checkpoint)
    try:
        trainer.config.save(out / "config.toml")
    except OSError as exc:
        raise ConfigError("--out", str(out), f"config.toml cannot be written ({exc.strerror or exc})") from None
    metrics_type = RLIterationMetrics if trainer.config.kind == "rl" else IterationMetrics
    metric_fields = [f.name for f in dataclasses.fields(metrics_type)]
    metrics_file = _open_metrics(out / "metrics.csv", metric_fields,
                                 trainer.iteration if args.resume is not None else None)
    progress = _Progress(trainer.config.meta.iterations, trainer.iteration, args.quiet, sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: trainer.stop())
    curve, diverged, metrics_failed = None, None, False
    rollbacks, last_divergence = 0, None

    def write_metrics(action: Any, *payload: Any) -> None:
        nonlocal metrics_failed
        if metrics_failed:
            return
        try:
            action(*payload)
        except OSError as exc:
            metrics_failed = True
            print(f"reptile-train: error: {out / 'metrics.csv'} cannot be written ({exc.strerror or exc}); its "
                  f"rows from iteration {trainer.iteration} on are missing", file=sys.stderr)

    with metrics_file:
        writer = csv.writer(metrics_file)
        try:
            for event in trainer.run():
                if isinstance(event, metrics_type):
                    row = [int(event.iteration), *(getattr(event, name) for name in metric_fields[1:])]
                    write_metrics(writer.writerow, row)
                    progress.update(event)
                elif isinstance(event, AdaptationCurve):
                    curve = event
                elif isinstance(event, Diverged):
                    recovered = last_divergence is None or event.iteration - last_divergence > RECOVERY_ITERATIONS
                    rollbacks = 1 if recovered else rollbacks + 1
                    last_divergence = event.iteration
                    print(f"reptile-train: diverged at iteration {event.iteration}: {event.reason}; rolled back "
                          f"to iteration {event.rolled_back_to} (rollback {rollbacks} in a row, {args.max_rollbacks} "
                          "allowed)", file=sys.stderr)
                    if rollbacks > args.max_rollbacks:
                        diverged = event
                        trainer.stop()
                    else:
                        trainer.resume()
                elif isinstance(event, CheckpointSaved):
                    write_metrics(_sync, metrics_file)
                    if not args.quiet and progress.bar is None:
                        print(f"checkpoint saved at iteration {event.iteration}: {event.path}", flush=True)
                elif isinstance(event, CommandRejected) and event.field == "checkpoint":
                    print(f"reptile-train: automatic save failed at iteration {event.iteration}: {event.message}",
                          file=sys.stderr, flush=True)
                elif isinstance(event, Finished):
                    break
        except KeyboardInterrupt:
            print("interrupted; saving a checkpoint", file=sys.stderr)
        finally:
            progress.close()
        try:
            trainer.save_checkpoint(checkpoint)
        except CheckpointError as exc:
            print(f"reptile-train: error: the final save failed, the run's state since the last checkpoint is "
                  f"lost: {exc}", file=sys.stderr)
            return EXIT_OUTPUT_FAILED
        write_metrics(_sync, metrics_file)
    if curve is not None:
        _write_curve(out / "adaptation.csv", curve)
        if not args.quiet:
            print(format_curve(curve))
    if not args.quiet:
        print(f"wrote {out}/metrics.csv, adaptation.csv, config.toml, {CHECKPOINT_NAME}")
    if diverged is not None:
        print(f"reptile-train: training stopped at iteration {trainer.iteration} after a divergence; the last good "
              f"state is saved in {checkpoint}. Lower the learning rates (for example --meta.lr, --inner.lr) and "
              f"continue with --resume {checkpoint}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OUTPUT_FAILED if metrics_failed else 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plugins.trust(*args.plugin)
        return train(args)
    except (ConfigError, CheckpointError) as exc:
        print(f"reptile-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
