"""The states of a run in the app, and the run-control actions each allows.

* ``starting``: the trainer process is loading; nothing yet.
* ``ready``: a fresh, paused trainer; every field may change; start or step.
* ``running``: pause, stop, reset.
* ``paused``: resume, step, stop, reset.
* ``stopped`` / ``finished``: the run ended and is kept: its history, its final state (saved before the
  trainer reported ``Finished``), *Save session* and exports all still work; start continues it at the same
  iteration, reset begins anew. Changing the task or the model's shape now discards it and readies a fresh
  trainer for the new config (the window asks first when that would lose unsaved work; see
  ``TrainingController.unsaved``).
* ``failed``: the engine raised; reset, or start to continue from the last saved state.

A diverged run pauses; the next applied change of a hyperparameter resumes it.
"""

from __future__ import annotations

ACTIONS: dict[str, frozenset[str]] = {
    "starting": frozenset(),
    "ready": frozenset({"start", "step"}),
    "running": frozenset({"pause", "stop", "reset"}),
    "paused": frozenset({"resume", "step", "stop", "reset"}),
    "stopped": frozenset({"start", "reset"}),
    "finished": frozenset({"start", "reset"}),
    "failed": frozenset({"start", "reset"}),
}
"""Which run-control actions are valid in each state."""

SHAPE_FIELDS = ("task.name", "model.hidden", "model.depth", "model.activation", "rl.algorithm", "rl.hidden",
                "rl.depth")
"""Fields whose change starts a new run: a run cannot continue under another task or model shape."""
