"""Exports: PNG of the asked width, SVG that parses, CSV equal to the store, clear errors."""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from gui_testlib import reference_ema, synthetic_curve
from PySide6.QtGui import QImage, QImageWriter
from PySide6.QtWidgets import QFileDialog

from reptile_gui.export import (
    FORMATS,
    ExportError,
    export_all,
    export_plot,
    export_png,
    export_svg,
    file_filters,
    format_of,
    write_csv,
)
from reptile_gui.plots import AdaptationCurvePlot, TaskViewPlot, TrainingCurvePlot

PLOT_CLASSES = (TrainingCurvePlot, AdaptationCurvePlot, TaskViewPlot)
SVG = "{http://www.w3.org/2000/svg}"


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def column(rows, index, dtype=np.float64):
    return np.array([float(r[index]) for r in rows if r[index] != ""], dtype=dtype)


# -- images ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [None, 333, 1200])
def test_png_has_the_requested_width(qtbot, make, filled_store, tmp_path, width):
    plot = make(TrainingCurvePlot, filled_store)
    path = plot.export_png(tmp_path / "curve.png", width=width)
    image = QImage(str(path))
    assert not image.isNull()
    expected = width or int(plot.plot_item.sceneBoundingRect().width())
    assert image.width() == expected
    aspect = plot.plot_item.sceneBoundingRect().height() / plot.plot_item.sceneBoundingRect().width()
    assert image.height() == pytest.approx(expected * aspect, abs=2)


def test_png_of_a_plot_never_shown_gets_a_real_layout(qtbot, make, filled_store, tmp_path):
    plot = make(AdaptationCurvePlot, filled_store, show=False)  # e.g. in a hidden tab
    image = QImage(str(plot.export_png(tmp_path / "hidden.png")))
    assert (image.width(), image.height()) == plot.EXPORT_SIZE
    assert QImage(str(plot.export_png(tmp_path / "wide.png", width=1000))).width() == 1000
    ET.parse(plot.export_svg(tmp_path / "hidden.svg"))


@pytest.mark.parametrize("cls", PLOT_CLASSES)
def test_svg_parses_and_draws_the_curves(qtbot, make, filled_store, tmp_path, cls):
    plot = make(cls, filled_store)
    path = plot.export_svg(tmp_path / "plot.svg")
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    strokes = [el for el in root.iter() if el.tag in (f"{SVG}path", f"{SVG}polyline")]
    longest = max(len(el.get("d", "") or el.get("points", "")) for el in strokes)
    assert longest > 200  # a data curve, not just the frame and the ticks


# -- tables ----------------------------------------------------------------------------------------

def test_training_csv_equals_the_store(qtbot, make, filled_store, tmp_path):
    plot = make(TrainingCurvePlot, filled_store, smoothing=0.0)
    header, rows = read_csv(plot.export_csv(tmp_path / "training.csv"))
    assert header == ["iteration", "elapsed", "loss_before", "loss_after"]
    assert len(rows) == len(filled_store)
    for i, name in enumerate(header):
        np.testing.assert_array_equal(column(rows, i), filled_store.column(name))  # exact round trip
    assert rows[0][0] == "1"  # whole numbers as integers

    plot.smoothing_slider.setValue(0.8)
    header, rows = read_csv(plot.export_csv(tmp_path / "smoothed.csv"))
    assert header[-2:] == ["loss_before_smoothed", "loss_after_smoothed"]
    np.testing.assert_allclose(column(rows, 5), reference_ema(filled_store.column("loss_after"), plot.smoothing))


def test_adaptation_csv_has_newest_and_earlier_curves(qtbot, make, filled_store, tmp_path):
    filled_store.add_curve(synthetic_curve(500, 0.05, k=10))  # a longer curve: K changed meanwhile
    plot = make(AdaptationCurvePlot, filled_store)
    header, rows = read_csv(plot.export_csv(tmp_path / "adaptation.csv"))
    curves = list(filled_store.curves)
    assert header == ["inner_step", "meta_init", "scratch",
                      *[f"meta_init_iteration_{c.iteration}" for c in curves[:-1]]]
    np.testing.assert_array_equal(column(rows, 0), np.arange(11))
    np.testing.assert_array_equal(column(rows, 1), curves[-1].meta_init)
    np.testing.assert_array_equal(column(rows, 2), curves[-1].scratch)
    first = column(rows, 3, dtype=str)
    assert len(first) == 11 and list(first[9:]) == ["nan", "nan"]  # that curve stopped at K = 8
    np.testing.assert_array_equal(column(rows, 3)[:9], curves[0].meta_init)


def test_task_csv_has_grid_predictions_and_support(qtbot, make, filled_store, tmp_path):
    plot = make(TaskViewPlot, filled_store)
    fit = filled_store.task_fit
    header, rows = read_csv(plot.export_csv(tmp_path / "task.csv"))
    assert header == ["x", "truth", *[f"prediction_{k}" for k in fit.steps], "support_x", "support_y"]
    assert len(rows) == len(fit.grid_x)
    np.testing.assert_array_equal(column(rows, 0, np.float32), fit.grid_x)
    np.testing.assert_array_equal(column(rows, 1, np.float32), fit.truth)
    for i in range(len(fit.steps)):
        np.testing.assert_array_equal(column(rows, 2 + i, np.float32), fit.predictions[i])
    np.testing.assert_array_equal(column(rows, len(header) - 2, np.float32), fit.support_x)
    np.testing.assert_array_equal(column(rows, len(header) - 1, np.float32), fit.support_y)
    assert rows[len(fit.support_x)][-1] == ""  # the support section ends: empty cells below it


def test_write_csv_formats_and_pads(tmp_path):
    path = write_csv(tmp_path / "t.csv", ["n", "x", "short"],
                     [np.array([1, 2, 3]), np.array([0.1, np.nan, 2.5]), np.array([7.0])])
    assert path.read_text().splitlines() == ["n,x,short", "1,0.1,7", "2,nan,", "3,2.5,"]
    with pytest.raises(ValueError):
        write_csv(tmp_path / "u.csv", ["a"], [])


# -- errors ----------------------------------------------------------------------------------------

def unwritable_paths(tmp_path):
    a_file = tmp_path / "a_file.txt"
    a_file.write_text("x")
    paths = {"missing folder": tmp_path / "missing" / "out", "under a file": a_file / "out"}
    if os.geteuid() != 0:  # root writes into read-only folders anyway
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        paths["read-only folder"] = locked / "out"
    return paths


@pytest.mark.parametrize("kind", ["png", "svg", "csv"])
def test_unwritable_path_raises_export_error(qtbot, make, filled_store, tmp_path, kind):
    plot = make(TrainingCurvePlot, filled_store)
    write = {"png": plot.export_png, "svg": plot.export_svg, "csv": plot.export_csv}[kind]
    for case, base in unwritable_paths(tmp_path).items():
        path = base.with_suffix(f".{kind}")
        with pytest.raises(ExportError, match="Cannot write") as info:
            write(path)
        assert str(path) in str(info.value), case
        assert isinstance(info.value, OSError)
        assert not path.exists()


def test_pyqtgraph_image_exporter_reports_failure_by_return_value(qtbot, make, filled_store, tmp_path):
    """Why ``export_png`` checks the folder itself: pyqtgraph returns False instead of raising."""
    from pyqtgraph.exporters import ImageExporter

    plot = make(TrainingCurvePlot, filled_store)
    assert ImageExporter(plot.plot_item).export(str(tmp_path / "missing" / "x.png")) is False
    with pytest.raises(ExportError, match="could not save"):  # a writable folder, but no such format
        export_png(plot, tmp_path / "x.notanimageformat")


def test_export_all_writes_three_files_per_plot(qtbot, make, filled_store, tmp_path):
    plots = {cls.plot_name: make(cls, filled_store) for cls in PLOT_CLASSES}
    written = export_all(tmp_path / "run", plots, width=500)
    assert sorted(p.name for p in written) == sorted(f"{n}.{e}" for n in plots for e in ("png", "svg", "csv"))
    assert all(p.stat().st_size > 0 for p in written)
    assert QImage(str(tmp_path / "run" / "task_view.png")).width() == 500
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ExportError, match="export folder"):
        export_all(a_file / "run", plots)


def test_export_svg_takes_a_plot_widget(qtbot, make, filled_store, tmp_path):
    plot = make(AdaptationCurvePlot, filled_store)
    ET.parse(export_svg(plot.plot_widget, tmp_path / "w.svg"))


# -- the context menu ------------------------------------------------------------------------------

def test_context_menu_export_uses_a_file_dialog(qtbot, make, filled_store, tmp_path, monkeypatch):
    plot = make(AdaptationCurvePlot, filled_store)
    target = tmp_path / "from_menu"  # no suffix: the dialog's kind is appended
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "CSV tables (*.csv)"))
    with qtbot.waitSignal(plot.exportFinished) as blocker:
        plot.export_actions["csv"].trigger()
    assert blocker.args == [str(target) + ".csv"]
    assert read_csv(blocker.args[0])[0][0] == "inner_step"

    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "missing" / "x.png"), ""))
    with qtbot.waitSignal(plot.exportFailed) as blocker:
        plot.export_actions["png"].trigger()
    assert "missing" in blocker.args[0]

    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: ("", ""))  # cancelled
    with qtbot.assertNotEmitted(plot.exportFinished), qtbot.assertNotEmitted(plot.exportFailed):
        plot.export_actions["svg"].trigger()


# -- failures leave nothing half-written -----------------------------------------------------------

def leftovers(folder):
    """Everything in ``folder`` but the files a test put there itself."""
    return sorted(p.name for p in folder.iterdir())


def test_a_png_qt_cannot_save_says_why_and_keeps_the_earlier_file(qtbot, make, filled_store, tmp_path,
                                                                   monkeypatch):
    plot = make(TrainingCurvePlot, filled_store)
    path = plot.export_png(tmp_path / "curve.png")
    before = path.read_bytes()
    monkeypatch.setattr(QImageWriter, "write", lambda self, image: False)
    monkeypatch.setattr(QImageWriter, "errorString", lambda self: "Device not writable")
    with pytest.raises(ExportError, match="Qt could not save the image \\(Device not writable\\)") as info:
        plot.export_png(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before, "the earlier export is not truncated or replaced"
    assert leftovers(tmp_path) == ["curve.png"], "no temporary file is left behind"


def test_a_png_in_a_format_qt_cannot_write_names_the_format(qtbot, make, filled_store, tmp_path):
    plot = make(TrainingCurvePlot, filled_store)
    with pytest.raises(ExportError, match=r"no writer for \.webpx files \(it has: .*png"):
        plot.export_png(tmp_path / "curve.webpx")
    assert leftovers(tmp_path) == []


def test_a_csv_that_fails_midway_leaves_no_truncated_file(qtbot, tmp_path, monkeypatch):
    import reptile_gui.export as export_module

    real_writer = csv.writer

    class FullDisk:
        def __init__(self, fh):
            self.inner, self.rows = real_writer(fh), 0

        def writerow(self, row):
            self.rows += 1
            if self.rows > 3:
                raise OSError(28, "No space left on device")
            self.inner.writerow(row)

    path = tmp_path / "table.csv"
    write_csv(path, ["x"], [np.arange(2)])
    before = path.read_text()
    monkeypatch.setattr(export_module.csv, "writer", FullDisk)
    with pytest.raises(ExportError, match="No space left on device"):
        write_csv(path, ["x"], [np.arange(100)])
    assert path.read_text() == before
    assert leftovers(tmp_path) == ["table.csv"]
    with pytest.raises(ExportError, match="No space left on device"):
        write_csv(tmp_path / "new.csv", ["x"], [np.arange(100)])
    assert leftovers(tmp_path) == ["table.csv"], "a new file that failed does not appear at all"


def test_an_svg_that_fails_midway_leaves_no_truncated_file(qtbot, make, filled_store, tmp_path, monkeypatch):
    plot = make(AdaptationCurvePlot, filled_store)

    def half_written(self, data):
        with open(self, "wb") as fh:
            fh.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_bytes", half_written)
    with pytest.raises(ExportError, match="No space left on device"):
        plot.export_svg(tmp_path / "curve.svg")
    assert leftovers(tmp_path) == []


def test_export_all_leaves_no_partial_set_and_names_the_file_that_failed(qtbot, make, filled_store, tmp_path):
    plots = {cls.plot_name: make(cls, filled_store) for cls in PLOT_CLASSES}
    folder = tmp_path / "run"
    export_all(folder, plots, files={"notes.txt": lambda p: p.write_text("first")})
    first = {p.name: p.read_bytes() for p in folder.iterdir()}

    def fail(path):
        raise ExportError(f"Cannot write {path}: the disk is full")

    plots["task_view"].export_csv = fail  # the last plot's table: most of the set is written by then
    with pytest.raises(ExportError, match="failed at task_view.csv") as info:
        export_all(folder, plots, files={"notes.txt": lambda p: p.write_text("second")})
    assert str(folder) in str(info.value)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == first, "the earlier set is untouched"

    with pytest.raises(ExportError, match="failed at notes.txt"):
        export_all(tmp_path / "fresh", plots | {"task_view": make(TaskViewPlot, filled_store)},
                   files={"notes.txt": lambda p: fail(p)})
    assert leftovers(tmp_path / "fresh") == [], "a failed first export leaves an empty folder"


def test_export_all_into_a_path_under_a_file_says_so(qtbot, make, filled_store, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    with pytest.raises(ExportError, match="export folder"):
        export_all(blocker / "run", {"training_curve": make(TrainingCurvePlot, filled_store)})
    assert leftovers(tmp_path) == ["file.txt"]


# -- one registry of formats -----------------------------------------------------------------------

def test_one_registry_serves_the_single_exports_the_dialogs_and_the_menu(qtbot, make, filled_store, tmp_path):
    plot = make(AdaptationCurvePlot, filled_store)
    assert list(FORMATS) == ["png", "svg", "csv"]
    assert file_filters().split(";;") == [f.file_filter for f in FORMATS.values()]
    assert all(f"(*.{suffix})" in FORMATS[suffix].file_filter for suffix in FORMATS)
    assert list(plot.export_actions) == list(FORMATS)
    assert not QImage(str(export_plot(plot, tmp_path / "curve.PNG"))).isNull()
    assert ET.parse(export_plot(plot, tmp_path / "curve.svg")).getroot().tag == f"{SVG}svg"
    assert read_csv(export_plot(plot, tmp_path / "curve.csv"))[0][0] == "inner_step"
    assert format_of(tmp_path / "curve.unknown") is FORMATS["png"], "an unknown suffix falls back to the first"
