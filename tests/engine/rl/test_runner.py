"""The meta-episode runner: lockstep batched rollouts equal plain per-task sequential rollouts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode

from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.noise import action_noise
from reptile_engine.rl.runner import MetaEpisodeRunner, episode_seeds, to_env_actions

# family, backend, autoreset mode, horizon (a cut below the family's own time limit, or the limit itself).
# Point-nav's goals next to the origin end episodes early (terminated) while the far goal runs into the
# horizon (truncated), so slots finish at different steps.
CASES = [
    ("point-nav-2d", "native", AutoresetMode.NEXT_STEP, 25),
    ("point-nav-2d", "vector", AutoresetMode.NEXT_STEP, 25),
    ("point-nav-2d", "vector", AutoresetMode.SAME_STEP, 100),  # the env's own time limit: final_obs in infos
    ("mountaincar-goal-gravity", "vector", AutoresetMode.NEXT_STEP, 30),
    ("pendulum-physics", "vector", AutoresetMode.SAME_STEP, 20),
]
EPISODES = 2


def setup(name: str, horizon: int, backend: str = "auto", autoreset_mode=AutoresetMode.NEXT_STEP):
    family = make_family(name)
    agent = ActorCritic(family.observation_dim, family.action_dim, actor_hidden=(16,), critic_hidden=(16,),
                        init_log_std=-3.0 if name == "point-nav-2d" else -0.5)
    runner = MetaEpisodeRunner(family, agent, horizon=horizon, backend=backend, autoreset_mode=autoreset_mode)
    if name == "point-nav-2d":
        tasks = [{"goal": [0.004, 0.0]}, {"goal": [0.3, -0.2]}, {"goal": [-0.003, 0.004]}]
    else:
        tasks = family.sample_tasks(np.random.default_rng(4), 3)
    generator = torch.Generator().manual_seed(7)
    params = torch.stack([agent.init(generator) for _ in tasks])  # every task its own parameters
    return family, agent, runner, tasks, params


def sequential_rollout(family, agent: ActorCritic, runner: MetaEpisodeRunner, params, tasks, seeds, episodes):
    """The plain reference: one env at a time, one single-observation forward (nn.Module) per step."""
    episodes_out = {}
    for t, task in enumerate(tasks):
        modules = agent.modules(params[t])
        std = modules.log_std.exp()
        noise = action_noise(seeds[t], runner.horizon, episodes, agent.act_dim)
        for e, reset_seed in enumerate(episode_seeds(seeds[t], episodes)):
            env = family.make_env(task)
            obs, _ = env.reset(seed=reset_seed)
            record = {key: [] for key in ("obs", "actions", "rewards", "terminated", "truncated", "values",
                                          "log_probs")}
            bootstrap = None
            for step in range(runner.horizon):
                x = torch.as_tensor(obs, dtype=torch.float32)
                with torch.no_grad():
                    mean, value = modules.actor(x), modules.critic(x)[0]
                action = mean + std * noise[step, e]
                log_prob = torch.distributions.Normal(mean, std).log_prob(action).sum()
                env_action = to_env_actions(action, runner.action_low, runner.action_high).numpy()
                next_obs, reward, terminated, truncated, _ = env.step(env_action)
                truncated = (truncated or step == runner.horizon - 1) and not terminated
                for key, item in zip(record, (x, action, reward, terminated, truncated, value, log_prob), strict=True):
                    record[key].append(torch.as_tensor(item, dtype=torch.float32))
                if terminated or truncated:
                    if truncated:
                        with torch.no_grad():
                            bootstrap = modules.critic(torch.as_tensor(next_obs, dtype=torch.float32))[0]
                    break
                obs = next_obs
            env.close()
            episodes_out[t, e] = ({key: torch.stack(v) for key, v in record.items()}, bootstrap)
    return episodes_out


@pytest.mark.parametrize(("name", "backend", "mode", "horizon"), CASES)
def test_batched_rollouts_equal_per_task_sequential_rollouts(name, backend, mode, horizon, monkeypatch):
    family, agent, runner, tasks, params = setup(name, horizon, backend, mode)
    seeds = [11, 22, 33]
    forward_calls = []
    act = agent.act
    monkeypatch.setattr(agent, "act", lambda *a, **k: forward_calls.append(1) or act(*a, **k))
    rollout = runner.collect(params, tasks, seeds, EPISODES)
    buffer = rollout.buffer
    reference = sequential_rollout(family, agent, runner, params, tasks, seeds, EPISODES)

    assert len(forward_calls) == rollout.episode_lengths.max()  # one batched forward per time step
    for (t, e), (ref, bootstrap) in reference.items():
        length = len(ref["rewards"])
        assert rollout.episode_lengths[t, e] == length
        assert buffer.valid[t, e, :length].all() and not buffer.valid[t, e, length:].any()
        got = {"obs": buffer.obs, "actions": buffer.actions, "rewards": buffer.rewards, "values": buffer.values,
               "log_probs": buffer.log_probs}
        for key, tensor in got.items():
            torch.testing.assert_close(tensor[t, e, :length], ref[key], rtol=1e-5, atol=1e-5, msg=key)
        assert buffer.terminated[t, e, :length].tolist() == ref["terminated"].bool().tolist()
        assert buffer.truncated[t, e, :length].tolist() == ref["truncated"].bool().tolist()
        if bootstrap is not None:
            torch.testing.assert_close(buffer.next_values[t, e, length - 1], bootstrap, rtol=1e-5, atol=1e-5)
        assert rollout.episode_returns[t, e] == pytest.approx(ref["rewards"].double().sum().item(), rel=1e-5,
                                                              abs=1e-4)
    if name == "point-nav-2d":  # both kinds of episode end, at different steps
        assert (rollout.episode_lengths < horizon).any() and (rollout.episode_lengths == horizon).any()
        assert buffer.terminated[buffer.valid].any() and buffer.truncated[buffer.valid].any()


def test_all_backends_and_autoreset_modes_give_the_same_rollout():
    rollouts = []
    for backend, mode in (("native", AutoresetMode.NEXT_STEP), ("vector", AutoresetMode.NEXT_STEP),
                          ("vector", AutoresetMode.SAME_STEP)):
        _, _, runner, tasks, params = setup("point-nav-2d", 25, backend, mode)
        rollouts.append(runner.collect(params, tasks, [5, 6, 7], EPISODES))
    for other in rollouts[1:]:
        np.testing.assert_array_equal(other.episode_lengths, rollouts[0].episode_lengths)
        for field in ("obs", "actions", "rewards", "terminated", "truncated", "valid"):
            a, b = getattr(rollouts[0].buffer, field), getattr(other.buffer, field)
            assert torch.equal(a[rollouts[0].buffer.valid], b[other.buffer.valid]), field


def test_a_tasks_episodes_depend_only_on_its_seed_and_runs_repeat():
    _, _, runner, tasks, params = setup("mountaincar-goal-gravity", 20)
    full = runner.collect(params, tasks, [1, 2, 3], EPISODES)
    again = runner.collect(params, tasks, [1, 2, 3], EPISODES)
    assert torch.equal(full.buffer.obs, again.buffer.obs) and torch.equal(full.buffer.actions, again.buffer.actions)
    alone = runner.collect(params[1:2], tasks[1:2], [2], EPISODES)  # task 1 in a meta-batch of its own
    assert torch.equal(alone.buffer.obs[0], full.buffer.obs[1])
    assert torch.equal(alone.buffer.actions[0], full.buffer.actions[1])
    other = runner.collect(params, tasks, [1, 9, 3], EPISODES)
    assert not torch.equal(other.buffer.obs[1], full.buffer.obs[1]) and torch.equal(other.buffer.obs[0],
                                                                                    full.buffer.obs[0])


@pytest.mark.parametrize("backend", ["native", "vector"])
def test_evaluate_returns_and_deterministic_zero_policy(backend):
    family, agent, runner, tasks, params = setup("point-nav-2d", 25, backend)
    returns = runner.evaluate_returns(params, tasks, 3, seeds=[1, 2, 3])
    assert returns.shape == (3,) and np.all(returns <= 0)
    far = [{"goal": [0.3, -0.2]}, {"goal": [0.0, 0.5]}, {"goal": [-0.4, 0.1]}]
    zero = runner.evaluate_returns(torch.zeros_like(params), far, 1, seeds=[1, 2, 3], deterministic=True)
    distances = np.linalg.norm([task["goal"] for task in far], axis=1)
    np.testing.assert_allclose(zero, -25 * distances, rtol=1e-6)  # standing still: -distance every step
    # The cached environments are re-targeted to new tasks.
    moved = [{"goal": [0.0, -0.1]}] * 3
    np.testing.assert_allclose(runner.evaluate_returns(torch.zeros_like(params), moved, 1, seeds=[1, 2, 3],
                                                       deterministic=True), -25 * 0.1, rtol=1e-6)
