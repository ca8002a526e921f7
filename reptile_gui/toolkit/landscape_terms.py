"""What the app calls the landscape's choices (``landscape.plane``, ``landscape.loss``) and a slice's values:
one vocabulary for the controls that choose them and the plot that labels them."""

from __future__ import annotations

VALUE_NAMES: dict[str, str] = {
    "policy": "policy loss (surrogate, fixed batch)",
    "critic": "critic TD loss (fixed batch)",
}
"""What the colour bar, the read-out and the loss choice call a meta-RL surrogate's value."""

PLANES: dict[str, tuple[str, str]] = {
    "random": ("random", "Two filter-normalized random directions (Li et al. 2018)"),
    "pca": ("PCA", "The top two principal directions of the meta-trajectory"),
    "task": ("task", "The plane through θ and two tasks' adapted parameters φ_a, φ_b"),
}
"""Plane kinds (``landscape.plane``): the combo box's text and the item's tool tip."""

LOSSES: dict[str, tuple[str, str]] = {
    "mean": ("mean", "Mean query MSE over the held-out tasks"),
    "task": ("one task", "Query MSE of one held-out task"),
    "adapted": ("adapted", "Mean query MSE after adapting from each grid point (the surface Reptile descends)"),
    "policy": (VALUE_NAMES["policy"],
               "The actor's policy loss (PPO's clipped surrogate, A2C's -A log π, TD3's -Q) on one fixed batch of "
               "θ's transitions on held-out tasks; its slope at θ is the inner loop's first step. Not the return"),
    "critic": (VALUE_NAMES["critic"],
               "The critic's squared TD error against the fixed batch's targets (θ's own returns or target "
               "networks). Not the return"),
}
"""Loss kinds (``landscape.loss``): the combo box's text and the item's tool tip."""
