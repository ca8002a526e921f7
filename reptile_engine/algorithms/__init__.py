"""Reptile as a few pure functions over flat parameter tensors, vectorized across tasks."""

from reptile_engine.algorithms.inner import InnerLoop, adapt, adapt_, minibatches
from reptile_engine.algorithms.reptile import outer_step, pseudo_gradient

__all__ = ["InnerLoop", "adapt", "adapt_", "minibatches", "outer_step", "pseudo_gradient"]
