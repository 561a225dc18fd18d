"""Per-trial coordination overhead (claim, ask, suggest, 10 reports + should_prune, tell,
record) and leaderboard/summary read time, as a study grows. No training: this isolates
what the service adds around each trial.

    .venv/bin/python bench/bench_coordination.py [--db URL] [--trials 2000] [--block 250]

Default database: a fresh SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from search import store
from search.space import suggest
from search.spec import ExperimentSpec
from search.studies import create_study, get_storage
from service.app import create_app
from service.runner import upgrade_db
from service.settings import Settings

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
            "hidden": {"type": "layers", "depth": [1, 3], "units": [16, 512]},
        },
    },
}


def one_trial(factory, study, spec: ExperimentSpec) -> None:  # noqa: ANN001
    def txn(fn):  # noqa: ANN001, ANN202
        with store.session_scope(factory) as s:
            return fn(s)

    claim = txn(lambda s: store.claim_trial(session=s, worker_id=None))
    trial = study.ask()
    params = suggest(trial, spec.search.space)
    txn(
        lambda s: store.attach_optuna_trial(
            session=s,
            trial_row_id=claim.trial_row_id,
            number=trial.number,
            optuna_trial_id=trial._trial_id,
            params=params,
        )
    )
    value = 2.0
    for epoch in range(11):
        value *= 0.9
        trial.report(value, epoch)
        trial.should_prune()
    study.tell(trial, value)
    txn(
        lambda s: store.finish_trial(
            session=s, trial_row_id=claim.trial_row_id, state="COMPLETE", values={"value": value}
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default=None)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--block", type=int, default=250)
    parser.add_argument("--pruner", default="none", help="none | median | ...")
    args = parser.parse_args()
    SPEC["pruning"] = {"pruner": args.pruner}
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    upgrade_db(url)
    factory = store.make_session_factory(url)
    spec = ExperimentSpec.model_validate(SPEC)
    row = create_study(session_factory=factory, storage_url=url, spec=spec)
    import optuna

    from search.pruners import make_pruner
    from search.samplers import make_sampler

    study = optuna.load_study(
        study_name=row.optuna_study_name,
        storage=get_storage(url),
        sampler=make_sampler("random", seed=0),
        pruner=make_pruner(spec.pruning, epochs=10),
    )
    client = TestClient(create_app(Settings(database_url=url), recover=False))
    print(f"database: {url.split('://')[0]}, pruner: {args.pruner}")
    print(f"{'trials so far':>14} {'ms/trial':>9} {'leaderboard ms':>15} {'summary ms':>11}")
    done = 0
    while done < args.trials:
        t0 = time.perf_counter()
        for _ in range(args.block):
            one_trial(factory, study, spec)
        per_trial = (time.perf_counter() - t0) / args.block * 1000
        done += args.block
        reads = {"leaderboard": [], "summary": []}
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
