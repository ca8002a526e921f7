"""Exploration noise: the processes have their closed-form statistics, repeat from a seed, and reach the runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reptile_engine.config import ConfigError
from reptile_engine.presets import preset
from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.noise import NOISE_PROCESSES, action_noise
from reptile_engine.rl.runner import MetaEpisodeRunner
from reptile_engine.trainer import Trainer

STEPS, SEQUENCES = 400, 2000
TINY = {"meta.iterations": 4, "meta.meta_batch": 2, "rl.episodes": 2, "rl.updates": 1, "rl.hidden": 8,
        "rl.epochs": 1, "rl.minibatches": 1, "rl.horizon": 20, "evaluation.tasks": 2, "evaluation.steps": 1,
        "evaluation.every": 2, "landscape.every": 0}


def sequences(process: str, correlation: float = 0.0) -> np.ndarray:
    """``SEQUENCES`` noise sequences of ``STEPS`` steps, one per row."""
    noise = action_noise(3, STEPS, SEQUENCES // 2, 2, process, correlation=correlation)
    return noise.permute(1, 2, 0).reshape(SEQUENCES, STEPS).double().numpy()


def spectrum_slope(x: np.ndarray) -> float:
    """The log-log slope of the mean periodogram, over the frequencies between the lowest and the Nyquist one."""
    power = (np.abs(np.fft.rfft(x, axis=1)) ** 2).mean(axis=0)[1:-1]
    frequencies = np.fft.rfftfreq(x.shape[1])[1:-1]
    return float(np.polyfit(np.log(frequencies), np.log(power), 1)[0])


@pytest.mark.parametrize("process", NOISE_PROCESSES)
def test_every_process_is_standard_normal_at_every_step(process):
    x = sequences(process, correlation=0.9)
    tolerance = 4 / np.sqrt(SEQUENCES)
    for step in (0, STEPS // 2, STEPS - 1):
        assert abs(x[:, step].mean()) < tolerance
        assert x[:, step].var() == pytest.approx(1.0, abs=6 * tolerance)


@pytest.mark.parametrize("correlation", [0.5, 0.9, 0.99])
def test_ornstein_uhlenbeck_reverts_to_the_mean_at_its_closed_form_rate(correlation):
    x = sequences("ou", correlation)
    for lag in (1, 5, 20):
        slope = np.polyfit(x[:, 100], x[:, 100 + lag], 1)[0]  # E[x(t+k) | x(t)] = r^k x(t)
        assert slope == pytest.approx(correlation ** lag, abs=0.05)


def test_ornstein_uhlenbeck_without_correlation_is_white_and_a_correlation_of_one_is_refused():
    assert abs(np.corrcoef(sequences("ou", 0.0)[:, 10], sequences("ou", 0.0)[:, 11])[0, 1]) < 0.1
    with pytest.raises(ValueError, match="correlation"):
        action_noise(0, 10, 1, 1, "ou", correlation=1.0)


def test_pink_noise_has_a_one_over_f_spectrum_and_white_noise_a_flat_one():
    assert spectrum_slope(sequences("pink")) == pytest.approx(-1.0, abs=0.05)
    assert spectrum_slope(sequences("gaussian")) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("process", NOISE_PROCESSES)
def test_a_seed_repeats_its_noise_and_episodes_are_independent(process):
    a = action_noise(11, 300, 400, 2, process, correlation=0.9)
    assert torch.equal(a, action_noise(11, 300, 400, 2, process, correlation=0.9))
    assert not torch.equal(a, action_noise(12, 300, 400, 2, process, correlation=0.9))
    across = np.corrcoef(a[:, :, 0].T.numpy())  # episode against episode, over the steps
    assert np.abs(across[np.triu_indices_from(across, 1)]).mean() < 0.2
    assert a.dtype == torch.float32


def test_an_unknown_process_is_refused_by_name():
    with pytest.raises(ValueError, match="brown"):
        action_noise(0, 10, 1, 1, "brown")
    with pytest.raises(ConfigError, match="rl.noise"):
        preset("meta-rl").with_updates({"rl.noise": "brown"})
    with pytest.raises(ConfigError, match="rl.noise_correlation"):
        preset("meta-rl").with_updates({"rl.noise_correlation": 1.0})


def test_the_runner_explores_with_its_process():
    family = make_family("point-nav-2d")
    agent = ActorCritic(family.observation_dim, family.action_dim, actor_hidden=(8,), critic_hidden=(8,))
    params = agent.init(torch.Generator().manual_seed(0)).expand(2, -1)
    tasks = family.sample_tasks(np.random.default_rng(0), 2)

    def actions(noise: str, deterministic: bool = False) -> torch.Tensor:
        runner = MetaEpisodeRunner(family, agent, horizon=50, noise=noise, noise_correlation=0.95)
        return runner.collect(params, tasks, seeds=[1, 2], episodes=3, deterministic=deterministic).buffer.actions

    white, ou = actions("gaussian"), actions("ou")
    assert not torch.equal(white, ou)
    assert torch.equal(ou, actions("ou")), "the same seeds collect the same episodes"
    assert torch.equal(actions("gaussian", deterministic=True), actions("ou", deterministic=True))


@pytest.mark.parametrize("algorithm", ["ppo", "td3"])
def test_resuming_a_run_with_correlated_noise_is_bit_exact(tmp_path, algorithm):
    config = preset("meta-rl").with_updates({**TINY, "rl.algorithm": algorithm, "rl.noise": "ou",
                                             "rl.gradient_steps": 2, "rl.batch_size": 8})
    straight = Trainer(config)
    for _ in range(4):
        straight.step()
    first = Trainer(config)
    for _ in range(2):
        first.step()
    resumed = Trainer.from_checkpoint(first.save_checkpoint(tmp_path / "run.safetensors"))
    for _ in range(2):
        resumed.step()
    assert torch.equal(resumed.theta.detach(), straight.theta.detach())


def test_a_live_change_of_the_noise_reaches_the_next_iteration():
    trainer = Trainer(preset("meta-rl").with_updates(TINY))
    trainer.update({"rl.noise": "pink"})
    events = list(trainer.run(iterations=1))
    assert any(type(e).__name__ == "ConfigChanged" for e in events)
    assert trainer.learner.runner.noise == "pink"
    pink_theta = trainer.theta.detach().clone()
    white = Trainer(preset("meta-rl").with_updates(TINY))
    list(white.run(iterations=1))
    assert not torch.equal(pink_theta, white.theta.detach()), "the iteration explored with pink noise"
