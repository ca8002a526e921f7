"""Environment steps per second: the lockstep meta-episode runner against a per-task sequential loop.

Both collect the same episodes of 20 tasks (one episode per task, and 10 per task for the batched runner's
wider batch) with each task's own policy parameters. The sequential reference is the plain loop: one
environment at a time, one single-observation ``nn.Module`` forward under ``no_grad`` per step, then
``env.step``. The runner does more per step (it also evaluates the critic and the log-probability and fills
the rollout buffer) and still steps everything in lockstep with one batched forward. Measured in the same run,
on one intra-op thread.

    python benchmarks/bench_runner.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.noise import action_noise
from reptile_engine.rl.runner import MetaEpisodeRunner, episode_seeds, to_env_actions

TASKS = 20
TARGET = 4.0
FAMILIES = (("point-nav-2d", "native"), ("point-nav-2d", "vector"), ("mountaincar-goal-gravity", "vector"))


def sequential(family, agent: ActorCritic, runner: MetaEpisodeRunner, params: torch.Tensor, tasks, seeds,
               episodes: int) -> int:
    """The plain per-task loop; returns the number of environment steps taken."""
    steps = 0
    envs = [family.make_env(task) for task in tasks]
    for t, env in enumerate(envs):
        modules = agent.modules(params[t])
        std = modules.log_std.exp()
        noise = action_noise(seeds[t], runner.horizon, episodes, agent.act_dim)
        for e, reset_seed in enumerate(episode_seeds(seeds[t], episodes)):
            obs, _ = env.reset(seed=reset_seed)
            for step in range(runner.horizon):
                with torch.no_grad():
                    mean = modules.actor(torch.as_tensor(obs, dtype=torch.float32))
                    action = to_env_actions(mean + std * noise[step, e], runner.action_low, runner.action_high)
                obs, _, terminated, truncated, _ = env.step(action.numpy())
                steps += 1
                if terminated or truncated:
                    break
    return steps


def best_rate(fn, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        steps = fn()
        rates.append(steps / (time.perf_counter() - started))
    return max(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for name, backend in FAMILIES:
        family = make_family(name)
        agent = ActorCritic(family.observation_dim, family.action_dim)
        runner = MetaEpisodeRunner(family, agent, backend=backend)
        tasks = family.sample_tasks(np.random.default_rng(0), TASKS)
        generator = torch.Generator().manual_seed(0)
        params = torch.stack([agent.init(generator) for _ in tasks])
        seeds = list(range(TASKS))
        plain = best_rate(lambda: sequential(family, agent, runner, params, tasks, seeds, 1), args.repeats)  # noqa: B023
        for episodes in (1, 10):
            runner.collect(params, tasks, seeds, episodes)  # build the environments once, outside the timing
            batched = best_rate(lambda: int(runner.collect(params, tasks, seeds, episodes).episode_lengths.sum()),  # noqa: B023
                                args.repeats)
            rows.append((name, backend, episodes, plain, batched))
        runner.close()
    print(f"{TASKS} tasks, horizon = family horizon, MLP 64x64 actor and critic, 1 thread\n")
    header = f"{'family':<26} {'backend':<8} {'episodes/task':>13} {'sequential steps/s':>19} " \
             f"{'batched steps/s':>16} {'ratio':>7}  target >= {TARGET:.0f}x"
    print(header)
    print("-" * len(header))
    for name, backend, episodes, plain, batched in rows:
        ratio = batched / plain
        print(f"{name:<26} {backend:<8} {episodes:>13d} {plain:>19,.0f} {batched:>16,.0f} {ratio:>6.1f}x  "
              f"{'met' if ratio >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
