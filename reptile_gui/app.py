"""``reptile-gui``: open Reptile Lab on a preset (the tuned sine-regression default), ready to train."""

from __future__ import annotations

import argparse
import signal
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget

from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.presets import PRESETS, preset

SIGNAL_POLL_MS = 200


def close_on_termination(window: QWidget) -> None:
    """Ctrl+C in the terminal or a SIGTERM closes the window as its close button does, so the trainer's child
    process is stopped and joined instead of killed with the app.

    Python runs signal handlers only when it holds control, never inside Qt's event loop, so a timer hands it
    control a few times a second.
    """
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: window.close())
    poll = QTimer(window)
    poll.timeout.connect(lambda: None)
    poll.start(SIGNAL_POLL_MS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reptile-gui", description="Reptile Lab, the desktop app.")
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    parser.add_argument("--config", help="a TOML config file to open instead of a preset")
    parser.add_argument("--session", help="a saved session (.reptile) to open")
    args = parser.parse_args(argv)
    try:
        config = ExperimentConfig.load(args.config) if args.config else preset(args.preset)
    except ConfigError as exc:
        print(f"reptile-gui: error: {exc}", file=sys.stderr)
        return 2

    from reptile_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Reptile Lab")
    app.setOrganizationName("Reptile Lab")
    window = MainWindow(config)
    if args.session:
        window.controller.load_session(args.session)
    close_on_termination(window)
    window.show()
    return app.exec()
