"""Pruning: the same random search with and without early stopping of bad trials.

Three ways to run one seeded random search (the same configurations in each, since random
parameters are a function of (seed, slot)): no pruning at all (the divergence factor set
out of reach), the divergence rule alone (loss above 3x its initial value), and the
divergence rule with Optuna's median pruner. For each, over 3 seeds: epochs trained, wall
time and the best dev loss. The target is >= 40% fewer epochs than no pruning at an equal
best value (the same best trial, or one within seed noise).

    .venv/bin/python bench/pruning.py [--trials 40] [--epochs 20] [--seeds 3]
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from _runs import StudyRun, run_study

VARIANTS = {
    "none": {"divergence_factor": 1e6, "pruner": "none"},
    "divergence": {"divergence_factor": 3.0, "pruner": "none"},
    **{
        f"divergence+{p}": {"divergence_factor": 3.0, "pruner": p}
        for p in ("median", "percentile", "successive_halving", "hyperband")
    },
}
DEFAULT = "none,divergence,divergence+median,divergence+hyperband"


def spec(variant: str, seed: int, trials: int, epochs: int, warmup: int) -> dict[str, Any]:
    return {
        "name": f"pruning-{variant.replace('+', '-')}-{seed}",
        "dataset": "digits",
        "search": {
            "sampler": "random",
            "n_trials": trials,
            "seed": seed,
            "space": {
                "lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True},
                "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
                "hidden": {"type": "layers", "depth": [1, 2], "units": [16, 128], "log": True},
            },
        },
        "training": {"epochs": epochs, "batch_size": 64, "optimizer": "adam"},
        "pruning": VARIANTS[variant] | {"warmup_epochs": warmup},
    }


def _one(args: tuple[str, int, int, int, int]) -> tuple[str, int, StudyRun]:
    variant, seed, trials, epochs, warmup = args
    return variant, seed, run_study(spec(variant, seed, trials, epochs, warmup))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=8, help="epochs before median/percentile pruning"
    )
    parser.add_argument("--jobs", type=int, default=2, help="studies run at once (1 core each)")
    parser.add_argument(
        "--variants",
        default=DEFAULT,
        help=f"comma-separated, 'none' first; of: {', '.join(VARIANTS)}",
    )
    args = parser.parse_args()
    variants = [v.strip() for v in args.variants.split(",")]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown or variants[0] != "none":
        parser.error(f"--variants: unknown {unknown} or 'none' not first")
    jobs = [
        (v, s, args.trials, args.epochs, args.warmup) for s in range(args.seeds) for v in variants
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = {(v, s): run for v, s, run in pool.map(_one, jobs)}
    base = {s: runs["none", s] for s in range(args.seeds)}
    seeds = f"seeds 0..{args.seeds - 1}"
    print(f"{args.trials} random trials of up to {args.epochs} epochs on digits, {seeds}")
    print(f"median/percentile pruners: 3 startup trials, {args.warmup} warm-up epochs")
    head = f"{'variant':<18} {'epochs':>7} {'vs none':>8} {'pruned':>7} {'wall s':>7}"
    print(f"{head}  best dev_loss per seed")
    for v in variants:
        mine = [runs[v, s] for s in range(args.seeds)]
        epochs = sum(r.epochs for r in mine)
        ratio = epochs / sum(b.epochs for b in base.values())
        pruned = sum(t.state == "PRUNED" for r in mine for t in r.trials)
        wall = statistics.median(r.wall_s for r in mine)
        bests = "  ".join(f"{r.best():.4f}" for r in mine)
        print(f"{v:<18} {epochs:>7} {ratio:>7.0%} {pruned:>7} {wall:>7.1f}  {bests}")
    for v in variants[1:]:
        same = [runs[v, s].best() == base[s].best() for s in range(args.seeds)]
        print(f"{v} kept the unpruned search's best value in {sum(same)}/{len(same)} seeds")


if __name__ == "__main__":
    main()
