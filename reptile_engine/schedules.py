"""Learning-rate schedules as pure functions of the iteration.

A schedule is a function of the iteration alone, so a live change of the base rate or the shape takes
effect at once, and a resumed run needs no scheduler state beyond the iteration counter.

>>> from reptile_engine.config import ScheduleConfig
>>> linear = ScheduleConfig(kind="linear", final_fraction=0.0)
>>> scheduled_rate(1.0, linear, 0, 100), scheduled_rate(1.0, linear, 100, 100)
(1.0, 0.0)
"""

from __future__ import annotations

import math

from reptile_engine.config import ScheduleConfig


def scheduled_rate(base: float, schedule: ScheduleConfig, iteration: int, horizon: int) -> float:
    """The rate at ``iteration`` (0-based) for a run of ``horizon`` iterations.

    Warm-up rises linearly over ``schedule.warmup`` iterations; then ``constant``, ``linear`` and
    ``cosine`` run from ``base`` down to ``base * final_fraction`` at ``horizon``, and ``step``
    multiplies by ``gamma`` every ``step_every`` iterations.
    """
    if iteration < schedule.warmup:
        return base * (iteration + 1) / schedule.warmup
    after = iteration - schedule.warmup
    if schedule.kind == "step":
        return base * schedule.gamma ** (after // schedule.step_every)
    final = base * schedule.final_fraction
    progress = min(1.0, after / max(1, horizon - schedule.warmup))
    if schedule.kind == "linear":
        return base + (final - base) * progress
    if schedule.kind == "cosine":
        return final + (base - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return base
