"""Reading a session: every member's size, type, shape and range is checked before anything is replaced.

A session file comes from anyone. Each member is read in bounded chunks against what it can sensibly hold
(so a header that lies about its size stops at the limit too), nothing is unpickled, a config naming a
``module:attr`` task this process does not trust is refused, and any other failure while reading becomes a
``SessionError`` as well. Every check raises ``_Invalid`` with what is wrong; :func:`load` adds the file's name.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import stat
import tempfile
import tomllib
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from reptile_engine import plugins
from reptile_engine.checkpoint import CheckpointError
from reptile_engine.checkpoint import load as load_checkpoint
from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.events import AdaptationCurve, Rollouts
from reptile_gui.session_format import (
    FORMAT,
    MAX_MEMBERS,
    MEGABYTE,
    MEMBER_LIMITS,
    NON_NEGATIVE_COLUMNS,
    QUANTITIES,
    READABLE_VERSIONS,
    TARGET_SIZES,
    LoadedSession,
    SessionError,
)
from reptile_gui.store import COLUMNS_BY_KIND, ChangeMarker

_CHUNK = MEGABYTE


class _Invalid(Exception):
    """What is wrong with a session's content."""


def _members(archive: zipfile.ZipFile, what: str) -> dict[str, zipfile.ZipInfo]:
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _Invalid(f"{what} holds {len(infos)} members; a session holds at most {MAX_MEMBERS}")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        if info.filename in members:
            raise _Invalid(f"{what} holds {info.filename} twice")
        members[info.filename] = info
    return members


def _member(members: dict[str, zipfile.ZipInfo], name: str, what: str) -> zipfile.ZipInfo:
    info = members.get(name)
    if info is None:
        raise _Invalid(f"{what} lacks {name}")
    return info


def _copy_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target, limit: int, what: str) -> int:
    """Copy a member into ``target`` (a binary file), refusing it when it is, or turns out to be, over ``limit``;
    returns the bytes copied."""
    too_big = f"{what} inflates to more than the {limit // MEGABYTE} MB such a member can sensibly hold"
    if info.file_size > limit:
        raise _Invalid(f"{too_big} (it declares {info.file_size // MEGABYTE} MB)")
    written = 0
    with archive.open(info) as source:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise _Invalid(too_big)
            target.write(chunk)
    return written


def _read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, what: str) -> bytes:
    buffer = io.BytesIO()
    _copy_bounded(archive, info, buffer, limit, what)
    return buffer.getvalue()


def _extract_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, limit: int, what: str) -> int:
    with open(target, "wb") as file:
        return _copy_bounded(archive, info, file, limit, what)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _count(value: Any, what: str) -> int:
    if not _is_count(value):
        raise _Invalid(f"{what} must be a whole number >= 0, not {value!r}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{what} must be text, not {type(value).__name__}")
    return value


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise _Invalid(f"{what} must be a list, not {type(value).__name__}")
    return value


def _table(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise _Invalid(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _numbers(value: Any, what: str, *, finite: bool = False) -> np.ndarray:
    """A JSON list of numbers as a 1-D float64 array."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in _list(value, what)):
        raise _Invalid(f"{what} must be a list of numbers")
    array = np.array(value, dtype=np.float64)
    if finite and not np.isfinite(array).all():
        raise _Invalid(f"{what} must hold finite numbers only")
    return array


def _load_npy(source: Path | io.BytesIO, what: str, ndim: int, mmap: bool = False) -> np.ndarray:
    """A ``.npy`` of numbers of ``ndim`` dimensions as float64 (memory-mapped where it can be)."""
    try:
        array = np.load(source, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise _Invalid(f"{what} is not a plain array of numbers ({exc})") from None
    return _numeric_array(array, what, ndim)


def _numeric_array(array: np.ndarray, what: str, ndim: int) -> np.ndarray:
    if array.dtype.kind not in "iuf":
        raise _Invalid(f"{what} must hold numbers, not {array.dtype}")
    if array.ndim != ndim:
        raise _Invalid(f"{what} must be {ndim}-D, not of shape {array.shape}")
    return array if array.dtype == np.float64 else np.asarray(array, dtype=np.float64)


def _check_config(text: str) -> ExperimentConfig:
    """The config, refusing a ``module:attr`` task this process does not trust before anything imports it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _Invalid(f"config.toml is not valid TOML ({exc})") from None
    task = data.get("task")
    name = task.get("name") if isinstance(task, dict) else None
    if isinstance(name, str) and plugins.is_module_attr(name) and name not in plugins.trusted():
        raise _Invalid(f"its config names the plugin module {name!r} as task.name, which is not installed as a "
                       f"registered task or trusted in this process; sessions cannot run code, so it does not "
                       f"open (to run that code, trust it first: {plugins.ENV_VAR}={name})")
    try:
        return ExperimentConfig.from_toml(text)
    except ConfigError as exc:
        raise _Invalid(f"its config is not valid: {exc}") from None


def _check_history(columns: dict[str, np.ndarray]) -> None:
    lengths = {len(values) for values in columns.values()}
    if len(lengths) > 1:
        raise _Invalid("the history's columns differ in length")
    for name, values in columns.items():
        if name in NON_NEGATIVE_COLUMNS:
            if not np.isfinite(values).all():
                raise _Invalid(f"the history's {name} column holds NaN or inf")
            if (values < 0).any():
                raise _Invalid(f"the history's {name} column holds a negative value")
    iteration = columns["iteration"]
    if (iteration != np.floor(iteration)).any() or (iteration >= 2.0 ** 53).any():
        raise _Invalid("the history's iteration column holds a value that is not a whole number")
    if (np.diff(iteration) <= 0).any():
        raise _Invalid("the history's iterations do not increase")


def _read_history(archive: zipfile.ZipFile, members, kind: str, folder: Path) -> dict[str, np.ndarray]:
    """The history's columns, extracted under ``folder`` and memory-mapped (a long run's history need not
    fit in memory twice)."""
    limit = MEMBER_LIMITS["history.npz"]
    npz_path = folder / "history.npz"
    _extract_bounded(archive, _member(members, "history.npz", "the session"), npz_path, limit, "history.npz")
    columns: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(npz_path) as npz:
        inner = _members(npz, "history.npz")
        for name in COLUMNS_BY_KIND[kind]:
            what = f"history.npz's {name} column"
            info = _member(inner, f"{name}.npy", "history.npz")
            column = folder / f"{name}.npy"
            limit -= _extract_bounded(npz, info, column, limit, what)
            columns[name] = _load_npy(column, what, 1, mmap=True)
    npz_path.unlink()
    _check_history(columns)
    return columns


def _npz_array(npz: zipfile.ZipFile, inner: dict[str, zipfile.ZipInfo], name: str, ndim: int,
               budget: list[int]) -> np.ndarray:
    what = f"rollouts.npz's {name}"
    info = _member(inner, f"{name}.npy", "rollouts.npz")
    data = _read_bounded(npz, info, budget[0], what)
    budget[0] -= len(data)
    return _load_npy(io.BytesIO(data), what, ndim)


def _check_target(target: Any) -> tuple[str, tuple[float, ...]] | None:
    if target is None:
        return None
    target = _list(target, "rollouts.target")
    if len(target) != 2 or not isinstance(target[0], str) or target[0] not in TARGET_SIZES:
        raise _Invalid(f"rollouts.target must be null or [one of {', '.join(TARGET_SIZES)}, values]")
    kind, values = target
    numbers = _numbers(values, "rollouts.target's values", finite=True)
    if len(numbers) != TARGET_SIZES[kind]:
        raise _Invalid(f"rollouts.target {kind!r} needs {TARGET_SIZES[kind]} values, not {len(numbers)}")
    return kind, tuple(float(v) for v in numbers)


def _read_rollouts(archive: zipfile.ZipFile, members, entry: Any) -> Rollouts:
    entry = _table(entry, "rollouts")
    for key in ("request", "iteration", "family", "updates", "episodes", "task", "labels", "target"):
        if key not in entry:
            raise _Invalid(f"rollouts lacks {key!r}")
    updates = tuple(_count(k, "rollouts.updates' entries") for k in _list(entry["updates"], "rollouts.updates"))
    episodes = [_count(n, "rollouts.episodes' entries") for n in _list(entry["episodes"], "rollouts.episodes")]
    if not updates or len(episodes) != len(updates):
        raise _Invalid("rollouts.updates must be non-empty and rollouts.episodes as long")
    task = _table(entry["task"], "rollouts.task")
    labels = _list(entry["labels"], "rollouts.labels")
    if len(labels) != 2 or not all(isinstance(label, str) for label in labels):
        raise _Invalid("rollouts.labels must be two texts")
    target = _check_target(entry["target"])
    budget = [MEMBER_LIMITS["rollouts.npz"]]
    data = _read_bounded(archive, _member(members, "rollouts.npz", "the session"), budget[0], "rollouts.npz")
    with zipfile.ZipFile(io.BytesIO(data)) as npz:
        inner = _members(npz, "rollouts.npz")
        returns = _npz_array(npz, inner, "returns", 2, budget)
        if returns.shape[0] != len(updates):
            raise _Invalid(f"rollouts.npz's returns must have {len(updates)} rows, not {returns.shape[0]}")
        traces = tuple(tuple(_npz_array(npz, inner, f"trace_{i}_{e}", 2, budget) for e in range(count))
                       for i, count in enumerate(episodes))
        mean_names = [f"mean_trace_{i}" for i in range(len(updates)) if f"mean_trace_{i}.npy" in inner]
        if mean_names and len(mean_names) != len(updates):
            raise _Invalid("rollouts.npz holds mean-action traces for some update counts but not all")
        mean_traces = tuple(_npz_array(npz, inner, name, 2, budget) for name in mean_names)
        mean_returns = (_npz_array(npz, inner, "mean_returns", 1, budget) if "mean_returns.npy" in inner
                        else np.zeros(0))
    for trace in (*(t for episodes_ in traces for t in episodes_), *mean_traces):
        if trace.shape[1] != 2:
            raise _Invalid(f"a rollout trace must be [steps, 2], not of shape {trace.shape}")
    if len(mean_returns) < len(mean_traces):
        raise _Invalid("rollouts.npz's mean_returns is shorter than its mean-action traces")
    return Rollouts(_count(entry["request"], "rollouts.request"), _count(entry["iteration"], "rollouts.iteration"),
                    _text(entry["family"], "rollouts.family"), updates, dict(task), traces, returns,
                    (labels[0], labels[1]), target, mean_traces, mean_returns)


def _read_curve(entry: Any, index: int) -> AdaptationCurve:
    what = f"adaptation curve {index}"
    entry = _table(entry, what)
    for key in ("iteration", "steps", "meta_init", "scratch"):
        if key not in entry:
            raise _Invalid(f"{what} lacks {key!r}")
    steps = _numbers(entry["steps"], f"{what}'s steps", finite=True)
    meta_init = _numbers(entry["meta_init"], f"{what}'s meta_init")
    scratch = _numbers(entry["scratch"], f"{what}'s scratch")
    if not len(steps) == len(meta_init) == len(scratch):
        raise _Invalid(f"{what}'s steps, meta_init and scratch differ in length")
    quantity = entry.get("quantity", "loss")
    if quantity not in QUANTITIES:
        raise _Invalid(f"{what}'s quantity must be one of {', '.join(QUANTITIES)}, not {quantity!r}")
    return AdaptationCurve(_count(entry["iteration"], f"{what}'s iteration"), steps, meta_init, scratch, quantity)


def _read_marker(entry: Any, index: int) -> ChangeMarker:
    what = f"change marker {index}"
    entry = _table(entry, what)
    elapsed = entry.get("elapsed")
    if not isinstance(elapsed, int | float) or isinstance(elapsed, bool) or not 0 <= elapsed < math.inf:
        raise _Invalid(f"{what}'s elapsed must be a finite number >= 0, not {elapsed!r}")
    return ChangeMarker(_count(entry.get("iteration"), f"{what}'s iteration"), float(elapsed),
                        _text(entry.get("text"), f"{what}'s text"))


def _read(path: Path, checkpoint_out: Path, folder: Path) -> LoadedSession:
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise _Invalid("it is not a regular file")
    with zipfile.ZipFile(path) as archive:
        members = _members(archive, "the session")
        manifest = json.loads(_read_bounded(archive, _member(members, "session.json", "the session"),
                                            MEMBER_LIMITS["session.json"], "session.json"))
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise SessionError(f"{path} is not a Reptile Lab session")
        version = manifest.get("version")
        if not _is_count(version) or version not in READABLE_VERSIONS:
            raise SessionError(f"{path} is a session of version {version!r}; this Reptile Lab reads versions "
                               f"{', '.join(str(v) for v in READABLE_VERSIONS)}")
        kind = manifest.get("kind", "supervised")
        if not isinstance(kind, str) or kind not in COLUMNS_BY_KIND:
            raise SessionError(f"{path} holds a run of unknown kind {kind!r}")
        for key in ("curves", "markers"):
            if key not in manifest:
                raise _Invalid(f"session.json lacks {key!r}")
        curves = [_read_curve(c, i) for i, c in enumerate(_list(manifest["curves"], "curves"))]
        markers = [_read_marker(m, i) for i, m in enumerate(_list(manifest["markers"], "markers"))]
        config_bytes = _read_bounded(archive, _member(members, "config.toml", "the session"),
                                     MEMBER_LIMITS["config.toml"], "config.toml")
        config = _check_config(config_bytes.decode("utf-8"))
        if config.kind != kind:
            raise _Invalid(f"its config is a {config.kind} run but its history is of a {kind} run")
        checkpoint_info = _member(members, "checkpoint.safetensors", "the session")
        needed = sum(members[name].file_size for name in ("history.npz", "checkpoint.safetensors") if name in members)
        free = shutil.disk_usage(folder).free
        if needed > free:
            raise _Invalid(f"it needs {needed // MEGABYTE + 1} MB of disk space in {folder} to open; "
                           f"{free // MEGABYTE} MB are free")
        history = _read_history(archive, members, kind, folder)
        rollouts = _read_rollouts(archive, members, manifest["rollouts"]) if "rollouts" in manifest else None
        checkpoint = folder / "checkpoint.safetensors"
        _extract_bounded(archive, checkpoint_info, checkpoint, MEMBER_LIMITS["checkpoint.safetensors"],
                         "checkpoint.safetensors")
    try:
        load_checkpoint(checkpoint)
    except CheckpointError as exc:
        raise _Invalid(f"its checkpoint is not valid: {exc}") from None
    checkpoint.replace(checkpoint_out)
    return LoadedSession(config, checkpoint_out, history, curves, markers, kind, rollouts, folder)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "it is too large to read into memory"
    if isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError):
        return f"the file is damaged ({type(exc).__name__}: {exc})"
    if isinstance(exc, UnicodeDecodeError):
        return f"a text member is not UTF-8 ({exc})"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return f"{type(exc).__name__}: {exc}"


def load(path: str | Path, checkpoint_out: Path) -> LoadedSession:
    """Read and check a session; its checkpoint is extracted to ``checkpoint_out``.

    Raises ``SessionError`` (and nothing else) with what is wrong for any file that is not a valid session.
    """
    path, checkpoint_out = Path(path), Path(checkpoint_out)
    try:
        folder = Path(tempfile.mkdtemp(prefix=".session-", dir=checkpoint_out.parent))
    except OSError as exc:
        raise SessionError(f"Cannot open session {path}: {_reason(exc)}") from None
    try:
        return _read(path, checkpoint_out, folder)
    except SessionError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except _Invalid as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise SessionError(f"Cannot open session {path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a session is untrusted input: any failure reading it is a bad file
        shutil.rmtree(folder, ignore_errors=True)
        raise SessionError(f"Cannot open session {path}: {_reason(exc)}") from None
