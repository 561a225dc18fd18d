"""hpsearch's per-trial bookkeeping side by side with a bare Optuna loop, same database.

bare Optuna:  ask + 3 suggests + 11 reports + tell (RandomSampler, no pruner)
hpsearch:     the worker's own loop around trials of 11 epochs (look for work, claim a slot
              with its Optuna trial and parameters, the epochs judged by the divergence
              rule, the outcome told to Optuna and recorded in hps_trials, the slot
              released; heartbeats and reaper checks as they fall), training stubbed out.

The two run in alternating blocks in one process so that both see the same machine state;
the figure per path is the median of its blocks.

    .venv/bin/python bench/bench_vs_optuna.py [--db URL] [--rounds 8] [--block 50]

Default database: a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from models import EpochMetrics, TrainConfig, TrainResult
from search import store
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from search.worker import Worker, WorkerOptions
from service.runner import upgrade_db

EPOCHS = 11  # step 0 (the initial loss) and 10 epochs
SPEC = {
    "name": "bench",
    "dataset": "digits",
    "search": {
        "sampler": "random",
        "n_trials": 10000,
        "parallelism": 4,
        "space": {
            "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
            "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
            "batch_size": {"type": "int", "low": 16, "high": 256, "log": True},
        },
    },
    "training": {"epochs": EPOCHS - 1},
    "pruning": {"pruner": "none"},
}


def bare_optuna(url: str) -> Callable[[int], None]:
    study = optuna.create_study(
        study_name=f"bare-{uuid.uuid4().hex}",
        storage=get_storage(url),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )

    def one_trial() -> None:
        trial = study.ask()
        trial.suggest_float("lr", 1e-5, 1.0, log=True)
        trial.suggest_float("keep_prob", 0.5, 1.0)
        trial.suggest_int("batch_size", 16, 256, log=True)
        value = 2.0
        for step in range(EPOCHS):
            value *= 0.9
            trial.report(value, step)
        study.tell(trial, value)

    def block(n: int) -> None:
        for _ in range(n):
            one_trial()

    return block


def no_training(
    config: TrainConfig, data: Any, on_epoch: Callable[[EpochMetrics], bool]
) -> TrainResult:
    """Stands in for ``models.train``: 11 epoch reports, instantly."""
    losses: list[float] = []
    for epoch in range(EPOCHS):
        losses.append(2.0 * 0.9**epoch)
        if on_epoch(EpochMetrics(epoch, losses[-1], losses[-1], 0.5)):
            break
    final = EpochMetrics(len(losses) - 1, losses[-1], losses[-1], 0.5)
    n = len(losses)
    return TrainResult("completed", None, n - 1, losses[0], losses, losses, [0.5] * n, 0.0, final)


def hpsearch(url: str) -> Callable[[int], None]:
    """The worker's own loop (claim, trial on both sides, epochs, end), training stubbed."""
    spec = ExperimentSpec.model_validate(SPEC)
    factory = store.make_session_factory(url)
    study_id = create_study(session_factory=factory, storage_url=url, spec=spec).id

    def block(n: int) -> None:
        options = WorkerOptions(db_url=url, study_id=study_id, max_trials=n)
        assert Worker(options, train=no_training).run() == n

    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="database URL (default: temporary SQLite)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--block", type=int, default=50, help="trials per block")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade_db(url)
    paths = {"bare Optuna": bare_optuna(url), "hpsearch": hpsearch(url)}
    for block in paths.values():  # warm up: first connections, caches
        block(5)
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(args.rounds):
        for name, block in paths.items():
            t0 = time.perf_counter()
            block(args.block)
            times[name].append((time.perf_counter() - t0) / args.block * 1000)
    bare, ours = (statistics.median(times[n]) for n in paths)
    print(f"database: {url.split('://')[0]}, {args.rounds} rounds of {args.block} trials each")
    for name in paths:
        lo, hi = min(times[name]), max(times[name])
        print(f"{name:>12}: {statistics.median(times[name]):6.1f} ms/trial ({lo:.1f}-{hi:.1f})")
    print(f"{'ratio':>12}: {ours / bare:6.2f}x bare Optuna")


if __name__ == "__main__":
    main()
