"""Where and how the engine computes: the device a config names, the allocator and intra-op threads."""

from __future__ import annotations

import ctypes
import os
import platform

import torch

from reptile_engine.errors import ConfigError

SMALL_MODEL_PARAMETERS = 1_000_000
"""Below this many parameters one intra-op thread is fastest: the ops are too small to split."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", name, "CUDA is not available on this machine; use cpu or auto")
    return torch.device(name)


def tune_allocator() -> None:
    """Keep glibc from returning and re-mapping the allocator's memory on every iteration.

    Tensors of a few hundred KiB cross glibc's adaptive mmap threshold, so a tight loop on the main
    thread would ``mmap``/``munmap`` and fault in fresh pages each iteration (measured: less than
    half the speed at B=100). Fixed thresholds, as ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_`` would set at start-up, avoid that. No-op off glibc or when those
    variables are set.
    """
    if platform.libc_ver()[0] != "glibc" or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    libc.mallopt(_M_TRIM_THRESHOLD, 256 * 1024 * 1024)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def configure_threads(threads: int, parameters: int, device: torch.device) -> None:
    """Use ``threads`` intra-op threads, or one for small CPU models, where splitting ops only costs."""
    if threads > 0:
        torch.set_num_threads(threads)
    elif device.type == "cpu" and parameters < SMALL_MODEL_PARAMETERS:
        torch.set_num_threads(1)
