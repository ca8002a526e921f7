"""The task picker's rule: a task of the run's kind changes the task only, one of the other kind brings its
kind's preset, a preset brings every field it sets."""

from __future__ import annotations

from reptile_engine.presets import preset
from reptile_gui.task_choice import changed_fields, choose_preset, choose_task


def test_a_task_of_the_same_kind_changes_the_task_only():
    choice = choose_task(preset("default"), "sine")
    assert choice.changes == {"task.name": "sine"} and choice.preset is None


def test_a_task_of_the_other_kind_brings_that_kinds_preset_and_back():
    supervised = preset("default")
    to_rl = choose_task(supervised, "point-nav-2d")
    assert to_rl.preset == "meta-rl"
    assert to_rl.changes["task.name"] == "point-nav-2d"
    rl = supervised.with_updates(to_rl.changes)
    assert rl == preset("meta-rl").with_updates({"task.name": "point-nav-2d"}), "every field the preset sets"
    back = choose_task(rl, "sine")
    assert back.preset == "default"
    assert rl.with_updates(back.changes) == preset("default")


def test_a_preset_brings_the_fields_it_sets_differently():
    current = preset("default").with_updates({"model.hidden": 16})
    choice = choose_preset(current, "default")
    assert choice.changes == {"model.hidden": preset("default").model.hidden} and choice.preset is None
    assert changed_fields(current, current) == {}

