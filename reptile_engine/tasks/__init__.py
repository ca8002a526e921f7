"""Task distributions: a seeded generator in, a stacked batch of tasks out."""

from reptile_engine.tasks.base import TaskBatch, TaskDistribution
from reptile_engine.tasks.registry import available, make, resolve

__all__ = ["TaskBatch", "TaskDistribution", "available", "make", "resolve"]
