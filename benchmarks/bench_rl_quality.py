"""Meta-RL quality probe: Reptile with a PPO inner loop on point-nav-2d, within a wall-clock cap.

After training, 40 held-out goals (a fixed seed) are adapted for 0..3 inner updates from the meta-parameters
and from a fresh initialization, with the same episode seeds; the zero-action policy is the floor to beat.
Returns are undiscounted over the 100-step horizon, averaged over the goals and the episodes of the
(stochastic) policy as adapted; the target is on these. The last column adds the deterministic (mean-action)
policy after the same updates, for reference only.

Why the defaults: the return after adaptation peaks after about 50-75 meta-iterations and then slowly gets
worse, even with the meta-lr annealed over a longer run, so training stops at 75 iterations with the meta-lr
annealed to 0 (a fixed count gives the same result on any machine; the cap bounds the time). An Adam inner
loop makes that drift much stronger than plain SGD; a clip ratio of 0.4 lets three updates move the policy
far enough; 20 episodes per update and 40 tasks per meta-batch cut the noise; ``log_std`` stays at -1.0 in
the outer step, since the return of the stochastic policy is the measure.

A second, shorter run meta-trains on mountaincar-goal-gravity and reports the fraction of held-out tasks whose
goal the adapted (stochastic) policy reaches: a task counts when most of its evaluation episodes terminate at
the goal before the time limit.

    python benchmarks/bench_rl_quality.py [--iterations 75] [--seconds 480] [--mountaincar-seconds 120] ...
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from reptile_engine.rl.onpolicy import OnPolicyConfig, adapt
from reptile_engine.rl.reptile_rl import SEED_HIGH, RLMetaConfig, RLMetaLearner
from reptile_engine.rl.runner import Task

HELD_OUT_SEED = 2024
HELD_OUT_TASKS = 40
TARGET = -15.0
MAX_UPDATES = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=480.0, help="wall-clock cap on the meta-training")
    parser.add_argument("--iterations", type=int, default=75,
                        help="meta-iterations (0: until --seconds); the return after adaptation peaks near 75")
    parser.add_argument("--family", default="point-nav-2d")
    parser.add_argument("--meta-batch", type=int, default=40)
    parser.add_argument("--meta-lr", type=float, default=0.1)
    parser.add_argument("--meta-optimizer", default="sgd")
    parser.add_argument("--algorithm", default="ppo")
    parser.add_argument("--inner-lr", type=float, default=1.0)
    parser.add_argument("--inner-optimizer", default="sgd")
    parser.add_argument("--updates", type=int, default=MAX_UPDATES)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--init-log-std", type=float, default=-1.0)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--entropy-coef", type=float, default=0.0)
    parser.add_argument("--clip-ratio", type=float, default=0.4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--max-grad-norm", type=float, default=0.5)
    parser.add_argument("--anneal", action=argparse.BooleanOptionalAction, default=True,
                        help="meta-lr decays linearly to 0 over the iterations (or seconds, if sooner)")
    parser.add_argument("--freeze-log-std", action=argparse.BooleanOptionalAction, default=True,
                        help="the outer step leaves log_std alone")
    parser.add_argument("--mountaincar-seconds", type=float, default=120.0, help="0 skips the mountain car")
    parser.add_argument("--mountaincar-tasks", type=int, default=20)
    parser.add_argument("--mountaincar-meta-batch", type=int, default=5)
    parser.add_argument("--mountaincar-episodes", type=int, default=2)
    parser.add_argument("--mountaincar-init-log-std", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def inner_config(args: argparse.Namespace, **changes: object) -> OnPolicyConfig:
    inner = OnPolicyConfig(algorithm=args.algorithm, updates=args.updates, episodes=args.episodes, lr=args.inner_lr,
                           optimizer=args.inner_optimizer, epochs=args.epochs, minibatches=args.minibatches,
                           entropy_coef=args.entropy_coef, clip_ratio=args.clip_ratio, gamma=args.gamma,
                           max_grad_norm=args.max_grad_norm)
    return dataclasses.replace(inner, **changes)


def train(config: RLMetaConfig, seconds: float, iterations: int, anneal: bool) -> tuple[RLMetaLearner, float]:
    """Meta-train until the budget (or ``iterations``) is spent, logging the meta-batches' returns every 25."""
    print(config)
    learner = RLMetaLearner(config)
    started = time.perf_counter()
    history = []
    while (elapsed := time.perf_counter() - started) < seconds and (not iterations or learner.iteration < iterations):
        if anneal:  # the paper's linear annealing, by the fraction of the budget (or iterations) spent
            spent = learner.iteration / iterations if iterations else 0.0
            learner.optimizer.param_groups[0]["lr"] = config.meta_lr * (1 - max(spent, elapsed / seconds))
        metrics = learner.step()
        history.append((metrics["return_before"], metrics["return_after"]))
        if learner.iteration % 25 == 0:
            before, after = np.mean(history[-25:], axis=0)
            print(f"it {learner.iteration:5d}  {time.perf_counter() - started:6.1f}s  return before {before:8.2f}  "
                  f"after {after:8.2f}  log_std {metrics['log_std']:+.2f}  entropy {metrics['entropy']:+.2f}  "
                  f"|g| actor {metrics['pseudo_grad_norm_actor']:.3f} critic {metrics['pseudo_grad_norm_critic']:.3f}",
                  flush=True)
    return learner, time.perf_counter() - started


def point_nav(args: argparse.Namespace) -> dict[str, list[float]]:
    """Held-out returns after 0..3 updates: meta-init, scratch, zero action and the mean action of the meta-init."""
    inner = inner_config(args)
    config = RLMetaConfig(family=args.family, meta_batch=args.meta_batch, meta_lr=args.meta_lr,
                          meta_optimizer=args.meta_optimizer, actor_hidden=(args.hidden, args.hidden),
                          critic_hidden=(args.hidden, args.hidden), init_log_std=args.init_log_std,
                          meta_log_std=not args.freeze_log_std, inner=inner, seed=args.seed)
    learner, training = train(config, args.seconds, args.iterations, args.anneal)
    tasks = learner.family.sample_tasks(np.random.default_rng(HELD_OUT_SEED), HELD_OUT_TASKS)
    meta, scratch = learner.adaptation_curve(tasks, updates=MAX_UPDATES, seed=HELD_OUT_SEED)
    runner, agent = learner.runner, learner.agent
    seeds = np.random.default_rng(HELD_OUT_SEED + 1).integers(0, SEED_HIGH, size=(MAX_UPDATES + 1, HELD_OUT_TASKS))
    zero = runner.evaluate_returns(torch.zeros(HELD_OUT_TASKS, agent.size), tasks, 1, seeds[0],
                                   deterministic=True).mean()
    deterministic = []
    for updates in range(MAX_UPDATES + 1):
        cfg = dataclasses.replace(inner, updates=updates, evaluate_after=False)
        result = adapt(agent, runner, learner.theta.detach(), tasks, seeds[:updates], cfg,
                       torch.Generator().manual_seed(HELD_OUT_SEED))
        deterministic.append(runner.evaluate_returns(result.phi, tasks, 1, seeds[MAX_UPDATES],
                                                     deterministic=True).mean())
    print(f"point-nav-2d: {learner.iteration} meta-iterations in {training:.0f} s")
    return {"meta": list(meta), "scratch": list(scratch), "zero": [zero], "mean action": deterministic}


def goal_reached(learner: RLMetaLearner, start: torch.Tensor, tasks: list[Task], inner: OnPolicyConfig,
                 seed: int) -> tuple[float, float]:
    """Adapt ``start`` to every task, then (fraction of tasks reached by most episodes, fraction of episodes)."""
    seeds = np.random.default_rng(seed).integers(0, SEED_HIGH, size=(inner.updates + 1, len(tasks)))
    cfg = dataclasses.replace(inner, evaluate_after=False)
    phi = adapt(learner.agent, learner.runner, start, tasks, seeds[:-1], cfg, torch.Generator().manual_seed(seed)).phi
    buffer = learner.runner.collect(phi, tasks, seeds[-1], inner.episodes).buffer
    reached = (buffer.terminated & buffer.valid).any(dim=-1).float()  # [T, E]: terminated = at the goal
    return float((reached.mean(dim=1) > 0.5).float().mean()), float(reached.mean())


def mountaincar(args: argparse.Namespace) -> dict[str, tuple[float, float]]:
    """Goal-reaching fractions on held-out mountain-car tasks after ``MAX_UPDATES`` updates: meta-init vs scratch."""
    inner = inner_config(args, updates=MAX_UPDATES, episodes=args.mountaincar_episodes)
    hidden = (args.hidden, args.hidden)
    config = RLMetaConfig(family="mountaincar-goal-gravity", meta_batch=args.mountaincar_meta_batch,
                          meta_lr=args.meta_lr, meta_optimizer=args.meta_optimizer, actor_hidden=hidden,
                          critic_hidden=hidden, init_log_std=args.mountaincar_init_log_std,
                          meta_log_std=not args.freeze_log_std, inner=inner, seed=args.seed)
    learner, training = train(config, args.mountaincar_seconds, 0, args.anneal)
    tasks = learner.family.sample_tasks(np.random.default_rng(HELD_OUT_SEED), args.mountaincar_tasks)
    scratch = learner.agent.init(torch.Generator().manual_seed(HELD_OUT_SEED))
    print(f"mountaincar-goal-gravity: {learner.iteration} meta-iterations in {training:.0f} s")
    return {"meta": goal_reached(learner, learner.theta.detach(), tasks, inner, HELD_OUT_SEED),
            "scratch": goal_reached(learner, scratch, tasks, inner, HELD_OUT_SEED)}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    nav = point_nav(args)
    car = mountaincar(args) if args.mountaincar_seconds > 0 else None

    print(f"\n{args.family}: mean return on {HELD_OUT_TASKS} held-out goals (stochastic policy as adapted)")
    print(f"{'':28} {'return':>8} {'mean action':>12}")
    print(f"{'zero-action':28} {nav['zero'][0]:>8.2f}")
    for k in range(MAX_UPDATES + 1):
        print(f"{f'meta-init, {k} updates':28} {nav['meta'][k]:>8.2f} {nav['mean action'][k]:>12.2f}")
    for k in range(1, MAX_UPDATES + 1):
        print(f"{f'scratch, {k} updates':28} {nav['scratch'][k]:>8.2f}")
    best = max(nav["meta"][1:])
    beats = all(m > s for m, s in zip(nav["meta"][1:], nav["scratch"][1:], strict=True))
    print(f"target >= {TARGET} after <= {MAX_UPDATES} updates: best {best:.2f} -> "
          f"{'met' if best >= TARGET else 'NOT met'}; meta-init beats scratch after every update: "
          f"{'yes' if beats else 'no'}")
    if car is not None:
        print(f"mountaincar-goal-gravity, {args.mountaincar_tasks} held-out tasks after {MAX_UPDATES} updates: "
              f"goal reached by meta-init {car['meta'][0]:.2f} of tasks ({car['meta'][1]:.2f} of episodes), "
              f"by scratch {car['scratch'][0]:.2f} ({car['scratch'][1]:.2f})")


if __name__ == "__main__":
    main()
