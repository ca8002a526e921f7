"""Learning-rate schedules: pure functions of the iteration."""

from __future__ import annotations

import math

import pytest

from reptile_engine.config import ScheduleConfig
from reptile_engine.schedules import scheduled_rate

BASE = 0.8
HORIZON = 1000


def rate(kind: str, iteration: int, **kwargs) -> float:
    return scheduled_rate(BASE, ScheduleConfig(kind=kind, **kwargs), iteration, HORIZON)


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine", "step"])
def test_iteration_zero_gives_base(kind):
    assert rate(kind, 0, final_fraction=0.25) == pytest.approx(BASE, rel=1e-12)


def test_constant_stays_at_base():
    assert all(rate("constant", i, final_fraction=0.1) == BASE for i in (0, 1, 500, HORIZON, 5 * HORIZON))


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("final_fraction", [0.0, 0.1, 0.5, 1.0])
def test_decaying_schedules_end_at_final_fraction(kind, final_fraction):
    assert rate(kind, HORIZON, final_fraction=final_fraction) == pytest.approx(
        BASE * final_fraction, abs=1e-12
    )
    # And stay there past the horizon (a run extended beyond its planned length).
    assert rate(kind, 2 * HORIZON, final_fraction=final_fraction) == pytest.approx(
        BASE * final_fraction, abs=1e-12
    )


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_midpoint_is_halfway(kind):
    assert rate(kind, HORIZON // 2, final_fraction=0.2) == pytest.approx((BASE + 0.2 * BASE) / 2, rel=1e-12)


def test_linear_is_linear_and_cosine_is_a_half_cosine():
    final = 0.1 * BASE
    for i in (100, 250, 900):
        p = i / HORIZON
        assert rate("linear", i, final_fraction=0.1) == pytest.approx(BASE + (final - BASE) * p, rel=1e-12)
        expected = final + (BASE - final) * 0.5 * (1 + math.cos(math.pi * p))
        assert rate("cosine", i, final_fraction=0.1) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_decay_is_monotone(kind):
    values = [rate(kind, i, final_fraction=0.05) for i in range(0, HORIZON + 1, 10)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert values[0] > values[-1]


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine", "step"])
def test_warmup_starts_near_zero_and_reaches_base(kind):
    warmup = 100
    first = rate(kind, 0, warmup=warmup, final_fraction=0.0)
    assert 0 < first <= BASE / warmup * (1 + 1e-12)
    ramp = [rate(kind, i, warmup=warmup, final_fraction=0.0) for i in range(warmup)]
    assert all(a < b for a, b in zip(ramp, ramp[1:], strict=False))
    assert rate(kind, warmup - 1, warmup=warmup) == pytest.approx(BASE, rel=1e-12)
    assert rate(kind, warmup, warmup=warmup, final_fraction=0.0) == pytest.approx(BASE, rel=1e-12)
    assert rate(kind, warmup // 2, warmup=warmup) == pytest.approx(
        BASE * (warmup // 2 + 1) / warmup, rel=1e-12
    )


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_decay_after_warmup_reaches_final_at_horizon(kind):
    assert rate(kind, HORIZON, warmup=100, final_fraction=0.3) == pytest.approx(0.3 * BASE, rel=1e-12)


def test_step_decays_by_gamma_at_each_step_every():
    kwargs = {"step_every": 100, "gamma": 0.5}
    assert rate("step", 0, **kwargs) == BASE
    assert rate("step", 99, **kwargs) == BASE
    assert rate("step", 100, **kwargs) == pytest.approx(BASE * 0.5, rel=1e-12)
    assert rate("step", 199, **kwargs) == pytest.approx(BASE * 0.5, rel=1e-12)
    assert rate("step", 200, **kwargs) == pytest.approx(BASE * 0.25, rel=1e-12)
    assert rate("step", 350, **kwargs) == pytest.approx(BASE * 0.125, rel=1e-12)


def test_step_counts_from_the_end_of_warmup():
    kwargs = {"step_every": 100, "gamma": 0.1, "warmup": 50}
    assert rate("step", 149, **kwargs) == pytest.approx(BASE, rel=1e-12)
    assert rate("step", 150, **kwargs) == pytest.approx(BASE * 0.1, rel=1e-12)


def test_rate_scales_with_base():
    schedule = ScheduleConfig(kind="cosine", final_fraction=0.2, warmup=10)
    for i in (0, 5, 10, 300, HORIZON):
        assert scheduled_rate(2.0, schedule, i, HORIZON) == pytest.approx(
            2 * scheduled_rate(1.0, schedule, i, HORIZON), rel=1e-12
        )
