"""Session files round-trip either kind of run, and sessions written before meta-RL still open."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from gui_testlib import make_filled_rl_store, make_filled_store

from reptile_engine import checkpoint
from reptile_engine.presets import preset
from reptile_gui import session
from reptile_gui.store import METRIC_COLUMNS, RL_METRIC_COLUMNS, RunStore


@pytest.fixture
def state(tmp_path):
    """A checkpoint file: a session checks that its checkpoint reads, not what it holds."""
    return checkpoint.save(tmp_path / "state.safetensors", {"theta": torch.zeros(3)}, {"iteration": 0})


def round_trip(tmp_path, config, store, state) -> RunStore:
    path = session.save(tmp_path / "run.reptile", config, state, store)
    loaded = session.load(path, tmp_path / "out.safetensors")
    assert loaded.config == config
    restored = RunStore()
    session.restore_store(restored, loaded)
    return restored


def test_meta_rl_session_round_trip(tmp_path, state):
    store = make_filled_rl_store()
    config = preset("meta-rl")
    restored = round_trip(tmp_path, config, store, state)
    assert restored.kind == "rl" and restored.metric_columns == RL_METRIC_COLUMNS
    for name in RL_METRIC_COLUMNS:
        np.testing.assert_array_equal(restored.column(name), store.column(name))
    assert [c.quantity for c in restored.curves] == ["return"] * len(store.curves)
    for got, want in zip(restored.curves, store.curves, strict=True):
        np.testing.assert_array_equal(got.meta_init, want.meta_init)
        assert got.iteration == want.iteration
    assert [m.text for m in restored.markers] == [m.text for m in store.markers]
    got, want = restored.rollouts, store.rollouts
    assert (got.updates, got.labels, got.target, got.family, got.iteration) == \
        (want.updates, want.labels, want.target, want.family, want.iteration)
    assert got.task == want.task
    np.testing.assert_array_equal(got.returns, want.returns)
    for got_episodes, want_episodes in zip(got.traces, want.traces, strict=True):
        for got_trace, want_trace in zip(got_episodes, want_episodes, strict=True):
            np.testing.assert_array_equal(got_trace, want_trace)
    np.testing.assert_array_equal(got.mean_returns, want.mean_returns)
    assert len(got.mean_traces) == len(want.mean_traces) == len(want.updates)
    for got_trace, want_trace in zip(got.mean_traces, want.mean_traces, strict=True):
        np.testing.assert_array_equal(got_trace, want_trace)


def test_supervised_session_round_trip(tmp_path, state):
    store = make_filled_store()
    restored = round_trip(tmp_path, preset("default"), store, state)
    assert restored.kind == "supervised" and restored.rollouts is None
    for name in METRIC_COLUMNS:
        np.testing.assert_array_equal(restored.column(name), store.column(name))
    assert [c.quantity for c in restored.curves] == ["loss"] * len(store.curves)
    with zipfile.ZipFile(tmp_path / "run.reptile") as archive:
        assert "rollouts.npz" not in archive.namelist()


def test_version_1_sessions_still_open(tmp_path, state):
    """The layout before meta-RL: no kind, curves without a quantity, the supervised columns."""
    store = make_filled_store()
    history = io.BytesIO()
    np.savez(history, **{name: store.column(name) for name in METRIC_COLUMNS})
    manifest = {"format": session.FORMAT, "version": 1,
                "curves": [{"iteration": c.iteration, "steps": c.steps.tolist(), "meta_init": c.meta_init.tolist(),
                            "scratch": c.scratch.tolist()} for c in store.curves],
                "markers": [{"iteration": m.iteration, "elapsed": m.elapsed, "text": m.text} for m in store.markers]}
    path = tmp_path / "old.reptile"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("session.json", json.dumps(manifest))
        archive.writestr("config.toml", preset("default").to_toml())
        archive.writestr("history.npz", history.getvalue())
        archive.write(state, "checkpoint.safetensors")
    loaded = session.load(path, tmp_path / "out.safetensors")
    assert loaded.kind == "supervised" and loaded.rollouts is None
    assert [c.quantity for c in loaded.curves] == ["loss"] * len(store.curves)
    restored = RunStore("rl")
    session.restore_store(restored, loaded)
    assert restored.kind == "supervised"
    np.testing.assert_array_equal(restored.column("loss_after"), store.column("loss_after"))


def test_unknown_kind_is_refused(tmp_path, state):
    path = session.save(tmp_path / "run.reptile", preset("default"), state, make_filled_store())
    odd = tmp_path / "odd.reptile"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(odd, "w") as dst:
        for item in src.namelist():
            data = src.read(item)
            if item == "session.json":
                data = data.replace(b'"kind": "supervised"', b'"kind": "bandit"')
            dst.writestr(item, data)
    with pytest.raises(session.SessionError, match="unknown kind"):
        session.load(odd, tmp_path / "out.safetensors")
