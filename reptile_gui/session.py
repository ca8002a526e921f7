"""Sessions: one zip file with the config, the trainer checkpoint and the full history.

Nothing in a session is unpickled and nothing in it chooses code to run: the history is NumPy ``.npy``
columns in a ``.npz`` read with ``allow_pickle=False``, the rest is TOML, JSON and safetensors, and a config
that names a ``module:attr`` task this process does not trust is refused. A session file comes from anyone,
so reading checks everything before anything is replaced: each member's size against what it can sensibly
hold (read in bounded chunks, so a header that lies about its size stops at the limit too), the types,
shapes and ranges of every value, and any other failure while reading becomes a ``SessionError`` as well. A
corrupt, hostile or incompatible file leaves the running session untouched.

Version 2 records the run's kind (its history holds that kind's metric columns), each adaptation curve's
quantity (loss or return) and a meta-RL run's latest rollouts (``rollouts.npz``, a few thousand numbers).
Version 1 sessions (supervised runs only) still open.

This module writes sessions and restores a store from one; :mod:`reptile_gui.session_reader` reads and checks
them, :mod:`reptile_gui.session_format` holds what both agree on.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from reptile_engine.config import ExperimentConfig
from reptile_engine.events import Rollouts
from reptile_gui.session_format import (
    FORMAT,
    MEMBER_LIMITS,
    READABLE_VERSIONS,
    SUFFIX,
    VERSION,
    LoadedSession,
    SessionError,
)
from reptile_gui.session_reader import load
from reptile_gui.store import RunStore

__all__ = ["FORMAT", "MEMBER_LIMITS", "READABLE_VERSIONS", "SUFFIX", "VERSION", "LoadedSession", "SessionError",
           "load", "restore_store", "save"]


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _write_history(target: Path, store: RunStore) -> None:
    """``store``'s complete history as an ``.npz`` of one ``.npy`` per column, streamed a chunk at a time."""
    rows = len(store)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as npz:
        for name in store.metric_columns:
            with npz.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False,
                                                             "shape": (rows,)})
                for chunk in store.history_chunks((name,)):
                    member.write(chunk[name].astype("<f8", copy=False).tobytes())


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


def save(path: str | Path, config: ExperimentConfig, checkpoint: Path, store: RunStore) -> Path:
    """Write a session file with every iteration of the history; the previous file at ``path`` survives a
    failed write."""
    path = Path(path)
    manifest = {
        "format": FORMAT, "version": VERSION, "kind": store.kind,
        "curves": [{"iteration": c.iteration, "steps": c.steps.tolist(), "meta_init": c.meta_init.tolist(),
                    "scratch": c.scratch.tolist(), "quantity": c.quantity} for c in store.curves],
        "markers": [{"iteration": m.iteration, "elapsed": m.elapsed, "text": m.text} for m in store.markers],
    }
    files = {}
    if store.rollouts is not None:
        manifest["rollouts"], arrays = _rollouts_parts(store.rollouts)
        files["rollouts.npz"] = _npz_bytes(arrays)
    tmp = path.with_name(f".{path.name}.tmp")
    history = path.with_name(f".{path.name}.history.tmp")
    try:
        _write_history(history, store)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("session.json", json.dumps(manifest))
            archive.writestr("config.toml", config.to_toml())
            archive.write(history, "history.npz", compress_type=zipfile.ZIP_STORED)  # floats barely deflate
            for name, data in files.items():
                archive.writestr(name, data)
            archive.write(checkpoint, "checkpoint.safetensors")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SessionError(f"Cannot write session {path}: {exc.strerror or exc}") from None
    finally:
        history.unlink(missing_ok=True)
    return path


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
    if loaded.history_folder is not None:
        shutil.rmtree(loaded.history_folder, ignore_errors=True)
