"""``reptile-gui``: open Reptile Lab on a preset (the tuned sine-regression default), ready to train."""

from __future__ import annotations

import argparse
import atexit
import os
import signal
import sys
from typing import NoReturn

from PySide6.QtCore import QCoreApplication, QEvent, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.presets import PRESETS, preset

SIGNAL_POLL_MS = 200


def close_on_termination(window: QWidget) -> None:
    """Ctrl+C in the terminal or a SIGTERM closes the window as its close button does, so the trainer's child
    process is stopped and joined instead of killed with the app.

    Python runs signal handlers only when it holds control, never inside Qt's event loop, so a timer hands it
    control a few times a second. The handler only queues the close: a signal that comes before the event loop
    runs closes the window once it does, when closing it can still end the loop.
    """
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: QTimer.singleShot(0, window.close))
    poll = QTimer(window)
    poll.timeout.connect(lambda: None)
    poll.start(SIGNAL_POLL_MS)


def exit_without_teardown(code: int) -> NoReturn:
    """End the process once the window has closed, skipping the interpreter's teardown of torch and Qt.

    By then the window is gone, the trainer process joined and the run folder removed; tearing down the
    loaded modules would only keep a finished app alive for about another second. Exit handlers still run
    and the output streams are flushed.
    """
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the app; the return value is an error exit code only, as a closed window ends the process."""
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
        refusals: list[str] = []
        window.controller.failed.connect(lambda message, _details: refusals.append(message))
        if not window.controller.load_session(args.session):
            window.close()  # joins the trainer: a thread left running at exit would abort the process
            QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
            print(f"reptile-gui: error: {refusals[-1]}", file=sys.stderr)
            return 2
    window.show()
    close_on_termination(window)
    exit_without_teardown(app.exec())
