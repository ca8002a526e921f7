"""Checkpoints as one safetensors file: tensors in the body, counters and config as JSON in its header.

Saving writes a temporary file beside the target and renames it into place, so an interrupted save
leaves the previous checkpoint loadable. Loading parses JSON and raw tensor bytes only: nothing is
ever unpickled, so a file cannot run code.

>>> import tempfile, torch
>>> path = Path(tempfile.mkdtemp()) / "ck.safetensors"
>>> _ = save(path, {"theta": torch.zeros(3)}, {"iteration": 7})
>>> tensors, meta = load(path)
>>> meta["iteration"], tuple(tensors["theta"].shape)
(7, (3,))
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

FORMAT = "reptile-lab-checkpoint"
VERSION = 1
_METADATA_KEY = "reptile_lab"


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written, read, or does not fit the trainer."""


def save(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``tensors`` and JSON-serialisable ``meta`` to ``path`` atomically."""
    path = Path(path)
    header = json.dumps({"format": FORMAT, "version": VERSION, **meta})
    payload = save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                           metadata={_METADATA_KEY: header})
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
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


def load(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a checkpoint written by ``save``; raise ``CheckpointError`` for anything else."""
    try:
        data = Path(path).read_bytes()
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
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a checkpoint"
        raise CheckpointError(f"{path} is not a Reptile Lab checkpoint ({type(exc).__name__}: {exc})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Reptile Lab checkpoint (format {meta.get('format')!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {meta.get('version')!r}; this build reads {VERSION}")
    return tensors, meta


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
