"""The logger: each event's named values through CSV and TensorBoard writers, and the one event dispatch."""

from __future__ import annotations

import csv
import dataclasses
import sys
import typing

import numpy as np
import pytest

from reptile_engine import events
from reptile_engine.cli import main
from reptile_engine.config import ExperimentConfig
from reptile_engine.events import (
    EVENT_TYPES,
    AdaptationCurve,
    ConfigChanged,
    Dispatch,
    Diverged,
    Finished,
    IterationMetrics,
    RLIterationMetrics,
)
from reptile_engine.logger import COLUMNS, TAGS, CSVWriter, Logger, MetricsFileError, TensorBoardWriter, write_table


def metrics(iteration: int) -> IterationMetrics:
    return IterationMetrics(iteration, 1.0 / iteration, 0.5 / iteration, 0.9, 0.02, 5, 8, 100.0 + iteration,
                            0.01 * iteration)


def rl_metrics(iteration: int) -> RLIterationMetrics:
    return RLIterationMetrics(iteration, 0.1, 0.2, 0.3, 0.4, -10.0 + iteration, -5.0 + iteration, 0.9, 0.02, 4, 3,
                              1000.0, 2.0, 0.5 * iteration)


def curve(iteration: int) -> AdaptationCurve:
    return AdaptationCurve(iteration, np.arange(3), np.array([1.0, 0.5, 0.25]), np.array([1.0, 0.9, 0.8]))


def read_rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_csv_holds_one_row_per_iteration_in_the_metrics_fields_order(tmp_path):
    path = tmp_path / "metrics.csv"
    with Logger([CSVWriter(path, COLUMNS[IterationMetrics])]) as logger:
        logger.log_config(0, ExperimentConfig())
        for i in range(1, 4):
            logger.log(metrics(i))
        logger.log(curve(3))
        logger.log(Finished(3, "completed"))
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(f.name for f in dataclasses.fields(IterationMetrics))
    assert [line.split(",")[0] for line in lines[1:]] == ["1", "2", "3"]
    assert read_rows(path)[1]["loss_before"] == "0.5"


def test_resuming_cuts_the_csv_back_to_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    columns = COLUMNS[RLIterationMetrics]
    with Logger([CSVWriter(path, columns)]) as logger:
        for i in range(1, 8):
            logger.log(rl_metrics(i))
    with open(path, "a") as f:
        f.write("8,1,")  # a torn row
    with Logger([CSVWriter(path, columns, resume_at=5)]) as logger:
        logger.log(rl_metrics(6))
    assert [int(row["iteration"]) for row in read_rows(path)] == [1, 2, 3, 4, 5, 6]


def test_resuming_into_a_csv_of_the_other_kind_is_refused(tmp_path):
    path = tmp_path / "metrics.csv"
    write_table(path, COLUMNS[IterationMetrics], [])
    with pytest.raises(MetricsFileError, match="other columns"):
        CSVWriter(path, COLUMNS[RLIterationMetrics], resume_at=3)


def test_every_metric_column_but_the_step_has_a_tag():
    for columns in COLUMNS.values():
        assert set(columns) - set(TAGS) == {"iteration"}


def tensorboard_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def assert_tensorboard_matches_csv(log_dir, csv_path) -> None:
    """Each scalar TensorBoard holds is the CSV column it is named after, iteration by iteration."""
    rows = read_rows(csv_path)
    scalars = tensorboard_scalars(log_dir)
    for name in rows[0]:
        if name == "iteration":
            continue
        logged = scalars[TAGS[name]]
        assert [step for step, _ in logged] == [int(row["iteration"]) for row in rows], name
        np.testing.assert_allclose([value for _, value in logged], [float(row[name]) for row in rows], rtol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize(("kind", "make"), [(IterationMetrics, metrics), (RLIterationMetrics, rl_metrics)])
def test_tensorboard_holds_the_csv_values_under_their_tags(tmp_path, kind, make):
    pytest.importorskip("tensorboard")
    csv_path, log_dir = tmp_path / "metrics.csv", tmp_path / "tb"
    with Logger([CSVWriter(csv_path, COLUMNS[kind]), TensorBoardWriter(log_dir)]) as logger:
        for i in range(1, 6):
            logger.log(make(i))
        logger.log(curve(5))
    assert_tensorboard_matches_csv(log_dir, csv_path)
    assert tensorboard_scalars(log_dir)["eval/meta_init_mse"] == [(5, 0.25)]


def test_tensorboard_keeps_the_config_and_its_changes_as_text(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = ExperimentConfig()
    with Logger([TensorBoardWriter(tmp_path)]) as logger:
        logger.log_config(0, config)
        logger.log(ConfigChanged(4, {"inner.lr": (0.02, 0.01)}, config))
        logger.log(Diverged(6, "loss is nan", 5))
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    accumulator.Reload()
    texts = {tag: [(e.step, e.tensor_proto.string_val[0].decode()) for e in accumulator.Tensors(tag)]
             for tag in accumulator.Tags()["tensors"]}
    assert "[inner]" in texts["config/text_summary"][0][1]
    assert texts["config/changes/text_summary"] == [(4, "- `inner.lr`: 0.02 → 0.01")]
    assert "rolled back to iteration 5" in texts["run/diverged/text_summary"][0][1]


def test_without_the_extra_tensorboard_is_refused_with_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ImportError, match=r"pip install 'reptile-lab\[tensorboard\]'"):
        TensorBoardWriter(tmp_path)


def test_a_dispatch_sends_every_event_type_to_its_handler():
    seen = []
    dispatch = Dispatch({kind: seen.append for kind in EVENT_TYPES})
    samples = [kind.__new__(kind) for kind in EVENT_TYPES]
    for sample in samples:
        dispatch(sample)
    assert seen == samples
    assert set(EVENT_TYPES) == set(typing.get_args(events.Event))


def test_a_dispatch_without_a_handler_for_some_event_type_is_refused_at_once():
    with pytest.raises(TypeError, match="Finished"):
        Dispatch({kind: print for kind in EVENT_TYPES if kind is not Finished})
    with pytest.raises(TypeError, match="twice"):
        Dispatch({kind: print for kind in EVENT_TYPES}, ignore=[Finished])


def test_a_dispatch_refuses_what_is_not_an_event():
    @dataclasses.dataclass(frozen=True)
    class Unheard:
        iteration: int

    dispatch = Dispatch({kind: print for kind in EVENT_TYPES})
    with pytest.raises(TypeError, match="Unheard"):
        dispatch(Unheard(1))


def test_reptile_train_with_tensorboard_logs_what_its_metrics_csv_holds(tmp_path):
    pytest.importorskip("tensorboard")
    out, log_dir = tmp_path / "run", tmp_path / "tb"
    tiny = ["--preset", "quick", "--model.hidden", "8", "--meta.iterations", "12", "--evaluation.tasks", "4",
            "--evaluation.steps", "3", "--evaluation.every", "6", "--quiet"]
    assert main([*tiny, "--out", str(out), "--tensorboard", str(log_dir)]) == 0
    assert_tensorboard_matches_csv(log_dir, out / "metrics.csv")
    last_scratch = float(read_rows(out / "adaptation.csv")[-1]["scratch_mse"])
    assert tensorboard_scalars(log_dir)["eval/scratch_mse"][-1] == (12, pytest.approx(last_scratch))
