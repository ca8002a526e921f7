"""Reptile as a few pure functions over flat parameter tensors, vectorized across tasks."""

from reptile_engine.algorithms.inner import InnerLoop, adapt, adapt_, minibatches
from reptile_engine.algorithms.reptile import meta_step, pseudo_gradient

__all__ = ["InnerLoop", "adapt", "adapt_", "meta_step", "minibatches", "pseudo_gradient"]
