"""A task distribution that fails after a few draws, to exercise the app's error path."""

from __future__ import annotations

from reptile_engine.tasks.sine import SineTasks


class FailingSineTasks(SineTasks):
    """Sine tasks whose training draws raise once the run is under way."""

    def sample(self, generator, n_tasks, n_support, n_query, *, query_grid=False):
        if not query_grid and generator.initial_seed() == 0 and getattr(self, "_draws", 0) >= 20:
            raise RuntimeError("the task source went away")
        object.__setattr__(self, "_draws", getattr(self, "_draws", 0) + (0 if query_grid else 1))
        return super().sample(generator, n_tasks, n_support, n_query, query_grid=query_grid)
