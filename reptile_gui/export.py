"""Writing plots to disk: PNG and SVG through pyqtgraph's exporters, CSV from numpy arrays.

``FORMATS`` is the one registry of the formats a plot exports to, keyed by file suffix: the single-plot
exports, the file dialogs' filter lists and :func:`export_all` all read it.

Every file is written to a temporary file in its folder and renamed into place, so a failed export
leaves neither a truncated file nor a damaged earlier one.

Every function raises :class:`ExportError` (an ``OSError``) naming the path when it cannot write,
so a caller needs one ``except`` clause and can show the message as it is.

>>> write_csv("/tmp/example.csv", ["x", "y"], [np.arange(3), np.array([0.5, 1.5, 2.5])])  # doctest: +SKIP

CSV layout: one header row, then one row per index. Columns may differ in length; a shorter
column leaves its cells empty past its end (that is how a plot puts a small table, such as the task
view's support points, next to a long one). A column whose values are all whole numbers is written as
integers; other numbers use the shortest repr that round-trips in the column's precision (float32 data
such as the engine's predictions is written as float32, e.g. ``0.1`` rather than ``0.10000000149011612``).
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtGui import QImageWriter


class ExportError(OSError):
    """A plot or table could not be written; the message names the path and the reason."""


def _check_writable(path: str | os.PathLike[str]) -> Path:
    """The path as a ``Path`` when its folder exists and is writable, else ``ExportError``."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        raise ExportError(f"Cannot write {path}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise ExportError(f"Cannot write {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"Cannot write {path}: the folder {parent} is not writable")
    if path.is_dir():
        raise ExportError(f"Cannot write {path}: it is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ExportError(f"Cannot write {path}: the file is read-only")
    return path


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write instead; renamed onto ``path`` when the block succeeds,
    removed when it fails, so a failed export never leaves a truncated file (nor replaces a good one)."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        os.replace(temporary, path)
    except ExportError:
        raise
    except OSError as exc:
        raise ExportError(f"Cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        temporary.unlink(missing_ok=True)


def _graphics_target(target: Any) -> Any:
    """The graphics item (or scene) to export from a ``StorePlot``, a ``PlotWidget`` or an item."""
    plot_item = getattr(target, "plot_item", None)  # StorePlot
    if plot_item is not None:
        return plot_item
    get_plot_item = getattr(target, "getPlotItem", None)  # pg.PlotWidget
    if callable(get_plot_item):
        return get_plot_item()
    return target  # a QGraphicsItem or a QGraphicsScene


def export_png(target: Any, path: str | os.PathLike[str], width: int | None = None) -> Path:
    """Render ``target`` (a plot widget or item) to a PNG ``width`` pixels wide (default: as on screen).

    The height follows the on-screen aspect ratio; another image format Qt can write is chosen by the
    path's suffix. Returns the path written.
    """
    from pyqtgraph.exporters import ImageExporter

    path = _check_writable(path)
    image_format = path.suffix.lstrip(".").lower() or "png"
    supported = sorted(bytes(f).decode() for f in QImageWriter.supportedImageFormats())
    if image_format not in supported:
        raise ExportError(f"Cannot write {path}: Qt could not save the image, it has no writer for "
                          f".{image_format} files (it has: {', '.join(supported)})")
    exporter = ImageExporter(_graphics_target(target))
    params = exporter.parameters()
    if width is not None:
        width = int(width)
        if width <= 0:
            raise ExportError(f"Cannot write {path}: the width must be positive, not {width}")
        if params["width"] != width:
            params["width"] = width  # pyqtgraph scales the height with it
    if params["width"] <= 0 or params["height"] <= 0:
        raise ExportError(f"Cannot write {path}: the plot has no size yet (is it laid out?)")
    try:
        image = exporter.export(toBytes=True)  # rendered in memory; written below with Qt's reason on failure
    except Exception as exc:  # pyqtgraph raises bare Exceptions for bad sizes
        raise ExportError(f"Cannot write {path}: {exc}") from exc
    with _atomic(path) as temporary:
        writer = QImageWriter(str(temporary), image_format.encode())
        if not writer.write(image):
            raise ExportError(f"Cannot write {path}: Qt could not save the image ({writer.errorString()})")
    return path


def export_svg(target: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``target`` (a plot widget or item) as SVG; returns the path written."""
    from pyqtgraph.exporters import SVGExporter

    path = _check_writable(path)
    document = SVGExporter(_graphics_target(target)).export(toBytes=True)
    with _atomic(path) as temporary:
        temporary.write_bytes(document)
    return path


def _format_column(values: np.ndarray) -> list[str]:
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return [str(int(v)) for v in values.tolist()]
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    finite = np.isfinite(values)
    if finite.all() and np.all(values == np.round(values)) and np.all(np.abs(values) < 2.0 ** 53):
        return [str(int(v)) for v in values.tolist()]
    if values.dtype.itemsize < 8:
        return [str(v) for v in values]  # numpy's shortest repr that round-trips in this precision
    return [repr(v) for v in values.tolist()]


def write_csv(path: str | os.PathLike[str], header: Sequence[str], columns: Sequence[np.ndarray]) -> Path:
    """Write ``columns`` (1-D arrays, one per ``header`` name) as CSV; returns the path written.

    Shorter columns leave empty cells below their end.
    """
    if len(header) != len(columns):
        raise ValueError(f"{len(header)} header names for {len(columns)} columns")
    path = _check_writable(path)
    cells = [_format_column(np.ravel(column)) for column in columns]
    rows = max((len(c) for c in cells), default=0)
    with _atomic(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(header))
        for i in range(rows):
            writer.writerow([c[i] if i < len(c) else "" for c in cells])
    return path


@dataclass(frozen=True)
class ExportFormat:
    """A file format a plot exports to: its suffix, its name in file dialogs, and how a plot is written in it.

    ``write(plot, path, width)`` takes a ``StorePlot`` (anything with ``export_png``, ``export_svg`` and
    ``export_csv``); ``width`` is the pixel width of an image and ignored by the other formats.
    """

    suffix: str
    description: str
    write: Callable[[Any, Path, int | None], Path]

    @property
    def file_filter(self) -> str:
        """The format as a Qt file dialog's filter, e.g. ``PNG image (*.png)``."""
        return f"{self.description} (*.{self.suffix})"


FORMATS: dict[str, ExportFormat] = {
    "png": ExportFormat("png", "PNG image", lambda plot, path, width=None: plot.export_png(path, width=width)),
    "svg": ExportFormat("svg", "SVG image", lambda plot, path, width=None: plot.export_svg(path)),
    "csv": ExportFormat("csv", "CSV data", lambda plot, path, width=None: plot.export_csv(path)),
}
"""The formats by suffix, in the order dialogs offer them (the first is the default)."""


def file_filters() -> str:
    """Every format as one Qt file dialog filter list."""
    return ";;".join(export_format.file_filter for export_format in FORMATS.values())


def format_of(path: str | os.PathLike[str]) -> ExportFormat:
    """The format ``path``'s suffix names; PNG for a suffix that names none."""
    return FORMATS.get(Path(path).suffix.lower().lstrip("."), next(iter(FORMATS.values())))


def export_plot(plot: Any, path: str | os.PathLike[str], width: int | None = None) -> Path:
    """Write ``plot`` in the format of ``path``'s suffix (see :func:`format_of`); returns the path written."""
    return format_of(path).write(plot, Path(path), width)


def export_all(folder: str | os.PathLike[str], plots: Mapping[str, Any], *, width: int | None = None,
               files: Mapping[str, Callable[[Path], Any]] | None = None) -> list[Path]:
    """Write ``<name>.<suffix>`` into ``folder`` for each plot in each of ``FORMATS`` (a file stem maps to a
    ``StorePlot`` in ``plots``), and each of ``files`` (a file name mapped to a function that writes that file
    at the path it is given).

    The folder is created when missing. Everything is first written into a hidden folder inside it and
    moved into place only when every file was written, so a failure leaves no partial set (and the files of
    an earlier export as they were); the error names the file that failed. Returns the paths written, in
    order.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the export folder {folder}: {exc.strerror or exc}") from exc
    writers: list[tuple[str, Callable[[Path], Any]]] = [
        (f"{name}.{suffix}", lambda p, plot=plot, export_format=export_format: export_format.write(plot, p, width))
        for name, plot in plots.items() for suffix, export_format in FORMATS.items()]
    writers += list((files or {}).items())
    try:
        staging = Path(tempfile.mkdtemp(prefix=".export.", dir=folder))
    except OSError as exc:
        raise ExportError(f"Cannot write into {folder}: {exc.strerror or exc}") from exc
    try:
        for file_name, write in writers:
            try:
                write(staging / file_name)
            except ExportError as exc:
                raise ExportError(f"Export to {folder} failed at {file_name}: {exc}") from exc
            except OSError as exc:
                raise ExportError(f"Export to {folder} failed at {file_name}: {exc.strerror or exc}") from exc
        written = []
        for file_name, _ in writers:
            try:
                os.replace(staging / file_name, folder / file_name)
            except OSError as exc:
                raise ExportError(f"Cannot write {folder / file_name}: {exc.strerror or exc}") from exc
            written.append(folder / file_name)
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
