"""``reptile-train``: headless Reptile training from presets, config files and flags.

Every config field is a flag named by its dotted path (``--inner.lr 0.01``); flags override
``--config``, which overrides ``--preset``. Writes ``metrics.csv`` (one row per iteration),
``adaptation.csv`` (the last adaptation curve), ``config.toml`` and ``checkpoint.safetensors`` into
``--out``, and prints the adaptation curve at the end; ``--tensorboard DIR`` also logs to TensorBoard.
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from reptile_engine import plugins
from reptile_engine.checkpoint import CheckpointError, stored_config
from reptile_engine.checkpoint import load as load_checkpoint
from reptile_engine.config import ConfigError, ExperimentConfig, describe_range, field_type, iter_fields, parse_value
from reptile_engine.events import (
    METRIC_TYPES,
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    ConfigChanged,
    Dispatch,
    Diverged,
    Failed,
    Finished,
    IterationMetrics,
    IterationProgress,
    LandscapeReady,
    RLIterationMetrics,
    Rollouts,
    StateChanged,
    TaskFit,
)
from reptile_engine.logger import (
    COLUMNS,
    TENSORBOARD_MISSING,
    CSVWriter,
    Logger,
    MetricsFileError,
    TensorBoardWriter,
    Writer,
    curve_columns,
    write_table,
)
from reptile_engine.presets import PRESETS, preset
from reptile_engine.schedules import scheduled_rate
from reptile_engine.trainer import Trainer, open_trainer, resume_trainer

CHECKPOINT_NAME = "checkpoint.safetensors"
METRICS_NAME = "metrics.csv"
EXIT_OUTPUT_FAILED = 1
"""Exit status when the final checkpoint or the metrics could not be written."""
EXIT_USAGE = 2
"""Exit status for a bad flag, config, checkpoint or output folder."""
EXIT_DIVERGED = 3
"""Exit status after a divergence the rollbacks did not cure: the last good state is saved."""
RECOVERY_ITERATIONS = 500
"""Iterations without a divergence after which a rolled-back run counts as recovered."""

class _FieldValue:
    """A config field's flag value, parsed by the config, so that a bad value is refused naming the flag, the
    value and what is allowed."""

    def __init__(self, path: str):
        self.path = path
        self.kind = field_type(path).__name__
        self.__name__ = self.kind

    def __call__(self, text: str) -> Any:
        try:
            return parse_value(self.path, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(f"= {text!r}: {exc.allowed}") from None


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
    parser.add_argument("--tensorboard", type=Path, metavar="DIR",
                        help="also log the metrics to TensorBoard event files in DIR (needs the tensorboard extra)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE:ATTR",
                        help="trust this module:attr as a task.name (it imports and runs that code); repeatable")
    fields = parser.add_argument_group("config fields", "override any field of the config")
    for path, value, f in iter_fields(ExperimentConfig()):
        convert = _FieldValue(path)
        fields.add_argument(f"--{path}", dest=path, type=convert, metavar=convert.kind.upper(),
                            help=f"{f.metadata['doc']} ({describe_range(f)}; default {value!r})")
    parser.field_flags = frozenset(f"--{path}" for path, _, _ in iter_fields(ExperimentConfig()))
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {path: vars(args)[path] for path, _, _ in iter_fields(ExperimentConfig())
            if vars(args).get(path) is not None}


class _Progress:
    """A tqdm bar on a terminal, a plain line every few percent otherwise."""

    def __init__(self, total: int, start: int, quiet: bool, stream: TextIO, quantity: str):
        self.total, self.quiet, self.stream, self.quantity = total, quiet, stream, quantity
        self.every = max(1, total // 20)
        self.bar = None
        if not quiet and stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True, file=stream)

    def update(self, m: IterationMetrics | RLIterationMetrics) -> None:
        name = self.quantity
        before, after = getattr(m, f"{name}_before"), getattr(m, f"{name}_after")
        if self.bar is not None:
            self.bar.update(1)
            if m.iteration % 50 == 0 or name == "return":
                self.bar.set_postfix(before=f"{before:.3f}", after=f"{after:.3f}")
        elif not self.quiet and (m.iteration % self.every == 0 or m.iteration == self.total):
            print(f"iteration {m.iteration}/{self.total}  {name} before {before:.4f}  "
                  f"after {after:.4f}  meta lr {m.meta_lr:.4g}  {m.iterations_per_second:.3g} it/s",
                  file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _write_curve(path: Path, curve: AdaptationCurve) -> None:
    write_table(path, curve_columns(curve),
                zip(curve.steps.tolist(), curve.meta_init.tolist(), curve.scratch.tolist(), strict=True))


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


def _open_logger(args: argparse.Namespace, trainer: Trainer) -> Logger:
    """``metrics.csv`` in ``--out`` (cut back to the checkpoint when resuming), and TensorBoard files in
    ``--tensorboard`` when asked for."""
    resume_at = trainer.iteration if args.resume is not None else None
    columns = COLUMNS[RLIterationMetrics if trainer.config.kind == "rl" else IterationMetrics]
    try:
        writers: list[Writer] = [CSVWriter(args.out / METRICS_NAME, columns, resume_at=resume_at)]
    except MetricsFileError as exc:
        raise ConfigError("--out", str(args.out), str(exc)) from None
    if args.tensorboard is not None:
        try:
            writers.append(TensorBoardWriter(args.tensorboard, purge_step=None if resume_at is None else resume_at + 1))
        except (ImportError, OSError) as exc:
            writers[0].close()
            reason = TENSORBOARD_MISSING if isinstance(exc, ImportError) else f"cannot be written ({exc})"
            raise ConfigError("--tensorboard", str(args.tensorboard), reason) from None
    return Logger(writers)


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


def _make_trainer(args: argparse.Namespace, checkpoint: Path) -> Trainer:
    overrides = _overrides(args)
    check = not args.allow_large
    if args.resume is not None:
        stored = stored_config(load_checkpoint(args.resume)[1], args.resume)
        trainer = resume_trainer(args.resume, overrides=overrides, config=stored, checkpoint_path=checkpoint,
                                 check_memory=check)
        notice = schedule_notice(stored, trainer.config, trainer.iteration)
        if notice:
            print(f"reptile-train: {notice}", file=sys.stderr)
        return trainer
    base = ExperimentConfig.load(args.config) if args.config else preset(args.preset)
    return open_trainer(base.with_updates(overrides), checkpoint_path=checkpoint, check_memory=check)


class _Run:
    """One ``reptile-train`` run's reaction to its trainer's events: log, show progress, roll back or stop."""

    def __init__(self, args: argparse.Namespace, trainer: Trainer, logger: Logger):
        self.args, self.trainer, self.logger = args, trainer, logger
        config = trainer.config
        self.progress = _Progress(config.meta.iterations, trainer.iteration, args.quiet, sys.stdout,
                                  "return" if config.kind == "rl" else "loss")
        self.curve: AdaptationCurve | None = None
        self.diverged: Diverged | None = None
        self.logging_failed = False
        self.rollbacks, self.last_divergence = 0, None
        self.react = Dispatch({METRIC_TYPES: self.progress.update, AdaptationCurve: self._keep_curve,
                               Diverged: self._on_diverged, CheckpointSaved: self._on_saved,
                               CommandRejected: self._on_rejected, Finished: lambda _: True},
                              ignore=(IterationProgress, ConfigChanged, StateChanged, TaskFit, Rollouts,
                                      LandscapeReady, Failed))

    def write(self, action: Callable[..., None], *payload: Any) -> None:
        """Log through ``action``; after a failure to write, say what is missing once and log no more."""
        if self.logging_failed:
            return
        try:
            action(*payload)
        except OSError as exc:
            self.logging_failed = True
            print(f"reptile-train: error: {self.args.out / METRICS_NAME} cannot be written "
                  f"({exc.strerror or exc}); its rows from iteration {self.trainer.iteration} on are missing",
                  file=sys.stderr)

    def drive(self) -> None:
        """Run the trainer until ``Finished`` or an interrupt."""
        self.write(self.logger.log_config, self.trainer.iteration, self.trainer.config)
        try:
            for event in self.trainer.run():
                self.write(self.logger.log, event)
                if self.react(event):
                    break
        except KeyboardInterrupt:
            print("interrupted; saving a checkpoint", file=sys.stderr)
        finally:
            self.progress.close()

    def _keep_curve(self, curve: AdaptationCurve) -> None:
        self.curve = curve

    def _on_diverged(self, event: Diverged) -> None:
        recovered = self.last_divergence is None or event.iteration - self.last_divergence > RECOVERY_ITERATIONS
        self.rollbacks = 1 if recovered else self.rollbacks + 1
        self.last_divergence = event.iteration
        print(f"reptile-train: diverged at iteration {event.iteration}: {event.reason}; rolled back to iteration "
              f"{event.rolled_back_to} (rollback {self.rollbacks} in a row, {self.args.max_rollbacks} allowed)",
              file=sys.stderr)
        if self.rollbacks > self.args.max_rollbacks:
            self.diverged = event
            self.trainer.stop()
        else:
            self.trainer.resume()

    def _on_saved(self, event: CheckpointSaved) -> None:
        self.write(self.logger.sync)
        if not self.args.quiet and self.progress.bar is None:
            print(f"checkpoint saved at iteration {event.iteration}: {event.path}", flush=True)

    def _on_rejected(self, event: CommandRejected) -> None:
        if event.field == "checkpoint":
            print(f"reptile-train: automatic save failed at iteration {event.iteration}: {event.message}",
                  file=sys.stderr, flush=True)


def _report(run: _Run, checkpoint: Path) -> int:
    """Write and print the last adaptation curve and say how the run ended; returns the exit status."""
    out, quiet = run.args.out, run.args.quiet
    if run.curve is not None:
        _write_curve(out / "adaptation.csv", run.curve)
        if not quiet:
            print(format_curve(run.curve))
    if not quiet:
        print(f"wrote {out}/{METRICS_NAME}, adaptation.csv, config.toml, {CHECKPOINT_NAME}")
    if run.diverged is not None:
        print(f"reptile-train: training stopped at iteration {run.trainer.iteration} after a divergence; the last "
              f"good state is saved in {checkpoint}. Lower the learning rates (for example --meta.lr, --inner.lr) "
              f"and continue with --resume {checkpoint}", file=sys.stderr)
        return EXIT_DIVERGED
    return EXIT_OUTPUT_FAILED if run.logging_failed else 0


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
    with _open_logger(args, trainer) as logger:
        run = _Run(args, trainer, logger)
        signal.signal(signal.SIGTERM, lambda *_: trainer.stop())
        run.drive()
        try:
            trainer.save_checkpoint(checkpoint)
        except CheckpointError as exc:
            print(f"reptile-train: error: the final save failed, the run's state since the last checkpoint is "
                  f"lost: {exc}", file=sys.stderr)
            return EXIT_OUTPUT_FAILED
        run.write(logger.sync)
    return _report(run, checkpoint)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plugins.trust(*args.plugin)
        return train(args)
    except (ConfigError, CheckpointError) as exc:
        print(f"reptile-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
