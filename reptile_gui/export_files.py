"""Exporting from the window: one plot by the file's suffix, or everything on show into a folder."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog, QStatusBar, QWidget

from reptile_engine.logger import write_table
from reptile_gui import export
from reptile_gui.controller import TrainingController
from reptile_gui.message_banner import MessageBanner
from reptile_gui.plots.base import StorePlot
from reptile_gui.store import RunStore


class ExportFiles(QObject):
    """The File ▸ Export actions, with their dialogs over ``window``; a failure shows in ``banner`` and writes
    nothing, a success in ``status``."""

    def __init__(self, window: QWidget, store: RunStore, controller: TrainingController, banner: MessageBanner,
                 status: QStatusBar, active_plots: Callable[[], Mapping[str, StorePlot]]):
        super().__init__(window)
        self._window = window
        self._store = store
        self._controller = controller
        self._banner = banner
        self._status = status
        self._active_plots = active_plots

    def ask_and_export_plot(self, plot: StorePlot) -> None:
        path, _ = QFileDialog.getSaveFileName(self._window, f"Export {plot.title}", f"{plot.plot_name}.png",
                                              export.file_filters())
        if path:
            self.export_plot(plot, path)

    def export_plot(self, plot: StorePlot, path: str | Path) -> bool:
        """Write ``plot`` as PNG, SVG or CSV by the suffix of ``path``."""
        try:
            written = export.export_plot(plot, path)
        except export.ExportError as exc:
            self._banner.show_message("error", str(exc))
            return False
        self._status.showMessage(f"Exported {written}", 8000)
        return True

    def ask_and_export_all(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Export all into folder")
        if folder:
            self.export_all(folder)

    def export_all(self, folder: str | Path) -> bool:
        """The plots on show as PNG, SVG and CSV, plus ``config.toml`` and ``metrics.csv`` (the run's metric
        columns), into ``folder``: all of them or, after a failure, none."""
        folder = Path(folder)

        def write_metrics(path: Path) -> None:
            write_table(path, self._store.metric_columns, self._store.history_rows())

        try:
            export.export_all(folder, self._active_plots(),
                              files={"config.toml": self._controller.config.save, "metrics.csv": write_metrics})
        except (export.ExportError, OSError) as exc:
            self._banner.show_message("error", str(exc))
            return False
        self._status.showMessage(f"Exported everything to {folder}", 8000)
        return True
