"""One debouncer for every panel of controls: a burst of edits becomes one request.

Each edit restarts a single-shot timer; when it fires (or on :meth:`Debouncer.flush`, as when a slider is
released) the latest value of every edited key goes out at once in ``flushed``.

>>> debouncer = Debouncer(parent=panel)                        # doctest: +SKIP
>>> debouncer.flushed.connect(panel.send_changes)              # doctest: +SKIP
>>> debouncer.push("inner.lr", 0.01)                           # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

DEBOUNCE_MS = 200
"""How long the user must pause before a burst of edits is sent."""


class Debouncer(QObject):
    """Collects ``{key: latest value}`` and emits it once the edits pause for ``interval_ms``.

    Signals:
        flushed(dict): the pending edits, never empty.
    """

    flushed = Signal(dict)

    def __init__(self, interval_ms: int = DEBOUNCE_MS, parent: QObject | None = None):
        super().__init__(parent)
        self._pending: dict[str, Any] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.flush)

    def push(self, key: str, value: Any) -> None:
        """Note an edit (the last one of a key wins) and restart the wait."""
        self._pending[key] = value
        self._timer.start()

    def discard(self, key: str) -> None:
        """Forget an edit not sent yet (a rejected one)."""
        self._pending.pop(key, None)

    def __contains__(self, key: str) -> bool:
        return key in self._pending

    def has_pending(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        """Emit the pending edits now, if there are any."""
        self._timer.stop()
        pending, self._pending = self._pending, {}
        if pending:
            self.flushed.emit(pending)
