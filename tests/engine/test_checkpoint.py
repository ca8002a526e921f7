"""Checkpoints: exact round trips and resumes, atomic saves, and refusal of anything that is not ours."""

from __future__ import annotations

import json
import math
import os
import pathlib
import pickle
import random
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from reptile_engine import checkpoint
from reptile_engine.checkpoint import CheckpointError
from reptile_engine.events import (
    AdaptationCurve,
    CheckpointSaved,
    CommandRejected,
    Finished,
    IterationMetrics,
)
from reptile_engine.trainer import Trainer


def trained(config, iterations: int) -> Trainer:
    trainer = Trainer(config)
    for _ in range(iterations):
        assert isinstance(trainer.step(), IterationMetrics)
    return trainer


@pytest.fixture
def saved(make_config, tmp_path) -> tuple[Trainer, pathlib.Path]:
    trainer = trained(make_config({"meta.optimizer": "adam", "meta.lr": 0.01}), 3)
    path = tmp_path / "ck.safetensors"
    assert trainer.save_checkpoint(path) == path
    return trainer, path


def test_round_trip(saved):
    trainer, path = saved
    loaded = Trainer.from_checkpoint(path)
    assert torch.equal(loaded.theta.detach(), trainer.theta.detach())
    assert loaded.iteration == trainer.iteration == 3
    assert loaded.config == trainer.config
    assert loaded.elapsed == trainer.elapsed
    assert torch.equal(loaded.learner.generator.get_state(), trainer.learner.generator.get_state())
    state_a, state_b = trainer.optimizer.state_dict(), loaded.optimizer.state_dict()
    assert state_a["state"].keys() == state_b["state"].keys() == {0}
    for key, value in state_a["state"][0].items():
        assert torch.equal(state_b["state"][0][key], value), key
    assert state_b["param_groups"][0]["lr"] == state_a["param_groups"][0]["lr"]


def test_checkpoint_is_plain_safetensors_with_our_header(saved):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    assert meta["format"] == checkpoint.FORMAT and meta["version"] == checkpoint.VERSION
    assert meta["iteration"] == 3
    assert set(tensors) >= {"theta", "learner.generator"}
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_is_bit_exact(make_config, metrics_of, tmp_path, optimizer):
    n, m = 6, 7
    cfg = make_config(
        {
            "meta.iterations": n + m,
            "meta.optimizer": optimizer,
            "inner.batch_size": 4,
            "meta.lr": 0.01 if optimizer == "adam" else 1.0,
            "evaluation.every": 5,
        }
    )
    straight = Trainer(cfg)
    straight_events = list(straight.run())

    first = Trainer(cfg)
    first_events = list(first.run(iterations=n))
    assert first_events[-1] == Finished(n, "completed")
    path = tmp_path / "ck.safetensors"
    first.save_checkpoint(path)
    resumed = Trainer.from_checkpoint(path)
    resumed_events = list(resumed.run())

    assert metrics_of(first_events) + metrics_of(resumed_events) == metrics_of(straight_events)
    assert len(metrics_of(straight_events)) == n + m
    assert torch.equal(resumed.theta.detach(), straight.theta.detach())
    assert torch.equal(resumed.learner.generator.get_state(), straight.learner.generator.get_state())
    final_a = [e for e in straight_events if isinstance(e, AdaptationCurve)][-1]
    final_b = [e for e in resumed_events if isinstance(e, AdaptationCurve)][-1]
    assert final_a.iteration == final_b.iteration == n + m
    assert (final_a.meta_init == final_b.meta_init).all()


@pytest.mark.parametrize("fail_in", ["fsync", "replace"])
def test_interrupted_save_keeps_the_previous_checkpoint(make_config, tmp_path, monkeypatch, fail_in):
    trainer = trained(make_config(), 2)
    path = tmp_path / "ck.safetensors"
    trainer.save_checkpoint(path)
    good_theta = trainer.theta.detach().clone()
    good_bytes = path.read_bytes()
    trainer.step()
    written = []

    def fail(*args, **kwargs):
        written.append(args)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint.os, fail_in, fail)
    with pytest.raises(CheckpointError):
        trainer.save_checkpoint(path)
    monkeypatch.undo()
    assert written, f"os.{fail_in} was never reached"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.safetensors"], (
        "a temporary file was left behind"
    )
    assert path.read_bytes() == good_bytes
    loaded = Trainer.from_checkpoint(path)
    assert loaded.iteration == 2
    assert torch.equal(loaded.theta.detach(), good_theta)


@pytest.fixture
def valid_bytes(saved) -> bytes:
    return saved[1].read_bytes()


def corrupt_files(valid: bytes) -> dict[str, bytes]:
    rng = random.Random(0)
    return {
        "empty": b"",
        "four-bytes": valid[:4],
        "header-only": valid[:8],
        "half": valid[: len(valid) // 2],
        "missing-last-byte": valid[:-1],
        "random": bytes(rng.randrange(256) for _ in range(4096)),
        "random-small-header": (64).to_bytes(8, "little") + bytes(rng.randrange(256) for _ in range(256)),
        "json-garbage": (12).to_bytes(8, "little") + b'{"a": "b"}  ',
    }


@pytest.mark.parametrize("name", list(corrupt_files(b"x" * 100)))
def test_corrupt_files_raise_checkpoint_error(valid_bytes, tmp_path, name):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(corrupt_files(valid_bytes)[name])
    with pytest.raises(CheckpointError):
        checkpoint.load(path)
    with pytest.raises(CheckpointError):
        Trainer.from_checkpoint(path)


def test_missing_file_raises_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError):
        Trainer.from_checkpoint(tmp_path / "nope.safetensors")


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        {"other": "x"},
        {"reptile_lab": "not json"},
        {"reptile_lab": json.dumps({"format": "something-else", "version": 1})},
        {"reptile_lab": json.dumps({"format": checkpoint.FORMAT, "version": 99})},
    ],
    ids=["no-metadata", "foreign-metadata", "bad-json", "wrong-format", "wrong-version"],
)
def test_safetensors_without_our_metadata_raise_checkpoint_error(tmp_path, metadata):
    path = tmp_path / "foreign.safetensors"
    save_file({"theta": torch.zeros(3)}, str(path), metadata=metadata)
    with pytest.raises(CheckpointError):
        Trainer.from_checkpoint(path)


class Exploit:
    """Unpickling this touches ``marker``: a stand-in for arbitrary code execution."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_payload_is_never_executed(tmp_path, writer):
    # The payload is live: unpickling it does run code.
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Exploit(control)))
    assert control.exists()

    marker = tmp_path / "pwned"
    path = tmp_path / "ck.safetensors"
    if writer == "pickle":
        with open(path, "wb") as f:
            pickle.dump({"theta": Exploit(marker)}, f)
    else:
        torch.save({"theta": Exploit(marker)}, path)
    with pytest.raises(CheckpointError):
        Trainer.from_checkpoint(path)
    with pytest.raises(CheckpointError):
        checkpoint.load(path)
    assert not marker.exists()


def test_theta_of_the_wrong_shape(saved, tmp_path):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    for key in ("format", "version"):
        meta.pop(key)
    tensors["theta"] = torch.zeros(tensors["theta"].numel() + 1)
    bad = tmp_path / "wrong-shape.safetensors"
    checkpoint.save(bad, tensors, meta)
    with pytest.raises(CheckpointError, match="shape"):
        Trainer.from_checkpoint(bad)


def test_checkpoint_of_another_model_is_rejected(saved, make_config):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    other = Trainer(make_config({"model.hidden": 8}))
    theta_before = other.theta.detach().clone()
    with pytest.raises(CheckpointError):
        other.load_state(tensors, meta)
    assert torch.equal(other.theta.detach(), theta_before)
    assert other.iteration == 0


@pytest.mark.parametrize(
    "damage", ["nan-theta", "no-generator", "no-optimizer", "bad-iteration", "bad-config"]
)
def test_inconsistent_state_raises_checkpoint_error(saved, tmp_path, damage):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    for key in ("format", "version"):
        meta.pop(key)
    if damage == "nan-theta":
        tensors["theta"] = torch.full_like(tensors["theta"], float("nan"))
    elif damage == "no-generator":
        del tensors["learner.generator"]
    elif damage == "no-optimizer":
        del meta["optimizer"]
    elif damage == "bad-iteration":
        meta["iteration"] = "three"
    else:
        meta["config"]["model"]["hidden"] = -1
    bad = tmp_path / f"{damage}.safetensors"
    checkpoint.save(bad, tensors, meta)
    with pytest.raises(CheckpointError):
        Trainer.from_checkpoint(bad)


def test_save_into_a_directory_path_raises_checkpoint_error(make_config, tmp_path):
    target = tmp_path / "adir"
    target.mkdir()
    with pytest.raises(CheckpointError):
        Trainer(make_config()).save_checkpoint(target)
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory_raises_checkpoint_error(make_config, tmp_path):
    target = tmp_path / "locked"
    target.mkdir()
    target.chmod(0o500)
    try:
        with pytest.raises(CheckpointError):
            Trainer(make_config()).save_checkpoint(target / "ck.safetensors")
    finally:
        target.chmod(0o700)




def test_path_under_a_regular_file_raises_checkpoint_error(make_config, tmp_path):
    (tmp_path / "afile").write_text("a file, not a directory")
    with pytest.raises(CheckpointError):
        Trainer(make_config()).save_checkpoint(tmp_path / "afile" / "ck.safetensors")


def test_requested_checkpoint_under_a_regular_file_is_rejected_not_fatal(make_config, tmp_path):
    (tmp_path / "afile").write_text("a file, not a directory")
    trainer = Trainer(make_config({"meta.iterations": 3}))
    events = []
    for event in trainer.run():
        events.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 1:
            trainer.request_checkpoint(tmp_path / "afile" / "ck.safetensors")
    assert [e.field for e in events if isinstance(e, CommandRejected)] == ["checkpoint"]
    assert events[-1] == Finished(3, "completed")


def test_automatic_checkpoints(make_config, tmp_path):
    path = tmp_path / "auto.safetensors"
    trainer = Trainer(make_config({"meta.iterations": 12, "checkpoint_every": 5}), checkpoint_path=path)
    events = list(trainer.run())
    saves = [e for e in events if isinstance(e, CheckpointSaved)]
    assert [(e.iteration, e.path) for e in saves] == [(5, str(path)), (10, str(path))]
    assert Trainer.from_checkpoint(path).iteration == 10


def test_requested_checkpoint_is_saved_between_iterations(make_config, tmp_path):
    path = tmp_path / "asked.safetensors"
    trainer = Trainer(make_config({"meta.iterations": 4}))
    theta_at_2 = None
    for event in trainer.run():
        if isinstance(event, IterationMetrics) and event.iteration == 2:
            trainer.request_checkpoint(path)
            theta_at_2 = trainer.theta.detach().clone()
    loaded = Trainer.from_checkpoint(path)
    assert loaded.iteration == 2
    assert torch.equal(loaded.theta.detach(), theta_at_2)


# --- Known bugs: crafted headers escape as exceptions other than CheckpointError. ---


@pytest.mark.parametrize("payload", ["[1, 2]", "5", "null"])
def test_metadata_that_is_not_a_json_object(tmp_path, payload):
    path = tmp_path / "odd.safetensors"
    save_file({"theta": torch.zeros(3)}, str(path), metadata={"reptile_lab": payload})
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


def test_optimizer_scalars_that_are_not_a_table(saved, tmp_path):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    for key in ("format", "version"):
        meta.pop(key)
    meta["optimizer"]["scalars"] = []
    bad = tmp_path / "odd.safetensors"
    checkpoint.save(bad, tensors, meta)
    with pytest.raises(CheckpointError):
        Trainer.from_checkpoint(bad)


# --- Integrity: a digest of the tensors, bounded reads, stale temporaries. ---


def test_a_flipped_byte_in_the_tensor_body_is_refused(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01  # inside the last tensor's bytes
    bad = tmp_path / "flipped.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        checkpoint.load(bad)


def test_a_version_2_checkpoint_without_its_digest_is_refused(saved, tmp_path):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    del meta["tensors_sha256"]
    stripped = tmp_path / "stripped.safetensors"
    save_file(tensors, str(stripped), metadata={"reptile_lab": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="SHA-256"):
        checkpoint.load(stripped)


def test_deeply_nested_metadata_is_refused(tmp_path):
    path = tmp_path / "deep.safetensors"
    deep = '{"format": "reptile-lab-checkpoint", "version": 2, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    save_file({"theta": torch.zeros(3)}, str(path), metadata={"reptile_lab": deep})
    with pytest.raises(CheckpointError):
        checkpoint.load(path)


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "ck.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        checkpoint.load(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        Trainer.from_checkpoint(fifo)


@pytest.mark.timeout(20)
@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_device_is_refused_unread():
    with pytest.raises(CheckpointError, match="not a regular file"):
        checkpoint.load("/dev/zero")


def test_a_file_over_the_size_limit_is_refused_unread(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="limit"):
        checkpoint.load(path, max_bytes=path.stat().st_size - 1)
    assert checkpoint.load(path, max_bytes=path.stat().st_size)[1]["iteration"] == 3


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_save_removes_temporaries_that_killed_saves_left(make_config, tmp_path):
    dead = _dead_pid()
    stale = [tmp_path / f".ck.safetensors.{dead}.tmp", tmp_path / f".other.safetensors.{dead}.tmp"]
    live = [tmp_path / f".ck.safetensors.{os.getppid()}.tmp", tmp_path / "notes.tmp"]
    for path in stale + live:
        path.write_bytes(b"partial")
    Trainer(make_config()).save_checkpoint(tmp_path / "ck.safetensors")
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in live), "a live writer's file, or one not ours, was removed"


# --- The state must fit the trainer before anything trains. ---


def _tamper_generator(tensors, meta):
    tensors["learner.generator"] = tensors["learner.generator"][:-1]


def _set(key, value):
    def tamper(tensors, meta):
        meta[key] = value
    return tamper


def _optimizer(change):
    def tamper(tensors, meta):
        change(tensors, meta["optimizer"])
    return tamper


STATE_DAMAGE = {
    "iteration-infinite": _set("iteration", math.inf),
    "iteration-negative": _set("iteration", -5),
    "iteration-fractional": _set("iteration", 2.5),
    "iteration-bool": _set("iteration", True),
    "elapsed-nan": _set("elapsed", math.nan),
    "elapsed-negative": _set("elapsed", -1.0),
    "theta-int32": lambda tensors, meta: tensors.update(theta=tensors["theta"].view(torch.int32)),
    "theta-float64": lambda tensors, meta: tensors.update(theta=tensors["theta"].double()),
    "generator-short": _tamper_generator,
    "generator-float": lambda tensors, meta: tensors.update(
        {"learner.generator": tensors["learner.generator"].float()}),
    "optimizer-wrong-key": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.exp_avgx": tensors.pop("optimizer.state.0.exp_avg")}),
    "optimizer-missing-key": lambda tensors, meta: tensors.pop("optimizer.state.0.exp_avg_sq"),
    "optimizer-wrong-shape": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.exp_avg": tensors["optimizer.state.0.exp_avg"][:-1]}),
    "optimizer-wrong-dtype": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.exp_avg": tensors["optimizer.state.0.exp_avg"].double()}),
    "optimizer-nan-moment": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.exp_avg": torch.full_like(tensors["optimizer.state.0.exp_avg"], math.nan)}),
    "optimizer-negative-second-moment": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.exp_avg_sq": -torch.ones_like(tensors["optimizer.state.0.exp_avg_sq"])}),
    "optimizer-negative-step": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.step": torch.tensor(-3.0)}),
    "optimizer-unknown-parameter": lambda tensors, meta: tensors.update(
        {"optimizer.state.1.exp_avg": tensors["optimizer.state.0.exp_avg"].clone()}),
    "optimizer-lr-string": _optimizer(lambda tensors, opt: opt["param_groups"][0].update(lr="fast")),
    "optimizer-eps-nan": _optimizer(lambda tensors, opt: opt["param_groups"][0].update(eps=math.nan)),
    "optimizer-betas-short": _optimizer(lambda tensors, opt: opt["param_groups"][0].update(betas=[0.9])),
    "optimizer-unknown-hyperparameter": _optimizer(lambda tensors, opt: opt["param_groups"][0].update(momentum=0.9)),
    "optimizer-two-groups": _optimizer(lambda tensors, opt: opt["param_groups"].append(opt["param_groups"][0])),
    "optimizer-foreign-params": _optimizer(lambda tensors, opt: opt["param_groups"][0].update(params=[0, 1])),
}


@pytest.mark.parametrize("damage", list(STATE_DAMAGE))
def test_state_that_does_not_fit_is_refused_before_training(saved, tmp_path, damage):
    _, path = saved
    tensors, meta = checkpoint.load(path)
    STATE_DAMAGE[damage](tensors, meta)
    bad = tmp_path / f"{damage}.safetensors"
    checkpoint.save(bad, tensors, meta)
    with pytest.raises(CheckpointError) as info:
        Trainer.from_checkpoint(bad)
    assert str(bad) in str(info.value)


def test_adam_state_is_refused_by_an_sgd_trainer(saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="not SGD's"):
        Trainer.from_checkpoint(path, overrides={"meta.optimizer": "sgd"})


def test_a_checkpoint_saved_before_the_first_step_loads(make_config, tmp_path):
    path = Trainer(make_config({"meta.optimizer": "adam", "meta.lr": 0.01})).save_checkpoint(tmp_path / "ck.st")
    resumed = Trainer.from_checkpoint(path)
    assert resumed.iteration == 0 and isinstance(resumed.step(), IterationMetrics)
