"""The strip above the plots that tells of a divergence or an engine error, with details on demand."""

from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QMessageBox, QPushButton, QWidget

from reptile_engine.events import Diverged


def divergence_message(event: Diverged) -> tuple[str, str]:
    """What the banner says of a divergence, and its details: the hyperparameters in force."""
    hyper = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                      for k, v in event.hyperparameters.items())
    text = (f"Diverged at iteration {event.iteration}: {event.reason}. The meta-parameters were rolled back to "
            f"iteration {event.rolled_back_to} and training paused; change the culprit (often inner.lr or "
            f"meta.lr) and training continues.")
    return text, f"Hyperparameters in force:\n{hyper}"


class MessageBanner(QFrame):
    """A dismissible strip above the plots for divergence and engine errors, with details on demand."""

    STYLES = {"error": "#fdecea", "warning": "#fff4e5"}

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("messageBanner")
        self.setAccessibleName("Run messages")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setObjectName("messageBannerText")
        self.text.setAccessibleName("Run message text")
        self.details_button = QPushButton("Details…")
        self.details_button.setObjectName("messageBannerDetails")
        self.details_button.setAccessibleName("Show message details")
        self.close_button = QPushButton("Dismiss")
        self.close_button.setObjectName("messageBannerDismiss")
        self.close_button.setAccessibleName("Dismiss message")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 10, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.details_button)
        layout.addWidget(self.close_button)
        self._details = ""
        self.details_button.clicked.connect(self._show_details)
        self.close_button.clicked.connect(self.hide)
        self.hide()

    @property
    def details(self) -> str:
        """The text the Details button shows (empty when the message has none)."""
        return self._details

    def show_message(self, kind: str, text: str, details: str = "") -> None:
        """Show ``text`` styled as ``kind`` (``"error"`` or ``"warning"``), with ``details`` on demand."""
        self.setStyleSheet(f"MessageBanner {{ background: {self.STYLES[kind]}; border-radius: 4px; }}")
        self.text.setText(text)
        self._details = details
        self.details_button.setVisible(bool(details))
        self.show()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Information, "Details", self.text.text(), parent=self)
        box.setDetailedText(self._details)
        box.open()
