"""Shared fixtures for the headless engine tests: small, fast configurations and event helpers.

Helpers are exposed as fixtures (not imported) so the tests work under any pytest import mode.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import pytest
import torch

from reptile_engine.config import ExperimentConfig
from reptile_engine.events import IterationMetrics

SMALL = {
    "model.hidden": 16,
    "meta.iterations": 20,
    "evaluation.tasks": 8,
    "evaluation.steps": 3,
    "evaluation.every": 10,
}


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """The machine is shared: keep torch on one intra-op thread, as the trainer does for small models."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _small_config(changes: dict[str, object] | None = None) -> ExperimentConfig:
    return ExperimentConfig().with_updates({**SMALL, **(changes or {})})


@pytest.fixture
def make_config() -> Callable[..., ExperimentConfig]:
    """``make_config({"inner.lr": 0.01})``: a tiny experiment with dotted-path overrides."""
    return _small_config


@pytest.fixture
def small() -> ExperimentConfig:
    return _small_config()


def _metrics_of(events: Iterable[object]) -> list[tuple]:
    """Every ``IterationMetrics`` field that does not depend on wall-clock time, per metrics event."""
    return [
        (e.iteration, e.loss_before, e.loss_after, e.meta_lr, e.inner_lr, e.meta_batch, e.inner_steps)
        for e in events
        if isinstance(e, IterationMetrics)
    ]


@pytest.fixture
def metrics_of() -> Callable[[Iterable[object]], list[tuple]]:
    return _metrics_of
