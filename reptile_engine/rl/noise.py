"""Action noise for exploration: white, Ornstein-Uhlenbeck and pink, each a pure function of a seed.

Independent Gaussian noise per step averages out within a few steps, so a policy that must hold one direction
for a long time (MountainCar's swing up the far hill) almost never does by chance. Temporally correlated noise
keeps pushing the same way for a while: Ornstein-Uhlenbeck noise (as in DDPG and the RL zoo's TD3 settings)
with a per-step autocorrelation, and pink noise (power ~ 1/f; Eberhard et al. 2023, "Pink noise is all you
need"), whose long stretches of one sign reach far while its high frequencies still vary the action.

Every process has zero mean and unit variance at every step, so the agents scale it by their own standard
deviation as they do white noise, and a Gaussian policy's log-probability of its action stays exact: the
marginal distribution of each action is unchanged, only its correlation across the steps of an episode. A
collection's noise is drawn whole from its seed, ``[steps, episodes, act_dim]``, one independent sequence per
episode and action component; nothing carries over between collections, so a resumed run draws what an
uninterrupted one would.

>>> white = action_noise(7, 1000, 2, 1, "gaussian")
>>> ou = action_noise(7, 1000, 2, 1, "ou", correlation=0.95)
>>> tuple(ou.shape), bool(torch.equal(ou, action_noise(7, 1000, 2, 1, "ou", correlation=0.95)))
((1000, 2, 1), True)
>>> lag_one = lambda x: float(torch.corrcoef(torch.stack([x[:-1, 0, 0], x[1:, 0, 0]]))[0, 1])
>>> abs(lag_one(white)) < 0.1, round(lag_one(ou), 1)
(True, 0.9)
"""

from __future__ import annotations

import math

import torch

from reptile_engine.config import NOISE_PROCESSES


def action_noise(seed: int, steps: int, episodes: int, act_dim: int, process: str = "gaussian", *,
                 correlation: float = 0.0) -> torch.Tensor:
    """A task's standard-normal action noise for one collection, ``[steps, episodes, act_dim]``.

    ``process`` is one of ``NOISE_PROCESSES``; ``correlation`` is the Ornstein-Uhlenbeck noise's correlation between
    consecutive steps (0 is white noise).
    """
    generator = torch.Generator().manual_seed(int(seed))
    if process == "gaussian":
        return torch.randn(steps, episodes, act_dim, generator=generator)
    if process == "ou":
        return ornstein_uhlenbeck(generator, steps, episodes, act_dim, correlation)
    if process == "pink":
        return pink(generator, steps, episodes, act_dim)
    raise ValueError(f"unknown noise process {process!r}: one of {', '.join(NOISE_PROCESSES)}")


def ornstein_uhlenbeck(generator: torch.Generator, steps: int, episodes: int, act_dim: int,
                       correlation: float) -> torch.Tensor:
    """Stationary Ornstein-Uhlenbeck noise sampled once per step: ``x[t+1] = r x[t] + sqrt(1 - r^2) e[t]``.

    With ``r = exp(-theta dt)`` this is the exact discretization of ``dx = -theta x dt + sqrt(2 theta) dW``,
    started from its stationary law N(0, 1), so every step is N(0, 1) and ``corr(x[t], x[t+k]) = r^k``.
    """
    if not 0.0 <= correlation < 1.0:
        raise ValueError(f"correlation must be in [0, 1), got {correlation}")
    shocks = torch.randn(steps, episodes, act_dim, generator=generator)
    innovation = math.sqrt(1.0 - correlation * correlation)
    noise = torch.empty_like(shocks)
    if steps:
        noise[0] = shocks[0]
    for t in range(1, steps):
        torch.add(shocks[t] * innovation, noise[t - 1], alpha=correlation, out=noise[t])
    return noise


def pink(generator: torch.Generator, steps: int, episodes: int, act_dim: int) -> torch.Tensor:
    """Gaussian noise with power spectral density ``~ 1/f`` over the steps, scaled to unit variance.

    Each sequence is a sum of sinusoids at the frequencies of a ``steps``-long episode with independent
    Gaussian coefficients, amplitude ``f^(-1/2)`` (the lowest frequency, ``1/steps``, also stands in for the
    constant term): its variance follows from the squared amplitudes, and the result is divided by its root.
    """
    if steps < 2:
        return torch.randn(steps, episodes, act_dim, generator=generator)
    frequencies = torch.fft.rfftfreq(steps, dtype=torch.float64)
    frequencies[0] = frequencies[1]
    amplitude = frequencies.rsqrt()
    real = torch.randn(episodes, act_dim, len(frequencies), generator=generator, dtype=torch.float64)
    imaginary = torch.randn(episodes, act_dim, len(frequencies), generator=generator, dtype=torch.float64)
    imaginary[..., 0] = 0.0  # the constant term and (for an even length) the Nyquist term are real
    real[..., 0] *= math.sqrt(2.0)
    weights = amplitude.square()
    if steps % 2 == 0:
        imaginary[..., -1] = 0.0
        real[..., -1] *= math.sqrt(2.0)
        weights[-1] /= 2.0
    spectrum = torch.complex(real * amplitude, imaginary * amplitude)
    sequences = torch.fft.irfft(spectrum, n=steps)
    std = 2.0 * math.sqrt(float(weights[1:].sum()) + float(weights[0]) / 2.0) / steps
    return (sequences / std).permute(2, 0, 1).to(torch.float32).contiguous()
