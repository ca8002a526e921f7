"""The hyperparameter panel, generated from the config's field metadata.

The rows (:mod:`reptile_gui.widgets.field_rows`) sit in one box per config section. Only the rows that
matter for the config's kind of run show (``applies_to``): a supervised run hides the ``rl`` section, a
meta-RL run the model, the inner loop and the supervised-only evaluation fields; a section with no row
left hides too.

User edits are coalesced by the toolkit's :class:`~reptile_gui.toolkit.Debouncer` (one
``changesRequested({path: value, ...})`` per pause in the edits, or at once when a slider is released).
``set_config`` re-syncs the editors with their signals blocked, so there is no echo.

>>> panel = HyperparameterPanel(ExperimentConfig())          # doctest: +SKIP
>>> panel.changesRequested.connect(controller.update)        # doctest: +SKIP
>>> controller.configChanged.connect(panel.set_config)       # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from reptile_engine.config import ExperimentConfig, applies_to, get_value
from reptile_gui.toolkit import Debouncer, WheelGuard, name_control
from reptile_gui.widgets.change_log import ChangeLog, change_lines
from reptile_gui.widgets.field_rows import (
    EXTRA_FIELDS,
    OWN_CONTROLS,
    FieldRow,
    exposed_fields,
    section_of,
    section_title,
)

_STYLE = """
QFrame[fieldRow="true"] { border: 1px solid transparent; border-radius: 3px; }
QFrame[fieldRow="true"][applied="true"] { background-color: rgba(255, 193, 7, 90); }
QFrame[fieldRow="true"][error="true"] { border: 1px solid #d32f2f; background-color: rgba(211, 47, 47, 25); }
QLabel[hint="true"] { color: palette(mid); }
QLabel#hyperparameterError { color: #d32f2f; }
"""


class HyperparameterPanel(QWidget):
    """Editors for the live (and a few between-run) hyperparameters, built from the config metadata.

    Signals:
        changesRequested(dict): ``{dotted_path: value}``, one per debounce window of user edits.
    """

    changesRequested = Signal(dict)

    def __init__(self, config: ExperimentConfig | None = None, extra_fields: Iterable[str] = EXTRA_FIELDS,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("hyperparameterPanel")
        self.setAccessibleName("Hyperparameters")
        self.setStyleSheet(_STYLE)
        self._config = config if config is not None else ExperimentConfig()
        self._predicate: Callable[[str], bool] | None = None
        self._rows: dict[str, FieldRow] = {}
        self._sections: dict[str, QGroupBox] = {}
        self._kind_of_task: tuple[str, str] | None = None  # (task.name, its kind): kind_of reads entry points
        self._edits = Debouncer(parent=self)
        self._edits.flushed.connect(self._send)

        content = self._build_sections(extra_fields)
        self._scroll = self._build_scroll(content)
        self._error = QLabel(self)
        name_control(self._error, "hyperparameterError", "Hyperparameter error")
        self._error.setWordWrap(True)
        self._error.hide()
        self.change_log = ChangeLog()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._error)
        layout.addWidget(self.change_log.in_group_box(self))
        self.set_config(self._config)

    def _build_sections(self, extra_fields: Iterable[str]) -> QWidget:
        """One box per section with its rows, labels and hints of one width so the editors line up."""
        content = QWidget()
        content.setObjectName("hyperparameterSections")
        sections = QVBoxLayout(content)
        sections.setContentsMargins(0, 0, 0, 0)
        sections.setSpacing(6)
        groups: dict[str, QVBoxLayout] = {}
        for path, f in exposed_fields(self._config, extra_fields):
            section = section_of(path)
            if section not in groups:
                groups[section] = self._add_section(sections, section)
            row = FieldRow(path, f)
            row.editor.connect(lambda value, p=path: self._edited(p, value), self.flush)
            groups[section].addWidget(row)
            self._rows[path] = row
        sections.addStretch(1)

        label_width = max(row.label.sizeHint().width() for row in self._rows.values())
        hint_width = max(row.hint.sizeHint().width() for row in self._rows.values())
        for row in self._rows.values():
            row.label.setFixedWidth(label_width)
            row.hint.setFixedWidth(hint_width)
        WheelGuard(self).guard(content)
        return content

    def _add_section(self, layout: QVBoxLayout, section: str) -> QVBoxLayout:
        box = QGroupBox(section_title(section))
        self._sections[section] = box
        box.setObjectName(f"section_{section or 'experiment'}")
        value = get_value(self._config, section) if section else self._config
        box.setToolTip((type(value).__doc__ or "").strip().splitlines()[0])
        inner = QVBoxLayout(box)
        inner.setContentsMargins(4, 6, 4, 4)
        inner.setSpacing(0)
        layout.addWidget(box)
        return inner

    def _build_scroll(self, content: QWidget) -> QScrollArea:
        scroll = QScrollArea(self)
        name_control(scroll, "hyperparameterScroll", "Hyperparameter sections")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(content)
        name_control(scroll.verticalScrollBar(), "hyperparameterScrollBar", "Scroll hyperparameters")
        name_control(scroll.horizontalScrollBar(), "hyperparameterScrollBarH", "Scroll hyperparameters sideways")
        scrollbar = scroll.verticalScrollBar().sizeHint().width()
        scroll.setMinimumWidth(content.minimumSizeHint().width() + scrollbar + 4)
        return scroll

    # Public API.

    @property
    def config(self) -> ExperimentConfig:
        """The last config the panel was synced to (the last good one)."""
        return self._config

    def paths(self) -> list[str]:
        """The dotted paths of the rows, in display order."""
        return list(self._rows)

    def editor(self, path: str) -> QWidget:
        """The editor widget of a row (a superqt slider, ``LogSlider``, combo box or spin box)."""
        return self._rows[path].editor.widget

    def row(self, path: str) -> FieldRow:
        return self._rows[path]

    def value(self, path: str) -> Any:
        """What the row's editor shows now."""
        return self._rows[path].editor.value()

    def set_config(self, config: ExperimentConfig) -> None:
        """Show ``config`` in every row without emitting anything (rows with an unsent edit keep it), and
        only the rows that matter for its kind of run."""
        self._config = config
        support = getattr(getattr(config, "task", None), "support", None)
        for path, row in self._rows.items():
            if path == "inner.batch_size" and support is not None:
                row.editor.set_limit(support)  # validate() demands inner.batch_size <= task.support
            if path not in self._edits:
                row.editor.set_value(get_value(config, path))
        self._show_kind(self.kind)

    @property
    def kind(self) -> str:
        """The kind of run (``"supervised"`` or ``"rl"``) of the config on show."""
        name = self._config.task.name
        if self._kind_of_task is None or self._kind_of_task[0] != name:
            self._kind_of_task = (name, self._config.kind)
        return self._kind_of_task[1]

    def _show_kind(self, kind: str) -> None:
        for path, row in self._rows.items():
            row.setHidden(not applies_to(path, kind, self._config.rl.algorithm))
        for section, box in self._sections.items():
            rows = [row for path, row in self._rows.items() if section_of(path) == section]
            box.setHidden(all(row.isHidden() for row in rows))

    def shown_paths(self) -> list[str]:
        """The paths of the rows shown for the config's kind of run, in display order."""
        return [path for path, row in self._rows.items() if not row.isHidden()]

    def set_editability(self, predicate: Callable[[str], bool] | None = None) -> None:
        """Enable the rows ``predicate(path)`` allows and grey out the rest with the reason.

        Pass ``controller.editable_now``; call again with no argument (or the same one) after each state change.
        """
        if predicate is not None:
            self._predicate = predicate
        if self._predicate is None:
            return
        for path, row in self._rows.items():
            row.set_editable(bool(self._predicate(path)))

    def show_applied(self, event: Any) -> None:
        """Log a ``ConfigChanged`` event's hyperparameter changes (newest first) and flash the rows it changed.

        Settings of a view with its own controls (``OWN_CONTROLS``, the landscape's) are not hyperparameters
        of the run: they are not logged."""
        hyperparameters = {path: change for path, change in event.changes.items()
                           if not path.startswith(OWN_CONTROLS)}
        self.change_log.prepend(change_lines(SimpleNamespace(iteration=event.iteration, changes=hyperparameters)))
        config = getattr(event, "config", None)
        if isinstance(config, ExperimentConfig):
            self.set_config(config)
        for path in event.changes:
            row = self._rows.get(path)
            if row is not None:
                row.set_error(None)
                row.flash()
        if not any(row.error for row in self._rows.values()):
            self._error.hide()

    def clear_change_log(self) -> None:
        """Forget the logged changes (a reset run starts with none)."""
        self.change_log.clear()

    def show_error(self, field: str, message: str) -> None:
        """Mark the row of a rejected change and return every row to the last good config."""
        self._edits.discard(field)
        row = self._rows.get(field)
        if row is not None:
            row.set_error(message)
        self._error.setText(f"{field}: {message}")
        self._error.setToolTip(f"{field}: {message}")
        self._error.show()
        self.set_config(self._config)

    def flush(self) -> None:
        """Emit the pending edits now (the debouncer does when the edits pause; so does releasing a slider)."""
        self._edits.flush()

    def has_pending(self) -> bool:
        return self._edits.has_pending()

    # Private.

    def _send(self, pending: dict[str, Any]) -> None:
        changes = {path: value for path, value in pending.items() if value != get_value(self._config, path)}
        if changes:
            self.changesRequested.emit(changes)

    def _edited(self, path: str, value: Any) -> None:
        row = self._rows[path]
        if row.error is not None:
            row.set_error(None)
            if not any(r.error for r in self._rows.values()):
                self._error.hide()
        self._edits.push(path, value)
