"""``reptile-gui``: open Reptile Lab on a preset (the tuned sine-regression default), ready to train."""

from __future__ import annotations

import argparse
import sys

from PySide6.QtWidgets import QApplication

from reptile_engine.config import ConfigError, ExperimentConfig
from reptile_engine.presets import PRESETS, preset


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
    window.show()
    return app.exec()
