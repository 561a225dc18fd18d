"""End-to-end efficiency (ideal time / measured) of studies of sleeping synthetic trials
through a real ``hpsearch serve``, and where coordination saturates with many workers.

1. ``hpsearch serve --workers N`` (N = 1, 2) on SQLite and on PostgreSQL; a study of
   0.3-s and one of 1-s trials is submitted over REST to each. A synthetic trial sleeps its
   epochs (``training.seconds_per_epoch``), so the ideal is exact: ceil(trials / N) x the
   trial's length; measured is the study's own ``created_at`` to ``finished_at`` (the API
   is polled at a watching client's pace, not fast enough to steal the cores).
2. Many workers on PostgreSQL: ``hpsearch serve --workers 0`` and ``hpsearch worker``
   processes added in steps (8, 16, 32), each step a study with parallelism = workers.
   Sleeping trials leave the cores to the bookkeeping, so efficiency falls where the
   claims, ends and heartbeats of all workers no longer fit between the trials.
3. ``--fleet N`` (off by default: it needs about 120 MB free per worker): N worker
   processes through a transaction-pooling PgBouncer on a private PostgreSQL with
   ``max_connections = 100`` (``bench/_fleet.py``), one study of ``--fleet-trial-seconds``
   trials after a short warm-up one; besides the efficiency: failed trials, whether every
   slot ran once, each worker's memory (median RSS and PSS) and the CPU time the
   database, PgBouncer, the API and the workers spent during the study. The study lasts
   ``--fleet-study-seconds`` ideally (156 s: about 10,000 trials of 2 s on 128 workers,
   the size of Ray Tune's published 10,000-trial run); its start (every worker's first
   claim, each holding the study's row lock until it commits, 0.3-2.3 s after the
   submission) is a fixed cost that a short study pays in full (docs/performance.md).

    .venv/bin/python bench/scaling.py [--backends sqlite,postgresql] [--workers 1,2]
        [--trial-seconds 0.3,1] [--study-seconds 8] [--many 8,16,32] [--repeats 1]
        [--fleet 128] [--fleet-trial-seconds 2] [--fleet-study-seconds 156]
        [--device cpu|cuda|auto] [--pg URL] [--quick]

``--device`` is the workers' device (``HPS_DEVICE``): synthetic trials compute nothing,
so it shows a GPU worker's own per-trial costs, not training speed (``bench/trainer.py``).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _databases import BACKENDS, PG_ADMIN, database  # noqa: E402
from _fleet import (  # noqa: E402  # noqa: E402
    SERVER_POOL,
    CpuWatch,
    check_memory,
    children,
    fleet_database,
    median_memory,
    study_outcome,
)
from _serve import Service  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

EPOCH_S = 0.1  # a trial of T seconds is T / 0.1 epochs of 0.1 s


def spec(trials: int, parallelism: int, trial_s: float) -> dict[str, Any]:
    epochs = max(1, round(trial_s / EPOCH_S))
    return {
        "name": f"scaling-{parallelism}x{trial_s:g}s",
        "model": "synthetic",
        "search": {
            "sampler": "random",
            "n_trials": trials,
            "parallelism": parallelism,
            "space": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        },
        "training": {"epochs": epochs, "seconds_per_epoch": trial_s / epochs},
        "pruning": {"pruner": "none"},
    }


def measure(service: Service, workers: int, trial_s: float, args: argparse.Namespace) -> Row:
    """One study per repeat; the median of the measured times."""
    trials = workers * max(1, round(args.study_seconds / trial_s))
    ideal = math.ceil(trials / workers) * trial_s
    walls = [service.run_study(spec(trials, workers, trial_s)) for _ in range(args.repeats)]
    return Row(workers, trial_s, trials, ideal, walls)


class Row:
    def __init__(
        self, workers: int, trial_s: float, trials: int, ideal: float, walls: list[float]
    ) -> None:
        self.workers, self.trial_s, self.trials = workers, trial_s, trials
        self.ideal, self.walls = ideal, walls
        self.wall = statistics.median(walls)

    def cells(self) -> str:
        runs = ", ".join(f"{w:.2f}" for w in self.walls)
        return (
            f"{self.workers:>7} {self.trial_s:>7.1f} {self.trials:>6} {self.ideal:>7.1f} "
            f"{self.wall:>10.2f} {self.ideal / self.wall:>10.0%} "
            f"{self.trials / self.wall:>8.1f}  ({runs})"
        )


HEADER = (
    f"{'workers':>7} {'trial s':>7} {'trials':>6} {'ideal s':>7} {'measured s':>10} "
    f"{'efficiency':>10} {'trials/s':>8}  (runs)"
)


def few_workers(args: argparse.Namespace, env: dict[str, str]) -> list[tuple[str, Row]]:
    rows = []
    for backend in args.backends:
        with database(backend, args.pg) as url:
            for workers in args.workers:
                with Service(url, workers, env) as service:
                    service.wait_ready()
                    for trial_s in args.trial_seconds:
                        rows.append((backend, measure(service, workers, trial_s, args)))
    return rows


def many_workers(args: argparse.Namespace, env: dict[str, str]) -> tuple[list[Row], list[str]]:
    """The steps' rows, and a note for each step the server's connections cannot hold."""
    rows: list[Row] = []
    notes: list[str] = []
    with database("postgresql", args.pg) as url, Service(url, 0, env) as service:
        connections = Connections(url)
        service.wait_ready()
        baseline = connections.ours()
        for workers in args.many:
            if rows:  # each worker holds a few pooled connections: will the next step fit?
                per_worker = (connections.ours() - baseline) / service.workers
                needed = round((workers - service.workers) * per_worker)
                free = connections.free()
                if needed > free:
                    notes.append(
                        f"# {workers} workers skipped: they need about {needed} more "
                        f"connections ({per_worker:.1f} per worker), the server has {free} "
                        "free (max_connections): the first limit many workers meet"
                    )
                    break
            service.add_workers(workers - service.workers)
            service.wait_ready(timeout=120 + 10 * workers)
            rows.append(measure(service, workers, args.many_trial_seconds, args))
        connections.close()
    return rows, notes


def fleet(args: argparse.Namespace, env: dict[str, str]) -> tuple[Row, list[str]]:
    """``--fleet`` workers through PgBouncer on a private server: the study's row, and
    lines on its errors, slots, memory and CPU."""
    n, trial_s = args.fleet, args.fleet_trial_seconds
    check_memory(n)
    with fleet_database() as db, Service(db.url, 0, env | {"HPS_THREADS": "1"}) as service:
        service.wait_ready()
        service.add_workers(n)
        started = service.wait_ready(timeout=300 + 5 * n)
        service.run_study(spec(n, n, 0.2))  # warm-up: PgBouncer's server connections open
        workers = [p.pid for p in service.procs[1:]]
        watch = CpuWatch(
            {
                "database": lambda: [db.postmaster, *children(db.postmaster)],
                "PgBouncer": lambda: [db.bouncer],
                "API": lambda: [service.procs[0].pid],
                "workers": lambda: workers,
            }
        )
        watch.start()
        trials = n * max(1, round(args.fleet_study_seconds / trial_s))
        wall = service.run_study(spec(trials, n, trial_s))
        watch.stop()
        rss, pss = median_memory(workers)
        assert service.last_study is not None
        outcome = study_outcome(db.direct, service.last_study)
    row = Row(n, trial_s, trials, math.ceil(trials / n) * trial_s, [wall])
    cores = os.cpu_count() or 1
    cpu = ", ".join(
        f"{name} {spent:.1f} s ({spent / wall:.2f} cores)" for name, spent in watch.spent.items()
    )
    return row, [
        f"# fleet: {n} workers registered in {started:.0f} s, through PgBouncer (transaction "
        f"pooling, {SERVER_POOL} server connections) on a private PostgreSQL with "
        "max_connections = 100",
        f"# errors: {outcome.failed} failed of {outcome.trials} trials; every slot once: "
        f"{'yes' if outcome.every_slot_once else 'NO'}",
        outcome.line(trial_s),
        f"# memory per worker (median of {n}): RSS {rss:.0f} MB, PSS {pss:.0f} MB",
        f"# CPU during the study ({cores} cores x {wall:.1f} s = {cores * wall:.0f} s): {cpu}",
    ]


class Connections:
    """PostgreSQL's connection slots: those of the benchmark's database, and the free."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, poolclass=NullPool)
        self.name = make_url(url).database

    def _scalar(self, sql: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text(sql), {"db": self.name}).scalar_one())

    def ours(self) -> int:
        return self._scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = :db") - 1

    def free(self) -> int:
        limit = self._scalar("SELECT current_setting('max_connections')::int")
        reserved = self._scalar("SELECT current_setting('superuser_reserved_connections')::int")
        return limit - reserved - self._scalar("SELECT count(*) FROM pg_stat_activity")

    def close(self) -> None:
        self.engine.dispose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--workers", default="1,2", help="worker counts of part 1")
    parser.add_argument("--trial-seconds", default="0.3,1", help="trial lengths of part 1")
    parser.add_argument("--study-seconds", type=float, default=8.0, help="ideal per study")
    parser.add_argument("--many", default="8,16,32", help="worker counts of part 2 ('' skips)")
    parser.add_argument("--many-trial-seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1, help="studies of each; medians")
    parser.add_argument("--fleet", type=int, default=0, help="part 3's workers (0 skips)")
    parser.add_argument("--fleet-trial-seconds", type=float, default=2.0)
    parser.add_argument(
        "--fleet-study-seconds",
        type=float,
        default=156.0,
        help="ideal (156: 9,984 trials of 2 s on 128 workers, the size of Ray Tune's run)",
    )
    parser.add_argument("--device", default="cpu", help="the workers' device: cpu|cuda|auto")
    parser.add_argument("--pg", default=PG_ADMIN, help="PostgreSQL server (admin URL)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2-s studies, 2 and 4")
    args = parser.parse_args()
    if args.quick:
        args.study_seconds, args.many = 2.0, "2,4"
    args.backends = [b for b in args.backends.split(",") if b]
    args.workers = [int(w) for w in args.workers.split(",") if w]
    args.trial_seconds = [float(t) for t in args.trial_seconds.split(",") if t]
    args.many = sorted(int(w) for w in args.many.split(",") if w)
    if any(b not in BACKENDS for b in args.backends):
        parser.error("--backends: sqlite and/or postgresql")
    numbers = args.workers + args.many + args.trial_seconds + [args.study_seconds, args.repeats]
    numbers += [args.many_trial_seconds, args.fleet_trial_seconds, args.fleet_study_seconds]
    if args.fleet < 0 or any(n <= 0 for n in numbers):
        parser.error("worker counts, seconds and --repeats must be > 0")
    return args


def main() -> None:
    args = parse_args()
    env = {"HPS_DEVICE": args.device}
    print(
        f"# scaling: {platform.node()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}, workers on {args.device}, {args.repeats} run(s) each"
    )
    rows = few_workers(args, env)
    many, notes = many_workers(args, env) if args.many else ([], [])
    print(f"{'database':<11} {HEADER}")
    for backend, row in rows:
        print(f"{backend:<11} {row.cells()}")
    if many:
        print("# many workers: hpsearch worker processes beside serve --workers 0")
    for row in many:
        print(f"{'postgresql':<11} {row.cells()}")
    for note in notes:
        print(note)
    if args.fleet:
        row, lines = fleet(args, env)
        print(f"{'pgbouncer':<11} {row.cells()}")
        print("\n".join(lines))
    print(f"# load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
