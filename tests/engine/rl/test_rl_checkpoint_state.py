"""The meta-RL trainer refuses a checkpoint whose state does not fit it, before anything trains."""

from __future__ import annotations

import math

import pytest
import torch

from reptile_engine import checkpoint
from reptile_engine.checkpoint import CheckpointError
from reptile_engine.presets import preset
from reptile_engine.trainer import Trainer

TINY = {"meta.iterations": 4, "meta.meta_batch": 2, "rl.episodes": 1, "rl.updates": 1, "rl.hidden": 8,
        "rl.epochs": 1, "rl.minibatches": 1, "rl.horizon": 10, "evaluation.tasks": 2, "evaluation.steps": 1,
        "evaluation.every": 2, "landscape.every": 0}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    trainer = Trainer(preset("meta-rl").with_updates({**TINY, "meta.optimizer": "adam", "meta.lr": 0.01}))
    list(trainer.run(iterations=2))
    return trainer.save_checkpoint(tmp_path_factory.mktemp("rl") / "rl.safetensors")


def _learner(key, value):
    def tamper(tensors, meta):
        meta["learner"][key] = value
    return tamper


def _tensor(key, change):
    def tamper(tensors, meta):
        tensors[key] = change(tensors[key])
    return tamper


def _rng_state(tensors, meta):
    meta["learner"]["rng"]["state"]["state"] = 2**200


DAMAGE = {
    "iteration-infinite": lambda tensors, meta: meta.update(iteration=math.inf),
    "iteration-negative": lambda tensors, meta: meta.update(iteration=-5),
    "elapsed-infinite": lambda tensors, meta: meta.update(elapsed=math.inf),
    "learner-missing": lambda tensors, meta: meta.pop("learner"),
    "rng-overflow": _rng_state,
    "rng-foreign": _learner("rng", {"bit_generator": "MT19937"}),
    "rng-missing": lambda tensors, meta: meta["learner"].pop("rng"),
    "theta-int32": _tensor("theta", lambda t: t.view(torch.int32)),
    "generator-short": _tensor("learner.generator", lambda t: t[:-8]),
    "generator-missing": lambda tensors, meta: tensors.pop("learner.generator"),
    "optimizer-wrong-shape": _tensor("optimizer.state.0.exp_avg", lambda t: t[:-1]),
    "optimizer-nan": _tensor("optimizer.state.0.exp_avg_sq", lambda t: torch.full_like(t, math.nan)),
    "optimizer-wrong-key": lambda tensors, meta: tensors.update(
        {"optimizer.state.0.momentum_buffer": tensors.pop("optimizer.state.0.exp_avg")}),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_state_that_does_not_fit_is_refused_before_training(saved, tmp_path, damage):
    tensors, meta = checkpoint.load(saved)
    DAMAGE[damage](tensors, meta)
    bad = checkpoint.save(tmp_path / f"{damage}.safetensors", tensors, meta)
    with pytest.raises(CheckpointError) as info:
        Trainer.from_checkpoint(bad)
    assert str(bad) in str(info.value)


def test_the_learner_refuses_a_bad_random_state_without_changing_its_own(saved):
    trainer = Trainer.from_checkpoint(saved)
    tensors, meta = trainer.learner.state()
    for bad_tensors, bad_meta in (({**tensors, "generator": tensors["generator"][:-8]}, meta),
                                  (tensors, {"rng": {"bit_generator": "MT19937"}})):
        with pytest.raises(CheckpointError, match="there"):
            trainer.learner.load_state(bad_tensors, bad_meta, "there")
        assert torch.equal(trainer.learner.generator.get_state(), tensors["generator"])
        assert trainer.learner.rng.bit_generator.state == meta["rng"]


def test_the_undamaged_checkpoint_resumes(saved):
    resumed = Trainer.from_checkpoint(saved)
    assert resumed.iteration == 2
