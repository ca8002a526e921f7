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
import time

import numpy as np

CASES = [(1, 5), (10, 32), (100, 32)]
TICK_MS = 10


def headless_rate(meta_batch: int, steps: int, seconds: float) -> float:
    """Iterations per second of ``Trainer.step`` in a fresh process, as ``reptile-train`` would run."""
    code = (
        "import time, sys\n"
        "from reptile_engine.presets import preset\n"
        "from reptile_engine.trainer import Trainer\n"
        f"t = Trainer(preset('default').with_updates({{'meta.meta_batch': {meta_batch}, 'inner.steps': {steps}}}))\n"
        "for _ in range(5): t.step()\n"
        "n, start = 0, time.perf_counter()\n"
        f"while time.perf_counter() - start < {seconds}: t.step(); n += 1\n"
        "print(n / (time.perf_counter() - start))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def in_app(meta_batch: int, steps: int, seconds: float) -> tuple[float, float, float, float]:
    """(iterations/s, p50 lateness ms, p99 lateness ms, share of ticks lost) with the app training."""
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from reptile_engine.presets import preset
    from reptile_gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    window = MainWindow(preset("default").with_updates({"meta.meta_batch": meta_batch, "inner.steps": steps}))
    window.resize(1600, 1000)
    window.show()
    controller = window.controller
    deadline = time.monotonic() + 120
    while controller.state != "ready" and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    controller.start()
    while len(controller.store) < 5 and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)

    clock = QElapsedTimer()
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(TICK_MS)
    timer.timeout.connect(lambda: ticks.append(clock.nsecsElapsed() / 1e6))
    start_iteration = controller.store.latest("iteration")
    clock.start()
    timer.start()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
    timer.stop()
    elapsed = clock.nsecsElapsed() / 1e9
    iterations = controller.store.latest("iteration") - start_iteration
    window.close()
    app.processEvents()

    intervals = np.diff(np.asarray(ticks))
    lateness = np.maximum(intervals - TICK_MS, 0.0)
    expected = elapsed * 1000 / TICK_MS
    lost = max(0.0, 1.0 - len(ticks) / expected)
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
