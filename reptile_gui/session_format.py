"""What a session file holds and promises: its format name and versions, the limits a reader holds each
member to, and what reading one gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reptile_engine.config import ExperimentConfig
from reptile_engine.events import AdaptationCurve, Rollouts
from reptile_gui.store import ChangeMarker

FORMAT = "reptile-lab-session"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SUFFIX = ".reptile"

MEGABYTE = 1 << 20
MEMBER_LIMITS = {"session.json": 64 * MEGABYTE, "config.toml": 1 * MEGABYTE, "history.npz": 2048 * MEGABYTE,
                 "rollouts.npz": 256 * MEGABYTE, "checkpoint.safetensors": 2048 * MEGABYTE}
"""The most bytes each member may inflate to: far above what a real session holds (the history of a
run of 20 million iterations, a checkpoint of a few hundred million parameters)."""
MAX_MEMBERS = 10_000
"""Members a session (or its inner ``.npz`` files) may hold; a rollout has one per episode trace."""
QUANTITIES = ("loss", "return")
TARGET_SIZES = {"point": 2, "level": 1}
NON_NEGATIVE_COLUMNS = frozenset({"iteration", "elapsed", "iterations_per_second", "env_steps_per_second",
                                  "meta_batch", "inner_steps", "inner_updates", "meta_lr", "inner_lr"})
"""History columns that count or measure something: finite and non-negative in any real run (the losses,
returns and entropy may be NaN or inf where a run diverged)."""


class SessionError(RuntimeError):
    """A session cannot be written or read."""


@dataclass(frozen=True)
class LoadedSession:
    """A session read and checked: what the controller needs to resume the run and refill the store."""

    config: ExperimentConfig
    checkpoint: Path
    history: dict[str, np.ndarray]
    curves: list[AdaptationCurve]
    markers: list[ChangeMarker]
    kind: str = "supervised"
    rollouts: Rollouts | None = None
    history_folder: Path | None = None
    """Where ``history``'s columns lie on disk (memory-mapped); ``restore_store`` removes it."""
