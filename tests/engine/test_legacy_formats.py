"""Checkpoints of every format written before today's continue bit for bit.

``tests/data/legacy/`` holds checkpoints of three iterations each (a sine run with Adam's outer step, PPO and
TD3), written in version 2, and ``continued.safetensors`` the meta-parameters and iteration each reached after
resuming for two more ``step()``s with the code that wrote them.
"""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from reptile_engine import checkpoint
from reptile_engine.trainer import Trainer, resume_trainer

LEGACY = pathlib.Path(__file__).resolve().parents[1] / "data" / "legacy"
CONTINUED = load_file(str(LEGACY / "continued.safetensors"))
RUNS = ["sine", "ppo", "td3"]


def write(path: pathlib.Path, tensors: dict[str, torch.Tensor], header: dict) -> pathlib.Path:
    """A checkpoint file with exactly ``header``, whatever version it names."""
    save_file(tensors, str(path), metadata={"reptile_lab": json.dumps(header)})
    return path


def legacy_header(name: str) -> dict:
    with safe_open(str(LEGACY / f"{name}-v2.safetensors"), "pt") as f:
        return json.loads(f.metadata()["reptile_lab"])


def continue_twice(trainer: Trainer, name: str) -> None:
    assert trainer.iteration == 3
    trainer.step()
    trainer.step()
    assert trainer.iteration == int(CONTINUED[f"{name}.iteration"])
    assert torch.equal(trainer.theta.detach().cpu(), CONTINUED[f"{name}.theta"])


@pytest.mark.parametrize("name", RUNS)
def test_a_version_2_checkpoint_continues_bit_for_bit(name):
    continue_twice(resume_trainer(LEGACY / f"{name}-v2.safetensors", check_memory=False), name)


@pytest.mark.parametrize("name", RUNS)
def test_a_version_1_checkpoint_without_a_digest_continues_bit_for_bit(name, tmp_path):
    """Version 1 had the layout of version 2 without the tensors' SHA-256 in the header."""
    header = legacy_header(name)
    header.pop("tensors_sha256")
    tensors = load_file(str(LEGACY / f"{name}-v2.safetensors"))
    old = write(tmp_path / f"{name}-v1.safetensors", tensors, {**header, "version": 1})
    continue_twice(Trainer.from_checkpoint(old), name)


@pytest.mark.parametrize("name", RUNS)
def test_a_resumed_legacy_run_saves_in_the_current_format(name, tmp_path):
    trainer = Trainer.from_checkpoint(LEGACY / f"{name}-v2.safetensors")
    path = trainer.save_checkpoint(tmp_path / "now.safetensors")
    tensors, meta = checkpoint.load(path)
    assert meta["version"] == checkpoint.VERSION
    assert {"theta", "learner.generator"} <= set(tensors)
    assert set(meta) >= {"config", "iteration", "elapsed", "optimizer", "learner"}
    continue_twice(Trainer.from_checkpoint(path), name)


def test_a_legacy_rl_checkpoint_whose_counters_disagree_is_refused(tmp_path):
    header = legacy_header("ppo")
    header["learner"]["iteration"] = 2
    bad = write(tmp_path / "bad.safetensors", load_file(str(LEGACY / "ppo-v2.safetensors")), header)
    with pytest.raises(checkpoint.CheckpointError, match="iteration"):
        Trainer.from_checkpoint(bad)
