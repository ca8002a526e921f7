"""The store keeps a long run's history in bounded memory: the latest iterations in full, older ones as
min/max buckets, and every iteration on disk for exports and sessions."""

from __future__ import annotations

import numpy as np
import pytest
from gui_testlib import synthetic_metrics

from reptile_gui.store import INTEGER_COLUMNS, METRIC_COLUMNS, RL_METRIC_COLUMNS, RunStore

LIMITS = {"recent_rows": 1_000, "spill_rows": 500, "older_buckets": 64, "bucket_rows": 10}


def small_store(tmp_path, **overrides) -> RunStore:
    return RunStore(spill_dir=tmp_path / "run", **{**LIMITS, **overrides})


def feed(store: RunStore, iterations: int, batch: int = 60, spike_at: int | None = None) -> dict[str, np.ndarray]:
    """Append ``iterations`` synthetic iterations in worker-sized batches; return everything appended."""
    everything = synthetic_metrics(iterations)
    if spike_at is not None:
        everything["loss_after"][spike_at - 1] = 1e6
        everything["loss_before"][spike_at - 1] = -1e6
    for start in range(0, iterations, batch):
        store.extend_metrics({name: values[start:start + batch] for name, values in everything.items()})
    return everything


def shown_limit() -> int:
    return 2 * LIMITS["older_buckets"] + LIMITS["recent_rows"] + 2 * LIMITS["spill_rows"]


def test_memory_stays_bounded_however_many_iterations(tmp_path):
    store = small_store(tmp_path)
    feed(store, 20_000)
    sizes = (store.history_store.shown_rows, store.history_store.nbytes())
    feed(store, 40_000)
    assert len(store) == 60_000
    history = store.history_store
    assert history.shown_rows <= shown_limit()
    assert history.nbytes() <= len(METRIC_COLUMNS) * 8 * shown_limit()
    assert history.nbytes() <= sizes[1]
    assert history.full_resolution_rows >= LIMITS["recent_rows"]
    assert {len(store.column(name)) for name in METRIC_COLUMNS} == {history.shown_rows}


def test_a_spike_long_ago_stays_visible(tmp_path):
    store = small_store(tmp_path)
    feed(store, 30_000, spike_at=123)
    iteration = store.column("iteration")
    assert iteration[-1] == 30_000 and store.history_store.full_resolution_rows < 30_000
    assert store.column("loss_after").max() == 1e6
    assert store.column("loss_before").min() == -1e6
    spike = int(np.argmax(store.column("loss_after")))
    assert iteration[spike] <= 123 * 64  # drawn near where it happened, not smeared across the run
    assert np.all(np.diff(iteration) >= 0)  # x stays ordered, buckets and all


def test_the_latest_iterations_are_kept_in_full(tmp_path):
    store = small_store(tmp_path)
    everything = feed(store, 10_000)
    kept = store.history_store.full_resolution_rows
    for name in METRIC_COLUMNS:
        np.testing.assert_array_equal(store.column(name)[-kept:], everything[name][-kept:])
    assert store.latest("iteration") == 10_000


def test_the_complete_history_round_trips_through_disk(tmp_path):
    store = small_store(tmp_path)
    everything = feed(store, 12_345)
    assert list((tmp_path / "run").glob("history-*/iteration.f8"))
    for name in METRIC_COLUMNS:
        np.testing.assert_array_equal(store.history(name), everything[name])
    RunStore.CHUNK_ROWS, chunk_rows = 1_000, RunStore.CHUNK_ROWS
    try:
        chunks = list(store.history_chunks())
    finally:
        RunStore.CHUNK_ROWS = chunk_rows
    assert max(len(chunk["iteration"]) for chunk in chunks) <= 1_000
    np.testing.assert_array_equal(np.concatenate([c["loss_after"] for c in chunks]), everything["loss_after"])
    rows = list(store.history_rows())
    assert len(rows) == 12_345 and rows[-1][0] == 12_345
    assert all(type(rows[0][METRIC_COLUMNS.index(name)]) is int for name in INTEGER_COLUMNS & set(METRIC_COLUMNS))


def test_one_huge_batch_is_bounded_too(tmp_path):
    store = small_store(tmp_path)
    everything = synthetic_metrics(50_000)
    store.extend_metrics(everything)
    assert store.history_store.shown_rows <= shown_limit()
    np.testing.assert_array_equal(store.history("elapsed"), everything["elapsed"])


def test_an_array_a_plot_holds_never_changes_under_it(tmp_path):
    store = small_store(tmp_path)
    feed(store, 1_400)
    held = store.column("iteration")
    before = held.copy()
    feed(store, 3_000)
    np.testing.assert_array_equal(held, before)


def test_a_failed_spill_loses_nothing(tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    store = RunStore(spill_dir=blocked, **LIMITS)
    everything = feed(store, 5_000)
    assert "cannot keep the complete history" in store.history_store.spill_error
    np.testing.assert_array_equal(store.history("loss_after"), everything["loss_after"])
    np.testing.assert_array_equal(store.column("iteration"), everything["iteration"])


def test_clear_and_a_change_of_kind_start_over(tmp_path):
    store = small_store(tmp_path)
    feed(store, 5_000)
    store.clear()
    assert len(store) == 0 and len(store.column("iteration")) == 0 and len(store.history("iteration")) == 0
    feed(store, 2_000)
    np.testing.assert_array_equal(store.history("iteration"), np.arange(1, 2_001))
    store.set_kind("rl")
    assert len(store) == 0 and store.metric_columns == RL_METRIC_COLUMNS
    assert len(store.history("loss_after")) == 0


def test_spill_to_moves_what_was_written(tmp_path):
    store = RunStore(**LIMITS)
    everything = feed(store, 4_000)
    store.spill_to(tmp_path / "workdir")
    assert list((tmp_path / "workdir").glob("history-*/loss_after.f8"))
    feed(store, 0)
    np.testing.assert_array_equal(store.history("loss_after"), everything["loss_after"])


def test_a_ragged_batch_appends_nothing(tmp_path):
    store = small_store(tmp_path)
    feed(store, 100)
    batch = synthetic_metrics(10, start=101)
    batch["elapsed"] = batch["elapsed"][:5]
    with pytest.raises(ValueError, match="same length"):
        store.extend_metrics(batch)
    assert len(store) == 100 and {len(store.column(name)) for name in METRIC_COLUMNS} == {100}
