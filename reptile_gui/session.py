"""Sessions: one zip file with the config, the trainer checkpoint and the full history.

Nothing in a session is unpickled: the history is a NumPy ``.npz`` read with ``allow_pickle=False``,
the rest is TOML, JSON and safetensors. Reading checks everything before anything is replaced, so a
corrupt or incompatible file leaves the running session untouched.

Version 2 records the run's kind (its history holds that kind's metric columns), each adaptation curve's
quantity (loss or return) and a meta-RL run's latest rollouts (``rollouts.npz``, a few thousand numbers).
Version 1 sessions (supervised runs only) still open.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reptile_engine.checkpoint import CheckpointError
from reptile_engine.checkpoint import load as load_checkpoint
from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.events import AdaptationCurve, Rollouts
from reptile_gui.store import COLUMNS_BY_KIND, ChangeMarker, RunStore

FORMAT = "reptile-lab-session"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SUFFIX = ".reptile"


class SessionError(RuntimeError):
    """A session cannot be written or read."""


@dataclass(frozen=True)
class LoadedSession:
    config: ExperimentConfig
    checkpoint: Path
    history: dict[str, np.ndarray]
    curves: list[AdaptationCurve]
    markers: list[ChangeMarker]
    kind: str = "supervised"
    rollouts: Rollouts | None = None


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _json_value(value):
    """A task parameter as JSON: numpy arrays and scalars become lists and floats."""
    return np.asarray(value).tolist()


def _rollouts_parts(rollouts: Rollouts) -> tuple[dict, dict[str, np.ndarray]]:
    """The manifest entry and the arrays (``returns``, ``trace_<update index>_<episode>``, ``mean_returns``,
    ``mean_trace_<update index>``) of ``rollouts``."""
    entry = {"request": rollouts.request, "iteration": rollouts.iteration, "family": rollouts.family,
             "updates": list(rollouts.updates), "episodes": [len(episodes) for episodes in rollouts.traces],
             "task": {k: _json_value(v) for k, v in rollouts.task.items()}, "labels": list(rollouts.labels),
             "target": None if rollouts.target is None else [rollouts.target[0], list(rollouts.target[1])]}
    arrays = {"returns": np.asarray(rollouts.returns), "mean_returns": np.asarray(rollouts.mean_returns)}
    for i, episodes in enumerate(rollouts.traces):
        for e, trace in enumerate(episodes):
            arrays[f"trace_{i}_{e}"] = np.asarray(trace)
    for i, trace in enumerate(rollouts.mean_traces):
        arrays[f"mean_trace_{i}"] = np.asarray(trace)
    return entry, arrays


def _rollouts_from(entry: dict, npz) -> Rollouts:
    traces = tuple(tuple(np.asarray(npz[f"trace_{i}_{e}"]) for e in range(count))
                   for i, count in enumerate(entry["episodes"]))
    target = entry["target"]
    mean_traces = tuple(np.asarray(npz[f"mean_trace_{i}"]) for i in range(len(entry["updates"]))
                        if f"mean_trace_{i}" in npz)
    mean_returns = np.asarray(npz["mean_returns"]) if "mean_returns" in npz else np.zeros(0)
    return Rollouts(int(entry["request"]), int(entry["iteration"]), str(entry["family"]),
                    tuple(int(k) for k in entry["updates"]), dict(entry["task"]), traces,
                    np.asarray(npz["returns"]), (str(entry["labels"][0]), str(entry["labels"][1])),
                    None if target is None else (str(target[0]), tuple(float(v) for v in target[1])),
                    mean_traces, mean_returns)


def save(path: str | Path, config: ExperimentConfig, checkpoint: Path, store: RunStore) -> Path:
    """Write a session file; the previous file at ``path`` survives a failed write."""
    path = Path(path)
    manifest = {
        "format": FORMAT, "version": VERSION, "kind": store.kind,
        "curves": [{"iteration": c.iteration, "steps": c.steps.tolist(), "meta_init": c.meta_init.tolist(),
                    "scratch": c.scratch.tolist(), "quantity": c.quantity} for c in store.curves],
        "markers": [{"iteration": m.iteration, "elapsed": m.elapsed, "text": m.text} for m in store.markers],
    }
    files = {"history.npz": _npz_bytes({name: store.column(name) for name in store.metric_columns})}
    if store.rollouts is not None:
        manifest["rollouts"], arrays = _rollouts_parts(store.rollouts)
        files["rollouts.npz"] = _npz_bytes(arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("session.json", json.dumps(manifest))
            archive.writestr("config.toml", config.to_toml())
            for name, data in files.items():
                archive.writestr(name, data)
            archive.write(checkpoint, "checkpoint.safetensors")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SessionError(f"Cannot write session {path}: {exc.strerror or exc}") from None
    return path


def load(path: str | Path, checkpoint_out: Path) -> LoadedSession:
    """Read and check a session; its checkpoint is extracted to ``checkpoint_out``."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            manifest = json.loads(archive.read("session.json"))
            if manifest.get("format") != FORMAT:
                raise SessionError(f"{path} is not a Reptile Lab session")
            if manifest.get("version") not in READABLE_VERSIONS:
                raise SessionError(f"{path} is a session of version {manifest.get('version')!r}; "
                                   f"this Reptile Lab reads versions "
                                   f"{', '.join(str(v) for v in READABLE_VERSIONS)}")
            kind = manifest.get("kind", "supervised")
            if kind not in COLUMNS_BY_KIND:
                raise SessionError(f"{path} holds a run of unknown kind {kind!r}")
            config = ExperimentConfig.from_toml(archive.read("config.toml").decode("utf-8"))
            with np.load(io.BytesIO(archive.read("history.npz")), allow_pickle=False) as npz:
                history = {name: np.asarray(npz[name], dtype=np.float64) for name in COLUMNS_BY_KIND[kind]}
            rollouts = None
            if "rollouts" in manifest:
                with np.load(io.BytesIO(archive.read("rollouts.npz")), allow_pickle=False) as npz:
                    rollouts = _rollouts_from(manifest["rollouts"], npz)
            checkpoint_out.write_bytes(archive.read("checkpoint.safetensors"))
        load_checkpoint(checkpoint_out)
        curves = [AdaptationCurve(int(c["iteration"]), np.asarray(c["steps"]), np.asarray(c["meta_init"]),
                                  np.asarray(c["scratch"]), str(c.get("quantity", "loss")))
                  for c in manifest["curves"]]
        markers = [ChangeMarker(int(m["iteration"]), float(m["elapsed"]), str(m["text"]))
                   for m in manifest["markers"]]
    except SessionError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError, UnicodeDecodeError, EOFError,
            ConfigError, CheckpointError) as exc:
        raise SessionError(f"Cannot open session {path}: {type(exc).__name__}: {exc}") from None
    if len({len(v) for v in history.values()}) != 1:
        raise SessionError(f"Cannot open session {path}: history columns differ in length")
    return LoadedSession(config, checkpoint_out, history, curves, markers, kind, rollouts)


def restore_store(store: RunStore, loaded: LoadedSession) -> None:
    """Replace the store's contents by the session's history, curves, markers and rollouts."""
    store.set_kind(loaded.kind)
    store.clear()
    store.extend_metrics(loaded.history)
    if loaded.rollouts is not None:
        store.set_rollouts(loaded.rollouts)
    for curve in loaded.curves:
        store.add_curve(curve)
    store.markers.extend(loaded.markers)
    store.markers_version += 1
