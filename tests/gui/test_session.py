"""Session files round-trip either kind of run, and sessions written before meta-RL still open."""

from __future__ import annotations

import contextlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from gui_testlib import make_filled_rl_store, make_filled_store, synthetic_metrics
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy"


@pytest.mark.parametrize(("name", "filled_store"), [("sine-v2", make_filled_store), ("ppo-v2", make_filled_rl_store)])
def test_sessions_written_by_version_2_still_open_and_restore_the_store(tmp_path, name, filled_store):
    """The fixtures were saved from the test library's filled stores; they open as they were written."""
    loaded = session.load(LEGACY / f"{name}.reptile", tmp_path / "out.safetensors")
    assert checkpoint.load(loaded.checkpoint) is not None
    restored = RunStore()
    session.restore_store(restored, loaded)
    written = filled_store()
    assert restored.kind == written.kind == loaded.config.kind
    assert len(restored) == len(written)
    for column in restored.metric_columns:
        np.testing.assert_array_equal(restored.history(column), written.history(column))
    assert [(c.iteration, c.quantity) for c in restored.curves] == [(c.iteration, c.quantity) for c in written.curves]
    np.testing.assert_array_equal(restored.latest_curve.meta_init, written.latest_curve.meta_init)
    assert restored.markers == written.markers
    assert (restored.rollouts is None) == (written.rollouts is None)
    if written.rollouts is not None:
        assert (restored.rollouts.family, restored.rollouts.updates) == (written.rollouts.family,
                                                                         written.rollouts.updates)
        np.testing.assert_array_equal(restored.rollouts.returns, written.rollouts.returns)


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


# A session file comes from anyone: every way it can be wrong is a SessionError naming what is wrong.


def rewrite(path, out, **members):
    """A copy of the session at ``path`` with members replaced (bytes, or a function of the old bytes) or
    dropped (``None``); names use ``_`` for ``.`` (``session_json``)."""
    changes = {name.replace("_", ".", 1) if name != "checkpoint_safetensors" else "checkpoint.safetensors": change
               for name, change in members.items()}
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.namelist():
            data = src.read(item)
            change = changes.get(item, data)
            if change is None:
                continue
            dst.writestr(item, change(data) if callable(change) else change)
    return out


def npz(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def edited_history(path, **columns) -> bytes:
    with zipfile.ZipFile(path) as archive, np.load(io.BytesIO(archive.read("history.npz"))) as old:
        arrays = {name: old[name] for name in old.files}
    return npz(**{**arrays, **columns})


def edited_manifest(path, edit) -> bytes:
    with zipfile.ZipFile(path) as archive:
        manifest = json.loads(archive.read("session.json"))
    edit(manifest)
    return json.dumps(manifest).encode()


@pytest.fixture
def saved(tmp_path, state):
    return session.save(tmp_path / "run.reptile", preset("default"), state, make_filled_store())


@pytest.fixture
def saved_rl(tmp_path, state):
    return session.save(tmp_path / "rl.reptile", preset("meta-rl"), state, make_filled_rl_store())


def refused(tmp_path, path, match):
    out = tmp_path / "out.safetensors"
    with pytest.raises(session.SessionError, match=match):
        session.load(path, out)
    assert not out.exists()
    assert not list(tmp_path.glob(".session-*"))  # nothing extracted stays behind


def set_curve_steps(m):
    m["curves"][0]["steps"] = "0123"


BAD_MANIFESTS = {
    "a list": (lambda m: m.clear(), "not a Reptile Lab session"),
    "curve steps as text": (set_curve_steps, "steps must be a list"),
    "curve of mismatched lengths": (lambda m: m["curves"][1]["scratch"].pop(), "differ in length"),
    "curve quantity": (lambda m: m["curves"][0].update(quantity="joy"), "quantity must be one of"),
    "curve iteration": (lambda m: m["curves"][0].update(iteration=-1), "iteration must be a whole number"),
    "marker elapsed": (lambda m: m["markers"][0].update(elapsed=float("inf")), "elapsed must be a finite"),
    "marker text": (lambda m: m["markers"][0].update(text=["a"]), "text must be text"),
    "markers missing": (lambda m: m.pop("markers"), "lacks 'markers'"),
    "version": (lambda m: m.update(version=[2]), "version"),
}


@pytest.mark.parametrize("case", list(BAD_MANIFESTS))
def test_a_bad_manifest_is_refused(tmp_path, saved, case):
    edit, match = BAD_MANIFESTS[case]
    if case == "a list":
        bad = rewrite(saved, tmp_path / "bad.reptile", session_json=b"[]")
    else:
        bad = rewrite(saved, tmp_path / "bad.reptile", session_json=edited_manifest(saved, edit))
    refused(tmp_path, bad, match)


BAD_HISTORIES = {
    "iteration inf": ({"iteration": np.array([1.0, np.inf] + list(range(3, 301)))}, "iteration column holds NaN"),
    "iteration NaN": ({"iteration": np.r_[np.nan, np.arange(2.0, 301.0)]}, "iteration column holds NaN"),
    "iterations out of order": ({"iteration": np.arange(300.0, 0.0, -1.0)}, "do not increase"),
    "fractional iteration": ({"iteration": np.arange(1.0, 301.0) + 0.5}, "not a whole number"),
    "negative elapsed": ({"elapsed": np.full(300, -1.0)}, "elapsed column holds a negative"),
    "2-D column": ({"loss_after": np.zeros((300, 2))}, "must be 1-D"),
    "short column": ({"loss_before": np.zeros(299)}, "differ in length"),
    "text column": ({"loss_after": np.array(["x"] * 300)}, "must hold numbers"),
    "pickled column": ({"loss_after": np.array([{}] * 300, dtype=object)}, "loss_after column is not a plain array"),
}


@pytest.mark.parametrize("case", list(BAD_HISTORIES))
def test_a_bad_history_is_refused(tmp_path, saved, case):
    columns, match = BAD_HISTORIES[case]
    bad = rewrite(saved, tmp_path / "bad.reptile", history_npz=edited_history(saved, **columns))
    refused(tmp_path, bad, match)


def test_a_missing_history_column_is_refused(tmp_path, saved):
    with zipfile.ZipFile(saved) as archive, np.load(io.BytesIO(archive.read("history.npz"))) as old:
        arrays = {name: old[name] for name in old.files if name != "elapsed"}
    refused(tmp_path, rewrite(saved, tmp_path / "bad.reptile", history_npz=npz(**arrays)), "lacks elapsed.npy")


def test_bad_rollouts_are_refused(tmp_path, saved_rl):
    def first_trace_flat(data):
        with np.load(io.BytesIO(data)) as old:
            arrays = {name: old[name] for name in old.files}
        arrays["trace_0_0"] = arrays["trace_0_0"].reshape(-1)
        return npz(**arrays)

    refused(tmp_path, rewrite(saved_rl, tmp_path / "bad.reptile", rollouts_npz=first_trace_flat), "must be 2-D")
    manifest = edited_manifest(saved_rl, lambda m: m["rollouts"].update(target=["point", [1.0]]))
    refused(tmp_path, rewrite(saved_rl, tmp_path / "bad2.reptile", session_json=manifest), "needs 2 values")
    manifest = edited_manifest(saved_rl, lambda m: m["rollouts"]["episodes"].append(1))
    refused(tmp_path, rewrite(saved_rl, tmp_path / "bad3.reptile", session_json=manifest), "as long")


def test_a_session_naming_untrusted_code_is_refused_before_it_runs(tmp_path, saved, monkeypatch):
    monkeypatch.delenv("REPTILE_LAB_PLUGINS", raising=False)
    toml = preset("default").to_toml().replace('name = "sine"', 'name = "os:abort"')
    assert "os:abort" in toml
    bad = rewrite(saved, tmp_path / "bad.reptile", config_toml=toml.encode())
    refused(tmp_path, bad, "names the plugin module 'os:abort' as task.name.*sessions cannot run code")


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path, saved, monkeypatch):
    monkeypatch.setitem(session.MEMBER_LIMITS, "history.npz", 4 << 20)
    bomb = rewrite(saved, tmp_path / "bomb.reptile", history_npz=bytes(64 << 20))
    assert bomb.stat().st_size < 1 << 20
    refused(tmp_path, bomb, "history.npz inflates to more than the 4 MB")


def test_a_member_that_lies_about_its_size_stops_at_the_limit(tmp_path, saved, monkeypatch):
    """The declared size passes; the bytes read are counted all the same."""
    monkeypatch.setitem(session.MEMBER_LIMITS, "session.json", 1 << 20)
    real_open = zipfile.ZipFile.open

    def understated(self, name, *args, **kwargs):
        member = real_open(self, name, *args, **kwargs)
        if getattr(name, "filename", name) == "session.json":
            name.file_size = 10
        return member

    big = rewrite(saved, tmp_path / "big.reptile", session_json=b" " * (4 << 20) + b"{}")
    monkeypatch.setattr(zipfile.ZipFile, "open", understated)
    refused(tmp_path, big, "session.json inflates to more than the 1 MB")


def test_not_a_regular_file_is_refused(tmp_path):
    fifo = tmp_path / "pipe.reptile"
    os.mkfifo(fifo)
    refused(tmp_path, fifo, "not a regular file")
    refused(tmp_path, tmp_path, "not a regular file")


def test_a_session_holds_every_iteration_of_a_long_run(tmp_path, state):
    store = RunStore(spill_dir=tmp_path / "spill", recent_rows=1_000, spill_rows=500, older_buckets=32,
                     bucket_rows=10)
    everything = synthetic_metrics(20_000)
    for start in range(0, 20_000, 60):
        store.extend_metrics({name: values[start:start + 60] for name, values in everything.items()})
    assert store.history_store.shown_rows < 5_000
    path = session.save(tmp_path / "long.reptile", preset("default"), state, store)
    loaded = session.load(path, tmp_path / "out.safetensors")
    for name in METRIC_COLUMNS:
        np.testing.assert_array_equal(loaded.history[name], everything[name])
    restored = RunStore(spill_dir=tmp_path / "spill2", recent_rows=1_000, spill_rows=500, older_buckets=32)
    session.restore_store(restored, loaded)
    assert not loaded.history_folder.exists()
    np.testing.assert_array_equal(restored.history("loss_after"), everything["loss_after"])
    assert restored.history_store.shown_rows < 5_000


def corrupt(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption of a session file's bytes: flipped bytes, a truncation, or a splice."""
    data = bytearray(data)
    how = rng.integers(4)
    if how == 0:
        for at in rng.integers(0, len(data), rng.integers(1, 9)):
            data[at] ^= int(rng.integers(1, 256))
    elif how == 1:
        del data[rng.integers(0, len(data)):]
    elif how == 2:
        start = int(rng.integers(0, len(data)))
        data[start:start + int(rng.integers(1, 64))] = bytes(rng.integers(0, 256, int(rng.integers(1, 64)),
                                                                    dtype=np.uint8))
    else:
        a, b = sorted(rng.integers(0, len(data), 2))
        data = data[:a] + data[b:] + data[a:b]
    return bytes(data)


def member_swap(path, out, rng: np.random.Generator):
    """The session with the contents of two members swapped, or one dropped."""
    with zipfile.ZipFile(path) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    names = sorted(contents)
    a, b = rng.choice(len(names), 2, replace=False)
    if rng.integers(2):
        contents[names[a]], contents[names[b]] = contents[names[b]], contents[names[a]]
    else:
        del contents[names[a]]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return out


@pytest.mark.parametrize("fixture", ["saved", "saved_rl"])
def test_a_corrupted_session_opens_or_says_why_never_anything_else(tmp_path, fixture, request):
    """150 seeded corruptions per kind of run; each either loads whole and valid or is a SessionError."""
    path = request.getfixturevalue(fixture)
    original = path.read_bytes()
    rng = np.random.default_rng(7)
    refusals = 0
    for trial in range(150):
        bad = tmp_path / f"bad{trial}.reptile"
        if trial % 5 == 4:
            member_swap(path, bad, rng)
        else:
            bad.write_bytes(corrupt(original, rng))
        try:
            loaded = session.load(bad, tmp_path / "out.safetensors")
        except session.SessionError as exc:
            assert str(exc).startswith(f"Cannot open session {bad}") or str(bad) in str(exc)
            refusals += 1
            continue
        restored = RunStore()
        session.restore_store(restored, loaded)
        assert len(restored) == len(restored.history("iteration"))
        assert np.all(np.diff(restored.history("iteration")) > 0)
    assert refusals > 100


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4), max_leaves=20))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_json_in_a_manifest_field_opens_or_says_why(tmp_path, saved, value):
    for key in ("curves", "markers", "kind", "version"):
        manifest = edited_manifest(saved, lambda m, key=key: m.update({key: value}))
        bad = rewrite(saved, tmp_path / "bad.reptile", session_json=manifest)
        with contextlib.suppress(session.SessionError):
            session.load(bad, tmp_path / "out.safetensors")
