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
import signal
import sys
from pathlib import Path
from typing import Any, TextIO

from reptile_engine.checkpoint import CheckpointError
from reptile_engine.config import ConfigError, ExperimentConfig, describe_range, iter_fields
from reptile_engine.events import (
    AdaptationCurve,
    CheckpointSaved,
    Diverged,
    Finished,
    IterationMetrics,
    RLIterationMetrics,
)
from reptile_engine.presets import PRESETS, preset
from reptile_engine.trainer import TrainerBase, open_trainer, resume_trainer

CHECKPOINT_NAME = "checkpoint.safetensors"
def _parse_bool(text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


_TYPES = {"int": int, "float": float, "str": str, "bool": _parse_bool}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reptile-train", description="Headless Reptile meta-training.")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS), help="starting config")
    parser.add_argument("--config", type=Path, help="a TOML config file (as the app saves them)")
    parser.add_argument("--out", type=Path, default=Path("runs/latest"), help="output directory")
    parser.add_argument("--resume", type=Path, help="continue from this checkpoint")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    fields = parser.add_argument_group("config fields", "override any field of the config")
    for path, value, f in iter_fields(ExperimentConfig()):
        kind = f.type if isinstance(f.type, str) else f.type.__name__
        fields.add_argument(f"--{path}", dest=path, type=_TYPES[kind], choices=f.metadata.get("choices"),
                            metavar=kind.upper(), help=f"{f.metadata['doc']} ({describe_range(f)}; default {value!r})")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {path: vars(args)[path] for path, _, _ in iter_fields(ExperimentConfig())
            if vars(args).get(path) is not None}


def _make_trainer(args: argparse.Namespace, checkpoint: Path) -> TrainerBase:
    overrides = _overrides(args)
    if args.resume is not None:
        return resume_trainer(args.resume, overrides=overrides, checkpoint_path=checkpoint)
    base = ExperimentConfig.load(args.config) if args.config else preset(args.preset)
    return open_trainer(base.with_updates(overrides), checkpoint_path=checkpoint)


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


def train(args: argparse.Namespace) -> int:
    out: Path = args.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--out", str(out), f"cannot be created ({exc.strerror})") from None
    checkpoint = out / CHECKPOINT_NAME
    trainer = _make_trainer(args, checkpoint)
    trainer.config.save(out / "config.toml")
    metrics_type = RLIterationMetrics if trainer.config.kind == "rl" else IterationMetrics
    metric_fields = [f.name for f in dataclasses.fields(metrics_type)]
    append = args.resume is not None and (out / "metrics.csv").exists()
    progress = _Progress(trainer.config.meta.iterations, trainer.iteration, args.quiet, sys.stdout)
    signal.signal(signal.SIGTERM, lambda *_: trainer.stop())
    curve = None
    with open(out / "metrics.csv", "a" if append else "w", newline="") as f:
        writer = csv.writer(f)
        if not append:
            writer.writerow(metric_fields)
        try:
            for event in trainer.run():
                if isinstance(event, metrics_type):
                    writer.writerow([getattr(event, name) for name in metric_fields])
                    progress.update(event)
                elif isinstance(event, AdaptationCurve):
                    curve = event
                elif isinstance(event, Diverged):
                    print(f"diverged at iteration {event.iteration}: {event.reason}; rolled back to "
                          f"{event.rolled_back_to}; hyperparameters {event.hyperparameters}", file=sys.stderr)
                    trainer.stop()
                elif isinstance(event, CheckpointSaved) and not args.quiet and progress.bar is None:
                    print(f"checkpoint saved at iteration {event.iteration}: {event.path}", flush=True)
                elif isinstance(event, Finished):
                    break
        except KeyboardInterrupt:
            print("interrupted; saving a checkpoint", file=sys.stderr)
        finally:
            progress.close()
    trainer.save_checkpoint(checkpoint)
    if curve is not None:
        _write_curve(out / "adaptation.csv", curve)
        if not args.quiet:
            print(format_curve(curve))
    if not args.quiet:
        print(f"wrote {out}/metrics.csv, adaptation.csv, config.toml, {CHECKPOINT_NAME}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return train(args)
    except (ConfigError, CheckpointError) as exc:
        print(f"reptile-train: error: {exc}", file=sys.stderr)
        return 2
