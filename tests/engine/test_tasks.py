"""Task distributions: the sine family and the registry."""

from __future__ import annotations

import math

import pytest
import torch

from reptile_engine.config import ConfigError
from reptile_engine.tasks import TaskBatch, TaskDistribution, available, make, resolve
from reptile_engine.tasks.sine import SineTasks


def sample(seed: int, tasks: int = 6, support: int = 10, query: int = 7, **kwargs) -> TaskBatch:
    return SineTasks().sample(torch.Generator().manual_seed(seed), tasks, support, query, **kwargs)


@pytest.mark.parametrize("query_grid", [False, True])
def test_shapes(query_grid):
    batch = sample(0, tasks=6, support=10, query=7, query_grid=query_grid)
    assert batch.num_tasks == 6
    assert batch.support_x.shape == batch.support_y.shape == (6, 10, 1)
    assert batch.query_x.shape == batch.query_y.shape == (6, 7, 1)
    assert set(batch.params) == {"amplitude", "phase"}
    assert batch.params["amplitude"].shape == batch.params["phase"].shape == (6,)
    for t in batch[:4]:
        assert t.dtype == torch.float32


def test_ranges_and_targets():
    batch = sample(1, tasks=500, support=20, query=20)
    amplitude, phase = batch.params["amplitude"], batch.params["phase"]
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0
    assert phase.min() >= 0.0 and phase.max() <= 2 * math.pi
    # The ranges are used, not a corner of them.
    assert amplitude.max() - amplitude.min() > 4.0 and phase.max() - phase.min() > 5.0
    for x in (batch.support_x, batch.query_x):
        assert x.min() >= -5.0 and x.max() <= 5.0
        assert x.max() - x.min() > 9.0
    for x, y in ((batch.support_x, batch.support_y), (batch.query_x, batch.query_y)):
        expected = amplitude.view(-1, 1, 1) * torch.sin(x + phase.view(-1, 1, 1))
        torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)


def test_support_points_differ_from_query_points():
    batch = sample(2)
    assert not torch.equal(batch.support_x[:, :7], batch.query_x)
    assert len(torch.unique(batch.support_x)) == batch.support_x.numel()


def test_target_matches_the_formula():
    params = {"amplitude": torch.tensor([2.0, 0.5]), "phase": torch.tensor([0.0, math.pi / 2])}
    x = torch.tensor([[[0.0], [math.pi / 2]], [[0.0], [math.pi / 2]]])
    y = SineTasks().target(params, x)
    torch.testing.assert_close(y, torch.tensor([[[0.0], [2.0]], [[0.5], [0.0]]]), atol=1e-6, rtol=0)


def test_same_seed_same_batch_different_seed_different_batch():
    a, b, c = sample(42), sample(42), sample(43)
    for ta, tb, tc in zip(a[:4], b[:4], c[:4], strict=True):
        assert torch.equal(ta, tb)
        assert not torch.equal(ta, tc)
    for key in a.params:
        assert torch.equal(a.params[key], b.params[key])
        assert not torch.equal(a.params[key], c.params[key])


def test_only_the_given_generator_is_used():
    torch.manual_seed(0)
    first = sample(5)
    torch.manual_seed(12345)
    torch.rand(10)
    second = sample(5)
    assert torch.equal(first.support_x, second.support_x)
    generator = torch.Generator().manual_seed(5)
    SineTasks().sample(generator, 2, 3, 4)
    after_one = SineTasks().sample(generator, 2, 3, 4)
    assert not torch.equal(after_one.support_x, sample(5, tasks=2, support=3, query=4).support_x)


def test_query_grid_is_an_even_linspace():
    batch = sample(3, tasks=4, support=10, query=101, query_grid=True)
    grid = torch.linspace(-5.0, 5.0, 101)
    for t in range(4):
        assert torch.equal(batch.query_x[t, :, 0], grid)
    steps = batch.query_x[0, 1:, 0] - batch.query_x[0, :-1, 0]
    torch.testing.assert_close(steps, torch.full_like(steps, 0.1), rtol=0, atol=1e-5)
    expected = batch.params["amplitude"].view(-1, 1, 1) * torch.sin(
        batch.query_x + batch.params["phase"].view(-1, 1, 1)
    )
    torch.testing.assert_close(batch.query_y, expected)
    # The support set is still random.
    assert not torch.equal(batch.support_x[0], batch.support_x[1])


def test_to_device_keeps_everything():
    batch = sample(4)
    moved = batch.to("cpu")
    assert isinstance(moved, TaskBatch)
    for a, b in zip(batch[:4], moved[:4], strict=True):
        assert torch.equal(a, b)
    assert set(moved.params) == set(batch.params)


def test_sine_satisfies_the_protocol():
    assert isinstance(SineTasks(), TaskDistribution)
    assert (SineTasks().input_dim, SineTasks().output_dim) == (1, 1)


def test_registry_resolves_sine():
    assert resolve("sine") is SineTasks
    assert isinstance(make("sine"), SineTasks)
    assert available()[0] == "sine"


def test_registry_resolves_a_trusted_module_attr(monkeypatch):
    monkeypatch.setenv("REPTILE_LAB_PLUGINS", "reptile_engine.tasks.sine:SineTasks")
    assert resolve("reptile_engine.tasks.sine:SineTasks") is SineTasks
    assert isinstance(make("reptile_engine.tasks.sine:SineTasks"), SineTasks)


@pytest.mark.parametrize(
    "name",
    [
        "nonexistent",
        "no_such_module_xyz:Tasks",
        "reptile_engine.tasks.sine:Nope",
        ":SineTasks",
        "reptile_engine.tasks.sine:",
        "",
    ],
)
def test_registry_rejects_unknown_names(name):
    with pytest.raises(ConfigError) as info:
        resolve(name)
    assert info.value.field == "task.name"
    assert info.value.value == name
