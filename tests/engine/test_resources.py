"""Memory estimates refuse configs that cannot fit before anything is allocated."""

from __future__ import annotations

import time

import pytest

from reptile_engine import resources
from reptile_engine.config import ConfigError
from reptile_engine.presets import PRESETS, preset
from reptile_engine.resources import InsufficientMemory, check_memory, estimate_memory
from reptile_engine.trainer import open_trainer, resume_trainer

TOO_LARGE = [
    ({"rl.episodes": 1000, "meta.meta_batch": 4096, "rl.horizon": 100_000}, ("meta.meta_batch", "rl.episodes")),
    ({"rl.hidden": 1024, "rl.depth": 8, "meta.meta_batch": 4096}, ("meta.meta_batch", "rl.hidden", "rl.depth")),
]


@pytest.mark.parametrize(("changes", "fields"), TOO_LARGE)
def test_configs_that_cannot_fit_are_refused_at_once_naming_the_fields(changes, fields):
    config = preset("meta-rl").with_updates(changes)
    started = time.perf_counter()
    with pytest.raises(InsufficientMemory) as error:
        open_trainer(config)
    assert time.perf_counter() - started < 1.0, "refused without allocating"
    assert isinstance(error.value, ConfigError) and error.value.field == "meta.meta_batch"
    message = str(error.value)
    assert all(f"{name} = " in message for name in fields) and "GiB" in message and "available" in message


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_fits(name):
    estimate = check_memory(preset(name))
    assert 0 < estimate.total < 1 << 30


def test_check_memory_false_starts_anyway(monkeypatch):
    monkeypatch.setattr(resources, "available_host_memory", lambda: 1 << 20)
    config = preset("quick")
    with pytest.raises(InsufficientMemory):
        open_trainer(config)
    assert open_trainer(config, check_memory=False).iteration == 0


def test_resume_checks_the_resumed_config(tmp_path, monkeypatch):
    path = open_trainer(preset("quick")).save_checkpoint(tmp_path / "checkpoint.safetensors")
    with pytest.raises(InsufficientMemory) as error:
        resume_trainer(path, overrides={"meta.meta_batch": 4096, "model.hidden": 4096, "model.depth": 16})
    assert "model.hidden = 4096" in str(error.value)
    monkeypatch.setattr(resources, "available_host_memory", lambda: 1 << 20)
    assert resume_trainer(path, check_memory=False).iteration == 0


def test_estimates_grow_with_the_fields_they_name():
    base = preset("meta-rl")
    small, large = estimate_memory(base), estimate_memory(base.with_updates({"rl.episodes": 200}))
    rollout = {part.label: part.bytes for part in small.parts}["rollout buffers"]
    assert {part.label: part.bytes for part in large.parts}["rollout buffers"] == pytest.approx(10 * rollout)
    td3 = estimate_memory(preset("meta-rl").with_updates({"rl.algorithm": "td3"}))
    assert "replay buffers" in {part.label for part in td3.parts}
