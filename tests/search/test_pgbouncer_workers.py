"""Workers through PgBouncer in transaction pooling mode (``tests/pgbouncer.py``): three
``hpsearch worker`` processes share PgBouncer's four server connections, so their
transactions take turns on them; a study of synthetic trials (TPE and the median pruner:
Optuna's storage is used every trial) ends with every slot claimed once and no error,
which session state kept past a transaction (a server-side prepared statement, a SET, an
advisory lock) would break."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from search import store
from search.spec import ExperimentSpec
from search.studies import create_study
from service.runner import upgrade_db
from tests.processes import env_for, spawn, stop

N_TRIALS = 30
WORKERS = 3
SPEC = {
    "name": "through-pgbouncer",
    "model": "synthetic",
    "search": {
        "sampler": "tpe",
        "n_trials": N_TRIALS,
        "parallelism": WORKERS,
        "seed": 5,
        "space": {
            "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": True},
            "keep_prob": {"type": "float", "low": 0.5, "high": 1.0},
        },
    },
    "training": {"epochs": 5, "seconds_per_epoch": 0.04},
    "pruning": {"pruner": "median", "warmup_epochs": 1},
}


def test_workers_through_pgbouncer_claim_every_slot_once(
    pgbouncer_url: str, postgres_url: str, tmp_path: Path
) -> None:
    upgrade_db(pgbouncer_url)  # migrations through PgBouncer too
    factory = store.make_session_factory(pgbouncer_url)
    spec = ExperimentSpec.model_validate(SPEC)
    sid = create_study(session_factory=factory, storage_url=pgbouncer_url, spec=spec).id
    args = ["worker", "--study", str(sid), "--exit-when-idle"]
    logs = [tmp_path / f"worker-{i}.log" for i in range(WORKERS)]
    procs = [spawn(args, env=env_for(pgbouncer_url), log=log) for log in logs]
    try:
        codes = [p.wait(timeout=240) for p in procs]
    finally:
        for p in procs:
            stop(p)
    output = "\n".join(log.read_text(errors="replace") for log in logs)
    assert codes == [0] * WORKERS, output
    assert "Traceback" not in output and "prepared statement" not in output, output
    direct = store.make_session_factory(postgres_url)  # read back around PgBouncer
    with store.session_scope(direct) as s:
        study = store.get_study(session=s, study_id=sid)
        trials = list(s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == sid)))
    assert study is not None and study.status == "completed"
    assert sorted(t.slot for t in trials) == list(range(N_TRIALS))  # every slot once
    assert sorted(t.number for t in trials) == list(range(N_TRIALS))
    assert {t.state for t in trials} <= {"COMPLETE", "PRUNED"}
    assert len({t.worker_id for t in trials}) > 1  # the workers shared the study
