"""GUI responsiveness and in-app training speed, offscreen, training at full speed.

For each case the main window trains in the app (the engine in its child process, plots redrawing
at 30 Hz) while a 10 ms QTimer measures how late the GUI event loop serves it (p50, p99, and the
share of ticks lost). The meta-iterations per second reached inside the app are compared with the
same config run headless in a plain process, measured in the same run.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np

CASES = [(1, 5), (10, 32), (100, 32)]
TICK_MS = 10


def headless_rate(meta_batch: int, steps: int, seconds: float) -> float:
    """Iterations per second of ``Trainer.run()`` (evaluations included, as in the app) in a fresh process."""
    code = (
        "import time\n"
        "from reptile_engine.events import IterationMetrics\n"
        "from reptile_engine.presets import preset\n"
        "from reptile_engine.trainer import Trainer\n"
        f"t = Trainer(preset('default').with_updates({{'meta.meta_batch': {meta_batch}, 'inner.steps': {steps}, "
        "'meta.iterations': 10_000_000}))\n"
        "n, start = 0, None\n"
        "for event in t.run():\n"
        "    if isinstance(event, IterationMetrics):\n"
        "        if event.iteration == 5: start = time.perf_counter()\n"
        "        elif start is not None: n += 1\n"
        f"        if start is not None and time.perf_counter() - start > {seconds}: break\n"
        "print(n / (time.perf_counter() - start))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _spin(app, seconds: float, until=None) -> None:
    """Run the Qt event loop (as ``app.exec`` would) for ``seconds`` or until ``until()`` holds."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    if until is not None:
        poll = QTimer()
        poll.timeout.connect(lambda: until() and loop.quit())
        poll.start(20)
    loop.exec()


def in_app(meta_batch: int, steps: int, seconds: float) -> tuple[float, float, float, float]:
    """(iterations/s, p50 lateness ms, p99 lateness ms, share of ticks lost) with the app training."""
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from reptile_engine.presets import preset
    from reptile_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    config = preset("default").with_updates({"meta.meta_batch": meta_batch, "inner.steps": steps,
                                             "meta.iterations": 10_000_000})
    window = MainWindow(config)
    window.show()
    controller = window.controller
    _spin(app, 120, lambda: controller.state == "ready")
    controller.start()
    _spin(app, 120, lambda: len(controller.store) >= 5)

    clock = QElapsedTimer()
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e6))
    start_iteration = controller.store.latest("iteration")
    clock.start()
    timer.start()
    _spin(app, seconds)
    timer.stop()
    elapsed = clock.nsecsElapsed() / 1e9
    iterations = controller.store.latest("iteration") - start_iteration
    window.close()

    intervals = np.diff(np.asarray(ticks))
    lateness = np.maximum(intervals - TICK_MS, 0.0)
    lost = max(0.0, 1.0 - len(ticks) / (elapsed * 1000 / TICK_MS))
    return iterations / elapsed, float(np.percentile(lateness, 50)), float(np.percentile(lateness, 99)), lost


def main() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(f"{'B':>4} {'K':>3} {'in app it/s':>12} {'headless it/s':>14} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'ticks lost':>10}  targets: ratio >= 0.85, p99 <= 20 ms")
    for meta_batch, steps in CASES:
        rate, p50, p99, lost = in_app(meta_batch, steps, args.seconds)
        headless = headless_rate(meta_batch, steps, min(args.seconds, 5.0))
        ratio = rate / headless
        verdict = "met" if ratio >= 0.85 and p99 <= 20 else "MISSED"
        print(f"{meta_batch:>4} {steps:>3} {rate:>12.1f} {headless:>14.1f} {ratio:>6.2f} {p50:>7.2f} {p99:>7.2f} "
              f"{lost:>9.1%}  {verdict}", flush=True)


if __name__ == "__main__":
    main()
