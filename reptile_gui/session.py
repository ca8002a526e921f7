"""Sessions: one zip file with the config, the trainer checkpoint and the full history.

Nothing in a session is unpickled: the history is a NumPy ``.npz`` read with ``allow_pickle=False``,
the rest is TOML, JSON and safetensors. Reading checks everything before anything is replaced, so a
corrupt or incompatible file leaves the running session untouched.
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
from reptile_engine.events import AdaptationCurve
from reptile_gui.store import METRIC_COLUMNS, ChangeMarker, RunStore

FORMAT = "reptile-lab-session"
VERSION = 1
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


def save(path: str | Path, config: ExperimentConfig, checkpoint: Path, store: RunStore) -> Path:
    """Write a session file; the previous file at ``path`` survives a failed write."""
    path = Path(path)
    history = io.BytesIO()
    np.savez(history, **{name: store.column(name) for name in METRIC_COLUMNS})
    manifest = {
        "format": FORMAT, "version": VERSION,
        "curves": [{"iteration": c.iteration, "steps": c.steps.tolist(), "meta_init": c.meta_init.tolist(),
                    "scratch": c.scratch.tolist()} for c in store.curves],
        "markers": [{"iteration": m.iteration, "elapsed": m.elapsed, "text": m.text} for m in store.markers],
    }
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("session.json", json.dumps(manifest))
            archive.writestr("config.toml", config.to_toml())
            archive.writestr("history.npz", history.getvalue())
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
            if manifest.get("version") != VERSION:
                raise SessionError(f"{path} is a session of version {manifest.get('version')!r}; "
                                   f"this Reptile Lab reads version {VERSION}")
            config = ExperimentConfig.from_toml(archive.read("config.toml").decode("utf-8"))
            with np.load(io.BytesIO(archive.read("history.npz")), allow_pickle=False) as npz:
                history = {name: np.asarray(npz[name], dtype=np.float64) for name in METRIC_COLUMNS}
            checkpoint_out.write_bytes(archive.read("checkpoint.safetensors"))
        load_checkpoint(checkpoint_out)
        curves = [AdaptationCurve(int(c["iteration"]), np.asarray(c["steps"]), np.asarray(c["meta_init"]),
                                  np.asarray(c["scratch"])) for c in manifest["curves"]]
        markers = [ChangeMarker(int(m["iteration"]), float(m["elapsed"]), str(m["text"]))
                   for m in manifest["markers"]]
    except SessionError:
        raise
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError, UnicodeDecodeError, EOFError,
            ConfigError, CheckpointError) as exc:
        raise SessionError(f"Cannot open session {path}: {type(exc).__name__}: {exc}") from None
    if len({len(v) for v in history.values()}) != 1:
        raise SessionError(f"Cannot open session {path}: history columns differ in length")
    return LoadedSession(config, checkpoint_out, history, curves, markers)


def restore_store(store: RunStore, loaded: LoadedSession) -> None:
    """Replace the store's contents by the session's history, curves and markers."""
    store.clear()
    store.extend_metrics(loaded.history)
    for curve in loaded.curves:
        store.add_curve(curve)
    store.markers.extend(loaded.markers)
    store.markers_version += 1
