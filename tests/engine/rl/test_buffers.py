"""Rollout buffer (GAE with truncation bootstrapping, masking, minibatches) and the per-task replay buffer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reptile_engine.rl.buffers import ReplayBuffer, RolloutBuffer

GAMMA, LAM = 0.9, 0.8
REWARDS = [1.0, 2.0, 3.0, 4.0, 5.0]
VALUES = [0.5, 1.0, 1.5, 2.0, 2.5]
BOOTSTRAP = 3.0  # V of the observation after the last step


def five_step_episodes() -> RolloutBuffer:
    """Task 0: a 5-step episode cut by the time limit (truncated); task 1: the same episode terminated."""
    buffer = RolloutBuffer(tasks=2, steps=5, obs_dim=1, act_dim=1)
    for t in range(5):
        last = t == 4
        buffer.add(obs=np.zeros((2, 1)), actions=np.zeros((2, 1)), rewards=[REWARDS[t]] * 2,
                   terminated=[False, last], truncated=[last, False], values=[VALUES[t]] * 2, log_probs=[0.0, 0.0],
                   next_values_for_truncation=[BOOTSTRAP if last else 99.0, 99.0])
    return buffer


def test_gae_matches_a_hand_computed_episode_truncated_versus_terminated():
    advantages, returns = five_step_episodes().compute_gae(GAMMA, LAM)
    # delta_t = r_t + gamma * V_{t+1} - V_t inside the episode:
    d0, d1, d2, d3 = 1 + 0.9 * 1.0 - 0.5, 2 + 0.9 * 1.5 - 1.0, 3 + 0.9 * 2.0 - 1.5, 4 + 0.9 * 2.5 - 2.0
    assert (d0, d1, d2, d3) == pytest.approx((1.4, 2.35, 3.3, 4.25))
    # Last step: truncated bootstraps with V(s_5) = 3, terminated does not.
    d4_truncated, d4_terminated = 5 + 0.9 * 3.0 - 2.5, 5 - 2.5
    assert (d4_truncated, d4_terminated) == pytest.approx((5.2, 2.5))
    gl = 0.9 * 0.8
    truncated = [7.786464512, 8.8700896, 9.05568, 7.994, 5.2]
    terminated = [7.0608704, 7.86232, 7.656, 6.05, 2.5]
    assert truncated[3] == pytest.approx(d3 + gl * d4_truncated)
    assert terminated[0] == pytest.approx(d0 + gl * (d1 + gl * (d2 + gl * (d3 + gl * d4_terminated))))
    expected = torch.tensor([truncated, terminated], dtype=torch.float64)
    torch.testing.assert_close(advantages.double(), expected, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(returns.double(), expected + torch.tensor([VALUES, VALUES], dtype=torch.float64),
                               rtol=1e-6, atol=1e-6)
    assert advantages[0, -1] - advantages[1, -1] == pytest.approx(0.9 * BOOTSTRAP)


def test_gae_does_not_flow_across_episode_boundaries_or_padding():
    # One slot, 6 steps: an episode of 2 steps (terminated), one of 2 steps (truncated), then 2 padding steps.
    buffer = RolloutBuffer(tasks=1, steps=6, obs_dim=1, act_dim=1)
    terminated = [False, True, False, False, False, False]
    truncated = [False, False, False, True, False, False]
    valid = [True, True, True, True, False, False]
    for t in range(6):
        buffer.add(np.zeros((1, 1)), np.zeros((1, 1)), [1.0], [terminated[t]], [truncated[t]], [0.0], [0.0],
                   [10.0], valid=[valid[t]])
    advantages, returns = buffer.compute_gae(gamma=0.5, lam=1.0)
    # Second episode: 1 + 0.5 * (1 + 0.5 * 10) = 4 and 6; first: 1 + 0.5 = 1.5 and 1 (never sees the 10).
    assert advantages.tolist() == [[1.5, 1.0, 4.0, 6.0, 0.0, 0.0]]
    assert returns.tolist() == [[1.5, 1.0, 4.0, 6.0, 0.0, 0.0]]
    assert buffer.samples().mask.tolist() == [[1.0, 1.0, 1.0, 1.0, 0.0, 0.0]]


def test_a_rollout_that_ends_mid_episode_is_bootstrapped_like_a_truncation():
    buffer = RolloutBuffer(tasks=1, steps=2, obs_dim=1, act_dim=1)
    for _ in range(2):
        buffer.add(np.zeros((1, 1)), np.zeros((1, 1)), [0.0], [False], [False], [0.0], [0.0], [4.0])
    advantages, _ = buffer.compute_gae(gamma=0.5, lam=1.0)
    assert advantages.tolist() == [[1.0, 2.0]]


def test_minibatches_partition_the_buffer_for_all_tasks_at_once():
    tasks, envs, steps = 3, 2, 5
    buffer = RolloutBuffer(tasks, steps, obs_dim=2, act_dim=1, envs=envs)
    for t in range(steps):
        obs = torch.arange(tasks * envs * 2, dtype=torch.float32).view(tasks, envs, 2) + 100 * t
        buffer.add(obs, torch.zeros(tasks, envs, 1), torch.ones(tasks, envs), torch.zeros(tasks, envs, dtype=bool),
                   torch.zeros(tasks, envs, dtype=bool), torch.zeros(tasks, envs), torch.zeros(tasks, envs),
                   torch.zeros(tasks, envs))
    buffer.compute_gae()
    batches = list(buffer.batches(minibatches=3, generator=torch.Generator().manual_seed(0)))
    assert [b.obs.shape[:2] for b in batches] == [(3, 4), (3, 3), (3, 3)]
    everything = buffer.samples()
    for task in range(tasks):
        seen = torch.cat([b.obs[task] for b in batches])
        assert sorted(seen[:, 0].tolist()) == sorted(everything.obs[task, :, 0].tolist())
    # One shared order: each minibatch holds the same step positions for every task.
    first = batches[0].obs
    assert torch.equal(first[1] - first[0], torch.full_like(first[0], 4.0))


def test_normalized_advantages_are_standardized_per_task_over_valid_steps():
    buffer = RolloutBuffer(tasks=2, steps=4, obs_dim=1, act_dim=1)
    for t in range(4):
        buffer.add(np.zeros((2, 1)), np.zeros((2, 1)), [float(t), 10.0 * t * t], [False, False], [t == 3, t == 3],
                   [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], valid=[True, t < 3])
    buffer.compute_gae(gamma=0.9, lam=0.9)
    buffer.normalize_advantages()
    samples = buffer.samples()
    for task in range(2):
        values = samples.advantages[task][samples.mask[task] > 0]
        assert values.mean().item() == pytest.approx(0.0, abs=1e-6)
        assert values.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert samples.advantages[1, 3].item() == 0.0


def test_replay_buffer_wraps_around_and_samples_only_filled_slots():
    replay = ReplayBuffer(capacity=5, obs_dim=1, act_dim=1, tasks=2)
    offsets = torch.tensor([[0.0], [1000.0]])

    def add(i: int) -> None:
        replay.add(offsets + i, torch.zeros(2, 1), torch.full((2,), float(i)), offsets + i + 1, [i % 2 == 0] * 2)

    for i in range(3):
        add(i)
    assert (replay.size, replay.pos) == (3, 3)
    sample = replay.sample(torch.Generator().manual_seed(0), batch=300)
    assert set(sample.rewards[0].tolist()) == {0.0, 1.0, 2.0}  # never an empty slot (which would read 0 ... 0)
    assert set(sample.obs[0, :, 0].tolist()) == {0.0, 1.0, 2.0}
    assert set(sample.obs[1, :, 0].tolist()) == {1000.0, 1001.0, 1002.0}  # each task samples its own data
    for i in range(3, 8):
        add(i)
    assert (replay.size, replay.pos) == (5, 3)
    assert replay.obs[0, :, 0].tolist() == [5.0, 6.0, 7.0, 3.0, 4.0]  # 0, 1, 2 overwritten in order
    sample = replay.sample(torch.Generator().manual_seed(1), batch=400)
    assert set(sample.obs[0, :, 0].tolist()) == {3.0, 4.0, 5.0, 6.0, 7.0}
    # Fields stay aligned transition by transition.
    torch.testing.assert_close(sample.next_obs, sample.obs + 1)
    torch.testing.assert_close(sample.rewards, sample.obs[..., 0] - offsets)
    assert torch.equal(sample.terminated, (sample.rewards % 2 == 0))
    # Sampling is per task: the two tasks draw different slots.
    assert not torch.equal(sample.obs[0, :, 0], sample.obs[1, :, 0] - 1000)


def test_replay_buffer_refuses_to_sample_when_empty():
    with pytest.raises(RuntimeError):
        ReplayBuffer(capacity=2, obs_dim=1, act_dim=1, tasks=1).sample(torch.Generator(), 1)
