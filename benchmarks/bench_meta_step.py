"""Meta-iterations per second: the vectorized engine against a textbook sequential Reptile loop.

Both run in this process on the same task protocol (50 support points per task, inner minibatches
of 10, 10 query points, the 1-64-64-1 tanh MLP), for each meta-batch size B, inner steps K and torch
thread count. The reference is the loop people write first: ``deepcopy`` the model per task,
``loss.backward()``, manual SGD, tasks one after another, then interpolate toward the mean.

    python benchmarks/bench_meta_step.py [--quick]
"""

from __future__ import annotations

import argparse
import copy
import functools
import time

import torch

from reptile_engine.algorithms.inner import minibatches
from reptile_engine.config import ExperimentConfig
from reptile_engine.trainer import Trainer

TARGETS = {(32, 5): 25.0, (32, 32): 15.0, (1, 5): 3.0}
SUPPORT, INNER_BATCH, QUERY = 50, 10, 10


def textbook_iteration(model: torch.nn.Module, tasks, generator: torch.Generator, meta_batch: int,
                       steps: int, inner_lr: float, meta_lr: float) -> None:
    batch = tasks.sample(generator, meta_batch, SUPPORT, QUERY)
    xs, ys = minibatches(generator, batch.support_x, batch.support_y, steps, INNER_BATCH)
    adapted = []
    for t in range(meta_batch):
        task_model = copy.deepcopy(model)
        for k in range(steps):
            loss = (task_model(xs[k, t]) - ys[k, t]).pow(2).mean()
            task_model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in task_model.parameters():
                    p -= inner_lr * p.grad
        adapted.append(task_model)
    with torch.no_grad():
        for p, *task_params in zip(model.parameters(), *(m.parameters() for m in adapted), strict=True):
            p += meta_lr * (torch.stack(task_params).mean(0) - p)


def rate(fn, budget: float, min_calls: int = 3) -> float:
    """Calls per second of ``fn`` over at least ``budget`` seconds, after one warm-up call."""
    fn()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < budget:
        fn()
        calls += 1
    return calls / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short budgets and a smaller grid")
    args = parser.parse_args()
    budget = 0.3 if args.quick else 1.0
    batches = (1, 32) if args.quick else (1, 5, 10, 32, 100)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available by default")
    print(f"{'threads':>7} {'B':>4} {'K':>3} {'textbook it/s':>14} {'engine it/s':>12} {'ratio':>7}  target")
    for threads in (1, 2):
        for meta_batch in batches:
            for steps in (5, 32):
                cfg = ExperimentConfig().with_updates({
                    "meta.meta_batch": meta_batch, "inner.steps": steps, "task.support": SUPPORT,
                    "inner.batch_size": INNER_BATCH, "task.query": QUERY, "threads": threads})
                trainer = Trainer(cfg)
                torch.set_num_threads(threads)
                engine = rate(trainer.step, budget)
                learner = trainer.learner
                reference_args = (learner.model.module(), learner.tasks, torch.Generator().manual_seed(0),
                                  meta_batch, steps, 0.02, 0.1)
                reference = rate(functools.partial(textbook_iteration, *reference_args), budget)
                ratio = engine / reference
                target = TARGETS.get((meta_batch, steps))
                verdict = "" if target is None else f">= {target:g}x {'met' if ratio >= target else 'MISSED'}"
                print(f"{threads:>7} {meta_batch:>4} {steps:>3} {reference:>14.1f} {engine:>12.1f} {ratio:>6.1f}x  "
                      f"{verdict}", flush=True)


if __name__ == "__main__":
    main()
