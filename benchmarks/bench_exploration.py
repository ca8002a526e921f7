"""How often exploration alone reaches a mountain car's goal: each noise process from a zero-mean policy.

A policy whose mean action is zero explores only through its noise; the share of episodes that reach the goal
says whether an inner loop can ever see a reward to learn from. Tasks come from ``--task-seed``, episodes from
consecutive seeds; every process sees the same tasks and seeds.

    python benchmarks/bench_exploration.py [--tasks 50] [--episodes 4]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from reptile_engine.rl.agents import ActorCritic
from reptile_engine.rl.families import make_family
from reptile_engine.rl.runner import MetaEpisodeRunner

PROCESSES = (("gaussian", 0.0), ("ou", 0.9), ("ou", 0.99), ("pink", 0.0))
STDS = (0.3, 0.6, 1.0)


def reached_share(family, agent: ActorCritic, tasks, std: float, noise: str, correlation: float,
                  episodes: int) -> float:
    """The share of episodes that end at the goal (terminated before the horizon) with a zero-mean policy."""
    params = torch.zeros(agent.size)
    params[agent.log_std_slice] = float(np.log(std))
    runner = MetaEpisodeRunner(family, agent, noise=noise, noise_correlation=correlation)
    rollout = runner.collect(params.expand(len(tasks), -1), tasks, seeds=list(range(len(tasks))), episodes=episodes)
    return float((rollout.episode_lengths < runner.horizon).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="mountaincar-goal-gravity")
    parser.add_argument("--tasks", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=4, help="episodes per task")
    parser.add_argument("--task-seed", type=int, default=123)
    args = parser.parse_args()
    family = make_family(args.family)
    agent = ActorCritic(family.observation_dim, family.action_dim, actor_hidden=(8,), critic_hidden=(8,))
    tasks = family.sample_tasks(np.random.default_rng(args.task_seed), args.tasks)
    print(f"{args.family}: {args.tasks} tasks x {args.episodes} episodes, zero-mean policy; share reaching the goal")
    print(f"{'noise':<18}" + "".join(f"{f'std {std}':>10}" for std in STDS))
    for noise, correlation in PROCESSES:
        label = f"{noise} (r = {correlation})" if noise == "ou" else noise
        shares = [reached_share(family, agent, tasks, std, noise, correlation, args.episodes) for std in STDS]
        print(f"{label:<18}" + "".join(f"{share:>10.1%}" for share in shares), flush=True)


if __name__ == "__main__":
    main()
