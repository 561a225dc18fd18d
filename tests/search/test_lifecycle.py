"""A trial's life on both sides (hps_trials and Optuna), in-process on SQLite, PostgreSQL
and PostgreSQL through PgBouncer in transaction mode (claim, end and reap keep no session
state): one owner of its end, reaping, retry caps, live curves, and `db check`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import optuna
import pytest
from sqlalchemy import update

from models import EpochMetrics, TrainResult
from search import store
from search.agreement import check_agreement
from search.lifecycle import StartedTrial, begin_trial, end_trial, reap_lost_trials
from search.spec import ExperimentSpec
from search.studies import RequestKeyReused, create_study, get_storage
from search.trial_runner import Outcome
from search.worker import Worker, WorkerOptions

SPEC = {
    "name": "life",
    "dataset": "iris",
    "search": {
        "sampler": "random",
        "n_trials": 2,
        "parallelism": 2,
        "seed": 1,
        "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True}},
    },
    "training": {"epochs": 2, "batch_size": 32},
}


@pytest.fixture(params=["sqlite", "postgresql", "pgbouncer"])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend, and one through PgBouncer."""
    name = {"sqlite": "sqlite_url", "postgresql": "postgres_url", "pgbouncer": "pgbouncer_url"}
    return str(request.getfixturevalue(name[request.param]))


def _create(url: str, **overrides: Any) -> int:
    spec = ExperimentSpec.model_validate(SPEC | overrides)
    factory = store.make_session_factory(url)
    return create_study(session_factory=factory, storage_url=url, spec=spec).id


def _optuna_study(url: str, study_id: int) -> optuna.Study:
    with store.session_scope(store.make_session_factory(url)) as s:
        name = store.get_study(session=s, study_id=study_id).optuna_study_name
    return optuna.load_study(study_name=name, storage=get_storage(url))


def _begin(url: str, study_id: int) -> tuple[StartedTrial, int]:
    factory = store.make_session_factory(url)
    with store.session_scope(factory) as s:
        wid = store.register_worker(session=s, name="w", host="h", pid=1, device="cpu")
    ctx = Worker(WorkerOptions(db_url=url)).studies[study_id].ctx
    with store.session_scope(factory) as s:
        started = begin_trial(session=s, ctx=ctx, worker_id=wid)
    assert started is not None
    return started, wid


def _end(url: str, started: StartedTrial, outcome: Outcome, wid: int | None = None) -> bool:
    with store.session_scope(store.make_session_factory(url)) as s:
        return end_trial(
            session=s,
            started=started,
            outcome=outcome,
            new_intermediate_values={0: 1.0, 1: 0.5},
            duration_s=0.1,
            worker_id=wid,
        )


def _silence(url: str, trial_row_id: int) -> None:
    with store.session_scope(store.make_session_factory(url)) as s:
        s.execute(
            update(store.TrialRow)
            .where(store.TrialRow.id == trial_row_id)
            .values(heartbeat_at=store.utcnow() - timedelta(seconds=120))
        )


def _reap(url: str, max_retries: int = 2) -> int:
    factory = store.make_session_factory(url)
    return reap_lost_trials(session_factory=factory, grace_s=60, max_retries=max_retries)


def _row(url: str, trial_row_id: int) -> store.TrialRow:
    with store.session_scope(store.make_session_factory(url)) as s:
        return s.get(store.TrialRow, trial_row_id)


def _study_row(url: str, study_id: int) -> store.StudyRow:
    with store.session_scope(store.make_session_factory(url)) as s:
        return store.get_study(session=s, study_id=study_id)


def _agreement(url: str) -> list[str]:
    with store.session_scope(store.make_session_factory(url, read_only=True)) as s:
        return [str(d) for d in check_agreement(session=s)]


def test_begin_creates_both_sides_and_end_records_both(migrated_url: str) -> None:
    sid = _create(migrated_url)
    started, wid = _begin(migrated_url, sid)
    frozen = _optuna_study(migrated_url, sid).trials[started.number]
    assert frozen.state.name == "RUNNING" and frozen.params == {"lr": started.knobs["lr"]}
    assert frozen.system_attrs["hps_slot"] == started.slot == 0
    assert _agreement(migrated_url) == []
    assert _end(migrated_url, started, Outcome("COMPLETE", 0.5, None, None), wid)
    assert not _end(migrated_url, started, Outcome("FAIL", None, "again", None), wid)  # idempotent
    frozen = _optuna_study(migrated_url, sid).trials[started.number]
    assert (frozen.state.name, frozen.value) == ("COMPLETE", 0.5)
    assert frozen.intermediate_values == {0: 1.0, 1: 0.5}
    row = _row(migrated_url, started.trial_row_id)
    assert (row.state, row.value, row.params) == ("COMPLETE", 0.5, started.knobs)
    assert _agreement(migrated_url) == []


def test_an_end_after_the_reaper_records_nothing(migrated_url: str) -> None:
    sid = _create(migrated_url)
    started, wid = _begin(migrated_url, sid)
    _silence(migrated_url, started.trial_row_id)
    assert _reap(migrated_url) == 1
    # The worker comes back from a long pause with a result: the reaper owns the trial.
    assert not _end(migrated_url, started, Outcome("COMPLETE", 0.5, None, None), wid)
    row = _row(migrated_url, started.trial_row_id)
    assert (row.state, row.reason, row.retry_pending) == (
        "FAIL",
        "worker lost (no heartbeat)",
        True,
    )
    assert _optuna_study(migrated_url, sid).trials[started.number].state.name == "FAIL"
    study = _study_row(migrated_url, sid)
    assert (study.claimed, study.running) == (0, 0)
    assert _agreement(migrated_url) == []


def test_a_slot_that_keeps_losing_its_worker_fails_for_good(migrated_url: str) -> None:
    sid = _create(migrated_url)
    slots = []
    for _ in range(3):  # the first attempt and two retries, all lost
        started, _ = _begin(migrated_url, sid)
        slots.append(started.slot)
        _silence(migrated_url, started.trial_row_id)
        assert _reap(migrated_url, max_retries=2) == 1
    assert slots == [0, 0, 0]
    row = _row(migrated_url, started.trial_row_id)
    assert row.state == "FAIL" and not row.retry_pending and row.losses == 3
    assert row.reason == "worker lost (no heartbeat) 3 times; not retried (max retries 2)"
    study = _study_row(migrated_url, sid)
    assert (study.claimed, study.running) == (1, 0)  # the budget unit is spent
    nxt, _ = _begin(migrated_url, sid)
    assert nxt.slot == 1
    assert _agreement(migrated_url) == []


def test_optuna_study_names_its_hpsearch_study(migrated_url: str) -> None:
    sid = _create(migrated_url, name="named study")
    attrs = _optuna_study(migrated_url, sid).user_attrs
    assert attrs == {"hps_study_id": sid, "hps_study_name": "named study"}


def test_grid_points_are_not_enqueued_at_submit(migrated_url: str) -> None:
    space = {"lr": {"type": "float", "values": [0.1, 0.01, 0.001]}}
    sid = _create(migrated_url, search={"sampler": "grid", "space": space})
    assert _optuna_study(migrated_url, sid).trials == []
    assert _study_row(migrated_url, sid).n_trials == 3


def test_a_retried_submission_returns_the_same_study(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    spec = ExperimentSpec.model_validate(SPEC)

    def submit(key: str, s: ExperimentSpec = spec) -> int:
        row = create_study(
            session_factory=factory, storage_url=migrated_url, spec=s, request_key=key
        )
        return row.id

    first = submit("key-1")
    assert submit("key-1") == first
    assert submit("key-2") != first
    other = ExperimentSpec.model_validate(SPEC | {"name": "other"})
    with pytest.raises(RequestKeyReused, match="key-1"):
        submit("key-1", other)
    with store.session_scope(factory) as s:
        assert store.list_studies(session=s, offset=0, limit=10)[1] == 2


def test_db_check_reports_disagreement(migrated_url: str) -> None:
    from service.runner import check_db

    sid = _create(migrated_url)
    started, wid = _begin(migrated_url, sid)
    assert _end(migrated_url, started, Outcome("COMPLETE", 0.5, None, None), wid)
    assert check_db(migrated_url) == 0
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        s.execute(
            update(store.TrialRow)
            .where(store.TrialRow.id == started.trial_row_id)
            .values(value=0.25)
        )
    _optuna_study(migrated_url, sid).ask()  # a trial hpsearch knows nothing of
    found = _agreement(migrated_url)
    assert len(found) == 2 and check_db(migrated_url) == 2
    assert "hpsearch says COMPLETE (0.25), Optuna says COMPLETE (0.5)" in found[0]
    assert "unfinished in Optuna only" in found[1]


def _result(epochs: int) -> TrainResult:
    losses = [1.0 / (e + 1) for e in range(epochs + 1)]
    final = EpochMetrics(epochs, losses[-1], losses[-1], 0.5)
    return TrainResult(
        "completed", None, epochs, 1.0, losses, losses, [0.5] * len(losses), 0.0, final
    )


def test_live_curves_ride_the_heartbeat_and_optuna_gets_every_value(migrated_url: str) -> None:
    sid = _create(migrated_url, search=SPEC["search"] | {"n_trials": 1})
    seen: list[store.TrialRow] = []

    def train(config: Any, data: Any, on_epoch: Any) -> TrainResult:
        for epoch in range(3):
            on_epoch(EpochMetrics(epoch, 1.0 / (epoch + 1), 1.0 / (epoch + 1), 0.5))
        worker.heartbeat.beat_once()  # what the heartbeat thread does every interval
        (row,) = [r for r in _trials(migrated_url, sid) if r.state == "RUNNING"]
        seen.append(row)
        return _result(2)

    worker = Worker(WorkerOptions(db_url=migrated_url, exit_when_idle=True), train=train)
    assert worker.run() == 1
    (live,) = seen
    assert live.curves == {
        "train_loss": [1.0, 0.5, 1 / 3],
        "dev_loss": [1.0, 0.5, 1 / 3],
        "dev_accuracy": [0.5, 0.5, 0.5],
    }
    assert live.epochs_run == 2
    (frozen,) = _optuna_study(migrated_url, sid).trials
    assert frozen.intermediate_values == {0: 1.0, 1: 0.5, 2: 1 / 3}
    assert frozen.state.name == "COMPLETE"
    assert _agreement(migrated_url) == []


def _trials(url: str, study_id: int) -> list[store.TrialRow]:
    from sqlalchemy import select

    with store.session_scope(store.make_session_factory(url)) as s:
        return list(s.scalars(select(store.TrialRow).where(store.TrialRow.study_id == study_id)))


def test_a_reaped_trial_stops_at_its_next_heartbeat(migrated_url: str) -> None:
    sid = _create(migrated_url, search=SPEC["search"] | {"n_trials": 1})
    epochs: list[int] = []

    def train(config: Any, data: Any, on_epoch: Any) -> TrainResult:
        for epoch in range(1000):
            epochs.append(epoch)
            if on_epoch(EpochMetrics(epoch, 1.0, 1.0, 0.5)):
                return _result(epoch)
            if epoch == 1:  # paused past the grace period: a reaper takes the trial
                (row,) = _trials(migrated_url, sid)
                _silence(migrated_url, row.id)
                assert _reap(migrated_url) == 1
                worker.heartbeat.beat_once()  # the worker wakes up and beats
        return _result(999)

    options = WorkerOptions(db_url=migrated_url, max_trials=1)
    worker = Worker(options, train=train)
    assert worker.run() == 1
    assert epochs == [0, 1, 2]  # stopped at the first epoch boundary after the beat
    (lost,) = _trials(migrated_url, sid)
    assert (lost.state, lost.reason, lost.retry_pending) == (
        "FAIL",
        "worker lost (no heartbeat)",
        True,
    )
    assert _optuna_study(migrated_url, sid).trials[0].state.name == "FAIL"
    assert _agreement(migrated_url) == []


def test_grace_period_must_outlast_the_heartbeat() -> None:
    from pydantic import ValidationError

    from service.settings import Settings

    with pytest.raises(ValueError, match="grace_period"):
        WorkerOptions(db_url="sqlite://", heartbeat_interval=5, grace_period=5)
    with pytest.raises(ValidationError, match="HPS_GRACE_PERIOD"):
        Settings(heartbeat_interval=30, grace_period=10)


@pytest.mark.parametrize("pruner", ["median", "successive_halving", "hyperband"])
def test_a_database_blip_during_report_is_retried(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch, pruner: str
) -> None:
    """A judge that writes each epoch's value to Optuna (``OptunaJudge``, for successive
    halving and Hyperband) retries that write; the median pruner's judge writes none, the
    values reaching Optuna with each trial's end. Either way the study ends agreeing."""
    from sqlalchemy.exc import OperationalError

    from search.pruners import reads_running_values

    pruned = SPEC | {"pruning": {"pruner": pruner}}
    sid = _create(migrated_url, **{k: v for k, v in pruned.items() if k != "name"})
    rdb = optuna.storages.RDBStorage
    write, blips = rdb.set_trial_intermediate_value, []

    def flaky_write(self: optuna.storages.RDBStorage, tid: int, step: int, value: float) -> None:
        if not blips:  # the judge's write of the epoch's value to Optuna's table
            blips.append(step)
            raise OperationalError("report", {}, Exception("database is locked"))
        write(self, tid, step, value)

    monkeypatch.setattr(rdb, "set_trial_intermediate_value", flaky_write)
    assert Worker(WorkerOptions(db_url=migrated_url, exit_when_idle=True)).run() == 2
    assert blips == ([0] if reads_running_values(pruner) else [])
    assert {t.state for t in _trials(migrated_url, sid)} <= {"COMPLETE", "PRUNED"}
    frozen = _optuna_study(migrated_url, sid).trials
    assert all(0 in t.intermediate_values for t in frozen)
    assert _agreement(migrated_url) == []


def test_a_worker_out_of_contact_for_its_outage_patience_stops_its_trial(
    migrated_url: str,
) -> None:
    import time

    sid = _create(migrated_url, search=SPEC["search"] | {"n_trials": 1})

    def train(config: Any, data: Any, on_epoch: Any) -> TrainResult:
        for epoch in range(100_000):  # until told to stop
            if on_epoch(EpochMetrics(epoch, 1.0, 1.0, 0.5)):
                return _result(epoch)
            time.sleep(0.01)
        raise AssertionError("the trial was never stopped")

    class Unreachable(Worker):
        def _beat(self, trials: dict[int, dict[str, Any]]) -> dict[int, str]:
            raise ConnectionError("the database is unreachable")  # every heartbeat fails

    options = WorkerOptions(
        db_url=migrated_url, max_trials=1, heartbeat_interval=0.05, outage_s=0.5
    )
    assert Unreachable(options, train=train).run() == 1
    (trial,) = _trials(migrated_url, sid)
    assert (trial.state, trial.reason, trial.retry_pending) == (
        "FAIL",
        "interrupted (no contact with the database)",
        True,
    )
    assert _agreement(migrated_url) == []


def test_retries_take_the_lowest_slot_first_and_only_failures_wait(migrated_url: str) -> None:
    sid = _create(migrated_url, search=SPEC["search"] | {"n_trials": 4, "parallelism": 4})
    started = [_begin(migrated_url, sid)[0] for _ in range(3)]
    assert [t.slot for t in started] == [0, 1, 2]
    for t in (started[2], started[1]):  # interrupted, the higher slot first
        _end(migrated_url, t, Outcome("FAIL", None, "interrupted", None, retry=True))
    assert [_begin(migrated_url, sid)[0].slot for _ in range(3)] == [1, 2, 3]
    with store.session_scope(store.make_session_factory(migrated_url)) as s:
        row = store.lock_running_trial(session=s, trial_row_id=started[0].trial_row_id)
        assert row is not None
        with pytest.raises(ValueError, match="only a failed attempt can be retried"):
            store.finish_trial(session=s, trial=row, state="COMPLETE", values={}, retry=True)
