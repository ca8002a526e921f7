"""Landscape slices inside the trainer: on request and on a schedule, without disturbing training."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from reptile_engine.events import CommandRejected, IterationMetrics, LandscapeReady
from reptile_engine.landscape import LandscapeSlice
from reptile_engine.presets import preset
from reptile_engine.trainer import Trainer


def small(**changes):
    base = {"model.hidden": 16, "meta.iterations": 60, "evaluation.tasks": 8, "evaluation.steps": 3,
            "evaluation.every": 1000, "landscape.resolution": 11, "landscape.every": 0,
            "landscape.snapshot_every": 5}
    return preset("quick").with_updates({**base, **changes})


def test_requested_while_running_arrives_and_training_continues():
    trainer = Trainer(small())
    seen = []
    for event in trainer.run():
        seen.append(event)
        if isinstance(event, IterationMetrics) and event.iteration == 10:
            trainer.request_landscape()
    ready = [e for e in seen if isinstance(e, LandscapeReady)]
    assert len(ready) == 1 and ready[0].iteration == 10
    position = seen.index(ready[0])
    later = [e.iteration for e in seen[position:] if isinstance(e, IterationMetrics)]
    assert later[0] == 11 and later[-1] == 60, "training goes on after the slice"
    landscape = ready[0].slice
    assert isinstance(landscape, LandscapeSlice) and landscape.values.shape == (11, 11)
    assert len(landscape.trajectory) == 3, "two snapshots (iterations 5 and 10) plus the current theta"
    assert np.allclose(landscape.trajectory[-1], 0.0, atol=1e-5), "the trajectory ends at theta, the origin"


def test_scheduled_slices_do_not_change_the_run():
    quiet = Trainer(small())
    list(quiet.run())
    busy = Trainer(small(**{"landscape.every": 10, "landscape.plane": "random"}))
    events = list(busy.run())
    assert [e.iteration for e in events if isinstance(e, LandscapeReady)] == [10, 20, 30, 40, 50, 60]
    assert torch.equal(quiet.theta, busy.theta), "slices draw from their own generator"


def test_pca_needs_a_trajectory_and_freeze_keeps_directions():
    trainer = Trainer(small(**{"landscape.plane": "pca"}))
    rejected = trainer.landscape()
    assert isinstance(rejected, CommandRejected) and rejected.field == "landscape.plane"
    for _ in range(20):
        trainer.step()
    assert isinstance(trainer.landscape(), LandscapeReady)

    trainer = Trainer(small(**{"landscape.plane": "random", "landscape.freeze": True}))
    first = trainer.landscape()
    plane = trainer.plane
    for _ in range(5):
        trainer.step()
    second = trainer.landscape()
    assert torch.equal(trainer.plane.d1, plane.d1) and torch.equal(trainer.plane.d2, plane.d2)
    assert not np.array_equal(first.slice.values, second.slice.values), "re-centred at the new theta"
    trainer.landscape(dataclasses.replace(trainer.config.landscape, freeze=False))
    assert not torch.equal(trainer.plane.d1, plane.d1), "unfrozen: fresh directions"
