"""Learning quality of the default preset on sine regression.

Trains the ``default`` preset headless, then adapts to 500 held-out tasks (a fixed seed): 10 support
points x ~ U[-5, 5] each, full-batch SGD at lr 0.02, MSE on 100 query points evenly spaced on
[-5, 5], after 0, 1, 5, 10 and 32 steps. A freshly initialised network gets the same steps.

    python benchmarks/bench_sine_quality.py [--preset NAME]
"""

from __future__ import annotations

import argparse
import time

import torch

from reptile_engine.evaluation import adaptation_curve
from reptile_engine.presets import PRESETS, preset
from reptile_engine.tasks.sine import SineTasks
from reptile_engine.trainer import Trainer

STEPS = (0, 1, 5, 10, 32)
TARGETS = {1: 0.40, 10: 0.04, 32: 0.04}
TIME_BUDGET = 30.0
HELD_OUT_SEED = 2024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", choices=sorted(PRESETS))
    args = parser.parse_args()
    config = preset(args.preset)
    trainer = Trainer(config)
    started = time.perf_counter()
    while trainer.iteration < config.meta.iterations:
        trainer.step()
    training_time = time.perf_counter() - started

    held_out = SineTasks().sample(torch.Generator().manual_seed(HELD_OUT_SEED), 500, 10, 100, query_grid=True)
    meta = adaptation_curve(trainer.learner.model, trainer.theta.detach(), held_out, max(STEPS), 0.02)
    scratch_theta = trainer.learner.model.init(torch.Generator().manual_seed(HELD_OUT_SEED + 1))
    scratch = adaptation_curve(trainer.learner.model, scratch_theta, held_out, max(STEPS), 0.02)

    print(f"preset {args.preset}: {config.meta.iterations} meta-iterations of {config.meta.meta_batch} tasks, "
          f"{config.inner.steps} inner steps, in {training_time:.1f} s "
          f"({'within' if training_time <= TIME_BUDGET else 'OVER'} the {TIME_BUDGET:g} s budget)")
    print(f"{'steps':>5} {'meta-init MSE':>14} {'random init MSE':>16}  target")
    for k in STEPS:
        target = TARGETS.get(k)
        verdict = "" if target is None else f"<= {target:g} {'met' if meta[k] <= target else 'MISSED'}"
        print(f"{k:>5} {meta[k]:>14.3f} {scratch[k]:>16.3f}  {verdict}")


if __name__ == "__main__":
    main()
