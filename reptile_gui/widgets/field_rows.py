"""Which config fields the hyperparameter panel shows, in which order, and the row each one gets.

Every live field (``metadata["live"]``) outside ``OWN_CONTROLS`` gets a row, plus the non-live fields in
``EXTRA_FIELDS``; rows are grouped by config section in declaration order, but for the sections in
``SECTION_AFTER`` (the meta-RL agent's right after the supervised inner loop's). A row is the field's
name, its editor (:func:`reptile_gui.toolkit.make_editor`) and a hint saying why it is greyed out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

from reptile_engine.config import ExperimentConfig, describe_range, is_live, iter_fields
from reptile_gui.toolkit import humanize, make_editor, name_control, name_internals

EXTRA_FIELDS: tuple[str, ...] = (
    "model.hidden", "model.depth", "model.activation", "task.support", "task.query", "meta.iterations",
    "meta.optimizer", "evaluation.tasks", "evaluation.steps", "evaluation.lr", "seed",
    "rl.algorithm", "rl.hidden", "rl.depth", "rl.gamma", "rl.init_log_std",
)
"""Non-live fields worth exposing: they change between runs (the rows grey out while one runs)."""

OWN_CONTROLS: tuple[str, ...] = ("landscape.",)
"""Sections steered from their own panel (the landscape view), not from this one."""

UI_MAX: dict[str, int] = {
    "meta.meta_batch": 256, "inner.steps": 100, "inner.batch_size": 100, "meta.iterations": 1_000_000,
    "task.support": 1000, "task.query": 1000, "model.hidden": 1024, "evaluation.tasks": 1000,
    "evaluation.steps": 200, "evaluation.every": 5000, "rl.updates": 20, "rl.episodes": 100, "rl.hidden": 256,
}
"""Where a slider's track ends when the config allows far more; typed values may go up to the config max."""

SECTION_TITLES: dict[str, str] = {"": "Experiment", "inner": "Inner loop", "meta": "Meta loop", "rl": "RL agent"}
SECTION_AFTER: dict[str, str] = {"rl": "inner"}
"""Sections shown right after another one rather than in declaration order: each kind's inner loop in one place."""
STOPPED_ONLY = "(stopped only)"
HIGHLIGHT_MS = 1500
"""How long a row stays highlighted after the trainer applied its change."""


def exposed_fields(config: ExperimentConfig,
                   extra: Iterable[str] = EXTRA_FIELDS) -> list[tuple[str, dataclasses.Field]]:
    """The fields the panel shows: every live field and those named in ``extra``, in declaration order but
    for the sections in ``SECTION_AFTER``."""
    extra = set(extra)
    exposed = [(path, f) for path, _, f in iter_fields(config)
               if (is_live(path) or path in extra) and not path.startswith(OWN_CONTROLS)]
    first_seen: dict[str, int] = {}
    for index, (path, _) in enumerate(exposed):
        first_seen.setdefault(section_of(path), index)

    def rank(section: str) -> float:
        anchor = SECTION_AFTER.get(section)
        return first_seen[anchor] + 0.5 if anchor in first_seen else first_seen[section]

    return sorted(exposed, key=lambda item: rank(section_of(item[0])))


def section_of(path: str) -> str:
    """The section of a dotted path: ``"inner"`` for ``"inner.lr"``, ``""`` for ``"seed"``."""
    return path.rpartition(".")[0]


def section_title(section: str) -> str:
    return SECTION_TITLES.get(section, humanize(section).capitalize())


class FieldRow(QFrame):
    """One field: its name, its editor and a hint saying why it is greyed out.

    Its ``applied`` and ``error`` properties drive the panel's style sheet (a flash, a red frame).
    """

    def __init__(self, path: str, f: dataclasses.Field, parent: QWidget | None = None):
        super().__init__(parent)
        self.path = path
        self.live = is_live(path)
        slug = path.replace(".", "_")
        self.setProperty("fieldRow", True)
        self.setObjectName(f"row_{slug}")
        name = humanize(path.rpartition(".")[2])
        self.label = QLabel(name, self)
        self.label.setObjectName(f"label_{slug}")
        self.editor = make_editor(path, UI_MAX.get(path))
        widget = self.editor.widget
        widget.setParent(self)
        self.hint = self._make_hint(slug)

        doc = f.metadata.get("doc", "")
        when = ("Applies at the next iteration, even while training." if self.live
                else "Can change only while no run is in progress (stopped, or before the first iteration).")
        self.base_tooltip = f"{path}: {doc}\nAllowed: {describe_range(f)}.\n{when}"
        accessible = f"{section_title(section_of(path))} {name}"
        name_control(widget, f"field_{slug}", accessible, self.base_tooltip, doc)
        name_internals(widget, f"field_{slug}", accessible)
        self.label.setToolTip(self.base_tooltip)
        self.label.setBuddy(widget)
        self.setToolTip(self.base_tooltip)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        layout.setSpacing(8)
        layout.addWidget(self.label)
        layout.addWidget(widget, 1)
        layout.addWidget(self.hint)

        self._highlight = QTimer(self)
        self._highlight.setSingleShot(True)
        self._highlight.setInterval(HIGHLIGHT_MS)
        self._highlight.timeout.connect(lambda: self._set_flag("applied", False))
        self.error: str | None = None
        self.editable = True

    def _make_hint(self, slug: str) -> QLabel:
        hint = QLabel(STOPPED_ONLY if not self.live else "", self)
        hint.setObjectName(f"hint_{slug}")
        hint.setProperty("hint", True)
        font = hint.font()
        font.setPointSizeF(font.pointSizeF() * 0.85)
        hint.setFont(font)
        policy = hint.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        hint.setSizePolicy(policy)
        hint.hide()
        return hint

    def _set_flag(self, name: str, on: bool) -> None:
        if bool(self.property(name)) != on:
            self.setProperty(name, on)
            self.style().unpolish(self)
            self.style().polish(self)
            self.update()

    def _refresh_tooltip(self) -> None:
        text = self.base_tooltip
        if not self.editable:
            why = ("Waiting for the trainer to start." if self.live
                   else "Locked while a run is in progress: stop the run (or reset) to change it.")
            text = f"{why}\n\n{text}"
        if self.error:
            text = f"⚠ {self.error}\n\n{text}"
        for widget in (self, self.label, self.editor.widget, *self.editor.widget.findChildren(QWidget)):
            widget.setToolTip(text)

    def set_editable(self, editable: bool) -> None:
        self.editable = editable
        self.editor.widget.setEnabled(editable)
        self.hint.setVisible(not editable and not self.live)
        self._refresh_tooltip()

    def flash(self) -> None:
        """Highlight the row for ``HIGHLIGHT_MS``: the trainer applied its change."""
        self._set_flag("applied", True)
        self._highlight.start()

    def set_error(self, message: str | None) -> None:
        self.error = message
        self._set_flag("error", message is not None)
        self._refresh_tooltip()
