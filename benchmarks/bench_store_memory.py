"""Memory and append cost of the GUI's run history over an hour of training at full speed.

Feeds a ``RunStore`` batches of synthetic meta-RL metrics (its widest history, 14 columns) the way the
worker does: 3.6 million iterations (an hour at 1,000 it/s) in batches of 60. Reports the process's resident
memory growth and the time per batch, against a plain reference measured in the same run: the same columns
as growable numpy arrays that keep every iteration in memory. Each variant runs in a fresh process so that
one's memory does not hide the other's. Also times reading the complete history back (what an export or a
session save does).

    python benchmarks/bench_store_memory.py [--iterations 3600000] [--batch 60]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from reptile_gui.store import RL_METRIC_COLUMNS, RunStore

GROWTH_LIMIT_MB = 50


def rss_mb() -> float:
    """The resident set size now (Linux), or the peak elsewhere."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class UnboundedColumns:
    """The reference: every column a growable array holding every iteration."""

    def __init__(self) -> None:
        self.columns = {name: np.empty(4096) for name in RL_METRIC_COLUMNS}
        self.size = 0

    def extend_metrics(self, batch: dict[str, np.ndarray]) -> None:
        needed = self.size + len(batch["iteration"])
        for name, data in self.columns.items():
            if needed > len(data):
                grown = np.empty(max(needed, 2 * len(data)))
                grown[: self.size] = data[: self.size]
                self.columns[name] = data = grown
            data[self.size:needed] = batch[name]
        self.size = needed


def batches(iterations: int, batch: int):
    rng = np.random.default_rng(0)
    template = {name: rng.normal(size=batch) for name in RL_METRIC_COLUMNS}
    steps = np.arange(1, batch + 1, dtype=np.float64)
    for start in range(0, iterations, batch):
        template["iteration"] = steps + start
        template["elapsed"] = (steps + start) * 1e-3
        yield template


def measure(variant: str, iterations: int, batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore("rl", spill_dir=folder) if variant == "bounded" else UnboundedColumns()
        before = rss_mb()
        spent, count = 0.0, 0
        for values in batches(iterations, batch):
            start = time.perf_counter()
            store.extend_metrics(values)
            spent += time.perf_counter() - start
            count += 1
        result = {"growth_mb": rss_mb() - before, "us_per_batch": 1e6 * spent / count}
        if variant == "bounded":
            start = time.perf_counter()
            rows = sum(len(chunk["iteration"]) for chunk in store.history_chunks())
            result["read_back_s"] = time.perf_counter() - start
            assert rows == iterations, rows
            result["shown_rows"] = store.history_store.shown_rows
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3_600_000)
    parser.add_argument("--batch", type=int, default=60)
    parser.add_argument("--variant", choices=("bounded", "reference"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(measure(args.variant, args.iterations, args.batch)))
        return
    results = {}
    for variant in ("bounded", "reference"):
        out = subprocess.run([sys.executable, __file__, "--variant", variant, "--iterations", str(args.iterations),
                              "--batch", str(args.batch)], capture_output=True, text=True, check=True)
        results[variant] = json.loads(out.stdout)
    bounded, reference = results["bounded"], results["reference"]
    print(f"{args.iterations:,} iterations in batches of {args.batch}, {len(RL_METRIC_COLUMNS)} columns")
    print(f"  bounded store: RSS +{bounded['growth_mb']:.1f} MB, {bounded['us_per_batch']:.1f} µs a batch, "
          f"{bounded['shown_rows']:,} values a column drawn, complete history read back in "
          f"{bounded['read_back_s']:.2f} s")
    print(f"  reference (everything in memory): RSS +{reference['growth_mb']:.1f} MB, "
          f"{reference['us_per_batch']:.1f} µs a batch")
    print(f"  memory ratio {bounded['growth_mb'] / reference['growth_mb']:.3f}, "
          f"time ratio {bounded['us_per_batch'] / reference['us_per_batch']:.2f}; "
          f"limit {GROWTH_LIMIT_MB} MB: {'met' if bounded['growth_mb'] <= GROWTH_LIMIT_MB else 'EXCEEDED'}")


if __name__ == "__main__":
    main()
