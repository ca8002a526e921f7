"""Checkpoints as one safetensors file: tensors in the body, counters and config as JSON in its header.

Saving writes a temporary file beside the target and renames it into place, so an interrupted save
leaves the previous checkpoint loadable; the next save to that folder removes the temporary files of
saves whose process has died. Loading parses JSON and raw tensor bytes only: nothing is ever unpickled,
so a file cannot run code. The header holds a SHA-256 of the tensors (safetensors has no checksum of its
own), so a flipped byte in the body is refused instead of loading wrong weights; version 1 files, written
before the digest, load without that check.

>>> import tempfile, torch
>>> path = Path(tempfile.mkdtemp()) / "ck.safetensors"
>>> _ = save(path, {"theta": torch.zeros(3)}, {"iteration": 7})
>>> tensors, meta = load(path)
>>> meta["iteration"], tuple(tensors["theta"].shape)
(7, (3,))
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from reptile_engine.config import ExperimentConfig
from reptile_engine.errors import ConfigError
from reptile_engine.files import RefusedFile, read_bounded

FORMAT = "reptile-lab-checkpoint"
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
MAX_BYTES = 4 << 30
"""Largest checkpoint ``load`` reads (the largest model the config allows, with Adam's moments, fits)."""
_METADATA_KEY = "reptile_lab"
_DIGEST_KEY = "tensors_sha256"
_NON_NEGATIVE_STATE = frozenset({"step", "exp_avg_sq", "max_exp_avg_sq"})


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the trainer."""


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-serialisable ``meta`` to ``path`` atomically."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = json.dumps({**meta, "format": FORMAT, "version": VERSION, _DIGEST_KEY: tensors_digest(tensors)})
    payload = save_tensors(tensors, metadata={_METADATA_KEY: header})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise CheckpointError(f"cannot write checkpoint {path}: {exc.strerror or exc}") from None
    return path


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the ``.NAME.PID.tmp`` files in ``folder`` whose writing process no longer exists."""
    for tmp in folder.glob(".*.tmp"):
        pid = tmp.name.removesuffix(".tmp").rpartition(".")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_exists(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _process_exists(pid: int) -> bool:
    if os.name != "posix":
        return True  # no signal-free probe here: keep the file rather than guess
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def load(path: str | Path, *, max_bytes: int = MAX_BYTES) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save``; raise ``CheckpointError`` for anything else."""
    try:
        data = read_bounded(path, max_bytes)
    except RefusedFile as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    try:
        header_size = int.from_bytes(data[:8], "little")
        if len(data) < 8 or header_size > len(data) - 8:
            raise ValueError("truncated header")
        header = json.loads(data[8:8 + header_size])
        meta = json.loads(header["__metadata__"][_METADATA_KEY])
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
        tensors = load_tensors(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure (deep JSON's RecursionError too) is "not a checkpoint"
        raise CheckpointError(f"{path} is not a Reptile Lab checkpoint ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Reptile Lab checkpoint (format {meta.get('format')!r})")
    version = meta.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise CheckpointError(f"{path} has checkpoint version {version!r}; this build reads "
                              + " and ".join(map(str, READABLE_VERSIONS)))
    if version >= 2 and meta.get(_DIGEST_KEY) != tensors_digest(tensors):
        raise CheckpointError(f"{path} is corrupt: its tensors do not match the SHA-256 stored in its header")
    return tensors, meta


class TrainerState(NamedTuple):
    """A checked checkpoint, ready for a trainer to apply."""

    theta: torch.Tensor
    optimizer: dict[str, Any]
    learner_tensors: dict[str, torch.Tensor]
    learner_meta: dict[str, Any]
    iteration: int
    elapsed: float


def pack(theta: torch.Tensor, optimizer: torch.optim.Optimizer,
         learner_state: tuple[dict[str, torch.Tensor], dict[str, Any]], meta: dict[str, Any]
         ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A trainer's state in the current layout (``upgrade``); ``meta`` holds the config and the counters."""
    learner_tensors, learner_meta = learner_state
    optimizer_tensors, optimizer_meta = split_state(optimizer.state_dict())
    tensors = {"theta": theta.detach().cpu(), **{f"optimizer.{k}": v.cpu() for k, v in optimizer_tensors.items()},
               **{f"learner.{k}": v.cpu() for k, v in learner_tensors.items()}}
    return tensors, {**meta, "optimizer": optimizer_meta, "learner": learner_meta}


def unpack(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], theta_like: torch.Tensor,
           optimizer: torch.optim.Optimizer, source: str) -> TrainerState:
    """What ``pack`` wrote (or an older version: ``upgrade``), checked against the trainer's theta and optimizer;
    a ``CheckpointError`` naming ``source`` if any of it does not fit. The learner checks its own part."""
    tensors, meta = upgrade(tensors, meta, source)
    theta = check_theta(tensors.get("theta"), theta_like, source)
    iteration, elapsed = counter(meta, "iteration", source), seconds(meta, "elapsed", source)
    learner_meta = meta.get("learner")
    if not isinstance(learner_meta, dict):
        raise CheckpointError(f"{source}: the learner's state is missing")
    try:
        optimizer_state = join_state(_under("optimizer.", tensors), meta["optimizer"])
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{source}: incomplete or inconsistent state ({exc})") from None
    check_optimizer_state(optimizer, optimizer_state, source)
    return TrainerState(theta, optimizer_state, _under("learner.", tensors), learner_meta, iteration, elapsed)


def _under(prefix: str, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name.removeprefix(prefix): tensor for name, tensor in tensors.items() if name.startswith(prefix)}


def stored_config(meta: Mapping[str, Any], path: str | Path) -> ExperimentConfig:
    """The config a checkpoint's ``meta`` holds; ``CheckpointError`` naming ``path`` if it is invalid."""
    try:
        return ExperimentConfig.from_dict(meta["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: the stored config is invalid ({exc})") from None


def upgrade(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], source: str
            ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A checkpoint of any readable version in the current layout: tensors ``theta``, ``optimizer.*`` and
    ``learner.*``, meta ``{config, iteration, elapsed, optimizer, learner}``.

    Versions 1 and 2 of a task distribution's run stored ``theta``, ``rng.generator`` and ``optimizer.*``; those
    of a meta-RL run kept everything under ``learner.``, with the outer optimizer's meta, the numpy generator
    and a second iteration counter in ``meta["learner"]``.
    """
    tensors, meta = dict(tensors), dict(meta)
    if meta.get("version", VERSION) >= 3:
        return tensors, meta
    if "rng.generator" in tensors:
        tensors["learner.generator"] = tensors.pop("rng.generator")
        return tensors, {**meta, "learner": {}}
    learner = meta.get("learner")
    if not isinstance(learner, dict):
        raise CheckpointError(f"{source}: the learner's state is missing")
    if counter(learner, "iteration", source) != counter(meta, "iteration", source):
        raise CheckpointError(f"{source}: the learner's iteration does not match the trainer's")
    renamed = {name.removeprefix("learner.") if name.startswith(("learner.theta", "learner.optimizer.")) else name:
               tensor for name, tensor in tensors.items()}
    return renamed, {**meta, "optimizer": learner.get("optimizer"), "learner": {"rng": learner.get("rng")}}


def counter(meta: Mapping[str, Any], key: str, source: str) -> int:
    """``meta[key]`` as a count: a non-negative integer, or a ``CheckpointError`` naming ``source``."""
    value = meta.get(key)
    if type(value) is not int or value < 0:
        raise CheckpointError(f"{source}: {key} = {value!r} must be a non-negative integer")
    return value


def seconds(meta: Mapping[str, Any], key: str, source: str) -> float:
    """``meta[key]`` as a duration: a finite non-negative number, or a ``CheckpointError`` naming ``source``."""
    value = meta.get(key)
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise CheckpointError(f"{source}: {key} = {value!r} must be a finite non-negative number")
    return float(value)


def check_like(tensor: Any, like: torch.Tensor, what: str, source: str) -> torch.Tensor:
    """``tensor`` if it has ``like``'s shape and dtype; a ``CheckpointError`` naming ``what`` otherwise."""
    if not isinstance(tensor, torch.Tensor):
        raise CheckpointError(f"{source}: {what} is missing")
    if tensor.shape != like.shape or tensor.dtype != like.dtype:
        raise CheckpointError(f"{source}: {what} is {tensor.dtype} {tuple(tensor.shape)}, expected "
                              f"{like.dtype} {tuple(like.shape)}")
    return tensor


def check_theta(theta: torch.Tensor | None, like: torch.Tensor, source: str) -> torch.Tensor:
    """A checkpoint's meta-parameters, refused unless they have ``like``'s shape and dtype (raw bytes of another
    dtype would be reinterpreted) and are finite."""
    if theta is None or theta.shape != like.shape:
        raise CheckpointError(f"{source}: theta has shape {None if theta is None else tuple(theta.shape)}, "
                              f"the model needs {tuple(like.shape)}")
    if theta.dtype != like.dtype:
        raise CheckpointError(f"{source}: theta is {theta.dtype}, the model needs {like.dtype}")
    if not torch.isfinite(theta).all():
        raise CheckpointError(f"{source}: theta holds non-finite values")
    return theta


def check_optimizer_state(optimizer: torch.optim.Optimizer, state: dict[str, Any], source: str) -> None:
    """Refuse an optimizer ``state_dict`` that ``optimizer`` could load but not step with.

    The reference is a copy of ``optimizer`` (same type and hyperparameters, zero parameters of the same
    shapes) after one step on zero gradients: every stored parameter's state must have exactly its keys, each
    tensor its shape and dtype and finite values (moments and step counts non-negative); an empty state is a
    run saved before its first step. The parameter groups must hold the numbers the optimizer needs, finite.
    """
    reference_groups = optimizer.state_dict()["param_groups"]
    groups = state.get("param_groups")
    if not isinstance(groups, list) or len(groups) != len(reference_groups):
        raise CheckpointError(f"{source}: the optimizer state has {_count(groups)} parameter groups, "
                              f"{type(optimizer).__name__} needs {len(reference_groups)}")
    for group, reference in zip(groups, reference_groups, strict=True):
        _check_group(group, reference, type(optimizer).__name__, source)
    expected = _stepped_state(optimizer)
    stored = state.get("state")
    if not isinstance(stored, dict) or not set(stored) <= set(expected):
        raise CheckpointError(f"{source}: the optimizer state names parameters "
                              f"{sorted(stored) if isinstance(stored, dict) else stored!r}, expected "
                              f"{sorted(expected)}")
    for index, entries in stored.items():
        if not isinstance(entries, dict) or set(entries) != set(expected[index]):
            raise CheckpointError(f"{source}: {type(optimizer).__name__} state has keys "
                                  f"{sorted(entries) if isinstance(entries, dict) else entries!r}, "
                                  f"expected {sorted(expected[index])}")
        for key, value in entries.items():
            what = f"optimizer state {key!r}"
            reference = expected[index][key]
            if isinstance(reference, torch.Tensor):
                check_like(value, reference, what, source)
                finite = bool(torch.isfinite(value).all()) if value.is_floating_point() else True
                negative = bool((value < 0).any()) if key in _NON_NEGATIVE_STATE else False
            elif type(value) in (int, float) and type(reference) in (int, float):
                finite, negative = math.isfinite(value), key in _NON_NEGATIVE_STATE and value < 0
            else:
                raise CheckpointError(f"{source}: {what} is {type(value).__name__}, expected "
                                      f"{type(reference).__name__}")
            if not finite or negative:
                raise CheckpointError(f"{source}: {what} holds {'negative' if finite else 'non-finite'} values")


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, list) else repr(value)


def _check_group(group: Any, reference: dict[str, Any], optimizer_name: str, source: str) -> None:
    if not isinstance(group, dict):
        raise CheckpointError(f"{source}: an optimizer parameter group is {type(group).__name__}, not a table")
    unknown = set(group) - set(reference)
    if unknown:
        raise CheckpointError(f"{source}: the stored optimizer state is not {optimizer_name}'s: it has "
                              f"hyperparameters {sorted(unknown)} that {optimizer_name} does not take")
    if group.get("params") != reference["params"]:
        raise CheckpointError(f"{source}: the optimizer's parameter group holds {group.get('params')!r}, "
                              f"expected {reference['params']}")
    for key, expected in reference.items():
        numbers = expected if isinstance(expected, (list, tuple)) else [expected]
        if key == "params" or not all(type(n) in (int, float) for n in numbers):
            continue  # flags (bools, None) that torch fills in itself when an older file lacks them
        value = group.get(key)
        values = value if isinstance(value, (list, tuple)) else [value]
        if len(values) != len(numbers) or not all(type(v) in (int, float) and math.isfinite(v) for v in values):
            raise CheckpointError(f"{source}: optimizer hyperparameter {key} = {value!r} must be "
                                  f"{'finite numbers' if len(numbers) > 1 else 'a finite number'} like {expected!r}")


def _stepped_state(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    """The per-parameter state a copy of ``optimizer`` has after one step on zero gradients."""
    groups = []
    for group in optimizer.param_groups:
        params = [torch.nn.Parameter(torch.zeros_like(p)) for p in group["params"]]
        for p in params:
            p.grad = torch.zeros_like(p)
        groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params})
    probe = type(optimizer)(groups)
    probe.step()
    return probe.state_dict()["state"]


def split_state(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer ``state_dict`` into named tensors and JSON-serialisable rest."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def join_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    """Inverse of ``split_state``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = value
    for index, entries in meta["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}
