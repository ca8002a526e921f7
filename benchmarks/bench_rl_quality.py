"""Meta-RL quality probe: Reptile with a PPO inner loop on point-nav-2d, for a fixed wall-clock budget.

After training, 40 held-out goals (a fixed seed) are adapted for 0..3 inner updates from the meta-parameters
and from a fresh initialization, with the same episode seeds; the zero-action policy is the floor to beat.
Returns are undiscounted over the 100-step horizon, averaged over the goals and the episodes of the
(stochastic) policy; the last columns add the deterministic (mean-action) policy after the updates.

    python benchmarks/bench_rl_quality.py [--seconds 180] [--inner-lr 0.01] ...
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from reptile_engine.rl.onpolicy import OnPolicyConfig, adapt
from reptile_engine.rl.reptile_rl import RLMetaConfig, RLMetaLearner

HELD_OUT_SEED = 2024
HELD_OUT_TASKS = 40
TARGET = -15.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--family", default="point-nav-2d")
    parser.add_argument("--meta-batch", type=int, default=20)
    parser.add_argument("--meta-lr", type=float, default=0.1)
    parser.add_argument("--meta-optimizer", default="sgd")
    parser.add_argument("--algorithm", default="ppo")
    parser.add_argument("--inner-lr", type=float, default=0.01)
    parser.add_argument("--inner-optimizer", default="adam")
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--init-log-std", type=float, default=-0.5)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--entropy-coef", type=float, default=0.0)
    parser.add_argument("--clip-ratio", type=float, default=0.2)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--anneal", action="store_true", help="meta-lr decays linearly to 0 over the budget")
    parser.add_argument("--freeze-log-std", action="store_true", help="the outer step leaves log_std alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    inner = OnPolicyConfig(algorithm=args.algorithm, updates=args.updates, episodes=args.episodes, lr=args.inner_lr,
                           optimizer=args.inner_optimizer, epochs=args.epochs, minibatches=args.minibatches,
                           entropy_coef=args.entropy_coef, clip_ratio=args.clip_ratio, gamma=args.gamma,
                           max_grad_norm=args.max_grad_norm)
    config = RLMetaConfig(family=args.family, meta_batch=args.meta_batch, meta_lr=args.meta_lr,
                          meta_optimizer=args.meta_optimizer, actor_hidden=(args.hidden, args.hidden),
                          critic_hidden=(args.hidden, args.hidden), init_log_std=args.init_log_std,
                          meta_log_std=not args.freeze_log_std, inner=inner,
                          seed=args.seed)
    print(config)
    learner = RLMetaLearner(config)
    started = time.perf_counter()
    history = []
    while (elapsed := time.perf_counter() - started) < args.seconds:
        if args.anneal:  # the paper's linear annealing, by wall-clock fraction
            learner.optimizer.param_groups[0]["lr"] = args.meta_lr * (1 - elapsed / args.seconds)
        metrics = learner.step()
        history.append((metrics["return_before"], metrics["return_after"]))
        if learner.iteration % 25 == 0:
            before, after = np.mean(history[-25:], axis=0)
            print(f"it {learner.iteration:5d}  {time.perf_counter() - started:6.1f}s  return before {before:8.2f}  "
                  f"after {after:8.2f}  log_std {metrics['log_std']:+.2f}  "
                  f"|g| actor {metrics['pseudo_grad_norm_actor']:.3f} critic {metrics['pseudo_grad_norm_critic']:.3f}",
                  flush=True)
    training = time.perf_counter() - started

    tasks = learner.family.sample_tasks(np.random.default_rng(HELD_OUT_SEED), HELD_OUT_TASKS)
    meta, scratch = learner.adaptation_curve(tasks, updates=3, seed=HELD_OUT_SEED)
    runner, agent = learner.runner, learner.agent
    seeds = np.random.default_rng(HELD_OUT_SEED + 1).integers(0, 2**62, size=(4, HELD_OUT_TASKS))
    zero = runner.evaluate_returns(torch.zeros(HELD_OUT_TASKS, agent.size), tasks, 1, seeds[0],
                                   deterministic=True).mean()
    deterministic = []
    for updates in range(4):
        cfg = dataclasses.replace(inner, updates=updates, evaluate_after=False)
        result = adapt(agent, runner, learner.theta.detach(), tasks, seeds[:updates], cfg,
                       torch.Generator().manual_seed(HELD_OUT_SEED))
        deterministic.append(runner.evaluate_returns(result.phi, tasks, 1, seeds[3], deterministic=True).mean())
    print(f"\n{learner.iteration} meta-iterations in {training:.0f} s; {HELD_OUT_TASKS} held-out goals")
    print(f"{'updates':>8} {'meta-init':>10} {'scratch':>10} {'zero-action':>12} {'meta (mean action)':>19}")
    for k in range(4):
        print(f"{k:>8d} {meta[k]:>10.2f} {scratch[k]:>10.2f} {zero:>12.2f} {deterministic[k]:>19.2f}")
    best = max(meta[1:])
    print(f"target: >= {TARGET} after <= 3 updates: best {best:.2f} -> {'met' if best >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
