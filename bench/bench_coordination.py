"""Per-trial coordination cost and leaderboard/summary read time as a study grows: the
worker's own loop with training stubbed out (see bench_vs_optuna.py), in blocks, with the
reads timed through the ASGI app after each block.

    .venv/bin/python bench/bench_coordination.py [--db URL] [--trials 2000] [--block 250]

Default database: a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench_vs_optuna import SPEC, no_training
from fastapi.testclient import TestClient

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from search.worker import Worker, WorkerOptions
from service.app import create_app
from service.runner import upgrade_db
from service.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--block", type=int, default=250)
    parser.add_argument("--pruner", default="none", help="none | median | ...")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade_db(url)
    spec = ExperimentSpec.model_validate(SPEC | {"pruning": {"pruner": args.pruner}})
    factory = store.make_session_factory(url)
    row = create_study(session_factory=factory, storage_url=url, spec=spec)
    client = TestClient(create_app(Settings(database_url=url), recover=False))
    print(f"database: {url.split('://')[0]}, pruner: {args.pruner}")
    print(f"{'trials so far':>14} {'ms/trial':>9} {'leaderboard ms':>15} {'summary ms':>11}")
    done = 0
    while done < args.trials:
        options = WorkerOptions(db_url=url, study_id=row.id, max_trials=args.block)
        t0 = time.perf_counter()
        Worker(options, train=no_training).run()
        per_trial = (time.perf_counter() - t0) / args.block * 1000
        done += args.block
        reads: dict[str, list[float]] = {"leaderboard": [], "summary": []}
        for _ in range(20):
            t = time.perf_counter()
            client.get(f"/api/v1/studies/{row.id}/leaderboard", params={"top": 10})
            reads["leaderboard"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            client.get(f"/api/v1/studies/{row.id}")
            reads["summary"].append((time.perf_counter() - t) * 1000)
        lb, sm = (statistics.median(reads[k]) for k in ("leaderboard", "summary"))
        print(f"{done:>14} {per_trial:>9.1f} {lb:>15.2f} {sm:>11.2f}")


if __name__ == "__main__":
    main()
