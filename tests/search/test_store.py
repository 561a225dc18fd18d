"""Budget slots, heartbeats and lost-trial bookkeeping on the hps_* tables."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import update

from search import store
from search.store import _engine


def _study(session, *, n_trials: int = 3, parallelism: int = 2) -> int:
    spec = {
        "name": "s",
        "dataset": {"name": "digits"},
        "search": {"sampler": "random", "parallelism": parallelism},
        "objective": {"metric": "dev_loss", "direction": "minimize"},
    }
    row = store.insert_study(
        session=session, spec=spec, optuna_study_name=f"o{id(spec)}", n_trials=n_trials
    )
    return row.id


def _start(session, study_id: int, worker_id: int | None = None) -> tuple[int, int] | None:
    """Claim a slot and insert its RUNNING row: (row id, slot), or None."""
    claim = store.claim_slot(session=session, study_id=study_id)
    if claim is None:
        return None
    row_id = store.insert_trial(
        session=session,
        claim=claim,
        worker_id=worker_id,
        number=None,
        optuna_trial_id=None,
        params={"slot": claim.slot},
    )
    return row_id, claim.slot


def _finish(session, row_id: int, state: str = "COMPLETE", *, retry: bool = False) -> bool:
    row = store.lock_running_trial(session=session, trial_row_id=row_id)
    if row is None:
        return False
    store.lock_study(session=session, study_id=row.study_id)
    store.finish_trial(session=session, trial=row, state=state, values={}, retry=retry)
    return True


def _age(session, row_id: int, seconds: float) -> None:
    session.execute(
        update(store.TrialRow)
        .where(store.TrialRow.id == row_id)
        .values(heartbeat_at=store.utcnow() - timedelta(seconds=seconds))
    )


def test_claims_respect_parallelism_and_n_trials(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=3, parallelism=2)
    with store.session_scope(factory) as s:
        first, second = _start(s, sid), _start(s, sid)
        assert first and second and (first[1], second[1]) == (0, 1)
        assert _start(s, sid) is None  # parallelism 2 reached
        assert store.claimable_studies(session=s) == []
    with store.session_scope(factory) as s:
        assert _finish(s, first[0])
        third = _start(s, sid)
        assert third is not None and third[1] == 2
    with store.session_scope(factory) as s:
        assert _start(s, sid) is None  # n_trials 3 handed out
        for row_id, _ in (second, third):
            assert _finish(s, row_id, "PRUNED")
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        assert (row.status, row.claimed, row.running) == ("completed", 3, 0)
        assert row.finished_at is not None
        # Finishing twice is refused and leaves the counters alone.
        assert not _finish(s, third[0], "FAIL")
        assert store.get_study(session=s, study_id=sid).running == 0


def test_a_slot_handed_back_is_claimed_again_before_a_new_one(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=3, parallelism=3)
    with store.session_scope(factory) as s:
        starts = [_start(s, sid) for _ in range(2)]
    with store.session_scope(factory) as s:
        assert _finish(s, starts[1][0], "FAIL", retry=True)  # interrupted: slot 1 goes back
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        assert (row.claimed, row.running) == (1, 1)
        assert _start(s, sid)[1] == 1  # the retry runs slot 1 again
        assert _start(s, sid)[1] == 2
        assert _start(s, sid) is None


def test_cancelled_study_hands_out_nothing(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s)
    with store.session_scope(factory) as s:
        assert store.cancel_study(session=s, study_id=sid)
        assert not store.cancel_study(session=s, study_id=sid)  # already cancelled
        assert _start(s, sid) is None


def test_heartbeat_finds_a_reaped_or_cancelled_trial(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=2)
        wid = store.register_worker(session=s, name="w", host="h", pid=1, device="cpu")
    with store.session_scope(factory) as s:
        row_id, _ = _start(s, sid, wid)
    progress = {"curves": {"train_loss": [1.0, 0.5]}, "epochs_run": 1}
    with store.session_scope(factory) as s:
        beat = store.heartbeat(session=s, worker_id=wid, trials={row_id: progress})
        assert beat == {row_id: store.BEAT_OK}
    with store.session_scope(factory) as s:
        trial = s.get(store.TrialRow, row_id)
        assert (trial.curves, trial.epochs_run) == (progress["curves"], 1)
        assert _finish(s, row_id, "FAIL")  # e.g. a reaper took it
    with store.session_scope(factory) as s:
        beat = store.heartbeat(session=s, worker_id=wid, trials={row_id: {}})
        assert beat == {row_id: store.BEAT_GONE}
    with store.session_scope(factory) as s:
        other, _ = _start(s, sid, wid)
        store.cancel_study(session=s, study_id=sid)
    with store.session_scope(factory) as s:
        beat = store.heartbeat(session=s, worker_id=wid, trials={other: {}})
        assert beat == {other: store.BEAT_CANCELLED}


def test_one_heartbeat_covers_a_stack(migrated_url: str) -> None:
    """A stack's beat refreshes each trial's own progress and finds each one's fate: one
    reaped, another another worker's, the rest running."""
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=4, parallelism=4)
        wid = store.register_worker(session=s, name="w", host="h", pid=1, device="cpu")
        rival = store.register_worker(session=s, name="r", host="h", pid=2, device="cpu")
    with store.session_scope(factory) as s:
        ids = [_start(s, sid, wid)[0] for _ in range(3)]
        theirs, _ = _start(s, sid, rival)
    with store.session_scope(factory) as s:
        assert _finish(s, ids[1], "FAIL")
    progress = {i: {"curves": {"train_loss": [float(i)]}, "epochs_run": 1} for i in ids}
    with store.session_scope(factory) as s:
        beat = store.heartbeat(session=s, worker_id=wid, trials=progress | {theirs: {}})
    assert beat == {
        ids[0]: store.BEAT_OK,
        ids[1]: store.BEAT_GONE,
        ids[2]: store.BEAT_OK,
        theirs: store.BEAT_GONE,
    }
    with store.session_scope(factory) as s:
        for i in (ids[0], ids[2]):
            assert s.get(store.TrialRow, i).curves == {"train_loss": [float(i)]}
        assert s.get(store.TrialRow, theirs).curves == {}


def test_staleness_is_judged_by_the_database_clock(
    migrated_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=1, parallelism=1)
        wid = store.register_worker(session=s, name="w", host="h", pid=1, device="cpu")
    # This host's clock runs an hour fast: nothing it writes or compares may use it.
    fast = store.utcnow() + timedelta(hours=1)
    monkeypatch.setattr(_engine, "utcnow", lambda: fast)
    with store.session_scope(factory) as s:
        row_id, _ = _start(s, sid, wid)
        store.heartbeat(session=s, worker_id=wid, trials={row_id: {}})
    with store.session_scope(factory) as s:
        assert store.stale_trials(session=s, grace_s=60) == []
        assert store.count_live_workers(session=s, host="h", seen_within_s=60) == 1
        _age(s, row_id, 120)
    with store.session_scope(factory) as s:
        assert store.stale_trials(session=s, grace_s=60) == [(row_id, sid)]


def test_silent_workers_are_lost_and_old_ones_forgotten(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        a = store.register_worker(session=s, name="a", host="h1", pid=1, device="cpu")
        b = store.register_worker(session=s, name="b", host="h1", pid=2, device="cpu")
        c = store.register_worker(session=s, name="c", host="h2", pid=3, device="cpu")
        store.set_worker_state(session=s, worker_id=a, status="stopped")
    with store.session_scope(factory) as s:
        assert store.count_live_workers(session=s, host="h1", seen_within_s=60) == 1
        assert store.count_live_workers(session=s, host="h3", seen_within_s=60) == 0
        workers, count = store.list_workers(session=s, offset=0, limit=10, include_stopped=False)
        assert count == 2 and {w.name for w in workers} == {"b", "c"}
        old = {a: timedelta(days=2), b: timedelta(minutes=1)}
        for wid, age in old.items():
            s.execute(
                update(store.WorkerRow)
                .where(store.WorkerRow.id == wid)
                .values(last_seen=store.utcnow() - age)
            )
    with store.session_scope(factory) as s:
        assert store.mark_lost_workers(session=s, grace_s=30) == 1  # b, silent while idle
    with store.session_scope(factory) as s:
        workers, _ = store.list_workers(session=s, offset=0, limit=10, include_stopped=True)
        assert {(w.name, w.status) for w in workers} == {("b", "lost"), ("c", "idle")}
        s.execute(
            update(store.WorkerRow)
            .where(store.WorkerRow.id == b)
            .values(last_seen=store.utcnow() - timedelta(days=2))
        )
    with store.session_scope(factory) as s:
        store.mark_lost_workers(session=s, grace_s=30)
    with store.session_scope(factory) as s:
        workers, _ = store.list_workers(session=s, offset=0, limit=10, include_stopped=True)
        assert [w.id for w in workers] == [c]


def test_leaderboard_and_counts_are_sorted_queries(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=5, parallelism=5)
    values = [0.5, None, 0.1, 0.3, 0.2]
    states = ["COMPLETE", "FAIL", "COMPLETE", "PRUNED", "COMPLETE"]
    with store.session_scope(factory) as s:
        for number, (value, state) in enumerate(zip(values, states, strict=True)):
            claim = store.claim_slot(session=s, study_id=sid)
            row_id = store.insert_trial(
                session=s,
                claim=claim,
                worker_id=None,
                number=number,
                optuna_trial_id=number,
                params={"lr": number},
            )
            row = store.lock_running_trial(session=s, trial_row_id=row_id)
            store.finish_trial(
                session=s, trial=row, state=state, values={"value": value}, retry=False
            )
    with store.session_scope(factory) as s:
        row = store.get_study(session=s, study_id=sid)
        board = store.leaderboard(session=s, study=row, top=10)
        assert [(e.rank, e.trial.number, e.trial.value) for e in board] == [
            (1, 2, 0.1),
            (2, 4, 0.2),
            (3, 0, 0.5),
        ]
        assert store.trial_counts(session=s, study_ids=[sid])[sid] == {
            "COMPLETE": 3,
            "FAIL": 1,
            "PRUNED": 1,
        }
        assert row.status == "completed"


def test_read_only_sessions_take_no_write_lock(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    reads = store.make_session_factory(migrated_url, read_only=True)
    with store.session_scope(factory) as s:
        sid = _study(s)
    with store.session_scope(factory) as writer:
        _start(writer, sid)  # holds the write lock (SQLite) until commit
        with store.session_scope(reads) as reader:  # would wait 60 s with BEGIN IMMEDIATE
            assert store.claimable_studies(session=reader) == [sid]


def test_plain_postgresql_urls_use_psycopg() -> None:
    assert store.normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store.normalize_url("sqlite:///x.db") == "sqlite:///x.db"
    assert store.get_engine("postgresql://u@h/db").dialect.driver == "psycopg"


def test_postgresql_connections_name_their_process_and_read_prepare_threshold() -> None:
    pid = os.getpid()
    assert store.pg_connect_args("postgresql+psycopg://u@h/db") == {
        "application_name": f"hpsearch-{pid}"
    }  # psycopg's own prepare_threshold (5) on a direct connection
    through_pgbouncer = store.pg_connect_args("postgresql+psycopg://u@h/db?prepare_threshold=none")
    assert through_pgbouncer["prepare_threshold"] is None
    assert (
        store.pg_connect_args("postgresql://u@h/db?prepare_threshold=0")["prepare_threshold"] == 0
    )
    named = store.pg_connect_args("postgresql://u@h/db?application_name=mine")
    assert "application_name" not in named  # the URL's own name wins
    with pytest.raises(ValueError, match="prepare_threshold"):
        store.pg_connect_args("postgresql://u@h/db?prepare_threshold=sometimes")


def test_a_limited_process_shares_one_small_pool_with_optuna(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_engine, "_CONNECTIONS", _engine._Connections())
    monkeypatch.setattr(_engine, "_ENGINES", {})
    url = "postgresql+psycopg://u@h/db"
    assert store.shared_pool(url) is None  # the API: Optuna keeps an engine of its own
    store.limit_connections(2, role="worker")
    kwargs = store.engine_kwargs(url)
    assert (kwargs["pool_size"], kwargs["max_overflow"]) == (2, 0)
    assert kwargs["connect_args"]["application_name"] == f"hpsearch-worker-{os.getpid()}"
    assert store.shared_pool(url) is store.get_engine(url).pool
    assert store.shared_pool("sqlite:///x.db") is None  # SQLite: no server to spare
    with pytest.raises(ValueError, match="pool_size"):
        store.limit_connections(0, role="worker")


def test_an_idle_worker_stays_live_by_its_heartbeat(migrated_url: str) -> None:
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        wid = store.register_worker(session=s, name="idle", host="h", pid=1, device="cpu")
        s.execute(
            update(store.WorkerRow)
            .where(store.WorkerRow.id == wid)
            .values(last_seen=store.utcnow() - timedelta(minutes=5))
        )
    with store.session_scope(factory) as s:
        assert store.count_live_workers(session=s, host="h", seen_within_s=60) == 0
        assert store.heartbeat(session=s, worker_id=wid) == {}  # no trial
    with store.session_scope(factory) as s:
        assert store.count_live_workers(session=s, host="h", seen_within_s=60) == 1
        assert store.mark_lost_workers(session=s, grace_s=60) == 0


def test_a_worker_marked_lost_that_beats_again_is_live_again(migrated_url: str) -> None:
    """Silent past the grace period (a stalled machine, a database it could not reach),
    then heard from: idle again when its trial was reaped, busy while it still holds one,
    never left listed as lost while it works."""
    factory = store.make_session_factory(migrated_url)
    with store.session_scope(factory) as s:
        sid = _study(s, n_trials=3)
        idle = store.register_worker(session=s, name="idle", host="h", pid=1, device="cpu")
        busy = store.register_worker(session=s, name="busy", host="h", pid=2, device="cpu")
    with store.session_scope(factory) as s:
        held, _ = _start(s, sid, busy)
        store.set_worker_state(session=s, worker_id=busy, status="busy", study_id=sid)
        s.execute(
            update(store.WorkerRow)
            .where(store.WorkerRow.id.in_([idle, busy]))
            .values(last_seen=store.utcnow() - timedelta(minutes=5))
        )
    with store.session_scope(factory) as s:
        assert store.mark_lost_workers(session=s, grace_s=60) == 2

    def listed(wid: int) -> tuple[str, int | None, int | None]:
        with store.session_scope(factory) as s:
            row = store.get_worker(session=s, worker_id=wid)
            assert row is not None
            return row.status, row.study_id, row.trial_number

    with store.session_scope(factory) as s:
        number = s.get(store.TrialRow, held).number
    assert listed(idle)[0] == listed(busy)[0] == "lost"
    with store.session_scope(factory) as s:
        assert store.heartbeat(session=s, worker_id=idle) == {}
        assert store.heartbeat(session=s, worker_id=busy, trials={held: {}}) == {
            held: store.BEAT_OK  # not reaped yet: it still trains it
        }
    assert listed(idle) == ("idle", None, None)
    assert listed(busy) == ("busy", sid, number)  # as its claim listed it
    with store.session_scope(factory) as s:
        store.set_worker_state(session=s, worker_id=idle, status="stopped")
        assert store.heartbeat(session=s, worker_id=idle) == {}
    assert listed(idle)[0] == "stopped"  # only a lost worker is brought back
