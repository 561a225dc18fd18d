"""hpsearch's per-trial path next to a bare Optuna loop on the same storage, and how each
grows with the study: SQLite and PostgreSQL, at trial 1,000 and 10,000 of one study.

bare Optuna:  ask, 3 suggests, a report per epoch (0..E), tell (RandomSampler, no pruner)
hpsearch:     the worker's own loop on a synthetic study with 0 seconds per epoch (claim a
              slot with its Optuna trial and parameters, the epochs judged by the
              divergence rule, the end recorded on both sides and the next slot claimed
              in one transaction; heartbeats and reaper checks as they fall)

Both studies are grown to each size in bulk first (``bench/_fill.py``: finished trials
with parameters, values and per-epoch values, as the worker writes them); then the two
paths run in alternating blocks in one process, so that drift hits both; the figure per
path is the median of its blocks, in ms per trial.

    .venv/bin/python bench/overhead.py [--backends sqlite,postgresql] [--sizes 1000,10000]
        [--rounds 4] [--block 50] [--epochs 10] [--pg URL] [--quick]

PostgreSQL: a throwaway database is created on ``--pg``'s server (default
``postgresql://postgres@127.0.0.1:5432/postgres``, or HPS_TEST_POSTGRES_URL) and dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _databases import BACKENDS, PG_ADMIN, database  # noqa: E402
from _fill import DISTRIBUTIONS, add_finished_trials, grow_hps_study  # noqa: E402

from search import store  # noqa: E402
from search.spec import ExperimentSpec  # noqa: E402
from search.studies import create_study, get_storage, load_study_context  # noqa: E402
from search.worker import Worker, WorkerOptions  # noqa: E402

WARM_UP = 5  # trials of each path before a size's blocks: connections, caches


def spec(n_trials: int, epochs: int) -> ExperimentSpec:
    space = {
        name: {"type": "float" if name != "batch_size" else "int"}
        | {"low": d.low, "high": d.high, "log": d.log}
        for name, d in DISTRIBUTIONS.items()
    }
    return ExperimentSpec.model_validate(
        {
            "name": "overhead",
            "model": "synthetic",
            "search": {"sampler": "random", "n_trials": n_trials, "parallelism": 4, "space": space},
            "training": {"epochs": epochs, "seconds_per_epoch": 0},
            "pruning": {"pruner": "none"},
        }
    )


class BareOptuna:
    """The loop a user would write around Optuna, on hpsearch's own RDBStorage."""

    def __init__(self, url: str, epochs: int) -> None:
        self.url, self.epochs = url, epochs
        self.study = optuna.create_study(
            study_name=f"bare-{uuid.uuid4().hex}",
            storage=get_storage(url),
            sampler=optuna.samplers.RandomSampler(seed=0),
        )

    def grow(self, count: int) -> None:
        with store.session_scope(store.make_session_factory(self.url)) as s:
            add_finished_trials(
                s, optuna_study_id=self.study._study_id, count=count, epochs=self.epochs
            )

    def block(self, n: int) -> None:
        for _ in range(n):
            trial = self.study.ask()
            trial.suggest_float("lr", 1e-5, 1.0, log=True)
            trial.suggest_float("keep_prob", 0.5, 1.0)
            trial.suggest_int("batch_size", 16, 256, log=True)
            value = 2.3
            for step in range(self.epochs + 1):
                trial.report(value, step)
                value *= 0.8
            self.study.tell(trial, value)


class Hpsearch:
    """A synthetic study served by one in-process worker, kept between blocks."""

    def __init__(self, url: str, epochs: int, n_trials: int) -> None:
        self.url, self.epochs = url, epochs
        self.sessions = store.make_session_factory(url)
        row = create_study(
            session_factory=self.sessions, storage_url=url, spec=spec(n_trials, epochs)
        )
        self.study_id = row.id
        _, self.optuna_study_id = load_study_context(
            session_factory=self.sessions, storage_url=url, study_id=row.id
        )
        self.worker: Worker | None = None

    def grow(self, count: int) -> None:
        if self.worker is not None:  # its claimed next trial is handed back first
            self.worker.close()
            self.worker = None
        with store.session_scope(self.sessions) as s:
            grow_hps_study(
                s,
                study_id=self.study_id,
                optuna_study_id=self.optuna_study_id,
                count=count,
                epochs=self.epochs,
            )

    def block(self, n: int) -> None:
        if self.worker is None:
            self.worker = Worker(WorkerOptions(db_url=self.url, study_id=self.study_id))
            self.worker.register()
        start, deadline = self.worker.trials_run, time.monotonic() + 60 + n
        while self.worker.trials_run < start + n:
            if not self.worker.step() or time.monotonic() > deadline:
                raise RuntimeError("the worker stopped, or found no work (budget spent?)")

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def trials_now(url: str, optuna_study_id: int) -> int:
    return len(get_storage(url).get_all_trials(optuna_study_id, deepcopy=False))


def measure(url: str, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    """(size, bare ms/trial, hpsearch ms/trial) at each size: the study is grown to just
    under ``size`` trials, so the blocks measured are its trials up to ``size``."""
    per_size = WARM_UP + args.rounds * args.block
    budget = min(max(args.sizes) + 10, 10000)  # the spec's limit; claims never outrun trials
    bare, ours = BareOptuna(url, args.epochs), Hpsearch(url, args.epochs, budget)
    paths: dict[str, Callable[[int], None]] = {"bare": bare.block, "hpsearch": ours.block}
    out = []
    try:
        for size in args.sizes:
            for path, study_id in ((bare, bare.study._study_id), (ours, ours.optuna_study_id)):
                path.grow(max(size - per_size - trials_now(url, study_id), 0))
            times: dict[str, list[float]] = {name: [] for name in paths}
            for block in paths.values():
                block(WARM_UP)
            for _ in range(args.rounds):
                for name, block in paths.items():
                    t0 = time.perf_counter()
                    block(args.block)
                    times[name].append((time.perf_counter() - t0) / args.block * 1000)
            out.append(
                (size, statistics.median(times["bare"]), statistics.median(times["hpsearch"]))
            )
    finally:
        ours.close()
    return out


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--sizes", default="1000,10000", help="study sizes measured at")
    parser.add_argument("--rounds", type=int, default=4, help="alternating blocks per path")
    parser.add_argument("--block", type=int, default=50, help="trials per block")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (E)")
    parser.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL server (admin URL)")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 100,300, 2x10")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.rounds, args.block = "100,300", 2, 10
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    args.backends = args.backends.split(",")
    if any(b not in BACKENDS for b in args.backends):
        parser.error("--backends: sqlite and/or postgresql")
    window = WARM_UP + args.rounds * args.block
    if args.rounds < 1 or args.block < 1 or args.epochs < 1:
        parser.error("--rounds, --block and --epochs must be >= 1")
    if args.sizes[0] < window or args.sizes[-1] > 10000:
        parser.error(f"--sizes: each between {window} (warm-up + rounds x block) and 10000")
    return args


def main() -> None:
    args = parse_args()
    load = os.getloadavg()[0]
    print(
        f"# overhead: {platform.node()}, {os.cpu_count()} cores, load {load:.1f}, "
        f"optuna {optuna.__version__}, {args.epochs + 1} reports/trial, "
        f"{args.rounds} rounds x {args.block} trials"
    )
    header = f"{'database':<11} {'at trial':>9} {'bare Optuna ms':>15} {'hpsearch ms':>12}"
    header += f" {'ratio':>6}"
    rows = []
    for backend in args.backends:
        with database(backend, args.pg) as url:
            rows.append((backend, measure(url, args)))
    print(header)
    for backend, results in rows:
        for size, bare, ours in results:
            print(f"{backend:<11} {size:>9} {bare:>15.1f} {ours:>12.1f} {ours / bare:>5.2f}x")
    print(f"{'database':<11} {'growth':>9} {'bare Optuna':>15} {'hpsearch':>12}")
    for backend, results in rows:
        (first, b0, h0), (last, b1, h1) = results[0], results[-1]
        print(f"{backend:<11} {f'{first}->{last}':>9} {b1 / b0:>14.2f}x {h1 / h0:>11.2f}x")


if __name__ == "__main__":
    main()
